"""`mreg import mlflow` against a real MLflow registry (issue 20).

One MLflow tracking server for the module (`mlflow_registry.py`, started early by conftest.py
and run by the MLflow virtualenv's python: MLflow's own server application on a sqlite
backend store with proxied artifacts, filled through MLflow's own client). mreg talks to it
over HTTP, as it would to any server.
The last test adds a version; the tests before it see two.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.importing.mlflow import metric_split, model_name
from tests.conftest import snapshot
from tests.importing.conftest import Registry
from tests.tools import require_tool


@pytest.fixture(scope="module")
def registry(mlflow_registry_early: Registry | None) -> Registry:
    """The registry the package's conftest started; skipped when MLflow is not installed."""
    require_tool("mlflow", "python")
    assert mlflow_registry_early is not None
    return mlflow_registry_early


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_metric_names_give_splits() -> None:
    assert metric_split("test_f1") == ("test", "f1")
    assert metric_split("val/auc") == ("val", "auc")
    assert metric_split("train.loss") == ("train", "loss")
    assert metric_split("validation-acc") == ("val", "acc")
    assert metric_split("accuracy") == ("run", "accuracy")
    assert metric_split("eval/sub/x") == ("eval", "sub.x")
    assert metric_split("a b") is None
    assert model_name("Fraud Detector") == "fraud-detector"
    assert model_name("team.Model_v2") == "team.model_v2"


def test_import_copies_versions_files_runs_and_aliases(registry: Registry, store: Store, run_mreg):
    r = run_mreg("import", "mlflow", "--tracking-uri", registry.url, "--json")
    assert r.ok, r
    report = r.json()
    assert report["counts"] == {
        "imported": 4, "exists": 0, "skipped": 1, "failed": 0, "planned": 0
    }  # fmt: skip
    skipped = next(i for i in report["items"] if i["status"] == "skipped")
    assert skipped["name"] == "elsewhere" and "s3:" in skipped["reason"]
    assert not (store.root / "models" / "elsewhere").exists()
    assert report["location"] == registry.url
    one, two = registry.info["versions"]

    v1 = store.info("fraud-detector@1.0.0").version
    src = registry.root / "src" / "one"
    assert {f.path: f.sha256 for f in v1.files} == {
        "weights.bin": _sha(src / "weights.bin"),
        "sub/config.json": _sha(src / "sub" / "config.json"),
    }
    assert v1.params == {"lr": "0.01", "layers": "3"}
    assert v1.metrics == {
        "test": {"f1": 0.9}, "val": {"auc": 0.8}, "train": {"loss": 0.1}, "run": {"accuracy": 0.7}
    }  # fmt: skip
    assert v1.message == "first one"
    assert v1.author == "alice"
    assert v1.created == _iso(one["created"])
    assert "team=vision" in v1.tags and f"mlflow.run={one['run']}" in v1.tags
    assert not any(t.startswith("note") for t in v1.tags)  # not a valid tag: left out
    assert v1.code is not None and v1.code.commit == "0123456789abcdef0123456789abcdef01234567"

    v2 = store.info("fraud-detector@2.0.0").version
    assert v2.author == "bob"
    assert {"mlflow.stage=Staging", f"mlflow.model={two['model']}"} <= set(v2.tags)
    assert v2.metrics == {"test": {"f1": 0.95}}
    assert store.info("fraud-detector@champion").version.version == "1.0.0"
    assert store.info("fraud-detector@challenger").version.version == "2.0.0"

    # the history: original authors and times, marked as imported, one valid chain
    log = [e for e in store.audit.entries() if e.action == "register"]
    assert [(e.actor, e.time) for e in log] == [
        ("alice", _iso(one["created"])), ("bob", _iso(two["created"]))
    ]  # fmt: skip
    for e in store.audit.entries():
        assert e.details["imported"]["source"] == "mlflow"
        assert e.details["imported"]["from"] == registry.url
    assert store.fsck().errors == []


def test_a_second_import_adds_nothing(registry: Registry, store: Store):
    assert store.import_mlflow(registry.url).counts["imported"] == 4
    before = snapshot(store.root)
    again = store.import_mlflow(registry.url)
    assert again.counts["exists"] == 4 and again.counts["imported"] == 0 and not again.failed
    assert snapshot(store.root) == before


def test_dry_run_and_one_model_change_nothing(registry: Registry, store: Store, run_mreg):
    before = snapshot(store.root)
    env = {"MLFLOW_TRACKING_URI": registry.url}
    r = run_mreg("import", "mlflow", "--model", "Fraud Detector", "--dry-run", "--json", env=env)
    assert r.ok, r
    assert r.json()["dry_run"] and r.json()["counts"]["planned"] == 4
    assert snapshot(store.root) == before
    assert store.import_mlflow(registry.url, ["other"]).items == ()  # no versions
    assert snapshot(store.root) == before


def test_bad_input_and_unreachable_server(store: Store, run_mreg, tmp_path: Path, monkeypatch):
    before = snapshot(store.root)
    r = run_mreg("import", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert r.returncode == 2 and "mlflow server" in r.stderr and len(r.stderr.splitlines()) == 1
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(InvalidInput, match="--tracking-uri"):
        store.import_mlflow()
    with pytest.raises(MregError, match="cannot reach MLflow") as failed:
        store.import_mlflow("http://127.0.0.1:9")
    assert failed.value.exit_code == 1
    assert snapshot(store.root) == before


def test_unknown_model_and_a_clash_with_a_local_version(
    registry: Registry, store: Store, run_mreg, model_file
):
    with pytest.raises(NotFound):
        store.import_mlflow(registry.url, ["nope"])
    store.register("fraud-detector", [model_file()], version="1.0.0")
    r = run_mreg("import", "mlflow", "--tracking-uri", registry.url, "--json")
    assert r.returncode == 1, r
    items = {(i["name"], i["kind"], i["version"]): i for i in r.json()["items"]}
    clash = items["fraud-detector", "version", "1.0.0"]
    assert clash["status"] == "failed" and "not imported from Fraud Detector/1" in clash["reason"]
    assert items["fraud-detector", "version", "2.0.0"]["status"] == "imported"
    assert store.info("fraud-detector@1.0.0").version.author == "Test Author <test@example.com>"


def test_an_alias_move_goes_through_the_gates(registry: Registry, store: Store):
    """Before the last test: the registry still has versions 1 and 2."""
    store.policy_gate("champion", ["test.f1 >= 0.99"])
    report = store.import_mlflow(registry.url)
    assert report.failed
    champion = next(i for i in report.items if i.alias == "champion")
    assert champion.status == "failed" and "gate" in champion.reason
    assert store.info("fraud-detector@challenger").version.version == "2.0.0"
    assert "champion" not in store.info("fraud-detector@1.0.0").aliases


def test_a_new_version_and_a_moved_alias_are_added(registry: Registry, store: Store):
    """Last in the module: it adds version 3 to the registry and moves champion to it."""
    assert not store.import_mlflow(registry.url).failed
    entries = len(store.audit.entries())
    three = registry.add_version()
    report = store.import_mlflow(registry.url)
    assert report.counts["imported"] == 2 and report.counts["exists"] == 3
    assert store.info("fraud-detector@champion").version.version == "3.0.0"
    assert store.info("fraud-detector@3.0.0").version.created == _iso(three["created"])
    assert len(store.audit.entries()) == entries + 2
    assert store.fsck().errors == []
