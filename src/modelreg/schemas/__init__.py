"""The JSON Schemas of mreg's documents, shipped as package data, and the checker that applies them.

Each kind has one schema file per schema version, `<kind>.v<N>.json` (JSON Schema draft
2020-12), so editors, `check-jsonschema` and any other validator can use the same files that
`mreg validate` uses (`mreg schema KIND` prints one).

`check` implements the part of draft 2020-12 these schemas use (`SUPPORTED`), with messages
written for people: a typo in a hand-edited manifest should read "unknown field 'wieght'",
not a dump of the schema. Why not the `jsonschema` package: it would add four packages (one a
compiled extension) to every install of a registry CLI whose schemas need a dozen keywords;
the test suite checks that this checker agrees with `jsonschema` on every schema and on
generated valid and invalid documents, and that the schemas use only `SUPPORTED` keywords.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from modelreg.errors import InvalidInput

__all__ = ["KINDS", "SUPPORTED", "SchemaError", "Spec", "check", "load", "spec_for"]


@dataclass(frozen=True)
class Spec:
    """One document kind: its `kind` value, schema version, schema file and where it lives."""

    kind: str
    slug: str
    version: int
    where: str

    @property
    def filename(self) -> str:
        """The packaged schema file, e.g. `rollout.v1.json`."""
        return f"{self.slug}.v{self.version}.json"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (`mreg schema --json` lists these)."""
        return {
            "kind": self.kind,
            "name": self.slug,
            "version": self.version,
            "file": self.filename,
            "where": self.where,
        }


KINDS: dict[str, Spec] = {
    s.kind: s
    for s in (
        Spec("ModelVersion", "model-version", 1, "models/NAME/versions/VERSION.yaml"),
        Spec("Alias", "alias", 1, "models/NAME/aliases/ALIAS.yaml"),
        Spec("VersionState", "version-state", 1, "models/NAME/state/VERSION.yaml"),
        Spec("Rollout", "rollout", 1, "releases/NAME.yaml"),
        Spec("StoreConfig", "store-config", 1, "config.yaml"),
    )
}
"""Every document kind mreg writes, by its `kind` value."""

SUPPORTED = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "title", "description", "default", "examples",
        "type", "enum", "const", "properties", "required", "additionalProperties",
        "propertyNames", "minProperties", "items", "minItems", "maxItems", "pattern",
        "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "anyOf", "oneOf",
    }
)  # fmt: skip
"""The JSON Schema keywords `check` implements (a test keeps the schemas within them)."""


def spec_for(name: str) -> Spec:
    """The kind named `name`: its `kind` value (`Rollout`) or file name (`rollout`), any case."""
    wanted = name.strip().lower().removesuffix(".json")
    for spec in KINDS.values():
        if wanted in (spec.kind.lower(), spec.slug, spec.filename[:-5]):
            return spec
    raise InvalidInput(f"unknown kind {name!r}: use one of {', '.join(KINDS)}")


@cache
def _parsed(filename: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files(__name__).joinpath(filename).read_text())
    return schema


def load(kind: str) -> dict[str, Any]:
    """The packaged JSON Schema of `kind` (a `kind` value or file name), a copy to keep."""
    return copy.deepcopy(_parsed(spec_for(kind).filename))


@dataclass(frozen=True)
class SchemaError:
    """Where a document breaks its schema (`path` as `rules[0].weight`) and why."""

    path: str
    message: str


def check(doc: Any, schema: dict[str, Any] | str) -> list[SchemaError]:
    """Every way `doc` breaks `schema` (a schema, or the kind of a packaged one); [] if valid."""
    if isinstance(schema, str):
        schema = _parsed(spec_for(schema).filename)
    out: list[SchemaError] = []
    _Checker(schema, out).run(doc, schema, ())
    return out


# -- the checker ------------------------------------------------------------------------------

Path = tuple[str | int, ...]
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def _join(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _types_of(value: Any) -> set[str]:
    """The JSON types a Python value parsed from YAML has (empty: not a JSON value)."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if math.isfinite(value) and value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    if isinstance(value, list):
        return {"array"}
    if isinstance(value, dict):
        return {"object"}
    return set()


def describe(value: Any) -> str:
    """A value as an error message names it: `'abc'`, `3`, `a list`, `a timestamp`..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    name = type(value).__name__
    if name in ("date", "datetime"):
        return "a timestamp (quote it to make it a string)"
    return f"a {name}"  # pragma: no cover (YAML's safe loader makes no other types)


def _ordinal_types(types: list[str]) -> str:
    names = {"null": "null", "boolean": "true or false", "object": "a mapping", "array": "a list"}
    words = [names.get(t, f"an {t}" if t == "integer" else f"a {t}") for t in types]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _only_required(branches: list[Any]) -> list[str] | None:
    """The field names when every branch is just `{required: [one field]}`, else None."""
    names = []
    for b in branches:
        if not (isinstance(b, dict) and set(b) == {"required"} and len(b["required"]) == 1):
            return None
        names.append(b["required"][0])
    return names


class _Checker:
    def __init__(self, root: dict[str, Any], out: list[SchemaError]) -> None:
        self.root = root
        self.out = out

    def fail(self, path: Path, message: str) -> None:
        self.out.append(SchemaError(_join(path), message))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref!r}: only local #/$defs/NAME")
            schema = self.root["$defs"][ref[len("#/$defs/") :]]
        return schema

    def valid(self, value: Any, schema: dict[str, Any]) -> bool:
        errors: list[SchemaError] = []
        _Checker(self.root, errors).run(value, schema, ())
        return not errors

    def run(self, value: Any, schema: dict[str, Any], path: Path) -> None:
        schema = self.resolve(schema)
        before = len(self.out)
        self._scalar(value, schema, path)
        if len(self.out) > before:
            return  # a wrong type or value: the rest would only repeat it
        if isinstance(value, dict):
            value = self._object(value, schema, path)
        if isinstance(value, list):
            self._array(value, schema, path)
        self._combinators(value, schema, path)

    def _scalar(self, value: Any, schema: dict[str, Any], path: Path) -> None:
        if "type" in schema:
            wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not _types_of(value) & set(wanted):
                self.fail(path, f"expected {_ordinal_types(wanted)}, got {describe(value)}")
                return
        if "const" in schema and not _equal(value, schema["const"]):
            self.fail(path, f"expected {describe(schema['const'])}, got {describe(value)}")
            return
        if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
            allowed = ", ".join(str(e) for e in schema["enum"])
            self.fail(path, f"expected one of {allowed}, got {describe(value)}")
            return
        if isinstance(value, str):
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.fail(path, f"invalid value {describe(value)}{_expected(schema)}")
            if len(value) < schema.get("minLength", 0):
                self.fail(path, "must not be empty" if schema["minLength"] == 1 else "too short")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.fail(path, f"longer than {schema['maxLength']} characters")
        elif "number" in _types_of(value):
            self._bounds(value, schema, path)

    def _bounds(self, value: float, schema: dict[str, Any], path: Path) -> None:
        shown = describe(value)
        if "minimum" in schema and value < schema["minimum"]:
            self.fail(path, f"must be at least {schema['minimum']}, got {shown}")
        if "maximum" in schema and value > schema["maximum"]:
            self.fail(path, f"must be at most {schema['maximum']}, got {shown}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            self.fail(path, f"must be above {schema['exclusiveMinimum']}, got {shown}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            self.fail(path, f"must be below {schema['exclusiveMaximum']}, got {shown}")

    def _object(self, value: dict[Any, Any], schema: dict[str, Any], path: Path) -> dict[Any, Any]:
        """Check a mapping; return it as meant, each misspelt field under its right name.

        A field that looks misspelt (`wieght` where `weight` is missing) is reported once, as
        such, and then read as the field it was meant to be: its value is still checked, the
        meant field does not count as missing, and every other problem is reported too.
        """
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        typos: dict[str, str] = {}
        if extra is False:
            absent = [p for p in props if p not in value]
            for key in value:
                if isinstance(key, str) and key not in props:
                    close = difflib.get_close_matches(key, absent, n=1, cutoff=0.75)
                    if close and close[0] not in typos.values():
                        typos[key] = close[0]
            for key, meant in typos.items():
                self.fail((*path, key), f"unknown field: did you mean {meant!r}?")
        meant_value = {typos.get(k, k): v for k, v in value.items()} if typos else value
        for name in schema.get("required", ()):
            if name not in meant_value:
                self.fail(path, f"missing field {name!r}")
        if len(value) < schema.get("minProperties", 0):
            self.fail(path, "must not be empty")
        names = schema.get("propertyNames")
        for key, item in value.items():
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {describe(key)}")
                continue
            if names is not None:
                key_schema = self.resolve(names)
                if not self.valid(key, key_schema):
                    self.fail(path, f"invalid key {key!r}{_expected(key_schema)}")
                    continue
            if typos.get(key, key) in props:
                self.run(item, props[typos.get(key, key)], (*path, key))
            elif extra is False:
                allowed = f" (allowed: {', '.join(props)})" if props else ""
                self.fail((*path, key), f"unknown field{allowed}")
            elif isinstance(extra, dict):
                self.run(item, extra, (*path, key))
        return meant_value

    def _array(self, value: list[Any], schema: dict[str, Any], path: Path) -> None:
        n = len(value)
        if n < schema.get("minItems", 0):
            self.fail(path, "must not be empty" if schema["minItems"] == 1 else "too few items")
        if "maxItems" in schema and n > schema["maxItems"]:
            self.fail(path, f"more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                self.run(item, schema["items"], (*path, i))

    def _combinators(self, value: Any, schema: dict[str, Any], path: Path) -> None:
        for word in ("anyOf", "oneOf"):
            if word not in schema:
                continue
            branches = schema[word]
            fields = _only_required(branches)
            matched = [b for b in branches if self.valid(value, b)]
            if fields is not None:
                if not matched:
                    many = "one of" if word == "oneOf" else "at least one of"
                    self.fail(path, f"needs {many}: {', '.join(fields)}")
                elif word == "oneOf" and len(matched) > 1:
                    self.fail(path, f"give only one of: {', '.join(fields)}")
            elif not matched:
                self._best_branch(value, branches, path, schema)
            elif word == "oneOf" and len(matched) > 1:
                self.fail(path, f"{describe(value)} matches more than one allowed form")

    def _best_branch(
        self, value: Any, branches: list[Any], path: Path, schema: dict[str, Any]
    ) -> None:
        """Report why `value` fits none of `branches`: through the branch of its type, if one."""
        kinds = _types_of(value)
        fitting = []
        for b in branches:
            target = self.resolve(b)
            types = target.get("type")
            if types is None and "const" in target:
                types = sorted(_types_of(target["const"]))
            if types is None:
                continue
            if kinds & set(types if isinstance(types, list) else [types]):
                fitting.append(target)
        if len(fitting) == 1:
            self.run(value, fitting[0], path)
            return
        self.fail(path, f"invalid value {describe(value)}{_expected(schema)}")


def _expected(schema: dict[str, Any]) -> str:
    """`: expected <description>` for a schema that describes its values, else a pattern hint."""
    if "description" in schema:
        return f": expected {schema['description']}"
    if "pattern" in schema:
        return f": does not match {schema['pattern']}"
    return ""


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)
