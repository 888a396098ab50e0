"""`mreg validate`, `mreg schema` and `mreg check-large-models`: what the store writes is valid,
and each broken document is one line naming the file and what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelreg import Store, schemas, yamlio
from modelreg.errors import NotFound, StoreNotFound
from modelreg.release import ops
from modelreg.validate import check_large_models, parse_size, validate
from tests.conftest import snapshot
from tests.integrations.conftest import RULES, mreg, register, set_gates


def documents(store: Store) -> dict[str, object]:
    """Every YAML document of the store, by path relative to the store."""
    return {
        str(p.relative_to(store.root)): yamlio.load(p.read_bytes())
        for p in sorted(store.root.rglob("*.yaml"))
    }


def assert_valid(store: Store) -> None:
    """mreg finds no problem, and the reference JSON Schema implementation agrees."""
    report = validate(store=store.root)
    assert report.ok, [str(p) for p in report.problems]
    docs = documents(store)
    assert len(report.files) == len(docs) and None not in {f.kind for f in report.files}
    jsonschema = pytest.importorskip("jsonschema")
    for rel, doc in docs.items():
        validator = jsonschema.Draft202012Validator(schemas.load(doc["kind"]))  # type: ignore[index]
        assert list(validator.iter_errors(doc)) == [], rel


def test_every_document_the_store_writes_is_valid(store, tmp_path, git_repo, monkeypatch):
    """register, promote, rollback, tag, deprecate, remotes and every release action."""
    assert_valid(store)  # a fresh store: config.yaml only
    store = set_gates(store, {"production": ("test.f1 >= 0.9",), "staging": ("test.f1 > 0.5",)})
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy==2.1.0\n")
    monkeypatch.chdir(git_repo)  # code lineage from a real git work tree
    register(
        store, tmp_path, "fraud", "1.0.0", 0.91, detect_code=True, data=[str(data), "s3://b/f"],
        requirements=reqs, params={"lr": 0.1, "tree": {"depth": 6}}, tags=["candidate"],
        message="first",
    )  # fmt: skip
    register(store, tmp_path, "fraud", "1.1.0", 0.93)
    register(store, tmp_path, "fraud", "1.2.0-rc.1", 0.95)
    register(store, tmp_path, "team/ranker", "0.1.0", 0.97)
    assert store.resolve("fraud@1.0.0").code is not None
    assert_valid(store)
    store.promote("fraud@1.0.0", "staging")
    store.promote("fraud@1.0.0", "production")
    store.promote("fraud@1.1.0", "production", reason="better")
    store.rollback("fraud", reason="conversion dropped")
    store.promote("team/ranker@0.1.0", "production")
    store.tag("fraud@1.1.0", ["reviewed"], ["x"])
    store.tag("fraud@1.0.0", remove=["candidate"])
    store.deprecate("fraud@1.2.0-rc.1", reason="leaks labels")
    store.remotes.add("origin", "s3://bucket/reg", {"endpoint_url": "http://127.0.0.1:9"})
    store = Store.open(store.root)
    assert_valid(store)

    checks = ["errors: error_rate <= baseline + 0.5pt", {"policy": {"passes": 2}}]
    ops.start(store, "fraud", "1.1.0", steps="shadow,1,5,50,100", rules=RULES, analysis=checks)
    assert_valid(store)
    ops.step(store, "fraud")
    ops.update(store, "fraud", weight="7.5")
    ops.update(store, "fraud", rules=[RULES[0]])
    ops.update(store, "fraud", shadow=True)
    ops.pause(store, "fraud", reason="weekend")
    assert_valid(store)
    ops.resume(store, "fraud")
    ops.step(store, "fraud")
    ops.promote(store, "fraud")
    assert_valid(store)
    ops.start(store, "fraud", "1.0.0", baseline="1.1.0", stick_by="session")
    ops.abort(store, "fraud", reason="p99 doubled")
    store.rollback("fraud", reason="after the release")
    assert_valid(store)


def _edit(path: Path, old: str, new: str) -> None:
    path.chmod(0o644)
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new, 1))


ROLL = "releases/fraud.yaml"
ALIAS = "models/fraud/aliases/production.yaml"
V1 = "models/fraud/versions/1.0.0.yaml"


@pytest.mark.parametrize(
    ("rel", "old", "new", "expected"),
    [
        (ROLL, "\nweight: 5\n", "\nweight: 150\n", "releases/fraud.yaml: weight: must be at most 100, got 150"),
        (ROLL, "\nweight: 5\n", "\nweight: 7.555\n", "releases/fraud.yaml: invalid weight 7.555: the finest step is 0.01%"),
        (ROLL, "canary:\n  id: ", "canary:\n  id: 12", "releases/fraud.yaml: canary.id: invalid value"),
        (ROLL, "version: 1.1.0\ngeneration", "version: 1.0.0\ngeneration", "the baseline and the canary are the same version"),
        (ROLL, "- weight: 10\n", "- wieght: 10\n", "releases/fraud.yaml: rules[1].wieght: unknown field: did you mean 'weight'?"),
        (ROLL, "- weight: 10\n", "- priority: 1\n  weight: 10\n", "rules[1].priority: unknown field (allowed: name, users, when, variant, weight)"),
        (ROLL, "- weight: 10\n", "- name: x\n", "releases/fraud.yaml: rules[1]: needs one of: variant, weight"),
        (ROLL, "state: progressing\nsteps", "state: finished\nsteps", "state: expected one of progressing, paused, promoted, aborted, got 'finished'"),
        (ROLL, "\nweight: 5\n", "\nweight: [5\n", "releases/fraud.yaml:"),
        (ROLL, "generation: 1\nhistory", "generation: 3\nhistory", "releases/fraud.yaml: generation: is 3, but the last history entry has 1"),
        (ROLL, "\nseed: ", "\nseed: x", "seed: invalid value 'x5bd083fc3cca355d3919f43df0a2c630': expected 32 lowercase hex digits"),
        (ALIAS, "\nversion: 1.0.0\n", "\nversion: 1.2.0\n", "production.yaml: version: differs from the last move in the history"),
        (ALIAS, "\ngeneration: 1\n", "\ngeneration: 0\n", "production.yaml: generation: must be at least 1, got 0"),
        (ALIAS, "kind: Alias", "kind: Alais", "unknown kind 'Alais'"),
        (V1, "name: fraud\n", "name: fraud2\n", "holds fraud2@1.0.0, but its path is for fraud@1.0.0"),
        (V1, "  test:\n    f1: 0.9\n", "  test:\n    f1: .nan\n", "metric test.f1 is not a finite number"),
        (V1, "- format: onnx\n  path: model.onnx", "- format: onnx\n  path: ../model.onnx", "files[0].path: unsafe path '../model.onnx'"),
        ("config.yaml", "gates: {}", "gates:\n  Prod: []", "config.yaml: gates: invalid key 'Prod': expected a name"),
        ("config.yaml", "gates: {}", "gates:\n  production:\n  - test.f1 >> 0.9", "gates.production[0]: invalid condition 'test.f1 >> 0.9': expected a value, found '>' (column 10)"),
        ("config.yaml", "gates: {}", "gates:\n  production:\n  - test.f1 >= abc", "gates.production[0]: invalid condition 'test.f1 >= abc': >= compares numbers, and 'abc' is not one (column 12)"),
        ("config.yaml", "gates: {}", "gates: {}\nremotes:\n  o:\n    url: s3://b\n    options: {secret: x}", "refusing to store the secret option 'secret'"),
    ],
)  # fmt: skip
def test_each_broken_document_is_one_problem_line(release_store, rel, old, new, expected):
    path = release_store.root / rel
    _edit(path, old, new)
    problems = [str(p) for p in validate(store=release_store.root).problems]
    lines = [p for p in problems if expected in p]
    assert len(lines) == 1, problems
    assert lines[0].startswith(str(path))
    # the manifest digest changed for V1 edits: the alias that names it says so, nothing else
    others = [p for p in problems if p != lines[0]]
    assert all("as recorded" in p for p in others), problems


def test_references_are_checked_against_the_store(release_store):
    _edit(release_store.root / ROLL, "version: 1.1.0\ngeneration", "version: 9.9.9\ngeneration")
    (problem,) = validate(store=release_store.root).problems
    assert (problem.check, problem.path) == ("reference", "canary")
    assert problem.message == "fraud@9.9.9 does not exist in the store"


def test_unreachable_and_duplicate_rules(release_store):
    rules = [
        *RULES,  # 1 testers (qa-1, qa-2); 2 region=cn-north; 3 device in ios,android and app 2.
        "testers: user_id in qa-2,qa-1 -> baseline",  # same users as rule 1
        "region=cn-north and device=ios -> canary",  # narrower than rule 2
        "device=ios and app_version^=2.1 -> canary",  # narrower than rule 3
        "user_id=qa-1 and region=eu -> baseline",  # narrower than rule 1
        "device=web and app_version^=2. -> canary",  # reachable: web is not in rule 3
        "app_version^=2 -> canary",  # reachable: broader than rule 3's prefix
    ]
    ops.update(release_store, "fraud", rules=rules)
    messages = [str(p).split(": ", 1)[1] for p in validate(store=release_store.root).problems]
    assert messages == [
        "rules[3].name: 'testers' is also rule 1",
        "rules[3]: can never match: rule 1 comes first and matches every request it matches",
        "rules[4]: can never match: rule 2 comes first and matches every request it matches",
        "rules[5]: can never match: rule 3 comes first and matches every request it matches",
        "rules[6]: can never match: rule 1 comes first and matches every request it matches",
    ]


def test_an_unquoted_timestamp_is_named(release_store):
    path = release_store.root / V1
    path.chmod(0o644)
    path.write_text(re.sub(r"created: '([^']*)'", r"created: \1", path.read_text()))
    problems = [str(p) for p in validate([path]).problems]
    assert problems == [
        f"{path}: created: expected a string, got a timestamp (quote it to make it a string)"
    ]


def test_syntax_errors_have_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.mreg.yaml"
    bad.write_text("kind: Rollout\nrules:\n  - {name: a\nweight: 5\n")
    (p,) = validate([bad]).problems
    assert (p.check, p.line, p.column) == ("syntax", 4, 7)
    assert str(p).startswith(f"{bad}:4:7: ")


def test_documents_outside_a_store(tmp_path, release_store):
    """A file out of any store gets syntax, schema and meaning checks (no store: no references)."""
    doc = yamlio.load((release_store.root / ROLL).read_bytes())
    doc["canary"]["version"] = "9.9.9"
    elsewhere = tmp_path / "gitops" / "fraud.rollout.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(yamlio.dump(doc))
    assert validate([elsewhere]).ok  # no store found from here: references unchecked
    with_store = validate([elsewhere], store=release_store.root)
    assert [p.message for p in with_store.problems] == ["fraud@9.9.9 does not exist in the store"]
    other = tmp_path / "k8s.yaml"
    other.write_text("apiVersion: v1\nkind: Service\n")
    nokind = tmp_path / "notes.yaml"
    nokind.write_text("a: 1\n")
    messages = [p.message for p in validate([other, nokind]).problems]
    assert messages[0].startswith("unknown kind 'Service' (mreg kinds: ModelVersion, Alias")
    assert messages[1].startswith("not an mreg document: no 'kind' field")


def test_validate_changes_nothing(release_store):
    before = snapshot(release_store.root)
    assert validate(store=release_store.root).ok
    assert snapshot(release_store.root) == before


def test_cli_validate(release_store, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    ok = mreg("validate")
    assert ok.exit_code == 0 and ok.stdout.strip() == "ok: 6 file(s) valid", ok.stdout
    _edit(release_store.root / ROLL, "\nweight: 5\n", "\nweight: 101\n")
    _edit(release_store.root / ALIAS, "kind: Alias", "kind: Alais")
    bad = mreg("validate")
    assert bad.exit_code == 1
    assert bad.stdout.splitlines() == [
        ".modelreg/models/fraud/aliases/production.yaml: unknown kind 'Alais' (mreg kinds: "
        "ModelVersion, Alias, VersionState, Rollout, StoreConfig)",
        ".modelreg/releases/fraud.yaml: weight: must be at most 100, got 101",
    ]
    assert bad.stderr == "mreg: error: 2 problem(s) in 2 of 6 file(s)\n"
    js = mreg("validate", ".modelreg/releases/fraud.yaml", "--json")
    assert js.exit_code == 1
    doc = json.loads(js.stdout)
    assert doc["ok"] is False and doc["store"] == str(release_store.root)
    assert doc["files"] == [
        {"file": ".modelreg/releases/fraud.yaml", "kind": "Rollout", "problems": 1}
    ]
    assert doc["problems"] == [
        {"file": ".modelreg/releases/fraud.yaml", "line": None, "column": None, "kind": "Rollout",
         "check": "schema", "path": "weight", "message": "must be at most 100, got 101"}
    ]  # fmt: skip
    missing = mreg("validate", "nope.yaml")
    assert missing.exit_code == 2 and "nope.yaml: no such file" in missing.stderr
    store_dir = mreg("validate", str(workdir), "--json")
    assert len(json.loads(store_dir.stdout)["files"]) == 6


def test_no_store_and_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreNotFound):
        validate()
    with pytest.raises(NotFound):
        validate([tmp_path / "missing.yaml"])
    res = mreg("validate")
    assert res.exit_code == 2 and "no mreg store" in res.stderr


def test_schema_command():
    listed = mreg("schema", "--json")
    assert listed.exit_code == 0
    assert [k["kind"] for k in json.loads(listed.stdout)] == list(schemas.KINDS)
    for kind, spec in schemas.KINDS.items():
        for name in (kind, spec.slug, kind.lower()):
            res = mreg("schema", name)
            assert res.exit_code == 0 and json.loads(res.stdout) == schemas.load(kind)
    assert json.loads(mreg("schema", "rollout").stdout)["$id"].endswith("rollout:v1")
    bad = mreg("schema", "Deployment")
    assert bad.exit_code == 2 and "unknown kind 'Deployment'" in bad.stderr


def test_check_large_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("big.onnx").write_bytes(b"\0" * 2_000_000)
    Path("small.pt").write_bytes(b"\0" * 1000)
    Path("data.csv").write_bytes(b"\0" * 3_000_000)
    report = check_large_models(["big.onnx", "small.pt", "data.csv", "gone.pkl"])
    assert [f.file for f in report.large] == ["big.onnx"] and report.checked == 2
    res = mreg("check-large-models", "big.onnx", "small.pt", "data.csv")
    assert res.exit_code == 1
    assert res.stdout == (
        "big.onnx: 1.9 MiB model file (limit 1.0 MiB): register it with 'mreg register NAME "
        "big.onnx' instead of committing it\n"
    )
    assert "register them" in res.stderr
    assert mreg("check-large-models", "big.onnx", "--max-size", "5MB").exit_code == 0
    csv = mreg("check-large-models", "data.csv", "--ext", "csv", "--json")
    assert csv.exit_code == 1 and json.loads(csv.stdout)["large"] == [
        {"file": "data.csv", "size": 3_000_000}
    ]
    assert mreg("check-large-models", "x", "--max-size", "lots").exit_code == 2
    assert parse_size("10MiB") == 10 * 1024 * 1024 and parse_size("500KB") == 500_000


def test_every_problem_of_a_document_is_reported_at_once(release_store):
    """A misspelt field no longer hides the rest: missing fields, bad values elsewhere, and
    what the misspelt field itself holds (issue 14)."""
    path = release_store.root / ROLL
    _edit(path, "- weight: 10\n", "- wieght: 150\n")  # misspelt, and out of range
    _edit(path, "\nseed: ", "\nsede: ")  # misspelt at the top level
    _edit(path, "\nstick_by: user_id\n", "\n")  # optional: not a problem
    _edit(path, "\nsteps:\n", "\nstepz:\n")  # misspelt required field
    _edit(path, "canary:\n  id: ", "canary:\n  id: 12")  # a bad digest elsewhere
    found = {(p.path, p.message.split(" '")[0]) for p in validate([path]).problems}
    assert found == {
        ("rules[1].wieght", "unknown field: did you mean"),  # 'weight'?
        ("rules[1].wieght", "must be at most 100, got 150"),  # still checked as a weight
        ("sede", "unknown field: did you mean"),
        ("stepz", "unknown field: did you mean"),  # and 'steps' is not also reported missing
        ("canary.id", "invalid value"),
    }


def test_a_missing_field_beside_a_misspelt_one_is_reported(release_store):
    path = release_store.root / ROLL
    _edit(path, "\nseed: ", "\nsed: ")
    _edit(path, "kind: Rollout\n", "kind: Rollout\nmodle: x\n")
    text = path.read_text()
    path.write_text(text.replace("\nmodel: fraud\n", "\n"))
    messages = sorted(p.message for p in validate([path]).problems)
    assert messages == [
        "unknown field: did you mean 'model'?",
        "unknown field: did you mean 'seed'?",
    ]  # 'model' is read from 'modle', 'seed' from 'sed': nothing is missing
    path.write_text(text.replace("\nmodel: fraud\n", "\n").replace("modle: x\n", ""))
    messages = sorted(p.message for p in validate([path]).problems)
    assert messages == ["missing field 'model'", "unknown field: did you mean 'seed'?"]


def test_meaning_problems_are_reported_beside_schema_problems(release_store):
    path = release_store.root / ROLL
    _edit(path, "generation: 1\nhistory", "generation: 3\nhistory")  # meaning
    _edit(path, "kind: Rollout\n", "kind: Rollout\nowner: team-a\n")  # schema
    problems = [(p.check, p.path, p.message) for p in validate([path]).problems]
    assert problems == [
        ("schema", "owner", "unknown field (allowed: " + problems[0][2].split("(allowed: ")[1]),
        ("meaning", "generation", "is 3, but the last history entry has 1"),
    ]
