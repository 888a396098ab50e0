"""The packaged JSON Schemas: standard draft 2020-12, within the checker's keywords, and the
checker agrees with the reference implementation (`jsonschema`) on valid and broken documents."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from modelreg import schemas, yamlio
from tests.integrations.conftest import ROOT, set_gates

jsonschema = pytest.importorskip("jsonschema")

# Values put in place of each field, to break documents in every way a hand edit could.
REPLACEMENTS: tuple[Any, ...] = (
    None, True, 0, -1, 1.5, 150, "", "x", "1.0.0", "production", "a" * 64, [], ["x"], {},
    {"in": ["a"]}, {"version": "1.0.0", "id": "0" * 64},
)  # fmt: skip


def _walk(schema: Any) -> Iterator[tuple[str, Any]]:
    """Every (keyword, value) pair in a schema, descending into subschemas only."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key, value
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from _walk(sub)
            elif key in ("anyOf", "oneOf"):
                for sub in value:
                    yield from _walk(sub)
            elif key in ("items", "additionalProperties", "propertyNames"):
                yield from _walk(value)


@pytest.mark.parametrize("kind", list(schemas.KINDS))
def test_schemas_are_draft_2020_12_within_the_supported_keywords(kind):
    schema = schemas.load(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["kind"] == {"const": kind, "description": "The document type."}
    used = {key for key, _ in _walk(schema)}
    assert used <= schemas.SUPPORTED, used - schemas.SUPPORTED


def test_schemas_ship_as_package_data():
    files = sorted(
        p.name for p in resources.files("modelreg.schemas").iterdir() if p.name.endswith(".json")
    )
    assert files == sorted(s.filename for s in schemas.KINDS.values())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _mutations(doc: Any) -> Iterator[Any]:
    """The document with one field replaced, removed, or one unknown field added."""
    for path in list(_paths(doc)):
        if not path:
            continue
        *parent_path, last = path
        for value in (*REPLACEMENTS, "<drop>"):
            broken = copy.deepcopy(doc)
            parent = broken
            for p in parent_path:
                parent = parent[p]
            if value == "<drop>":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(value)
            yield broken
        if isinstance(doc, dict):
            broken = copy.deepcopy(doc)
            target = broken
            for p in path:
                target = target[p]
            if isinstance(target, dict):
                target["surprise"] = 1
                yield broken


def test_the_checker_agrees_with_jsonschema(release_store):
    """Same verdict as the reference implementation on every store document and ~3,000 breakages."""
    store = set_gates(release_store, {"production": ("test.f1 >= 0.9",)})
    store.tag("fraud@1.1.0", ["reviewed"])
    store.deprecate("fraud@1.2.0", reason="leaks labels")
    store.remotes.add("origin", "s3://bucket/reg", {"endpoint_url": "http://127.0.0.1:9"})
    docs = [yamlio.load(p.read_bytes()) for p in sorted(store.root.rglob("*.yaml"))]
    assert {d["kind"] for d in docs} == set(schemas.KINDS)
    compared = 0
    for doc in docs:
        schema = schemas.load(doc["kind"])
        reference = jsonschema.Draft202012Validator(schema)
        for candidate in [doc, *_mutations(doc)]:
            mine = schemas.check(candidate, schema)
            theirs = list(reference.iter_errors(candidate))
            assert bool(mine) == bool(theirs), (json.dumps(candidate)[:2000], mine, theirs)
            compared += 1
    assert compared > 2500


def test_messages_name_the_field_and_the_fix(release_store):
    schema = schemas.load("Rollout")
    doc = yamlio.load((release_store.root / "releases" / "fraud.yaml").read_bytes())
    assert schemas.check(doc, schema) == []
    doc["rules"][0]["variant"] = "both"
    doc["rules"][1]["wieght"] = doc["rules"][1].pop("weight")
    doc["steps"] = [0, "mirror"]
    doc["baseline"]["id"] = "abc"
    found = [f"{e.path}: {e.message}" for e in schemas.check(doc, schema)]
    assert found == [
        "baseline.id: invalid value 'abc': expected a SHA-256 digest: 64 lowercase hex digits",
        "rules[0].variant: expected one of canary, baseline, got 'both'",
        "rules[1].wieght: unknown field: did you mean 'weight'?",
        "steps[0]: must be above 0, got 0",
        "steps[1]: expected 'shadow', got 'mirror'",
    ]
