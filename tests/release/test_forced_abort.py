"""`mreg release abort --force --reason` over a damaged rollout manifest (issue 14).

A router that cannot read the manifest keeps its last good configuration, which may be the bad
canary's split; the emergency abort must still send all traffic to the baseline. Each damage
below is made to a live release followed by a real Router; the forced abort runs as a real
subprocess; afterwards the router routes 100% to the baseline, the manifest is valid (the
validator finds nothing), its generation is above every generation seen, and the audit entry
says it was forced over a damaged manifest and what was damaged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from modelreg import Store
from modelreg.errors import IntegrityError, InvalidInput, MregError, TransitionRefused
from modelreg.release import ops
from modelreg.serving import Router
from modelreg.validate import validate
from tests.conftest import snapshot
from tests.faults import damage_file, write_in_place
from tests.release.util import SEED

USERS = [f"u-{i}" for i in range(300)]


def variants(router: Router) -> set[tuple[str, str]]:
    return {(d.variant, d.version) for d in map(router.route, USERS)}


def live_release(store: Store) -> Path:
    """Release 2 of m: 1.1.0 against production 1.0.0 at 30%, after an aborted release 1."""
    ops.start(store, "m", "1.2.0", weight=5, seed=SEED)
    ops.abort(store, "m", reason="first try")
    ops.start(store, "m", "1.1.0", weight=10, seed=SEED, rules=["region=eu -> canary"])
    ops.update(store, "m", weight=30)
    return ops.release_path(store, "m")  # generation 4


def damage(kind: str, path: Path) -> None:
    """The file faults of tests/faults.py, and damage a parser sees only in the document."""
    valid = path.read_bytes()
    doc = yaml.safe_load(valid)
    changes = {
        "schema-invalid": ("weight", 150),
        "generation below its history": ("generation", 2),
        "generation zero": ("generation", 0),
        "another model's": ("model", "other"),
    }
    if kind == "invalid YAML":
        write_in_place(path, valid.replace(b"\nrelease: 2\n", b"\nrelease: [2\n"))
    elif kind in changes:
        key, value = changes[kind]
        doc[key] = value
        write_in_place(path, yaml.safe_dump(doc).encode())
    else:
        damage_file(kind, path, valid)


DAMAGES = [
    "truncated", "empty", "invalid YAML", "garbage", "invalid UTF-8", "deep nesting",
    "python tag", "huge", "schema-invalid", "generation below its history", "generation zero",
    "another model's", "deleted", "a directory", "a FIFO", "dangling symlink", "unreadable",
]  # fmt: skip


@pytest.mark.parametrize("kind", DAMAGES)
def test_forced_abort_over_a_damaged_manifest_reaches_running_routers(
    model, run_mreg, kind, tmp_path
):
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file: the manifest would not be damaged for it")
    path = live_release(model)
    # checks run when the test says (router.check(): what its periodic check runs), so that a
    # slow-to-refuse file is parsed once, not at every route() call
    router = Router.open("m", store=model.root, check_interval_ms=3_600_000)
    assert variants(router) == {("canary", "1.1.0"), ("baseline", "1.0.0")}
    os.chdir(tmp_path)
    damage(kind, path)
    if kind == "generation below its history":  # routers do not check generations
        assert router.check()
    else:
        with pytest.raises(MregError):
            router.check()
        assert router.stats().failing
    assert variants(router) == {("canary", "1.1.0"), ("baseline", "1.0.0")}  # last good kept

    before = snapshot(model.root)
    refused = run_mreg("release", "abort", "m", "--reason", "canary errors")
    assert refused.returncode == 1, refused
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("mreg: error: ")
    assert "'mreg release abort m --force --reason TEXT'" in refused.stderr
    usage = run_mreg("release", "abort", "m", "--force")
    assert usage.returncode == 2 and "--reason" in usage.stderr, usage
    assert snapshot(model.root) == before  # neither changed anything

    out = run_mreg("release", "abort", "m", "--force", "-r", "canary errors", "--json")
    assert out.returncode == 0, out
    doc = out.json()
    assert (doc["action"], doc["changed"], doc["status"]["state"]) == ("abort", True, "aborted")
    rec = doc["recovery"]
    assert rec["release"] == 2 and rec["previous_state"] == "progressing"
    assert (rec["baseline_from"], rec["canary_from"]) == ("audit", "audit")
    assert rec["damage"].startswith("releases/m.yaml")

    # the router follows: 100% baseline, at the new generation, no longer failing
    assert router.check()
    assert variants(router) == {("baseline", "1.0.0")}
    stats = router.stats()
    assert not stats.failing and stats.state == "aborted"
    assert stats.generation == 5 and rec["max_generation"] == 4
    assert {d.reason for d in map(router.route, USERS)} == {"aborted"}

    r = ops.read_rollout(model, "m")
    assert (r.release, r.state, r.weight, r.baseline.version, r.canary.version) == (
        2, "aborted", 0, "1.0.0", "1.1.0",
    )  # fmt: skip
    assert r.baseline.id == model.resolve("m@1.0.0").id
    assert r.production_generation == 1
    assert [(e.release, e.generation, e.action) for e in r.history] == [
        (1, 1, "start"), (1, 2, "abort"), (2, 3, "start"), (2, 4, "set"), (2, 5, "abort"),
    ]  # fmt: skip
    assert r.history[-1].details["forced"] is True
    assert validate(store=model.root).ok, [str(p) for p in validate(store=model.root).problems]
    entry = model.log("m")[-1]
    assert entry.action == "release.abort" and entry.details["forced"] is True
    assert entry.details["recovery"]["damage"] == rec["damage"]
    assert entry.details["reason"] == "canary errors" and entry.details["generation"] == 5
    assert run_mreg("verify").returncode == 0
    assert not (tmp_path / "pwned").exists()
    router.close()


def test_damage_messages_name_what_is_damaged(model):
    path = live_release(model)
    damage("generation below its history", path)
    with pytest.raises(IntegrityError, match="generation 2, but its history ends at generation 4"):
        ops.status(model, "m")
    change = ops.abort(model, "m", force=True, reason="x")
    assert "its history ends at generation 4" in change.recovery.damage
    assert change.rollout.generation == 5


def test_the_manifest_history_alone_recovers_the_baseline(model):
    """No audit trail (a store copied without it): the manifest's own history says it."""
    path = live_release(model)
    damage("schema-invalid", path)
    for f in (model.root / "audit").iterdir():
        f.unlink()
    change = ops.abort(model, "m", force=True, reason="no audit")
    rec = change.recovery
    assert (rec.baseline_from, rec.canary_from, rec.events_recovered) == ("history", "history", 4)
    assert change.rollout.baseline.version == "1.0.0" and change.rollout.generation == 5


def test_without_audit_the_readable_fields_of_the_manifest_are_kept(model):
    """One broken field (the history) loses that field only; the others are read one by one."""
    path = live_release(model)
    for f in (model.root / "audit").iterdir():
        f.unlink()
    text = path.read_text()
    at = text.index("history:") + len("history:")
    path.write_text(text[:at] + " [{broken\n" + text[at:])
    change = ops.abort(model, "m", force=True, reason="broken history")
    rec = change.recovery
    assert (rec.baseline_from, rec.canary_from, rec.events_recovered) == ("manifest", "manifest", 0)
    r = change.rollout
    assert (r.release, r.generation, r.baseline.version, r.canary.version) == (
        2,
        5,
        "1.0.0",
        "1.1.0",
    )
    assert r.seed == SEED and [x.text() for x in r.rules] == ["region=eu -> canary"]
    assert validate(store=model.root).ok


def test_a_release_number_lost_with_the_file_is_taken_from_the_metrics(model):
    """A truncated file loses the fields after the cut (`release` among them); the metrics
    directories still name the release, so the next release does not reuse its number."""
    path = live_release(model)
    for f in (model.root / "audit").iterdir():
        f.unlink()
    (model.root / "metrics" / "m" / "2").mkdir(parents=True)
    text = path.read_text()
    path.write_text(text[: text.index("history:") + 40])
    r = ops.abort(model, "m", force=True, reason="truncated").rollout
    assert (r.release, r.generation, r.baseline.version, r.canary.version) == (
        2,
        5,
        "1.0.0",
        "1.1.0",
    )
    assert ops.start(model, "m", "1.2.0").rollout.release == 3


def test_production_is_the_last_resort_for_the_baseline(model):
    path = live_release(model)
    for f in (model.root / "audit").iterdir():
        f.unlink()
    doc = yaml.safe_load(path.read_bytes())
    doc.update(weight=150, history=[])
    doc["baseline"]["id"] = "0" * 64  # a baseline that does not exist: routers could not use it
    path.write_bytes(yaml.safe_dump(doc).encode())
    change = ops.abort(model, "m", force=True, reason="only production left")
    assert change.recovery.baseline_from == "production"
    assert change.rollout.baseline.id == model.resolve("m@production").id


def test_nothing_names_the_canary_refuses_and_changes_nothing(model):
    path = live_release(model)
    for f in (model.root / "audit").iterdir():
        f.unlink()
    damage("garbage", path)
    before = snapshot(model.root)
    with pytest.raises(IntegrityError, match="names the release's canary"):
        ops.abort(model, "m", force=True, reason="x")
    assert snapshot(model.root) == before


def test_a_promoted_release_has_nothing_to_abort(model, run_mreg):
    ops.start(model, "m", "1.1.0", seed=SEED)
    ops.promote(model, "m")
    damage("truncated", ops.release_path(model, "m"))
    before = snapshot(model.root)
    with pytest.raises(TransitionRefused, match=r"promoted release 1.*mreg rollback m"):
        ops.abort(model, "m", force=True, reason="x")
    res = run_mreg("release", "abort", "m", "--force", "-r", "x")
    assert res.returncode == 1 and "mreg rollback m" in res.stderr
    assert snapshot(model.root) == before


def test_an_older_copy_put_back_is_aborted_at_the_release_the_audit_knows(model):
    ops.start(model, "m", "1.2.0", weight=5, seed=SEED)
    path = ops.release_path(model, "m")
    old = path.read_bytes()  # release 1, generation 1
    ops.abort(model, "m")
    ops.start(model, "m", "1.1.0", weight=30, seed=SEED)  # release 2, generation 3
    path.write_bytes(old)
    assert ops.status(model, "m").rollout.release == 1  # readable: only the audit shows it
    change = ops.abort(model, "m", force=True, reason="stale manifest")
    assert "audit trail records generation 3" in change.recovery.damage
    r = change.rollout
    assert (r.release, r.generation, r.canary.version, r.state) == (2, 4, "1.1.0", "aborted")


def test_force_on_a_readable_manifest_is_the_ordinary_abort(model):
    ops.start(model, "m", "1.1.0", seed=SEED)
    change = ops.abort(model, "m", force=True, reason="fine")
    assert change.recovery is None and change.rollout.generation == 2
    assert "forced" not in model.log("m")[-1].details
    with pytest.raises(InvalidInput, match="--reason"):
        ops.abort(model, "m", force=True)
    with pytest.raises(TransitionRefused, match="ended"):
        ops.abort(model, "m", force=True, reason="again")


def test_missing_manifest_without_any_release_is_still_no_release(model, run_mreg):
    res = run_mreg("release", "abort", "m", "--force", "-r", "x")
    assert res.returncode == 1 and "no release" in res.stderr


def test_human_output_says_it_was_forced(model, run_mreg):
    damage("truncated", live_release(model))
    out = run_mreg("release", "abort", "m", "--force", "-r", "bad canary")
    assert out.returncode == 0, out
    assert "forced over a damaged manifest: releases/m.yaml" in out.stdout
    assert "baseline 1.0.0 from audit" in out.stdout
    assert "every request -> baseline 1.0.0 (release aborted)" in out.stdout
    log = json.loads(run_mreg("log", "m", "--json").stdout)
    assert log[-1]["details"]["recovery"]["previous_state"] == "progressing"
