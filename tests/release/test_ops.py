"""Release operations on a real store: transitions, manifest, audit trail, promotion gates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelreg import Store
from modelreg.errors import GateFailed, IntegrityError, InvalidInput, NotFound, TransitionRefused
from modelreg.fsutil import atomic_write
from modelreg.release import ops
from modelreg.release.rollout import ACTIONS, TRANSITIONS
from modelreg.store import StoreConfig
from tests.conftest import snapshot
from tests.release.util import SEED, make_model


def manifest(store: Store, name: str = "m") -> dict:
    return yaml.safe_load(ops.release_path(store, name).read_bytes())


def audit_actions(store: Store) -> list[str]:
    return [e.action for e in store.log("m")]


def drive_to(store: Store, state: str) -> None:
    """Bring model m's release into `state` through the public operations."""
    if state == "none":
        return
    ops.start(store, "m", "1.1.0", seed=SEED)
    if state == "paused":
        ops.pause(store, "m")
    elif state == "promoted":
        ops.promote(store, "m")
    elif state == "aborted":
        ops.abort(store, "m", reason="bad")


def act(store: Store, action: str) -> ops.ReleaseChange:
    if action == "start":
        return ops.start(store, "m", "1.2.0")
    if action == "set":
        return ops.update(store, "m", weight=7)
    if action == "step":
        return ops.step(store, "m")
    return getattr(ops, action)(store, "m")


@pytest.mark.parametrize("state", ["none", "progressing", "paused", "promoted", "aborted"])
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_on_a_real_store(model, state, action):
    drive_to(model, state)
    before = snapshot(model.root)
    if (state, action) in TRANSITIONS:
        change = act(model, action)
        assert change.changed and change.previous_state == state
        assert change.rollout.state == TRANSITIONS[(state, action)]
        assert manifest(model)["state"] == TRANSITIONS[(state, action)]
        assert audit_actions(model)[-1] == f"release.{action}"
    else:
        with pytest.raises(TransitionRefused, match=f"cannot {action}"):
            act(model, action)
        assert snapshot(model.root) == before  # a refused transition changes nothing


def test_start_writes_the_manifest_and_audits(model):
    change = ops.start(
        model, "m", "1.1.0", weight="2.5", steps="1,5,50,100", rules=["t: user_id in qa -> canary"],
        reason="first canary", actor="Alice <a@example.com>",
    )  # fmt: skip
    r = change.rollout
    doc = manifest(model)
    assert (doc["schema"], doc["kind"], doc["model"], doc["state"]) == (
        "mreg/v1",
        "Rollout",
        "m",
        "progressing",
    )
    assert doc["baseline"] == {"version": "1.0.0", "id": model.resolve("m@1.0.0").id}
    assert doc["canary"] == {"version": "1.1.0", "id": model.resolve("m@1.1.0").id}
    assert (doc["weight"], doc["steps"], doc["stick_by"], doc["generation"]) == (
        2.5,
        [1, 5, 50, 100],
        "user_id",
        1,
    )
    assert doc["rules"] == [{"name": "t", "users": ["qa"], "variant": "canary"}]
    assert len(doc["seed"]) == 32 and doc["release"] == 1
    assert doc["history"][0]["actor"] == "Alice <a@example.com>"
    assert doc["history"][0]["reason"] == "first canary"
    entry = model.log("m")[-1]
    assert (entry.action, entry.actor, entry.details["canary"], entry.details["weight"]) == (
        "release.start", "Alice <a@example.com>", "1.1.0", 2.5,
    )  # fmt: skip
    assert r.generation == 1 and model.verify().ok


def test_generation_rises_on_every_change_and_history_keeps_all(model):
    gens = [ops.start(model, "m", "1.1.0").rollout.generation]
    gens.append(ops.step(model, "m", reason="fine").rollout.generation)
    gens.append(ops.update(model, "m", weight=7).rollout.generation)
    gens.append(ops.pause(model, "m").rollout.generation)
    gens.append(ops.resume(model, "m").rollout.generation)
    gens.append(ops.abort(model, "m", reason="latency").rollout.generation)
    gens.append(ops.start(model, "m", "1.2.0").rollout.generation)
    assert gens == [1, 2, 3, 4, 5, 6, 7]
    events = ops.history(model, "m")
    assert [(e.release, e.action) for e in events] == [
        (1, "start"), (1, "step"), (1, "set"), (1, "pause"), (1, "resume"), (1, "abort"), (2, "start"),
    ]  # fmt: skip
    assert [e.weight for e in events[:3]] == [100, 500, 700]
    assert events[1].reason == "fine" and events[5].reason == "latency"
    assert audit_actions(model)[-7:] == [f"release.{e.action}" for e in events]
    st = ops.status(model, "m").to_dict()
    assert [c["action"] for c in st["last_changes"]] == ["start"]  # only this release's


def test_each_release_draws_a_new_seed(model):
    seeds = set()
    for _ in range(3):
        seeds.add(ops.start(model, "m", "1.1.0").rollout.seed)
        ops.abort(model, "m")
    assert len(seeds) == 3


def test_set_same_values_is_a_no_op(model):
    ops.start(model, "m", "1.1.0", weight=5)
    before = snapshot(model.root)
    change = ops.update(model, "m", weight="5%")
    assert not change.changed and snapshot(model.root) == before
    with pytest.raises(InvalidInput, match="nothing to set"):
        ops.update(model, "m")


def test_step_follows_the_plan_and_refuses_past_the_end(model):
    ops.start(model, "m", "1.1.0", steps="shadow,1,50")
    r = ops.status(model, "m").rollout
    assert r.shadow and r.weight == 0
    weights = [ops.step(model, "m").rollout.weight for _ in range(2)]
    assert weights == [100, 5000]
    with pytest.raises(TransitionRefused, match="last step"):
        ops.step(model, "m")
    ops.update(model, "m", weight=10)  # off-plan: the next step is the next plan weight above
    assert ops.step(model, "m").rollout.weight == 5000


def test_shadow_mode_set_and_leave(model):
    ops.start(model, "m", "1.1.0", weight=5)
    r = ops.update(model, "m", shadow=True).rollout
    assert (r.shadow, r.weight) == (True, 0)
    r = ops.update(model, "m", weight=1).rollout
    assert (r.shadow, r.weight) == (False, 100)
    with pytest.raises(InvalidInput, match="shadow"):
        ops.update(model, "m", weight=5, shadow=True)
    with pytest.raises(InvalidInput, match="shadow"):
        ops.start(model, "m", "1.2.0", weight=5, shadow=True)


def test_rules_replaced_and_cleared(model):
    ops.start(model, "m", "1.1.0", rules=["region=eu -> canary"])
    r = ops.update(
        model, "m", rules=["a: user_id in x -> baseline", "device in ios -> 50%"]
    ).rollout
    assert [x.text() for x in r.rules] == ["a: user_id in x -> baseline", "device in ios -> 50%"]
    assert ops.update(model, "m", rules=[]).rollout.rules == ()
    with pytest.raises(InvalidInput, match="rule 1"):
        ops.update(model, "m", rules=["nonsense"])


def test_promote_moves_production_through_the_gates(model, tmp_path):
    atomic_write(
        model.root / "config.yaml",
        yaml.safe_dump(StoreConfig(gates={"production": ("test.f1 >= 0.93",)}).to_dict()).encode(),
    )
    store = Store.open(model.root)
    ops.start(store, "m", "1.1.0")  # test.f1 0.92: fails the gate
    before = snapshot(store.root)
    with pytest.raises(GateFailed, match=r"test\.f1 >= 0\.93"):
        ops.promote(store, "m")
    assert snapshot(store.root) == before
    assert ops.status(store, "m").state == "progressing"
    with pytest.raises(InvalidInput, match="--reason"):
        ops.promote(store, "m", force=True)
    change = ops.promote(store, "m", force=True, reason="business call")
    assert change.promotion is not None and change.promotion.forced
    assert store.resolve("m@production").version == "1.1.0"
    assert change.rollout.state == "promoted" and change.rollout.weight == 10000
    assert change.rollout.production_generation == change.promotion.generation == 2
    assert audit_actions(store)[-2:] == ["promote", "release.promote"]
    ops.start(store, "m", "1.2.0")  # the next release's baseline is the new production
    assert ops.status(store, "m").rollout.baseline.version == "1.1.0"
    ops.promote(store, "m")
    assert store.resolve("m@production").version == "1.2.0"


def test_abort_records_production_generation(model):
    ops.start(model, "m", "1.1.0", weight=50)
    r = ops.abort(model, "m", reason="errors").rollout
    assert (r.state, r.weight, r.production_generation) == ("aborted", 0, 1)
    assert model.resolve("m@production").version == "1.0.0"


def test_start_refusals(model, tmp_path, store):
    with pytest.raises(InvalidInput, match="same version"):
        ops.start(model, "m", "1.0.0")
    with pytest.raises(NotFound):
        ops.start(model, "m", "9.9.9")
    with pytest.raises(NotFound, match="no model"):
        ops.start(model, "nope", "1.0.0")
    with pytest.raises(InvalidInput):
        ops.start(model, "m", "1.1.0", stick_by="has space")
    with pytest.raises(InvalidInput):
        ops.start(model, "../x", "1.1.0")
    model.deprecate("m@1.2.0", reason="leaky")
    with pytest.raises(TransitionRefused, match="deprecated"):
        ops.start(model, "m", "1.2.0")
    make_model(model, tmp_path, name="noprod", production=None)
    with pytest.raises(NotFound, match="--baseline"):
        ops.start(model, "noprod", "1.1.0")
    assert ops.start(model, "noprod", "1.1.0", baseline="1.0.0").rollout.baseline.version == "1.0.0"


def test_namespaced_model_manifest_path(store, tmp_path):
    make_model(store, tmp_path, name="team/fraud")
    ops.start(store, "team/fraud", "1.1.0")
    assert (store.root / "releases" / "team" / "fraud.yaml").is_file()
    assert ops.status(store, "team/fraud").state == "progressing"


def test_status_without_release_and_for_unknown_models(model):
    st = ops.status(model, "m")
    assert st.to_dict() == {"model": "m", "state": "none", "production": "1.0.0"}
    assert ops.history(model, "m") == []
    with pytest.raises(NotFound):
        ops.status(model, "unknown")


def test_damaged_manifest_is_an_integrity_error(model):
    ops.start(model, "m", "1.1.0")
    path = ops.release_path(model, "m")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError):
        ops.status(model, "m")
    path.write_bytes(data.replace(b"kind: Rollout", b"kind: Alias"))
    with pytest.raises(IntegrityError, match="Rollout"):
        ops.step(model, "m")
    assert IntegrityError.exit_code == 1


def test_promote_refuses_a_changed_canary_manifest(model):
    ops.start(model, "m", "1.1.0")
    path = ops.release_path(model, "m")
    doc = yaml.safe_load(path.read_bytes())
    doc["canary"]["id"] = "c" * 64
    path.write_bytes(yaml.safe_dump(doc).encode())
    with pytest.raises(IntegrityError, match="manifest"):
        ops.promote(model, "m")
    assert model.resolve("m@production").version == "1.0.0"


def test_rules_file(model, tmp_path: Path):
    f = tmp_path / "rules.yaml"
    f.write_text(
        "rules:\n- {name: qa, users: [a, b], variant: canary}\n- 'region in eu,us -> 20%'\n"
    )
    rules = ops.read_rules_file(f)
    assert [r.text() for r in rules] == ["qa: user_id in a,b -> canary", "region in eu,us -> 20%"]
    (tmp_path / "bad.json").write_text('[{"users": ["a"]}]')
    with pytest.raises(InvalidInput, match=r"bad\.json"):
        ops.read_rules_file(tmp_path / "bad.json")
    with pytest.raises(NotFound):
        ops.read_rules_file(tmp_path / "missing.yaml")


def test_status_shows_production_taking_over_after_the_release(model):
    ops.start(model, "m", "1.1.0")
    ops.promote(model, "m")
    assert ops.status(model, "m").routing()[0].startswith("every request -> canary 1.1.0")
    model.rollback("m", reason="conversion dropped")
    routing = ops.status(model, "m").to_dict()["routing"]
    assert routing == [
        "every request -> production 1.0.0 (production moved after release 1 promoted)"
    ]


# -- issue 14 ---------------------------------------------------------------------------------


def test_set_replaces_the_checks_and_audits_old_and_new(model):
    checks = ["errors: error_rate <= baseline + 1pt", "p99: latency.p99 <= 1.5x baseline"]
    ops.start(model, "m", "1.1.0", analysis=["errors: error_rate <= baseline + 0.5pt",
                                              {"policy": {"passes": 2}}])  # fmt: skip
    change = ops.update(model, "m", analysis=checks, reason="noisy")
    r = change.rollout
    assert change.changed and r.generation == 2 and r.state == "progressing"
    assert [a.get("name") for a in r.analysis] == ["errors", "p99", None]
    assert r.analysis[-1] == {"policy": {"alpha": 0.05, "passes": 2, "promote": "auto",
                                         "min_samples": 500, "stratum_s": 60}}  # fmt: skip
    event = r.history[-1]
    assert (event.action, event.reason) == ("set", "noisy")
    assert event.details["previous_checks"] == ["errors: error_rate <= baseline + 0.5pt"]
    assert event.details["checks"] == checks
    assert "policy" not in event.details  # the policy was kept
    entry = model.log("m")[-1]
    assert entry.action == "release.set" and entry.details["checks"] == event.details["checks"]
    assert entry.details["previous_checks"] == event.details["previous_checks"]

    before = snapshot(model.root)  # the same checks again: nothing to do
    same = ops.update(model, "m", analysis=checks)
    assert not same.changed and snapshot(model.root) == before
    with pytest.raises(InvalidInput, match="check 1"):
        ops.update(model, "m", analysis=["error_rate <= sometimes"])
    assert snapshot(model.root) == before

    only_policy = ops.update(model, "m", analysis=[{"policy": {"passes": 5}}]).rollout
    assert [a.get("name") for a in only_policy.analysis] == ["errors", "p99", None]
    assert only_policy.analysis[-1]["policy"]["passes"] == 5
    assert only_policy.history[-1].details["previous_policy"]["passes"] == 2
    cleared = ops.update(model, "m", analysis=[]).rollout
    assert cleared.analysis == ({"policy": only_policy.analysis[-1]["policy"]},)
    assert cleared.history[-1].details["checks"] == []
    ops.pause(model, "m")
    with pytest.raises(TransitionRefused, match="paused"):
        ops.update(model, "m", analysis=["error_rate < 2%"])


def test_start_and_status_keep_the_order_rules_were_written_in(model):
    ops.start(model, "m", "1.1.0", rules=["eu: region=eu and device in ios,web -> canary"])
    st = ops.status(model, "m").to_dict()
    assert st["rules"][0]["text"] == "eu: region=eu and device in ios,web -> canary"
    assert st["routing"][0].startswith("1. eu: region=eu and device in ios,web -> canary")
    assert manifest(model)["rules"] == [
        {"name": "eu", "variant": "canary", "when": {"device": {"in": ["ios", "web"]}, "region": "eu"}}
    ]  # fmt: skip
    assert model.log("m")[-1].details["rules"] == ["eu: region=eu and device in ios,web -> canary"]
    r = ops.update(model, "m", rules=["device=ios and user_id in a -> 50%"]).rollout
    assert r.rule_texts() == ("device=ios and user_id in a -> 50%",)


def test_history_generations_out_of_order_are_damage(model):
    ops.start(model, "m", "1.1.0")
    ops.step(model, "m")
    doc = manifest(model)
    doc["history"][0]["generation"] = 2
    atomic_write(ops.release_path(model, "m"), yaml.safe_dump(doc).encode())
    with pytest.raises(IntegrityError, match="history generations do not increase"):
        ops.status(model, "m")
    with pytest.raises(IntegrityError, match="--force --reason TEXT"):
        ops.abort(model, "m")


def test_check_analyzable_refuses_an_ended_release(model):
    ops.check_analyzable(model, "m")  # no release: left to the analysis's own message
    ops.start(model, "m", "1.1.0")
    ops.check_analyzable(model, "m")
    ops.abort(model, "m", reason="bad")
    when = ops.history(model, "m")[-1].time
    with pytest.raises(InvalidInput) as exc:
        ops.check_analyzable(model, "m")
    assert str(exc.value) == f"release 1 of m ended (aborted at {when}); nothing to analyze"
    ops.start(model, "m", "1.2.0")
    ops.promote(model, "m")
    with pytest.raises(InvalidInput, match=r"release 2 of m ended \(promoted at "):
        ops.check_analyzable(model, "m")
    with pytest.raises(NotFound):
        ops.check_analyzable(model, "nope")


# -- the {queries: ...} entry survives `set` (issue 17) ----------------------------------------


def test_set_with_checks_keeps_the_queries_and_the_policy(model):
    ops.start(model, "m", "1.1.0", analysis=["error_rate < 5%", {"policy": {"passes": 2}},
                                              {"queries": "istio"}])  # fmt: skip
    r = ops.update(model, "m", analysis=["error_rate < 3%"]).rollout
    assert r.analysis[0] == {"metric": "error_rate", "op": "<", "value": 0.03}
    assert r.analysis[1]["policy"]["passes"] == 2
    assert r.analysis[2:] == ({"queries": {"preset": "istio"}},)
    assert "queries" not in r.history[-1].details  # kept, not changed

    cleared = ops.update(model, "m", analysis=[]).rollout  # --no-checks: like the policy
    assert cleared.analysis == (r.analysis[1], r.analysis[2])
    assert cleared.history[-1].details["checks"] == []


def test_set_with_queries_keeps_the_checks_and_replaces_the_queries(model):
    ops.start(model, "m", "1.1.0", analysis=["errors: error_rate < 5%", {"queries": "istio"}])
    change = ops.update(model, "m", analysis=[{"queries": "linkerd"}], reason="mesh moved")
    r = change.rollout
    assert change.changed and r.generation == 2
    assert [a.get("name") for a in r.analysis] == ["errors", None]
    assert r.analysis[-1] == {"queries": {"preset": "linkerd"}}
    details = r.history[-1].details
    assert details["previous_checks"] == details["checks"] == ["errors: error_rate < 5%"]
    assert (details["previous_queries"], details["queries"]) == (
        {"preset": "istio"}, {"preset": "linkerd"},
    )  # fmt: skip
    assert model.log("m")[-1].details["queries"] == {"preset": "linkerd"}
    before = snapshot(model.root)  # the same queries again: nothing to do
    assert not ops.update(model, "m", analysis=[{"queries": "linkerd"}]).changed
    assert snapshot(model.root) == before

    ops.abort(model, "m")  # a release without queries gets them, its checks kept
    ops.start(model, "m", "1.1.0", analysis=["errors: error_rate < 5%"])
    r = ops.update(model, "m", analysis=[{"queries": "linkerd"}]).rollout
    assert [a.get("name") for a in r.analysis] == ["errors", None]
    assert r.history[-1].details["previous_queries"] is None


def test_cli_set_check_keeps_the_queries(model, run_mreg, tmp_path):
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks: ['error_rate < 5%']\nqueries: {preset: istio, vars: {service: m}}\n")
    start = run_mreg("release", "start", "m", "--canary", "1.1.0", "--checks-file", str(checks))
    assert start.returncode == 0, start
    res = run_mreg("release", "set", "m", "--check", "errors: error_rate < 3%", "--json")
    assert res.returncode == 0, res
    analysis = res.json()["status"]["analysis"]
    assert [a.get("name") for a in analysis] == ["errors", None]
    assert analysis[-1] == {"queries": {"preset": "istio", "vars": {"service": "m"}}}
