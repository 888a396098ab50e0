"""`watch` on simulated traffic through the real Router: rollback, no false alarm, promotion."""

from __future__ import annotations

import math

import pytest

from modelreg.analysis import analyze, watch
from modelreg.analysis.demo import Behaviour, Clock, Simulation
from modelreg.analysis.watch import judgments, parse_duration
from modelreg.errors import Conflict, InvalidInput, TransitionRefused
from modelreg.release import ops
from tests.analysis.conftest import FAST, simulate_release

SEEDS = 30
ALPHA = 0.05


def test_a_canary_with_three_times_the_errors_at_5_percent_is_rolled_back(model):
    report, sim = simulate_release(model, Behaviour(error_rate=0.03), steps="5,25,50,100")
    assert report.outcome == "aborted" and report.state == "aborted"
    assert [e.weight for e in report.events] == [5] * len(report.events)  # never stepped up
    last = report.events[-1]
    assert last.verdict == "fail" and last.action == "abort" and "errors" in last.summary
    # The rollback is audited with the failing check as its reason...
    entry = [e for e in model.log("m") if e.action == "release.abort"][-1]
    assert entry.details["reason"].startswith("analysis: errors: error_rate")
    # ...recorded in the release history, and reaches the router: all traffic on the baseline.
    assert ops.status(model, "m").rollout.history[-1].reason.startswith("analysis: errors")
    sim.router.check()
    assert {sim.router.route(user_id=f"u{i}").version for i in range(200)} == {"1.0.0"}
    assert sim.requests < 60_000  # caught within a few thousand canary requests


def test_an_equal_canary_is_not_rolled_back_over_many_seeds(store, tmp_path):
    from tests.release.util import make_model

    false_alarms = promoted = 0
    for seed in range(SEEDS):
        s = make_model(store.__class__.init(tmp_path / f"s{seed}"), tmp_path / f"in{seed}")
        report, _ = simulate_release(s, Behaviour(), seed=seed)
        false_alarms += report.outcome == "aborted"
        promoted += report.outcome == "promoted"
    assert false_alarms + promoted == SEEDS
    # The documented bound is alpha = 5% per release; allow the binomial tail at 1e-3.
    limit = next(k for k in range(SEEDS + 1) if _binom_sf(k, SEEDS, ALPHA) < 1e-3)
    assert false_alarms < limit, f"{false_alarms} false alarms in {SEEDS} releases"


def _binom_sf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_a_better_canary_is_promoted_through_every_step(model):
    better = Behaviour(error_rate=0.005, latency_ms=17, conversion=0.11)
    report, _ = simulate_release(model, better, steps="5,25,50,100")
    assert report.outcome == "promoted" and report.state == "promoted"
    steps = [e.weight for e in report.events if e.action == "step"]
    assert steps == [5, 25]  # each weight of the plan; from 50 the step to 100 is promotion
    assert report.events[-1].action == "promote" and report.events[-1].weight == 50
    assert model.resolve("m@production").version == "1.1.0"
    actions = [e.action for e in model.log("m")]
    assert actions.count("release.step") == 2 and "release.promote" in actions
    assert ops.status(model, "m").rollout.steps_done()[-1] == 10000  # 100% done


def test_shadow_mode_judges_agreement_and_then_goes_live(model):
    checks = ("agreement >= 99% within 0.01", "drift.psi <= 0.2", "errors: error_rate <= "
              "baseline + 0.5pt", FAST)  # fmt: skip
    report, _ = simulate_release(model, Behaviour(), steps="shadow,50,100", checks=checks)
    assert report.outcome == "promoted"
    assert report.events[0].weight == 0 and any(e.action == "step" for e in report.events)
    first = judgments(model, "m", 1)[0]
    assert first["verdict"] == "inconclusive"


def test_shadow_mode_catches_a_canary_that_answers_differently(model):
    checks = ("agreement >= 99% within 0.01", FAST)
    report, _ = simulate_release(
        model, Behaviour(score_shift=0.05), steps="shadow,50,100", checks=checks
    )
    assert report.outcome == "aborted"
    assert "agreement" in report.events[-1].summary
    assert all(e.weight == 0 for e in report.events)  # it never served a user


def test_watch_is_resumable_and_bounded(model):
    checks = ("error_rate <= baseline + 0.5pt", FAST)
    ops.start(model, "m", "1.1.0", steps="5,50,100", analysis=checks)
    clock = Clock()
    sim = Simulation(model, "m", {"1.0.0": Behaviour(), "1.1.0": Behaviour()}, clock=clock)
    for _ in range(4):
        sim.sleep(30)
    # Bounded: one analysis per run with --once; passes are counted in the judgment log.
    first = watch(model, "m", once=True, clock=clock, sleep=sim.sleep)
    assert first.outcome == "once" and first.events[0].verdict == "pass"
    assert first.events[0].action == "none"  # 1 pass of the 2 the policy asks for
    second = watch(model, "m", once=True, clock=clock, sleep=sim.sleep)
    assert second.events[0].action == "step"  # the restarted watch continued the count
    assert ops.status(model, "m").rollout.weight == 5000
    third = watch(model, "m", interval_s=30, max_duration_s=100, clock=clock, sleep=sim.sleep)
    assert third.outcome in ("max-duration", "promoted")
    assert len(third.events) <= 4  # 0, 30, 60, 90 s: never past the bound
    sim.close()


def test_manual_promotion_stops_at_the_last_step(model):
    ops.start(model, "m", "1.1.0", steps="50", analysis=("error_rate < 5%", FAST))
    clock = Clock()
    sim = Simulation(model, "m", {"1.0.0": Behaviour(), "1.1.0": Behaviour()}, clock=clock)
    report = watch(model, "m", promote=False, clock=clock, sleep=sim.sleep, max_duration_s=3600)
    sim.close()
    assert report.outcome == "awaiting-promotion" and report.state == "progressing"
    assert report.events[-1].action == "hold"


def test_watch_refuses_bad_input_and_a_second_watcher(model):
    with pytest.raises(TransitionRefused):
        analyze(model, "m")  # no release yet
    ops.start(model, "m", "1.1.0", weight=5)
    with pytest.raises(InvalidInput):
        watch(model, "m", interval_s=0)
    from modelreg.locking import hold

    with hold(model.root / "locks" / "watch-m.lock"), pytest.raises(Conflict):
        watch(model, "m", once=True)
    assert parse_duration("30s") == 30 and parse_duration("2h") == 7200
    assert parse_duration("1.5") == 1.5
    for bad in ("0s", "soon", "-3m"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


def test_watch_of_an_ended_release_does_nothing(model):
    ops.start(model, "m", "1.1.0", weight=5)
    ops.abort(model, "m")
    report = watch(model, "m", once=True)
    assert report.outcome == "ended" and report.events == ()


def test_the_library_refuses_to_analyze_an_ended_release_like_the_cli(model):
    ops.start(model, "m", "1.1.0", steps="5,100")
    ops.abort(model, "m", reason="bad")
    with pytest.raises(
        InvalidInput, match=r"release 1 of m ended \(aborted at .*\); nothing to analyze"
    ):
        analyze(model, "m")
