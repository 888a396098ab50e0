#!/usr/bin/env python3
"""Late business outcomes (issue 14), measured: false alarms, detection and the hold rule.

Simulated releases, each judged by the real analysis (`modelreg.analysis.sources._Acc`,
`Sample`, `modelreg.analysis.judge.judge`) and stepped, promoted or aborted exactly as
`modelreg.analysis.watch._act` does; only the traffic is simulated, at the level of metrics
lines (individual requests through a `Router` would be far too slow for thousands of
releases).

**The scenario** (issue 14's independent run): 20,000 requests per 30 s analysis interval
(6,667 / 6,667 / 6,666 per 10 s flush), plan 5, 25, 50, 100 (the step to 100% is the
promotion), checks `errors: error_rate <= baseline + 0.5pt` and `conversion >= baseline`
with the default policy (alpha 0.05 for the release, 3 passes per weight, 500 requests per
side, 60 s exposure windows), an analysis every 30 s, a time cap of 2 h (as `watch
--max-duration 2h`: the last analysis at 2 h). Baseline: 1% errors, 10% conversion.
Canaries: identical (A/A), 20% lower conversion (8%), 3x the error rate (3%).

**Per 10 s flush step, per side**: requests (binomial split of the step's requests by the
current weight), errors and conversions (binomial), each conversion's arrival step (below),
and one metrics line per (generation, side) that has anything to write, with the keys and
values `Metrics.flush` writes: `t0`, `t1` (the step, on 10 s boundaries), `gen`, `variant`,
`version`, `id`, `shadow`, `n`, `err` (when requests were answered), `out` (every outcome
that arrived in the step: `[count, sum, sum of squares]`), `oe` (those that came by
`record_outcome`, by the 10 s exposure bucket of their request) and `omin`. With no delay a
conversion is recorded with its request (`record(d, conversion=0|1)`: `out` counts every
request, no `oe`); with a delay it comes by `record_outcome(d.to_dict(), conversion=1)`, in
the line of the step it arrives in and of its request's generation (a late conversion of a
step-up's previous generation goes to that generation's group, which then writes a line
with only `out` and `oe`). Lines go through `_Acc.add` as `StoreSource.read` feeds them;
accumulating them as they are written is the same as re-reading every file at each
analysis, since `add` only sums (the test checks this). A step-up takes effect at the flush
boundary of the analysis that decided it (a router follows within its 1 s check interval;
that second is ignored).

**Delays** (seconds from the request to its conversion): fixed 0, 1, 20 and 300, and
exponential with means 1, 20 and 300. An exposure is uniform within its 10 s step; a fixed
delay d lands floor(d / 10) or one more steps later (binomial split); an exponential delay
with mean m lands in the exposure step with probability 1 - (m/10)(1 - exp(-10/m)), else
1 + Geometric steps later (memorylessness), drawn per conversion.

**The anchor**: the pre-issue-14 attribution, every outcome counted in the window it arrived
in (the same lines without `oe`, and without `gen`, since strata were not split by
generation before issue 14), through the same judge.

**The hold rule**: every scenario with `hold_z` 1.645 (the default) and 0 (off).

Reported per delay: the false-alarm rate of the A/A releases (aborts) with its 95% Wilson
interval against the documented bound (alpha = 5% per release, docs/analysis.md) and the 1%
the issue names; A/A time to promotion (median, p95, max), releases held (a hold verdict,
"holding for more data") at least once after their second analysis, releases reaching the
time cap; for bad canaries the share caught, requests (both sides) and simulated time to the
abort, and the canary's requests served before it.

Usage::

    python3 bench/late_outcomes.py                  # full run (1,000 A/A releases per setting)
    python3 bench/late_outcomes.py --releases 100 --bad-releases 50 --no-save
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg.analysis.checks import Check, Policy
from modelreg.analysis.judge import FAIL, INCONCLUSIVE, PASS, judge
from modelreg.analysis.sources import Sample, _Acc
from modelreg.serving.aggregate import EXPOSURE_S

BENCH_DIR = Path(__file__).resolve().parent
T0 = 1_800_000_000  # a multiple of 60: exposure windows start on the release's start
STEP_S = EXPOSURE_S  # the flush interval: 10 s
INTERVAL_S = 30
REQUESTS = 20_000  # per analysis interval
PLAN = (0.05, 0.25, 0.50)  # then 100%: the promotion
CAP_S = 2 * 3600
BASE_ERR, BASE_CONV = 0.01, 0.10
CHECKS = (
    Check.parse("errors: error_rate <= baseline + 0.5pt"),
    Check.parse("conversion >= baseline"),
)
BOUND = 0.05  # the documented false-alarm bound: the policy's alpha per release
ISSUE_BOUND = 0.01  # the bound issue 14 names
DELAYS: dict[str, tuple[str, float]] = {
    "0 s": ("fixed", 0.0),
    "1 s": ("fixed", 1.0),
    "20 s": ("fixed", 20.0),
    "5 min": ("fixed", 300.0),
    "exp. 1 s": ("exp", 1.0),
    "exp. 20 s": ("exp", 20.0),
    "exp. 5 min": ("exp", 300.0),
}
SCENARIOS = {
    "aa": (BASE_ERR, BASE_CONV),
    "conversion_-20%": (BASE_ERR, 0.08),
    "errors_3x": (3 * BASE_ERR, BASE_CONV),
}
HOLDS = (1.645, 0.0)
VERSIONS = {"baseline": ("1.0.0", "b0"), "canary": ("1.1.0", "c0")}


# -- random draws -----------------------------------------------------------------------------


def binomial(rng: random.Random, n: int, p: float) -> int:
    """An exact binomial draw (the algorithms of CPython 3.12's `random.binomialvariate`).

    Devroye's geometric method for n p < 10, Hörmann's BTRS (transformed rejection with
    squeeze, 1993) otherwise; written out so the draws do not depend on the Python version.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:
        x = y = 0
        c = math.log(1.0 - p)
        if not c:
            return 0
        while True:
            y += math.floor(math.log(1.0 - rng.random()) / c) + 1
            if y > n:
                return x
            x += 1
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    setup = False
    alpha = lpq = h = 0.0
    m = 0
    while True:
        u = rng.random() - 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = rng.random()
        if us >= 0.07 and v <= vr:
            return k
        if not setup:
            alpha = (2.83 + 5.1 / b) * spq
            lpq = math.log(p / (1.0 - p))
            m = math.floor((n + 1) * p)
            h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
            setup = True
        v *= alpha / (a / (us * us) + b)
        if math.log(v) <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def arrival_offsets(rng: random.Random, count: int, delay: tuple[str, float]) -> dict[int, int]:
    """How many of `count` conversions exposed in one 10 s step arrive 0, 1, 2... steps later."""
    kind, d = delay
    if count <= 0:
        return {}
    if kind == "fixed":
        base, frac = int(d // STEP_S), (d % STEP_S) / STEP_S
        later = binomial(rng, count, frac)
        return {k: v for k, v in ((base, count - later), (base + 1, later)) if v}
    m = d / STEP_S  # the mean delay in steps
    q = math.exp(-1.0 / m)  # a pending conversion is still pending one step later
    first = binomial(rng, count, 1.0 - m * (1.0 - q))  # arrives within its exposure step
    out = {0: first} if first else {}
    rest = count - first  # then 1 + Geometric(1 - q) steps later:
    if rest > 2 * m * math.log(rest + 1):  # many: step by step, a binomial per step
        k = 1
        while rest:
            a = binomial(rng, rest, 1.0 - q)
            if a:
                out[k] = a
                rest -= a
            k += 1
        return out
    for _ in range(rest):  # few: one draw each
        k = 1 + int(-m * math.log(1.0 - rng.random()))
        out[k] = out.get(k, 0) + 1
    return out


# -- one release ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """What one batch of releases shares."""

    delay: str
    scenario: str
    hold_z: float
    attribution: str = "exposure"
    """`exposure` (issue 14) or `arrival` (the pre-issue-14 attribution, the anchor)."""
    window: str = ""
    """The conversion check's attribution window (`10m`), or none."""
    cap_s: int = CAP_S
    requests: int = REQUESTS

    @property
    def key(self) -> str:
        return f"{self.delay}|{self.scenario}|{self.hold_z:g}|{self.attribution}|{self.window}"

    @property
    def checks(self) -> tuple[Check, ...]:
        if not self.window:
            return CHECKS
        return (CHECKS[0], Check.parse(f"{CHECKS[1].text()} within {self.window}"))


@dataclass
class Result:
    """What happened to one release."""

    outcome: str  # promoted, aborted, cap
    time_s: int  # from the start to the decision (or the cap)
    canary_requests: int  # served before the decision
    requests: int  # both sides
    steps: int  # step-ups taken
    analyses: int
    held_after_2nd: bool  # a hold verdict at an analysis after the second
    holds: int  # hold verdicts
    failed_check: str = ""

    def row(self) -> list[Any]:
        return [
            self.outcome,
            self.time_s,
            self.canary_requests,
            self.requests,
            self.steps,
            self.analyses,
            self.held_after_2nd,
            self.holds,
            self.failed_check,
        ]


def head(t0: int, gen: int, side: str) -> dict[str, Any]:
    version, id_ = VERSIONS[side]
    return {
        "v": 1,
        "t0": float(t0),
        "t1": float(t0 + STEP_S),
        "gen": gen,
        "variant": side,
        "version": version,
        "id": id_,
        "shadow": False,
    }


def step_lines(
    t0: int,
    gen: int,
    served: dict[str, tuple[int, int, int | None]],
    arrived: dict[tuple[int, str], dict[int, int]],
) -> list[dict[str, Any]]:
    """The metrics lines one process flushes at the end of the 10 s step starting at `t0`.

    `served`: side -> (requests, errors, conversions recorded with the requests, or None when
    conversions come later) of the current generation `gen`; `arrived`: (generation, side)
    -> {exposure bucket (epoch s): conversions that came by `record_outcome` in this step}.
    """
    lines: dict[tuple[int, str], dict[str, Any]] = {}
    for side, (n, err, inline) in served.items():
        if n <= 0:
            continue
        doc = lines[(gen, side)] = head(t0, gen, side)
        doc["n"], doc["err"] = n, err
        if inline is not None:
            doc["out"] = {"conversion": [n, float(inline), float(inline)]}
            doc["omin"] = {"conversion": 0.0 if inline < n else 1.0}
    for (g, side), buckets in sorted(arrived.items()):
        total = sum(buckets.values())
        if not total:
            continue
        doc = lines.get((g, side)) or lines.setdefault((g, side), head(t0, g, side))
        out = doc.setdefault("out", {}).setdefault("conversion", [0, 0.0, 0.0])
        out[0] += total
        out[1] += float(total)
        out[2] += float(total)
        doc["oe"] = {
            str(b): {"conversion": [c, float(c), float(c)]} for b, c in sorted(buckets.items()) if c
        }
        om = doc.setdefault("omin", {})
        om["conversion"] = min(om.get("conversion", 1.0), 1.0)
    return [lines[k] for k in sorted(lines)]


def pre_issue_14(doc: dict[str, Any]) -> dict[str, Any]:
    """A line as the analysis counted it before issue 14: outcomes in their arrival window.

    Without `oe` every outcome counts in the line's window; without `gen` the windows are not
    split by generation (before issue 14 they were not).
    """
    return {k: v for k, v in doc.items() if k not in ("oe", "gen")}


def is_hold(results: Iterable[Any]) -> bool:
    return any(r.verdict == INCONCLUSIVE and "holding for more data" in r.reason for r in results)


def run_release(setting: Setting, seed: str, trace: dict[str, Any] | None = None) -> Result:
    """Simulate one release to its promotion, abort or time cap.

    `trace`, when given, receives the release's metrics lines (`lines`), the analyses
    (`events`: time, weight, verdict, action, held) and the accumulators (`accs`).
    """
    rng = random.Random(seed)
    err_c, conv_c = SCENARIOS[setting.scenario]
    rates = {"baseline": (BASE_ERR, BASE_CONV), "canary": (err_c, conv_c)}
    delay = DELAYS[setting.delay]
    inline = delay == ("fixed", 0.0)
    policy = Policy(hold_z=setting.hold_z)
    accs = {"baseline": _Acc(), "canary": _Acc()}
    convert = pre_issue_14 if setting.attribution == "arrival" else None
    per_step = [setting.requests // 3 + (1 if i < setting.requests % 3 else 0) for i in range(3)]
    pending: dict[int, dict[tuple[int, str], dict[int, int]]] = {}
    gen, weight_i, passes = 1, 0, 0
    served = {"baseline": 0, "canary": 0}
    start_t = end_t = None
    step = analyses = holds = 0
    held_after_2nd = False
    events: list[tuple[int, float, str, str, bool]] = []
    while True:
        for _ in range(INTERVAL_S // STEP_S):
            t0 = T0 + STEP_S * step
            total = per_step[step % 3]
            n_c = binomial(rng, total, PLAN[weight_i])
            now_served: dict[str, tuple[int, int, int | None]] = {}
            for side, n in (("baseline", total - n_c), ("canary", n_c)):
                p_err, p_conv = rates[side]
                e, c = binomial(rng, n, p_err), binomial(rng, n, p_conv)
                served[side] += n
                if inline:
                    now_served[side] = (n, e, c)
                    continue
                now_served[side] = (n, e, None)
                for off, k in arrival_offsets(rng, c, delay).items():
                    bucket = pending.setdefault(step + off, {}).setdefault((gen, side), {})
                    bucket[t0] = bucket.get(t0, 0) + k
            for doc in step_lines(t0, gen, now_served, pending.pop(step, {})):
                if convert:
                    doc = convert(doc)
                accs[doc["variant"]].add(doc, policy.stratum_s)
                if trace is not None:
                    trace.setdefault("lines", []).append(doc)
                start_t = doc["t0"] if start_t is None else start_t
                end_t = doc["t1"]
            step += 1
        analyses += 1
        now = T0 + STEP_S * step
        elapsed = now - T0
        sample = Sample(
            accs["baseline"].done(),
            accs["canary"].done(),
            "live",
            "bench",
            start_t,
            end_t,
            float(now),
            policy.stratum_s,
        )
        verdict, results = judge(setting.checks, policy, sample)
        held = is_hold(results)
        holds += held
        held_after_2nd = held_after_2nd or (held and analyses > 2)
        action, outcome, failed, weight = "none", "", "", PLAN[weight_i]
        if verdict == FAIL:
            action, outcome = "abort", "aborted"
            failed = next(r.check.label for r in results if r.verdict == FAIL)
        elif verdict == PASS:
            passes += 1  # passes of this generation, this one included (watch._passes + 1)
            if passes >= policy.passes:
                if weight_i + 1 < len(PLAN):
                    action, weight_i, gen, passes = "step", weight_i + 1, gen + 1, 0
                else:
                    action, outcome = "promote", "promoted"
        if trace is not None:
            events.append((elapsed, weight, verdict, action, held))
            trace["events"], trace["accs"] = events, accs
        if not outcome and elapsed + INTERVAL_S > setting.cap_s:
            outcome = "cap"
        if outcome:
            return Result(
                outcome,
                elapsed,
                served["canary"],
                served["baseline"] + served["canary"],
                gen - 1,
                analyses,
                held_after_2nd,
                holds,
                failed,
            )


def seed_of(base: int, setting: Setting, i: int) -> str:
    """The same traffic for the same delay, scenario and index, whatever hold and attribution."""
    return f"{base}:{setting.delay}:{setting.scenario}:{i}"


def run_batch(setting: Setting, base_seed: int, first: int, count: int) -> list[list[Any]]:
    return [
        run_release(setting, seed_of(base_seed, setting, i)).row()
        for i in range(first, first + count)
    ]


# -- summaries --------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank (None: no values)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(rows: list[list[Any]]) -> dict[str, Any]:
    n = len(rows)
    by = {o: [r for r in rows if r[0] == o] for o in ("promoted", "aborted", "cap")}
    aborted = by["aborted"]
    lo, hi = wilson(len(aborted), n)

    def stats3(vals: list[float]) -> dict[str, float | None]:
        return {
            "median": pct(vals, 0.5),
            "p95": pct(vals, 0.95),
            "max": max(vals) if vals else None,
        }

    checks: dict[str, int] = {}
    for r in aborted:
        checks[r[8]] = checks.get(r[8], 0) + 1
    return {
        "releases": n,
        "promoted": len(by["promoted"]),
        "aborted": len(aborted),
        "cap": len(by["cap"]),
        "abort_rate": len(aborted) / n if n else None,
        "abort_rate_ci95": [lo, hi],
        "aborted_by": checks,
        "time_to_promotion_s": stats3([r[1] for r in by["promoted"]]),
        "time_to_abort_s": stats3([r[1] for r in aborted]),
        "requests_to_abort": stats3([r[3] for r in aborted]),
        "canary_requests_to_abort": stats3([r[2] for r in aborted]),
        "canary_requests_to_decision": stats3([r[2] for r in rows]),
        "held_after_2nd": sum(1 for r in rows if r[6]),
        "held_after_2nd_rate": sum(1 for r in rows if r[6]) / n if n else None,
        "mean_holds": sum(r[7] for r in rows) / n if n else None,
        "mean_analyses": sum(r[5] for r in rows) / n if n else None,
    }


# -- the run ----------------------------------------------------------------------------------


def settings_for(args: argparse.Namespace) -> list[tuple[Setting, int]]:
    out: list[tuple[Setting, int]] = []
    for delay in args.delays:
        for hold in HOLDS:
            for scenario in SCENARIOS:
                n = args.releases if scenario == "aa" else args.bad_releases
                out.append((Setting(delay, scenario, hold), n))
        if args.anchor_releases:
            out.append((Setting(delay, "aa", HOLDS[0], "arrival"), args.anchor_releases))
        if args.window_releases:
            for scenario in SCENARIOS:
                n = args.window_releases if scenario == "aa" else args.window_bad_releases
                out.append((Setting(delay, scenario, HOLDS[0], window=args.window), n))
    return out


def run_all(args: argparse.Namespace) -> dict[str, list[list[Any]]]:
    plan = settings_for(args)
    tasks = []
    for setting, n in plan:
        for first in range(0, n, args.chunk):
            tasks.append((setting, args.seed, first, min(args.chunk, n - first)))
    # the slowest first (long exponential delays, attribution windows), for an even finish
    tasks.sort(key=lambda t: (t[0].delay != "exp. 5 min", not t[0].window))
    rows: dict[str, list[tuple[int, list[list[Any]]]]] = {s.key: [] for s, _ in plan}
    total = sum(t[3] for t in tasks)
    done = 0
    started = last = time.time()

    def progress(count: int) -> None:
        nonlocal done, last
        done += count
        now = time.time()
        if now - last >= 15 or done == total:
            last = now
            el = now - started
            print(
                f"{done:,}/{total:,} releases, {el:.0f} s elapsed, "
                f"~{el / done * (total - done):.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    if args.jobs <= 1:
        for t in tasks:
            rows[t[0].key].append((t[2], run_batch(*t)))
            progress(t[3])
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(run_batch, *t): t for t in tasks}
            for f in as_completed(futures):
                t = futures[f]
                rows[t[0].key].append((t[2], f.result()))
                progress(t[3])
    return {k: [r for _, batch in sorted(v) for r in batch] for k, v in rows.items()}


def fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 600:
        return f"{x:.0f} s"
    return f"{x / 60:.1f} min"


def fmt_n(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def fmt_rate(k: int, n: int, ci: bool = True) -> str:
    if not ci:
        return f"{k / n:.1%} ({k}/{n})"
    lo, hi = wilson(k, n)
    return f"{k / n:.1%} ({k}/{n}; 95% CI {lo:.1%}–{hi:.1%})"


def fmt3(s: dict[str, Any], f: Any = fmt_s, keys: tuple[str, ...] = ("median", "p95")) -> str:
    return " / ".join(f(s[k]) for k in keys)


def markdown(doc: dict[str, Any]) -> str:
    res = doc["results"]
    p = doc["params"]
    delays = p["delays"]

    def get(
        delay: str,
        scenario: str,
        hold: float = HOLDS[0],
        attribution: str = "exposure",
        window: str = "",
    ) -> dict[str, Any]:
        return res[Setting(delay, scenario, hold, attribution, window).key]

    def caught(s: dict[str, Any]) -> str:
        missed = [f"{s[k]} {k}" for k in ("promoted", "cap") if s[k]]
        return f"{s['aborted'] / s['releases']:.1%}" + (f" ({', '.join(missed)})" if missed else "")

    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    ref = {sc: get(delays[0], sc)["requests_to_abort"]["median"] for sc in SCENARIOS}
    out = [
        f"# Late outcomes (issue 14), {doc['date']}",
        "",
        f"Command: `{doc['command']}`; Python {doc['python']}, {doc['cpus']} cores, "
        f"{p['jobs']} worker processes, load average {doc['load']:.1f}; {doc['runtime_s']:.0f} s.",
        "",
        "Scenario: 20,000 requests per 30 s analysis interval, plan 5, 25, 50, 100 (the step to "
        "100% is the promotion), checks `errors: error_rate <= baseline + 0.5pt` and "
        "`conversion >= baseline`, default policy (alpha 0.05 per release, 3 passes per weight, "
        "500 requests per side, 60 s exposure windows), an analysis every 30 s, time cap 2 h; "
        "baseline 1% errors and 10% conversion; conversions recorded with the request (0 s) or "
        "by `record_outcome` after the delay. Times are simulated, from the start of the release "
        "to the decision; requests are both sides' unless the column says canary.",
        "",
        f"**False alarms and detection** (hold_z 1.645, the default). Documented bound: "
        f"{BOUND:.0%} per release (the policy's alpha); the issue names {ISSUE_BOUND:.0%}.",
        "",
        row(
            "conversion delay",
            f"A/A false alarms ({p['releases']:,} releases)",
            "−20% conversion: caught",
            "requests to abort, median (× no delay)",
            "time to abort, median / p95",
            "3x errors: caught",
            "requests to abort, median",
            "time to abort, median / p95",
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in delays:
        aa, cv, er = get(d, "aa"), get(d, "conversion_-20%"), get(d, "errors_3x")
        rq = cv["requests_to_abort"]["median"]
        ratio = f" (× {rq / ref['conversion_-20%']:.1f})" if rq and ref["conversion_-20%"] else ""
        out.append(
            row(
                d,
                fmt_rate(aa["aborted"], aa["releases"]),
                caught(cv),
                fmt_n(rq) + ratio,
                fmt3(cv["time_to_abort_s"]),
                caught(er),
                fmt_n(er["requests_to_abort"]["median"]),
                fmt3(er["time_to_abort_s"]),
            )
        )
    out += [
        "",
        "**The hold rule, identical canaries**: hold_z 1.645 (default) against 0 (off). "
        "Held: a hold verdict (a check more than hold_z single-look standard errors beyond its "
        "limit, not yet failing) at any analysis after the second (the first minute).",
        "",
        row(
            "conversion delay",
            "hold_z",
            "A/A false alarms",
            "time to promotion, median / p95 / max",
            "held after the 2nd analysis",
            "reaching the 2 h cap",
        ),
        "|---|---|---|---|---|---|",
    ]
    for d in delays:
        for hold in HOLDS:
            aa = get(d, "aa", hold)
            out.append(
                row(
                    d,
                    f"{hold:g}",
                    fmt_rate(aa["aborted"], aa["releases"], ci=False),
                    fmt3(aa["time_to_promotion_s"], keys=("median", "p95", "max")),
                    f"{aa['held_after_2nd_rate']:.1%}",
                    str(aa["cap"]),
                )
            )
    out += [
        "",
        "**The hold rule, bad canaries**: the canary's requests served before the abort.",
        "",
        row(
            "conversion delay",
            "hold_z",
            "−20% conversion: caught",
            "canary requests before the abort, median / p95",
            "time to abort, median / p95",
            "3x errors: caught",
            "canary requests before the abort, median / p95",
            "time to abort, median / p95",
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in delays:
        for hold in HOLDS:
            cv, er = get(d, "conversion_-20%", hold), get(d, "errors_3x", hold)
            out.append(
                row(
                    d,
                    f"{hold:g}",
                    caught(cv),
                    fmt3(cv["canary_requests_to_abort"], fmt_n),
                    fmt3(cv["time_to_abort_s"]),
                    caught(er),
                    fmt3(er["canary_requests_to_abort"], fmt_n),
                    fmt3(er["time_to_abort_s"]),
                )
            )
    if p["anchor_releases"]:
        out += [
            "",
            "**Anchor: the attribution before issue 14** (an outcome counted in the window it "
            "arrived in; the same traffic, the same judge, hold_z 1.645).",
            "",
            row(
                "conversion delay",
                "A/A false alarms, by exposure (issue 14)",
                f"A/A false alarms, by arrival ({p['anchor_releases']:,} releases)",
                "time to the false alarm, median",
                "failing check",
            ),
            "|---|---|---|---|---|",
        ]
        for d in delays:
            now, before = get(d, "aa"), get(d, "aa", attribution="arrival")
            checks = ", ".join(f"{k} {v}" for k, v in sorted(before["aborted_by"].items()))
            out.append(
                row(
                    d,
                    fmt_rate(now["aborted"], now["releases"], ci=False),
                    fmt_rate(before["aborted"], before["releases"]),
                    fmt_s(before["time_to_abort_s"]["median"]),
                    checks or "–",
                )
            )
    if p["window_releases"]:
        w = p["window"]
        out += [
            "",
            f"**With an attribution window**: `conversion >= baseline within {w}` (hold_z 1.645): "
            f"only exposure windows whose requests all had {w} count, with the conversions "
            f"that came within {w}.",
            "",
            row(
                "conversion delay",
                f"A/A false alarms ({p['window_releases']:,} releases)",
                "time to promotion, median / p95 / max",
                "−20% conversion: caught",
                "requests to abort, median",
                "time to abort, median / p95",
                "3x errors: caught",
                "time to abort, median / p95",
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in delays:
            aa, cv, er = (get(d, sc, window=w) for sc in SCENARIOS)
            out.append(
                row(
                    d,
                    fmt_rate(aa["aborted"], aa["releases"]),
                    fmt3(aa["time_to_promotion_s"], keys=("median", "p95", "max")),
                    caught(cv),
                    fmt_n(cv["requests_to_abort"]["median"]),
                    fmt3(cv["time_to_abort_s"]),
                    caught(er),
                    fmt3(er["time_to_abort_s"]),
                )
            )
    return "\n".join(out) + "\n"


def commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--releases", type=int, default=1000, help="A/A releases per delay and hold_z")
    ap.add_argument(
        "--bad-releases", type=int, default=500, help="releases per bad canary, delay and hold_z"
    )
    ap.add_argument(
        "--anchor-releases",
        type=int,
        default=200,
        help="A/A releases per delay with the pre-issue-14 attribution (0: none)",
    )
    ap.add_argument("--window", default="10m", help="the attribution window of the last part")
    ap.add_argument(
        "--window-releases",
        type=int,
        default=500,
        help="A/A releases per delay with the attribution window (0: none)",
    )
    ap.add_argument(
        "--window-bad-releases",
        type=int,
        default=200,
        help="releases per bad canary and delay with the attribution window",
    )
    ap.add_argument("--delays", nargs="+", default=list(DELAYS), choices=list(DELAYS))
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk", type=int, default=25, help="releases per task")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    started = time.time()
    rows = run_all(args)
    runtime = time.time() - started
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "bench": "late-outcomes",
        "date": date,
        "command": " ".join(
            ["python3 bench/late_outcomes.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "params": {
            **{k: v for k, v in vars(args).items() if k != "no_save"},
            "requests_per_interval": REQUESTS,
            "interval_s": INTERVAL_S,
            "plan": [*PLAN, 1.0],
            "cap_s": CAP_S,
            "checks": [c.text() for c in CHECKS],
            "policy": Policy().to_dict(),
            "baseline": {"error_rate": BASE_ERR, "conversion": BASE_CONV},
            "scenarios": SCENARIOS,
            "delays_def": DELAYS,
        },
        "bound": {"documented_alpha": BOUND, "issue": ISSUE_BOUND},
        "commit": commit(),
        "results": {
            s.key: {
                "setting": {
                    "delay": s.delay,
                    "scenario": s.scenario,
                    "hold_z": s.hold_z,
                    "attribution": s.attribution,
                    "window": s.window or None,
                },
                **summarize(rows[s.key]),
            }
            for s, _ in settings_for(args)
        },
        "runtime_s": round(runtime, 1),
    }
    md = markdown(doc)
    print(md)
    if not args.no_save:
        out = BENCH_DIR / "results" / f"late-outcomes-{date[:10]}"
        out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
        out.with_suffix(".md").write_text(md)
        print(f"wrote {out}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
