"""The late-outcomes benchmark (bench/late_outcomes.py, issue 14) keeps working and stays faithful.

Its simulator writes metrics lines instead of routing requests through a `Router`: these tests
check that the lines add up to what a real Router's `Metrics.flush` writes for the same
requests and conversions, and run a few releases (an identical canary is not rolled back, a
canary converting 20% less is; the pre-issue-14 attribution rolls identical canaries back).
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import pytest

from modelreg.analysis.checks import Policy
from modelreg.analysis.demo import Clock
from modelreg.analysis.judge import judge
from modelreg.analysis.sources import Sample, StoreSource, _Acc
from modelreg.release import ops
from modelreg.serving import Router

BENCH = Path(__file__).resolve().parents[2] / "bench" / "late_outcomes.py"


@pytest.fixture(scope="module")
def lo():
    spec = importlib.util.spec_from_file_location("bench_late_outcomes", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_simulated_lines_add_up_to_what_a_router_writes(lo, model):
    """Requests and late conversions across a step-up, through a real Router and the bench."""
    ops.start(model, "m", "1.1.0", steps="20,50,100", seed=f"{3:032x}")
    clock = Clock(float(lo.T0))
    router = Router.open("m", store=model.root, materialize=False, clock=clock, wall=clock,
                         flush_interval_s=10, check_interval_ms=0)  # fmt: skip
    rng = random.Random(3)
    steps = 9
    end = lo.T0 + 10 * steps
    due: list[tuple[float, dict]] = []
    served: dict[int, dict[str, list[int]]] = {}
    gens: dict[int, int] = {}
    arrived: dict[int, dict[tuple[int, str], dict[int, int]]] = {}

    def deliver(until: float) -> None:
        due.sort(key=lambda x: x[0])
        while due and due[0][0] < until:
            at, logged = due.pop(0)
            clock.t = at
            router.record_outcome(logged, conversion=1)
            bucket = int(logged["time"] // 10) * 10
            cell = arrived.setdefault(int((at - lo.T0) // 10), {})
            key = (logged["generation"], logged["variant"])
            cell.setdefault(key, {})[bucket] = cell.setdefault(key, {}).get(bucket, 0) + 1

    try:
        for step in range(steps):
            if step == 4:
                ops.step(model, "m")  # a new generation: earlier requests convert after it
            t0 = lo.T0 + 10 * step
            for k in range(40):
                deliver(t0 + k * 0.25)
                clock.t = t0 + k * 0.25
                d = router.route(user_id=f"u{rng.randrange(10**6)}")
                err = rng.random() < 0.1
                router.record(d, error=err)
                cell = served.setdefault(step, {}).setdefault(d.variant, [0, 0])
                cell[0] += 1
                cell[1] += err
                assert gens.setdefault(step, d.generation) == d.generation
                if rng.random() < 0.5:
                    delay = rng.choice([0.1, 3.0, 9.9, 12.0, 25.0, 47.0])
                    if clock.t + delay < end:
                        due.append((clock.t + delay, d.to_dict(at=clock.t)))
            deliver(t0 + 10)
            clock.t = t0 + 10
            router.metrics.flush()
    finally:
        router.close()
    assert gens[0] != gens[steps - 1]
    # conversions of the first generation arrived after the step-up, in lines of their own
    assert any(g == gens[0] for s, a in arrived.items() if s > 4 for g, _ in a)
    real = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)

    accs = {"baseline": _Acc(), "canary": _Acc()}
    for step in range(steps):
        now = {side: (n, e, None) for side, (n, e) in served[step].items()}
        for doc in lo.step_lines(lo.T0 + 10 * step, gens[step], now, arrived.get(step, {})):
            accs[doc["variant"]].add(doc, 60)
    for side, mine in (("baseline", accs["baseline"].done()), ("canary", accs["canary"].done())):
        theirs = getattr(real, side)
        assert (mine.n, mine.errors) == (theirs.n, theirs.errors)
        assert mine.out == theirs.out and mine.omin == theirs.omin
        assert mine.strata == theirs.strata, side


def test_a_few_releases(lo):
    aa = lo.Setting("20 s", "aa", 1.645)
    rows = [lo.run_release(aa, lo.seed_of(1, aa, i)) for i in range(20)]
    assert [r.outcome for r in rows] == ["promoted"] * 20
    assert all(r.steps == 2 and r.time_s >= 270 for r in rows)  # 3 passes at 5, 25 and 50%

    bad = lo.Setting("20 s", "conversion_-20%", 1.645)
    rows = [lo.run_release(bad, lo.seed_of(1, bad, i)) for i in range(10)]
    assert all(r.outcome == "aborted" and r.failed_check == "conversion" for r in rows)

    errors = lo.Setting("20 s", "errors_3x", 0.0)
    rows = [lo.run_release(errors, lo.seed_of(1, errors, i)) for i in range(5)]
    assert all(r.outcome == "aborted" and r.failed_check == "errors" for r in rows)

    # the anchor: counted where they arrive, late conversions roll identical canaries back
    before = lo.Setting("20 s", "aa", 1.645, "arrival")
    rows = [lo.run_release(before, lo.seed_of(1, before, i)) for i in range(3)]
    assert [r.outcome for r in rows] == ["aborted"] * 3


def test_the_order_of_the_lines_does_not_matter(lo):
    """Accumulating lines as they are written is the same as reading every file at the end."""
    setting = lo.Setting("exp. 20 s", "aa", 1.645)
    trace: dict = {}
    lo.run_release(setting, "order", trace=trace)
    lines = list(trace["lines"])
    random.Random(1).shuffle(lines)
    fresh = {"baseline": _Acc(), "canary": _Acc()}
    for doc in lines:
        fresh[doc["variant"]].add(doc, 60)
    for side in fresh:
        assert fresh[side].side.strata == trace["accs"][side].side.strata
        assert fresh[side].side.out == trace["accs"][side].side.out
    now = float(max(d["t1"] for d in lines))
    verdicts = [
        judge(lo.CHECKS, Policy(), Sample(a["baseline"].done(), a["canary"].done(), "live", "t",
                                          None, now, now))[0]
        for a in (fresh, trace["accs"])
    ]  # fmt: skip
    assert verdicts[0] == verdicts[1]


@pytest.mark.parametrize("n, p", [(7, 0.3), (200, 0.01), (6667, 0.05), (6000, 0.1), (50, 0.9)])
def test_binomial_draws_have_the_right_mean_and_variance(lo, n, p):
    rng = random.Random(n)
    draws = [lo.binomial(rng, n, p) for _ in range(4000)]
    mean = sum(draws) / len(draws)
    var = sum((x - mean) ** 2 for x in draws) / (len(draws) - 1)
    assert all(0 <= x <= n for x in draws)
    assert abs(mean - n * p) < 5 * math.sqrt(n * p * (1 - p) / len(draws))
    assert var == pytest.approx(n * p * (1 - p), rel=0.1)


def test_exponential_delays_arrive_as_the_distribution_says(lo):
    rng = random.Random(2)
    counts: dict[int, int] = {}
    for _ in range(200):
        for k, c in lo.arrival_offsets(rng, 600, ("exp", 20.0)).items():
            counts[k] = counts.get(k, 0) + c
    total = sum(counts.values())
    assert total == 200 * 600
    m = 2.0  # the mean delay in 10 s steps
    first = 1 - m * (1 - math.exp(-1 / m))  # arrives in the step of its exposure
    assert counts[0] / total == pytest.approx(first, abs=0.01)
    later = (1 - first) * (1 - math.exp(-1 / m)) * math.exp(-1 / m)  # two steps later
    assert counts[2] / total == pytest.approx(later, abs=0.01)
    assert lo.arrival_offsets(rng, 100, ("fixed", 20.0)) == {2: 100}
    one = lo.arrival_offsets(rng, 1000, ("fixed", 1.0))
    assert set(one) <= {0, 1} and 60 < one.get(1, 0) < 140  # 10% land in the next step
