#!/usr/bin/env python3
"""Benchmark canary analysis (issue 6): the judges compared, record() cost, analysis cost.

1. **Judges on the same simulated streams.** Each release is a sequence of analysis
   intervals at a fixed canary weight; each interval has `--requests` requests, split by
   the weight, with errors and conversions drawn (binomially) from each side's true rates.
   Aggregated counts per interval are exact for these statistics, so no request is
   simulated one by one. Three judges see the same streams:

   * **fixed threshold** (Argo Rollouts / Flagger style): per interval, the canary's error
     rate must be <= 1.5% and its conversion >= 9.5%; one failed interval aborts (Argo's
     default failureLimit 0);
   * **per-interval Mann-Whitney** (Kayenta style): per interval, a one-sided Mann-Whitney U
     test of the canary against the baseline on each metric at alpha 0.05, no correction
     across metrics or intervals; one significant regression aborts;
   * **mreg**: `modelreg.analysis.judge` with the checks `error_rate <= baseline + 0.5pt`
     and `conversion >= baseline` and the default policy (alpha 0.05 per release, 500
     requests per side minimum), on the cumulative data stratified by interval.

   Two more judges show what the first two need to reach mreg's false-alarm rate: the fixed
   thresholds widened, and the per-interval test at alpha 0.05 / (2 x intervals)
   (Bonferroni over metrics and intervals).

   Reported per weight (1%, 5%): the false-alarm rate over `--releases` A/A releases
   (baseline 1% errors, 10% conversion, `--intervals` intervals each), and the median
   number of requests (both sides) until the judge aborts for a canary with 3x the error
   rate (3%), and one with a 10% conversion drop (9%); releases it never catches within the
   horizon count as never (the median is "never" when half or more are missed).

2. **record() cost**: the median per call of timed batches of `router.record(d, ...)`.
3. **analysis cost**: `analyze()` over 1,000,000 requests recorded by 16 routers (16
   processes' files) over one simulated hour, flushed every 10 s.

Targets: record() median < 2 µs; analysis over 1,000,000 requests < 1 s; mreg's judge has
the lowest false-alarm rate and detects no later than the others.

Usage::

    python3 bench/analysis.py                 # full run, writes bench/results/analysis-<date>.json
    python3 bench/analysis.py --releases 200 --no-save
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelreg.analysis import stats
from modelreg.analysis.checks import Check, Policy
from modelreg.analysis.judge import judge
from modelreg.analysis.sources import Sample, Side

BENCH_DIR = Path(__file__).resolve().parent
TARGET_RECORD_NS = 2000
TARGET_ANALYSIS_S = 1.0
BASE_ERR, BASE_CONV = 0.01, 0.10
SCENARIOS = {
    "aa": (BASE_ERR, BASE_CONV),
    "errors_3x": (3 * BASE_ERR, BASE_CONV),
    "conversion_-10%": (BASE_ERR, 0.9 * BASE_CONV),
}
CHECKS = (Check.parse("error_rate <= baseline + 0.5pt"), Check.parse("conversion >= baseline"))
POLICY = Policy()


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: exact inversion for small means, normal approximation otherwise."""
    if n <= 0 or p <= 0:
        return 0
    mean = n * p
    if mean < 30:
        u, k = rng.random(), 0
        prob = (1 - p) ** n
        cdf = prob
        while u > cdf and k < n:
            k += 1
            prob *= (n - k + 1) / k * p / (1 - p)
            cdf += prob
        return k
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


# -- the three judges: each gets one interval at a time and says whether to abort -----------


class FixedThreshold:
    name = "fixed threshold (Argo/Flagger)"

    def __init__(self) -> None:
        self.failed = 0

    def interval(self, nc, ec, cc, nb, eb, cb) -> bool:
        if nc == 0:
            return False
        bad = ec / nc > 0.015 or cc / nc < 0.095
        self.failed += bad
        return self.failed > 0  # failureLimit 0: the first failed measurement aborts


class PerIntervalMWU:
    name = "per-interval Mann-Whitney (Kayenta)"

    def interval(self, nc, ec, cc, nb, eb, cb) -> bool:
        if nc == 0 or nb == 0:
            return False
        for xc, xb, worse_is_higher in ((ec, eb, True), (cc, cb, False)):
            c = [(0.0, 0.0, nc - xc), (1.0, 1.0, xc)]
            b = [(0.0, 0.0, nb - xb), (1.0, 1.0, xb)]
            _, _, p = stats.mann_whitney(c, b) if worse_is_higher else stats.mann_whitney(b, c)
            if p < 0.05:
                return True
        return False


class CalibratedThreshold:
    """Fixed thresholds widened until an A/A release of `intervals` looks rarely crosses them."""

    name = "fixed threshold, calibrated to 5% false alarms"

    def __init__(self) -> None:
        self.z = None

    def interval(self, nc, ec, cc, nb, eb, cb) -> bool:
        if nc == 0:
            return False
        # Bonferroni over both metrics and every interval of the release: z for 0.05 / (2 K).
        z = stats.norm_ppf(1 - 0.05 / (2 * ARGS.intervals))
        err_limit = 0.015 + z * math.sqrt(0.015 * 0.985 / nc)
        conv_limit = 0.095 - z * math.sqrt(0.095 * 0.905 / nc)
        return ec / nc > err_limit or cc / nc < conv_limit


class CorrectedMWU(PerIntervalMWU):
    name = "per-interval Mann-Whitney, Bonferroni over intervals"

    def interval(self, nc, ec, cc, nb, eb, cb) -> bool:
        if nc == 0 or nb == 0:
            return False
        alpha = 0.05 / (2 * ARGS.intervals)
        for xc, xb, worse_is_higher in ((ec, eb, True), (cc, cb, False)):
            c = [(0.0, 0.0, nc - xc), (1.0, 1.0, xc)]
            b = [(0.0, 0.0, nb - xb), (1.0, 1.0, xb)]
            _, _, p = stats.mann_whitney(c, b) if worse_is_higher else stats.mann_whitney(b, c)
            if p < alpha:
                return True
        return False


class Mreg:
    name = "mreg (always-valid, corrected)"

    def __init__(self) -> None:
        self.c = Side()
        self.b = Side()
        self.k = 0

    def interval(self, nc, ec, cc, nb, eb, cb) -> bool:
        for side, n, e, conv in ((self.c, nc, ec, cc), (self.b, nb, eb, cb)):
            side.n += n
            side.errors += e
            o = side.out.setdefault("conversion", [0, 0.0, 0.0])
            o[0] += n
            o[1] += conv
            o[2] += conv
            side.strata[self.k] = [n, e, {"conversion": [n, float(conv), float(conv)]}]
        self.k += 1
        verdict, _ = judge(CHECKS, POLICY, Sample(self.b, self.c, "live", "bench"))
        return verdict == "fail"


JUDGES = (FixedThreshold, PerIntervalMWU, CalibratedThreshold, CorrectedMWU, Mreg)
ARGS = argparse.Namespace(intervals=60)


def run_release(rng, weight, err, conv, requests, intervals):
    """Feed one release to every judge; the request count at which each aborted (or None)."""
    judges = [j() for j in JUDGES]
    caught: list[int | None] = [None] * len(judges)
    total = 0
    for _ in range(intervals):
        nc = binomial(rng, requests, weight)
        nb = requests - nc
        row = (nc, binomial(rng, nc, err), binomial(rng, nc, conv),
               nb, binomial(rng, nb, BASE_ERR), binomial(rng, nb, BASE_CONV))  # fmt: skip
        total += requests
        for i, j in enumerate(judges):
            if caught[i] is None and j.interval(*row):
                caught[i] = total
        if all(c is not None for c in caught):
            break
    return caught


def compare_judges(args) -> dict[str, Any]:
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"judges": [j.name for j in JUDGES], "weights": {}}
    for weight in (0.01, 0.05):
        per: dict[str, Any] = {}
        for scenario, (err, conv) in SCENARIOS.items():
            n = args.releases if scenario == "aa" else args.detect_releases
            results = [run_release(rng, weight, err, conv, args.requests, args.intervals)
                       for _ in range(n)]  # fmt: skip
            row = {}
            for i, j in enumerate(JUDGES):
                hits = [r[i] for r in results]
                caught = sorted(h for h in hits if h is not None)
                if scenario == "aa":
                    row[j.name] = {"false_alarm_rate": len(caught) / n, "releases": n}
                else:
                    median = None
                    if len(caught) > n / 2:
                        median = statistics.median([*caught, *[math.inf] * (n - len(caught))])
                    row[j.name] = {"median_requests": median, "caught": len(caught) / n,
                                   "releases": n}  # fmt: skip
            per[scenario] = row
        out["weights"][f"{weight:.0%}"] = per
    return out


# -- costs ------------------------------------------------------------------------------------


def make_store(root: Path):
    from modelreg import Store
    from modelreg.release import ops

    store = Store.init(root)
    for v in ("1.0.0", "1.1.0"):
        f = root / f"model-{v}.bin"
        f.write_bytes(v.encode())
        store.register("m", [f], version=v, detect_code=False, author="bench")
    store.promote("m@1.0.0", "production", actor="bench")
    ops.start(store, "m", "1.1.0", weight=5, actor="bench", analysis=[
        "errors: error_rate <= baseline + 0.5pt", "p99: latency.p99 <= 1.2x baseline",
        "conversion >= baseline", "drift.ks <= 0.1"])  # fmt: skip
    return store


def record_cost(store, samples: int, batch: int) -> dict[str, float]:
    from modelreg.serving import Router

    r = Router.open("m", store=store.root, materialize=False, flush_interval_s=3600)
    d = r.route(user_id="user-1")
    cases = {
        "record(d, latency_ms)": lambda: r.record(d, latency_ms=12.5),
        "record(d, latency_ms, error, score, 1 outcome)": lambda: r.record(
            d, latency_ms=12.5, error=False, score=0.4, conversion=1
        ),
    }
    out = {}
    for label, fn in cases.items():
        times = []
        for _ in range(samples):
            t = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            times.append((time.perf_counter_ns() - t) / batch)
        out[label] = statistics.median(times)
    t = time.perf_counter_ns()
    for _ in range(batch):
        with r.timer(d):
            pass
    out["with router.timer(d): (empty block)"] = (time.perf_counter_ns() - t) / batch
    r.close()
    return out


def analysis_cost(store, requests: int, routers: int) -> dict[str, Any]:
    from modelreg.analysis import analyze
    from modelreg.analysis.demo import Clock
    from modelreg.serving import Router

    clock = Clock()
    rs = [Router.open("m", store=store.root, materialize=False, clock=clock, wall=clock,
                      flush_interval_s=10) for _ in range(routers)]  # fmt: skip
    rng = random.Random(5)
    per_second = requests // 3600
    t0 = time.perf_counter()
    done = 0
    while done < requests:
        for i in range(per_second):
            r = rs[i % routers]
            d = r.route(user_id=f"u{rng.randrange(1_000_000)}")
            r.record(d, latency_ms=rng.lognormvariate(3, 0.4), error=rng.random() < 0.01,
                     score=rng.random(), conversion=int(rng.random() < 0.1))  # fmt: skip
        done += per_second
        clock.t += 1
    for r in rs:
        r.close()
    recording = time.perf_counter() - t0
    lines = sum(1 for p in (store.root / "metrics").rglob("*.jsonl") for _ in p.open())
    times = []
    for _ in range(5):
        t = time.perf_counter()
        result = analyze(store, "m")
        times.append(time.perf_counter() - t)
    return {
        "requests": done,
        "routers": routers,
        "lines": lines,
        "record_and_flush_s": round(recording, 2),
        "analyze_median_s": statistics.median(times),
        "verdict": result.verdict,
        "counted": result.n_baseline + result.n_canary,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--releases", type=int, default=1000, help="A/A releases per weight")
    ap.add_argument("--detect-releases", type=int, default=300, help="releases per detection case")
    ap.add_argument("--requests", type=int, default=20_000, help="requests per interval")
    ap.add_argument("--intervals", type=int, default=60, help="analysis intervals per release")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    ARGS.intervals = args.intervals

    started = time.time()
    judges = compare_judges(args)
    with tempfile.TemporaryDirectory(prefix="mreg-bench-analysis-") as tmp:
        store = make_store(Path(tmp) / "a")
        record = record_cost(store, args.samples, args.batch)
        store2 = make_store(Path(tmp) / "b")
        analysis = analysis_cost(store2, 1_000_000, 16)
    record_ns = record["record(d, latency_ms, error, score, 1 outcome)"]
    doc = {
        "bench": "analysis",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "params": {k: v for k, v in vars(args).items() if k != "no_save"},
        "judges": judges,
        "record_ns": record,
        "analysis": analysis,
        "targets": {
            "record_ns": [TARGET_RECORD_NS, record_ns < TARGET_RECORD_NS],
            "analysis_s": [TARGET_ANALYSIS_S, analysis["analyze_median_s"] < TARGET_ANALYSIS_S],
        },
        "runtime_s": round(time.time() - started, 1),
    }
    print(json.dumps(doc, indent=2, default=str))
    if not args.no_save:
        out = BENCH_DIR / "results" / f"analysis-{doc['date'][:10]}.json"
        out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    ok = all(v[1] for v in doc["targets"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
