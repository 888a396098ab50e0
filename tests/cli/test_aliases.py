"""End-to-end tests of aliases: promote, rollback, history, gates, deprecate, tag."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelreg import Store
from tests.cli.helpers import assert_one_line_error, ok
from tests.conftest import snapshot


@pytest.fixture
def three(tmp_path: Path, store: Store) -> Store:
    """Model `m` with versions 1.0.0 (test.f1 0.85), 2.0.0 (0.93), 3.0.0 (0.95)."""
    for version, f1 in (("1.0.0", 0.85), ("2.0.0", 0.93), ("3.0.0", 0.95)):
        f = tmp_path / "inputs" / version / "model.onnx"
        f.parent.mkdir(parents=True)
        f.write_bytes(f"weights {version}".encode())
        store.register("m", [f], version=version, metrics={"test": {"f1": f1}}, detect_code=False)
    return store


def production(store: Store) -> str:
    return store.resolve("m@production").version


def test_promote_then_rollbacks_walk_back_like_a_stack(three, run_mreg):
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        out = ok(run_mreg("promote", f"m@{v}", "--to", "production", "--json")).json()
        assert (out["version"], out["changed"], out["action"]) == (v, True, "promote")
    assert (out["previous"], out["generation"]) == ("2.0.0", 3)

    first = ok(run_mreg("rollback", "m", "--reason", "latency spike", "--json")).json()
    assert (first["version"], first["previous"], first["action"]) == ("2.0.0", "3.0.0", "rollback")
    assert production(three) == "2.0.0"
    text = ok(run_mreg("rollback", "m")).stdout
    assert "Rolled back m@production" in text and "1.0.0" in text
    assert production(three) == "1.0.0"

    # nothing older than 1.0.0: refused with exit 1, nothing changes
    before = snapshot(three.root)
    line = assert_one_line_error(run_mreg("rollback", "m"), 1)
    assert "nothing to roll back" in line
    # it says where the alias has been, not "only pointed at 1.0.0" (issue 13)
    assert "1.0.0, 2.0.0, 3.0.0" in line and "--to" in line
    assert "only pointed" not in line
    assert snapshot(three.root) == before

    events = ok(run_mreg("history", "m", "--alias", "production", "--json")).json()
    assert [(e["generation"], e["action"], e["version"], e["previous"]) for e in events] == [
        (1, "promote", "1.0.0", None),
        (2, "promote", "2.0.0", "1.0.0"),
        (3, "promote", "3.0.0", "2.0.0"),
        (4, "rollback", "2.0.0", "3.0.0"),
        (5, "rollback", "1.0.0", "2.0.0"),
    ]
    assert events[3]["reason"] == "latency spike"
    assert {e["actor"] for e in events} == {"Test Author <test@example.com>"}
    assert {e["id"] for e in events[:3]} == {
        three.resolve(f"m@{v}").id for v in ("1.0.0", "2.0.0", "3.0.0")
    }


def test_rollback_to_a_named_version_and_other_aliases(three, run_mreg):
    three.promote("m@1.0.0", "production")
    three.promote("m@3.0.0", "production")
    three.promote("m@3.0.0", "staging")
    out = ok(run_mreg("rollback", "m", "--to", "2.0.0", "--json")).json()
    assert (out["version"], out["previous"], out["generation"]) == ("2.0.0", "3.0.0", 3)
    assert production(three) == "2.0.0"

    before = snapshot(three.root)
    # already there: a no-op with exit 0, like promote (idempotent CI re-runs, issue 13)
    again = ok(run_mreg("rollback", "m", "--to", "2.0.0", "--json")).json()
    assert (again["version"], again["changed"], again["generation"]) == ("2.0.0", False, 3)
    assert "already points at 2.0.0" in ok(run_mreg("rollback", "m", "--to", "2.0.0")).stdout
    assert "no such version" in assert_one_line_error(run_mreg("rollback", "m", "--to", "9.9.9"), 2)
    # staging has a single promotion: nothing to roll back to
    line = assert_one_line_error(run_mreg("rollback", "m", "--alias", "staging"), 1)
    assert "nothing to roll back" in line and "only pointed at 3.0.0" in line
    # an alias that was never set
    assert "no such alias" in assert_one_line_error(
        run_mreg("rollback", "m", "--alias", "canary"), 2
    )
    assert snapshot(three.root) == before

    # history of every alias of the model, in time order
    both = ok(run_mreg("history", "m", "--json")).json()
    assert sorted((e["alias"], e["generation"]) for e in both) == [
        ("production", 1),
        ("production", 2),
        ("production", 3),
        ("staging", 1),
    ]


def test_promote_is_idempotent(three, run_mreg):
    ok(run_mreg("promote", "m@2.0.0", "--to", "staging"))
    before = snapshot(three.root)
    out = ok(run_mreg("promote", "m@2.0.0", "--to", "staging", "--json")).json()
    assert (out["changed"], out["generation"], out["version"]) == (False, 1, "2.0.0")
    # promoting an alias target by its alias ref is also a no-op
    text = ok(run_mreg("promote", "m@staging", "--to", "staging")).stdout
    assert "already points at 2.0.0" in text
    assert snapshot(three.root) == before  # no new history event, no audit entry
    assert [e.action for e in three.log("m")].count("promote") == 1


def add_gate(store: Store, alias: str, *conds: str) -> None:
    cfg = store.root / "config.yaml"
    text = cfg.read_text()
    assert "gates: {}" in text, text
    body = "".join(f"    - '{c}'\n" for c in conds)
    cfg.write_text(text.replace("gates: {}", f"gates:\n  {alias}:\n{body}"))


def test_gates_refuse_then_force_with_reason_is_recorded(three, run_mreg):
    add_gate(three, "production", "test.f1 >= 0.9")
    before = snapshot(three.root)

    line = assert_one_line_error(run_mreg("promote", "m@1.0.0", "--to", "production"), 1)
    assert "test.f1 >= 0.9" in line and "0.85" in line
    # --force needs --reason: a usage error, exit 2
    line = assert_one_line_error(run_mreg("promote", "m@1.0.0", "--to", "production", "--force"), 2)
    assert "--reason" in line
    assert snapshot(three.root) == before

    # the gate applies to production only, and a passing version goes through
    ok(run_mreg("promote", "m@1.0.0", "--to", "staging"))
    passed = ok(run_mreg("promote", "m@2.0.0", "--to", "production", "--json")).json()
    assert (passed["changed"], passed["forced"], passed["failed_gates"]) == (True, False, [])

    forced = ok(
        run_mreg(
            "promote",
            "m@1.0.0",
            "--to",
            "production",
            "--force",
            "--reason",
            "hotfix INC-42",
            "--json",
        )
    ).json()
    assert (forced["version"], forced["forced"], forced["reason"]) == (
        "1.0.0",
        True,
        "hotfix INC-42",
    )
    assert forced["failed_gates"] == ["test.f1 >= 0.9 (has 0.85)"]

    last = ok(run_mreg("history", "m", "--alias", "production", "--json")).json()[-1]
    assert (last["version"], last["forced"], last["reason"]) == ("1.0.0", True, "hotfix INC-42")
    entry = ok(run_mreg("log", "m", "--json")).json()[-1]
    assert entry["action"] == "promote"
    assert entry["details"]["forced"] is True
    assert entry["details"]["reason"] == "hotfix INC-42"
    assert entry["details"]["failed_gates"] == ["test.f1 >= 0.9 (has 0.85)"]
    table = ok(run_mreg("history", "m", "--alias", "production")).stdout
    assert "promote (forced)" in table and "hotfix INC-42" in table


def test_gate_refuses_a_version_without_the_metric(tmp_path, store, run_mreg):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"no metrics")
    store.register("m", [f], version="1.0.0", detect_code=False)
    add_gate(store, "production", "test.f1 >= 0.9", "test.auc > 0.8")
    before = snapshot(store.root)
    line = assert_one_line_error(run_mreg("promote", "m@1.0.0", "--to", "production"), 1)
    assert "test.f1 >= 0.9 (has no value)" in line and "test.auc > 0.8" in line
    assert snapshot(store.root) == before


def test_deprecate_forbids_promotion_and_is_audited(three, run_mreg):
    three.promote("m@1.0.0", "production")
    three.promote("m@2.0.0", "production")
    out = ok(run_mreg("deprecate", "m@1.0.0", "--reason", "trained on leaked data", "--json"))
    assert out.json() == {
        "name": "m",
        "version": "1.0.0",
        "reason": "trained on leaked data",
        "changed": True,
        "aliases": [],
    }
    card = ok(run_mreg("show", "m@1.0.0", "--json")).json()
    assert card["deprecated"]["reason"] == "trained on leaked data"
    assert card["deprecated"]["actor"] == "Test Author <test@example.com>"
    # the files are kept
    assert three.objects.has(card["files"][0]["sha256"])

    before = snapshot(three.root)
    line = assert_one_line_error(run_mreg("promote", "m@1.0.0", "--to", "staging"), 1)
    assert "deprecated" in line and "trained on leaked data" in line
    # a rollback onto it needs --force (and then --reason)
    assert "deprecated" in assert_one_line_error(run_mreg("rollback", "m"), 1)
    assert_one_line_error(run_mreg("rollback", "m", "--force"), 2)
    # deprecating twice changes nothing
    again = ok(run_mreg("deprecate", "m@1.0.0", "--reason", "other", "--json")).json()
    assert (again["changed"], again["reason"]) == (False, "trained on leaked data")
    assert snapshot(three.root) == before

    back = ok(run_mreg("rollback", "m", "--force", "--reason", "2.0.0 is down", "--json"))
    assert (back.json()["version"], back.json()["forced"]) == ("1.0.0", True)

    entries = ok(run_mreg("log", "m", "--json")).json()
    dep = [e for e in entries if e["action"] == "deprecate"]
    assert len(dep) == 1
    assert dep[0]["details"]["version"] == "1.0.0"
    assert dep[0]["details"]["reason"] == "trained on leaked data"
    assert dep[0]["actor"] == "Test Author <test@example.com>"
    assert entries[-1]["action"] == "rollback" and entries[-1]["details"]["forced"] is True


def test_tags_added_and_removed_are_audited_and_manifest_untouched(three, run_mreg):
    manifest = three.manifest_path("m", "2.0.0")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()

    out = ok(run_mreg("tag", "m@2.0.0", "candidate", "reviewed", "--json")).json()
    both = ["candidate", "reviewed"]
    assert (out["tags"], out["added"], out["removed"]) == (both, both, [])
    out = ok(run_mreg("tag", "m@2.0.0", "candidate", "--remove", "--json")).json()
    assert (out["tags"], out["added"], out["removed"]) == (["reviewed"], [], ["candidate"])
    # re-adding a present tag is a no-op and is not audited
    before = snapshot(three.root)
    assert ok(run_mreg("tag", "m@2.0.0", "reviewed", "--json")).json()["added"] == []
    assert snapshot(three.root) == before

    assert three.info("m@2.0.0").tags == ("reviewed",)
    tags = [e for e in ok(run_mreg("log", "m", "--json")).json() if e["action"] == "tag"]
    assert [(e["details"]["added"], e["details"]["removed"]) for e in tags] == [
        (["candidate", "reviewed"], []),
        ([], ["candidate"]),
    ]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == digest
    assert three.resolve("m@2.0.0").id == digest
