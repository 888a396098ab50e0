"""End-to-end tests of the read commands: list, show, diff, get, log, verify."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from modelreg import Store
from tests.cli.helpers import assert_one_line_error, make_writable, ok
from tests.conftest import git, snapshot


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files_under(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


BUNDLE = {
    "model.onnx": b"fraud weights v2",
    "config/labels.json": b'["ok", "fraud"]',
    "config/deep/thresholds.yaml": b"t: 0.5\n",
}


@pytest.fixture
def registry(tmp_path: Path, store: Store) -> Store:
    """fraud 1.0.0 / 1.1.0 / 2.0.0 and churn 0.1.0, with tags, metrics, params and aliases."""
    src = tmp_path / "src"
    v1 = write(src / "v1" / "model.onnx", b"fraud weights v1")
    bundle = src / "bundle"
    for rel, data in BUNDLE.items():
        write(bundle / rel, data)
    v3 = write(src / "v3" / "model.onnx", b"fraud weights v3")
    churn = write(src / "churn" / "model.pkl", b"churn model")
    reg = {"detect_code": False}
    store.register(
        "fraud",
        [v1],
        version="1.0.0",
        params={"lr": 0.1, "optim": "sgd"},
        metrics={"test": {"f1": 0.85}, "train": {"f1": 0.9}},
        tags=["baseline"],
        **reg,
    )
    store.register(
        "fraud",
        [bundle],
        version="1.1.0",
        params={"lr": 0.01, "optim": "adam"},
        metrics={"test": {"f1": 0.91}},
        tags=["candidate"],
        data=["s3://bucket/v1"],
        **reg,
    )
    store.register(
        "fraud",
        [v3],
        version="2.0.0",
        params={"lr": 0.001, "optim": "adam"},
        metrics={"test": {"f1": 0.95}},
        data=["s3://bucket/v2"],
        **reg,
    )
    store.register(
        "churn",
        [churn],
        version="0.1.0",
        params={"depth": 6},
        metrics={"test": {"f1": 0.92}},
        **reg,
    )
    store.promote("fraud@1.1.0", "production")
    store.promote("fraud@2.0.0", "staging")
    return store


# -- list --------------------------------------------------------------------------------------


def test_list_models_and_versions(registry, run_mreg):
    models = ok(run_mreg("list", "--json")).json()
    assert [(m["name"], m["versions"], m["latest"], m["aliases"]) for m in models] == [
        ("churn", 1, "0.1.0", {}),
        ("fraud", 3, "2.0.0", {"production": "1.1.0", "staging": "2.0.0"}),
    ]
    table = ok(run_mreg("list")).stdout
    assert "fraud" in table and "churn" in table and "production→1.1.0" in table

    rows = ok(run_mreg("list", "fraud", "--json")).json()
    assert [(r["version"], r["aliases"], r["tags"]) for r in rows] == [
        ("1.0.0", [], ["baseline"]),
        ("1.1.0", ["production"], ["candidate"]),
        ("2.0.0", ["staging"], []),
    ]
    assert [r["id"] for r in rows] == [i.version.id for i in registry.versions("fraud")]


def test_list_filters_and_sorts(registry, run_mreg):
    def versions(*args: str) -> list[str]:
        rows = ok(run_mreg("list", *args, "--json")).json()
        return [f"{r['name']}@{r['version']}" for r in rows]

    assert versions("--tag", "candidate") == ["fraud@1.1.0"]
    assert versions("--alias", "production") == ["fraud@1.1.0"]
    assert versions("--where", "test.f1 >= 0.9") == ["churn@0.1.0", "fraud@1.1.0", "fraud@2.0.0"]
    # conditions on params; several conditions must all hold; one model only
    assert versions("fraud", "--where", "params.lr < 0.05", "--where", "params.optim == adam") == [
        "fraud@1.1.0",
        "fraud@2.0.0",
    ]
    assert versions("--sort", "test.f1", "--desc") == [
        "fraud@2.0.0",
        "churn@0.1.0",
        "fraud@1.1.0",
        "fraud@1.0.0",
    ]
    # the table shows the metric that was sorted on
    table = ok(run_mreg("list", "fraud", "--sort", "test.f1")).stdout
    assert "test.f1" in table and "0.85" in table and "0.95" in table


def test_list_sort_on_param_with_mixed_types_is_not_an_internal_error(registry, run_mreg):
    # fraud's other versions have optim 'sgd' or 'adam'; this one has a number
    f = registry.objects.path(registry.resolve("fraud@1.0.0").files[0].sha256)
    registry.register("fraud", [f], version="3.0.0", params={"optim": 3}, detect_code=False)
    res = run_mreg("list", "fraud", "--sort", "params.optim", "--json")
    assert res.returncode in (0, 2), res
    assert "internal error" not in res.stderr


# -- show --------------------------------------------------------------------------------------


def test_show_by_version_alias_and_latest(registry, run_mreg):
    by_version = ok(run_mreg("show", "fraud@1.1.0", "--json")).json()
    assert set(by_version) >= {
        "id",
        "name",
        "version",
        "created",
        "author",
        "message",
        "tags",
        "params",
        "metrics",
        "files",
        "data",
        "code",
        "dependencies",
        "aliases",
        "deprecated",
        "size",
    }
    assert by_version["id"] == registry.resolve("fraud@1.1.0").id
    assert (by_version["version"], by_version["aliases"]) == ("1.1.0", ["production"])
    assert by_version["author"] == "Test Author <test@example.com>"
    assert by_version["metrics"] == {"test": {"f1": 0.91}}
    assert by_version["params"] == {"lr": 0.01, "optim": "adam"}
    assert by_version["tags"] == ["candidate"] and by_version["deprecated"] is None
    assert by_version["size"] == sum(len(b) for b in BUNDLE.values())
    assert sorted(f["path"] for f in by_version["files"]) == sorted(BUNDLE)
    assert by_version["data"][0]["uri"] == "s3://bucket/v1"

    assert ok(run_mreg("show", "fraud@production", "--json")).json() == by_version
    assert ok(run_mreg("show", "fraud@latest", "--json")).json()["version"] == "2.0.0"
    assert ok(run_mreg("show", "fraud", "--json")).json()["version"] == "2.0.0"

    card = ok(run_mreg("show", "fraud@production")).stdout
    for text in (
        "fraud@1.1.0",
        by_version["id"][:12],
        "Test Author",
        "production",
        "config/deep/thresholds.yaml",
        "0.91",
        "s3://bucket/v1",
    ):
        assert text in card, text


# -- diff --------------------------------------------------------------------------------------


def test_diff_json_sections(tmp_path, store, run_mreg, git_repo):
    a = write(tmp_path / "a" / "model.onnx", b"A")
    b = write(tmp_path / "b" / "model.onnx", b"B")
    extra = write(tmp_path / "b" / "extra.txt", b"E")
    store.register(
        "m",
        [a],
        version="1.0.0",
        params={"lr": 0.1, "opt": {"name": "sgd"}},
        metrics={"test": {"f1": 0.8}},
        code=git_repo,
        data=["s3://d/1"],
    )
    (git_repo / "train.py").write_text("print('v2')\n")
    git(git_repo, "commit", "-q", "-am", "v2")
    store.register(
        "m",
        [b, extra],
        version="2.0.0",
        params={"lr": 0.1, "opt": {"name": "adam"}},
        metrics={"test": {"f1": 0.9}, "val": {"f1": 0.85}},
        code=git_repo,
        data=["s3://d/2"],
    )

    d = ok(run_mreg("diff", "m@1.0.0", "m@2.0.0", "--json")).json()
    assert d["a"]["version"] == "1.0.0" and d["b"]["version"] == "2.0.0"
    assert d["params"] == {"opt.name": {"a": "sgd", "b": "adam"}}  # lr is equal: not listed
    assert d["metrics"] == {
        "test.f1": {"a": 0.8, "b": 0.9},
        "val.f1": {"a": None, "b": 0.85},
    }
    assert d["files"] == {
        "model.onnx": {"a": sha(b"A"), "b": sha(b"B")},
        "extra.txt": {"a": None, "b": sha(b"E")},
    }
    assert set(d["data"]) == {"s3://d/1", "s3://d/2"}
    assert set(d["code"]) == {"commit"}
    assert d["code"]["commit"]["b"] == git(git_repo, "rev-parse", "HEAD")

    same = ok(run_mreg("diff", "m@2.0.0", "m@latest"))
    assert "do not differ" in same.stdout


# -- get ---------------------------------------------------------------------------------------


def test_get_materialises_verified_files(tmp_path, registry, run_mreg):
    out = tmp_path / "out"
    res = ok(run_mreg("get", "fraud@production", "--out", str(out), "--json")).json()
    assert (res["version"], res["files"]) == ("1.1.0", 3)
    assert files_under(out) == BUNDLE
    assert sorted(res["written"]) == sorted(str(out / p) for p in BUNDLE)

    # again: everything is up to date, nothing is rewritten
    assert ok(run_mreg("get", "fraud@1.1.0", "--out", str(out), "--json")).json()["written"] == []

    # a local edit is not overwritten without --force
    target = out / "config" / "labels.json"
    target.write_bytes(b"edited locally")
    before = snapshot(out)
    line = assert_one_line_error(run_mreg("get", "fraud@1.1.0", "--out", str(out)), 2)
    assert "--force" in line and "labels.json" in line
    assert snapshot(out) == before
    res = ok(run_mreg("get", "fraud@1.1.0", "--out", str(out), "--force", "--json")).json()
    assert res["written"] == [str(target)]
    assert files_under(out) == BUNDLE


def test_get_refuses_a_corrupted_object(tmp_path, registry, run_mreg):
    obj = registry.objects.path(sha(b"fraud weights v3"))
    make_writable(obj)
    obj.write_bytes(b"fraud weights XX")  # same size, other bytes
    out = tmp_path / "out"
    line = assert_one_line_error(run_mreg("get", "fraud@2.0.0", "--out", str(out)), 1)
    assert "corrupt" in line
    # no partial (or temporary) file is left behind
    assert not out.exists() or list(out.rglob("*")) == []

    res = run_mreg("verify")
    assert res.returncode == 1, res
    assert "corrupt" in res.stdout and "fraud@2.0.0" in res.stdout


def test_get_out_is_a_file(tmp_path, registry, run_mreg):
    out = write(tmp_path / "not-a-dir", b"x")
    assert_one_line_error(run_mreg("get", "fraud@1.0.0", "--out", str(out)), 2)


# -- log and verify ----------------------------------------------------------------------------


def test_log_json_and_filter_by_model(registry, run_mreg):
    entries = ok(run_mreg("log", "--json")).json()
    assert [(e["action"], e["model"]) for e in entries] == [
        ("register", "fraud"),
        ("register", "fraud"),
        ("register", "fraud"),
        ("register", "churn"),
        ("promote", "fraud"),
        ("promote", "fraud"),
    ]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev"] == "0" * 64
    for prev, e in itertools.pairwise(entries):
        assert e["prev"] == prev["hash"]
    assert {e["actor"] for e in entries} == {"Test Author <test@example.com>"}
    assert entries[3]["details"]["version"] == "0.1.0"
    assert entries[4]["details"]["alias"] == "production"
    assert entries[4]["details"]["version"] == "1.1.0"

    churn = ok(run_mreg("log", "churn", "--json")).json()
    assert churn == [entries[3]]
    table = ok(run_mreg("log", "fraud", "--limit", "2")).stdout
    assert "promote" in table and "staging" in table and "churn" not in table


def test_verify_detects_edited_and_deleted_audit_entries(registry, run_mreg):
    report = ok(run_mreg("verify", "--json")).json()
    assert (report["ok"], report["versions"], report["objects"], report["audit_entries"]) == (
        True,
        4,
        6,
        6,
    )

    log = registry.root / "audit" / "log.jsonl"
    original = log.read_bytes()
    lines = original.splitlines(keepends=True)
    doc = json.loads(lines[1])
    doc["actor"] = "Mallory <m@example.com>"
    make_writable(log)
    log.write_bytes(b"".join([lines[0], json.dumps(doc).encode() + b"\n", *lines[2:]]))
    res = run_mreg("verify")
    assert res.returncode == 1, res
    assert "audit entry 2" in res.stdout and "edited" in res.stdout

    log.write_bytes(b"".join([lines[0], *lines[2:]]))  # delete entry 2
    res = run_mreg("verify")
    assert res.returncode == 1, res
    assert "chain broken" in res.stdout


def test_verify_detects_a_deleted_last_audit_entry(registry, run_mreg):
    log = registry.root / "audit" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    make_writable(log)
    log.write_bytes(b"".join(lines[:-1]))  # drop "promote fraud@2.0.0 to staging"
    res = run_mreg("verify")
    assert res.returncode == 1, res


def test_verify_reports_a_corrupted_manifest(registry, run_mreg):
    manifest = registry.manifest_path("fraud", "1.0.0")
    make_writable(manifest)
    manifest.write_bytes(b"just garbage\n")
    res = run_mreg("verify")
    assert res.returncode == 1, res
    assert "malformed manifest" in res.stdout


def test_verify_names_the_corrupted_manifest(registry, run_mreg):
    manifest = registry.manifest_path("fraud", "1.0.0")
    make_writable(manifest)
    manifest.write_bytes(b"just garbage\n")
    res = run_mreg("verify")
    problem = next(line for line in res.stdout.splitlines() if "malformed" in line)
    assert "fraud@1.0.0" in problem or str(manifest) in problem
