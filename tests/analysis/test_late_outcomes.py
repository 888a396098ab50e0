"""Late business outcomes (issue 14): attributed to their request's exposure, windows, ranges.

Conversions reported seconds or minutes after the request, through the real Router, its
metrics files and `watch`, across step-ups: an identical canary is never rolled back, a
worse one always is. Before issue 14 an outcome counted in the window it *arrived* in, and
every identical canary was rolled back at the first analysis after a step-up.
"""

from __future__ import annotations

import random

import pytest

from modelreg.analysis import analyze, watch
from modelreg.analysis.checks import Check, Policy
from modelreg.analysis.demo import Behaviour, Clock, Simulation
from modelreg.analysis.judge import INCONCLUSIVE, judge
from modelreg.analysis.sources import Sample, Side, StoreSource
from modelreg.release import ops
from modelreg.serving import Router

CHECKS = (
    "conversion >= baseline",
    "errors: error_rate <= baseline + 0.5pt",
    {"policy": {"passes": 2, "min_samples": 300}},
)
DELAYS = {
    "1s": lambda rng: 1.0,
    "20s": lambda rng: 20.0,
    "exponential, mean 90s": lambda rng: rng.expovariate(1 / 90),
    "5m": lambda rng: 300.0,
}


def _release(store, canary, delay, seed, checks=CHECKS, steps="5,25,50,100"):
    ops.start(store, "m", "1.1.0", steps=steps, analysis=checks, seed=f"{seed:032x}")
    clock = Clock()
    sim = Simulation(
        store, "m", {"1.0.0": Behaviour(), "1.1.0": canary}, rps=200, seed=seed, clock=clock,
        delay=delay,
    )  # fmt: skip
    try:
        report = watch(store, "m", interval_s=30, max_duration_s=3 * 3600, clock=clock,
                       sleep=sim.sleep)  # fmt: skip
    finally:
        sim.close()
    return report


@pytest.mark.parametrize("delay", list(DELAYS), ids=list(DELAYS))
def test_an_identical_canary_is_promoted_through_step_ups_however_late_outcomes_arrive(
    store, tmp_path, delay
):
    from tests.release.util import make_model

    for seed in range(3):
        s = make_model(store.__class__.init(tmp_path / f"s{seed}"), tmp_path / f"in{seed}")
        report = _release(s, Behaviour(), DELAYS[delay], seed)
        assert report.outcome == "promoted", [e.summary for e in report.events]
        assert [e.action for e in report.events].count("step") == 2  # 5 -> 25 -> 50 -> 100


@pytest.mark.parametrize("delay", ["20s", "5m"])
def test_a_canary_converting_20_percent_less_is_rolled_back_however_late(model, delay):
    report = _release(model, Behaviour(conversion=0.08), DELAYS[delay], seed=3)
    assert report.outcome == "aborted"
    assert "conversion" in report.events[-1].summary


def test_an_attribution_window_leaves_out_open_exposures_and_says_how_many(model):
    checks = ("conversion >= baseline within 5m", {"policy": {"passes": 2, "min_samples": 300}})
    ops.start(model, "m", "1.1.0", steps="50,100", analysis=checks, seed=f"{7:032x}")
    clock = Clock()
    sim = Simulation(model, "m", {"1.0.0": Behaviour(), "1.1.0": Behaviour()}, rps=100,
                     seed=7, clock=clock, delay=DELAYS["20s"])  # fmt: skip
    try:
        sim.sleep(120)  # two minutes: every exposure is still inside its 5 minute window
        early = analyze(model, "m").results[0]
        assert early.verdict == INCONCLUSIVE and early.excluded > 0
        assert "window is still open" in early.reason
        sim.sleep(600)  # ten minutes: the first five are complete
        later = analyze(model, "m").results[0]
        assert later.n_baseline + later.n_canary > 0
        assert 0 < later.excluded < later.n_baseline + later.n_canary + later.excluded
        assert later.to_dict()["excluded"] == later.excluded
    finally:
        sim.close()


def test_outcomes_count_toward_the_window_and_generation_of_their_request(model):
    ops.start(model, "m", "1.1.0", steps="5,50,100", seed=f"{1:032x}")
    clock = Clock(1_800_000_000.0)
    router = Router.open("m", store=model.root, materialize=False, clock=clock, wall=clock,
                         flush_interval_s=10, check_interval_ms=0)  # fmt: skip
    d = router.route(user_id="user-1")
    router.record(d)
    logged = d.to_dict(at=clock.t)
    clock.t += 95  # the conversion arrives a minute and a half later, in another window
    router.record_outcome(logged, conversion=1)
    router.close()
    sample = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)
    side = sample.canary if d.variant == "canary" else sample.baseline
    exposure = ((1_800_000_000 // 60), d.generation)
    assert side.strata[exposure][0] == 1  # the request
    assert side.strata[exposure][2]["conversion"] == [1, 1.0, 1.0]  # and its conversion
    assert side.strata[exposure][3]["conversion"] == {8: [1, 1.0, 1.0]}  # 80-90 s late at least
    assert side.out["conversion"] == [1, 1.0, 1.0]
    arrival = (((1_800_000_000 + 95) // 60), d.generation)
    assert "conversion" not in side.strata.get(arrival, [0, 0, {}, {}])[2]


def _side(n, conversions, strata=None):
    s = Side(n=n, out={"conversion": [conversions, float(conversions), float(conversions)]})
    s.strata = strata or {(0, 1): [n, 0, {"conversion": list(s.out["conversion"])},
                                   {"conversion": {0: list(s.out["conversion"])}}]}  # fmt: skip
    s.omin = {"conversion": 0.0 if conversions < n else 1.0}
    return s


def test_no_outcome_information_is_inconclusive_never_a_pass():
    # 50,000 requests each and not one conversion yet: a zero variance is no information
    check = Check.parse("conversion >= baseline")
    b, c = _side(50_000, 0), _side(50_000, 0)
    b.out["conversion"] = c.out["conversion"] = [50_000, 0.0, 0.0]  # recorded as 0s
    for s in (b, c):
        s.strata[(0, 1)][2]["conversion"] = [50_000, 0.0, 0.0]
    verdict, (result,) = judge([check], Policy(min_samples=100), Sample(b, c, "live", "t"))
    assert verdict == INCONCLUSIVE and result.verdict == INCONCLUSIVE
    assert "no information" in result.reason


def test_estimates_stay_inside_their_range():
    # many strata where the canary converts rarely and the baseline often: the canary's
    # reported rate and interval stay in [0, 1] (a total-based mean plus a stratified
    # difference went below 0 before issue 14)
    rng = random.Random(5)
    strata_b, strata_c = {}, {}
    for k in range(20):
        nb, nc = rng.randint(50, 5000), rng.randint(50, 5000)
        xb, xc = int(nb * rng.uniform(0.0, 0.4)), int(nc * rng.uniform(0.0, 0.02))
        strata_b[(k, 1)] = [nb, 0, {"conversion": [xb, float(xb), float(xb)]}, {}]
        strata_c[(k, 1)] = [nc, 0, {"conversion": [xc, float(xc), float(xc)]}, {}]

    def side(strata):
        n = sum(v[0] for v in strata.values())
        x = sum(v[2]["conversion"][0] for v in strata.values())
        s = _side(n, x, strata)
        return s

    b, c = side(strata_b), side(strata_c)
    for check in ("conversion >= baseline", "conversion >= 0.9x baseline - 5pt",
                  "conversion >= 0.2"):  # fmt: skip
        _, (r,) = judge([Check.parse(check)], Policy(), Sample(b, c, "live", "t"))
        for x in (r.canary, r.baseline, r.low, r.high):
            assert x is None or 0.0 <= x <= 1.0, (check, r)


def test_a_mean_of_non_negative_outcomes_is_never_reported_negative():
    b = Side(n=1000, out={"revenue": [100, 500.0, 50_000.0]})
    c = Side(n=1000, out={"revenue": [3, 3.0, 3.0]})
    b.strata = {(0, 1): [1000, 0, {"revenue": [100, 500.0, 50_000.0]}, {}]}
    c.strata = {(0, 1): [1000, 0, {"revenue": [3, 3.0, 3.0]}, {}]}
    b.omin = {"revenue": 0.0}
    c.omin = {"revenue": 1.0}
    _, (r,) = judge([Check.parse("revenue >= baseline")], Policy(), Sample(b, c, "live", "t"))
    assert r.low is not None and r.low >= 0.0 and r.canary >= 0.0


def test_the_hold_message_does_not_contradict_itself():
    check = Check.parse("conversion >= baseline")
    b = _side(3000, 300)
    c = _side(3000, 250)  # lower, not yet significantly over the release
    _, (r,) = judge([check], Policy(), Sample(b, c, "live", "t"))
    assert r.verdict == INCONCLUSIVE
    assert "not yet with confidence (p 1)" not in r.reason
    assert "holding" in r.reason and "standard errors" in r.reason
    # the hold can be turned off
    _, (r,) = judge([check], Policy(hold_z=0), Sample(b, c, "live", "t"))
    assert r.verdict == "pass"


def test_within_parses_as_an_attribution_window_for_outcomes_only():
    c = Check.parse("conversion >= baseline within 10m")
    assert c.window == 600 and c.text() == "conversion >= baseline within 10m"
    assert Check.from_dict(c.to_dict()) == c
    assert Check.parse("agreement >= 99% within 0.01").tolerance == 0.01
    from modelreg.errors import InvalidInput

    with pytest.raises(InvalidInput, match="attribution window of outcome checks"):
        Check.parse("error_rate <= baseline within 10m")
    assert Policy.from_dict({"outcome_window": "5m"}).outcome_window == 300
