"""The judge: each check's verdict on a `Sample`, and the analysis's verdict. Pure.

Every check reduces to an *excess* T: how far the canary's value lies beyond its limit on
the bad side (T > 0: worse than allowed), with a variance V. With the check's share of the
false-alarm budget, alpha / (number of checks), the always-valid radius r (`msprt_radius`)
gives the verdict:

- **inconclusive** while either side has fewer than the minimum samples;
- **fail** when T - r > 0: the canary is beyond its limit with confidence, at any look;
- **inconclusive** when T / sqrt(V) > `policy.hold_z` (1.645 by default; 0 turns the hold
  off): the canary looks beyond its limit at 95% confidence *for this look alone*, not yet
  with always-valid confidence: hold and gather more data rather than step up;
- **pass** otherwise: the data give no reason to hold the canary back.

The analysis fails if any check fails, is inconclusive if any check is (or none applies),
and passes otherwise. docs/analysis.md gives the methods and the false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelreg.analysis import drift, stats
from modelreg.analysis.checks import Check, Policy, format_window
from modelreg.analysis.sources import Bins, Sample, Side
from modelreg.serving.aggregate import EXPOSURE_S

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "SKIPPED", "CheckResult", "format_value", "judge"]

PASS, FAIL, INCONCLUSIVE, SKIPPED = "pass", "fail", "inconclusive", "skipped"
HOLD_Z = 1.645
"""A single-look z above this (95% one-sided) holds a canary as inconclusive."""
QUANTILE_TAIL = 10
"""A quantile check needs n (1 - q) >= 10 on each side: 1,000 requests for a p99."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, with the numbers behind it."""

    check: Check
    verdict: str
    reason: str
    baseline: float | None = None
    canary: float | None = None
    limit: float | None = None
    low: float | None = None
    """The always-valid interval of the canary's value (low, high)."""
    high: float | None = None
    p_value: float | None = None
    """Always-valid p-value of 'within the limit' (smaller: surer the canary is worse)."""
    n_baseline: int = 0
    n_canary: int = 0
    alpha: float = 0.0
    excluded: int = 0
    """Requests left out because their outcomes' attribution window is still open."""

    @property
    def difference(self) -> float | None:
        """Canary minus baseline (a ratio for latency quantiles)."""
        if self.baseline is None or self.canary is None:
            return None
        if self.check.kind == "quantile":
            return self.canary / self.baseline if self.baseline else None
        return self.canary - self.baseline

    @property
    def confidence(self) -> float | None:
        """1 - p: how sure the judge is that the canary is beyond its limit."""
        return None if self.p_value is None else 1 - self.p_value

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (part of `release analyze --json`)."""
        return {
            "name": self.check.label,
            "check": self.check.text(),
            "metric": self.check.metric,
            "verdict": self.verdict,
            "reason": self.reason,
            "baseline": self.baseline,
            "canary": self.canary,
            "difference": self.difference,
            "limit": self.limit,
            "interval": None if self.low is None else [self.low, self.high],
            "p_value": self.p_value,
            "confidence": self.confidence,
            "n": {"baseline": self.n_baseline, "canary": self.n_canary},
            "alpha": self.alpha,
            "excluded": self.excluded,
        }


def format_value(check: Check, x: float | None) -> str:
    """A value of the check's metric as people read it: 1.23%, 85.2 ms, 0.153."""
    if x is None:
        return "-"
    kind = check.kind
    if kind in ("rate", "agreement"):
        return f"{x * 100:.3g}%"
    if kind == "quantile":
        return f"{x:.4g} ms"
    return f"{x:.4g}"


_fmt = format_value


class _Eval:
    """Turns (excess, variance) into a result for one check."""

    def __init__(self, check: Check, alpha: float, policy: Policy, b: Side, c: Side) -> None:
        self.check, self.alpha = check, alpha
        self.hold_z = policy.hold_z
        self.min = check.min_samples or policy.min_samples
        self.s = 1.0 if check.higher_is_worse else -1.0
        self.b, self.c = b, c

    def result(self, verdict: str, reason: str, **kw: Any) -> CheckResult:
        return CheckResult(self.check, verdict, reason, alpha=self.alpha, **kw)

    def too_few(
        self, n_b: int, n_c: int, need: int, what: str = "requests", **kw: Any
    ) -> CheckResult | None:
        if n_b >= need and n_c >= need:
            return None
        return self.result(
            INCONCLUSIVE, f"needs {need:,} {what} per side (baseline {n_b:,}, canary {n_c:,})",
            n_baseline=n_b, n_canary=n_c, **kw,
        )  # fmt: skip

    def decide(
        self,
        t: float,
        v: float,
        tau: float,
        limit: float,
        to_value: Any,
        bounds: tuple[float, float] = (-math.inf, math.inf),
        note: str = "",
        **kw: Any,
    ) -> CheckResult:
        """Verdict from the excess `t` (> 0: worse than `limit`) and its variance `v`.

        The sequential test mixes two scales, `tau` and `tau / 10`: effects of about the
        size of the limit and a tenth of it are detected nearly as fast as with a test
        tuned for them. `bounds` is the range of the metric's values (a rate's [0, 1]): the
        estimate and its interval are reported inside it. `note` ends the reason.
        """
        taus = (max(tau / 10, 1e-12), max(tau, 1e-11))
        r = stats.sequential_radius(v, taus, self.alpha)
        lo, hi = bounds

        def inside(x: float) -> float:
            return min(max(x, lo), hi)

        ends = sorted((inside(to_value(t - r)), inside(to_value(t + r))))
        p = stats.sequential_p(t, v, taus) if t > 0 else 1.0
        canary = inside(to_value(t))
        c = self.check
        shown = f"{c.metric} {_fmt(c, canary)} vs limit {_fmt(c, limit)}"
        z = t / math.sqrt(v) if v > 0 else 0.0
        if t - r > 0:
            verdict = FAIL
            why = f"{shown}: beyond the limit with confidence (p {p:.2g} <= {self.alpha:.2g})"
        elif self.hold_z and z > self.hold_z:
            verdict = INCONCLUSIVE
            why = (
                f"{shown}: {z:.2f} standard errors beyond the limit at this look, which is "
                f"not yet evidence over the whole release (always-valid p {p:.2g} > "
                f"{self.alpha:.2g}): holding for more data"
            )
        else:
            verdict = PASS
            why = f"{shown}: " + ("within" if t <= 0 else "not significantly beyond") + " the limit"
        return self.result(
            verdict, why + note, canary=canary, limit=limit, low=ends[0], high=ends[1],
            p_value=p, **kw,
        )  # fmt: skip


def _quantile_side(bins: Bins, q: float) -> tuple[float | None, float | None]:
    return stats.quantile(bins, q), stats.quantile_log_se(bins, q)


def _count(bins: Bins) -> int:
    return sum(c for _, _, c in bins)


def _agreeing(diffs: Bins, tol: float) -> float:
    """How many differences are at most `tol` (linear inside the bin that contains it)."""
    total = 0.0
    for lo, hi, c in diffs:
        if hi <= tol:
            total += c
        elif lo < tol:
            total += c * (tol - lo) / (hi - lo)
    return total


def _evaluate(check: Check, sample: Sample, alpha: float, policy: Policy) -> CheckResult:
    b, c = sample.baseline, sample.canary
    e = _Eval(check, alpha, policy, b, c)
    kind, s = check.kind, e.s
    if sample.mode == "shadow" and kind in ("outcome", "outcome_mean"):
        return e.result(SKIPPED, "shadow mode: the canary answers no user, so has no outcomes")
    if sample.mode != "shadow" and kind == "agreement":
        return e.result(SKIPPED, "agreement is measured in shadow mode only")

    if kind in ("rate", "outcome", "outcome_mean"):
        return _mean_check(e, check, sample, policy)
    if kind == "quantile":
        q = check.q
        n_b, n_c = _count(b.latency), _count(c.latency)
        need = max(e.min, math.ceil(QUANTILE_TAIL / (1 - q)))
        qb, seb = _quantile_side(b.latency, q)
        qc, sec = _quantile_side(c.latency, q)
        few = e.too_few(n_b, n_c, need, baseline=qb, canary=qc)
        if few or qb is None or qc is None or seb is None or sec is None or qb <= 0 or qc <= 0:
            return few or e.result(INCONCLUSIVE, "no positive latencies recorded")
        if check.relative:
            assert check.ratio is not None
            limit = check.ratio * qb
            v = sec * sec + seb * seb
        else:
            assert check.value is not None
            limit, v = check.value, sec * sec
        t = s * (math.log(qc) - math.log(limit))
        return e.decide(t, v, 0.3, limit, lambda x: limit * math.exp(s * x),
                        baseline=qb, n_baseline=n_b, n_canary=n_c)  # fmt: skip
    if kind == "mwu":
        n_b, n_c = _count(b.latency), _count(c.latency)
        few = e.too_few(n_b, n_c, e.min)
        if few:
            return few
        theta, var, _ = stats.mann_whitney(c.latency, b.latency)
        assert check.value is not None
        limit = check.value
        return e.decide(s * (theta - limit), var, 0.1, limit, lambda x: limit + s * x,
                        baseline=0.5, n_baseline=n_b, n_canary=n_c)  # fmt: skip
    if kind == "agreement":
        n = c.pairs
        few = e.too_few(n, n, e.min, "shadow comparisons")
        if few:
            return few
        a = _agreeing(c.diffs, check.tolerance)
        assert check.value is not None
        limit = check.value
        v = stats.agresti_caffo_var(a, n) / n
        return e.decide(s * (a / n - limit), v, max(1 - limit, 0.005), limit,
                        lambda x: limit + s * x, n_baseline=n, n_canary=n)  # fmt: skip
    if kind == "feature_drift":
        if sample.mode == "shadow":
            return e.result(SKIPPED, "shadow mode: the canary is given the baseline's inputs")
        return _feature_drift_check(e, check, b, c)
    return _drift_check(e, check, b, c)


def _bounds(kind: str, name: str, b: Side, c: Side) -> tuple[float, float]:
    """The range of a mean's values.

    [0, 1] for rates and 0/1 outcomes, [0, inf) for outcomes never recorded negative,
    unbounded otherwise.
    """
    if kind == "rate":
        return 0.0, 1.0
    lows = [side.omin.get(name) for side in (b, c)]
    if any(x is None or x < 0 for x in lows):
        return -math.inf, math.inf
    binary = all(
        abs(o[1] - o[2]) <= 1e-9 * max(1.0, o[1])
        for side in (b, c)
        if (o := side.out.get(name)) is not None
    )
    return (0.0, 1.0) if binary else (0.0, math.inf)


def _mean_check(e: _Eval, check: Check, sample: Sample, policy: Policy) -> CheckResult:
    """A rate (errors per request), an outcome per request, or an outcome per observation.

    Rate and outcome checks compare the two sides window by window of exposure, within each
    generation (`Side.strata`): late outcomes count toward the window of the request that
    produced them, so neither late arrival nor a step-up biases a side. With an attribution
    window W (`within 10m`, or the policy's `outcome_window`), only windows whose requests
    all had W to produce their outcomes count, with the outcomes that came within W.
    """
    b, c = sample.baseline, sample.canary
    kind, s = check.kind, e.s
    name = check.outcome
    window = check.window if check.window is not None else (policy.outcome_window or None)
    if kind == "rate":
        window = None
    if kind != "rate" and not (b.out.get(name) and c.out.get(name)):
        side = "either side" if not (b.out.get(name) or c.out.get(name)) else "one side"
        return e.result(INCONCLUSIVE, f"no outcome {name!r} recorded on {side}",
                        n_baseline=b.n, n_canary=c.n)  # fmt: skip
    if kind != "rate" and any(math.isnan(side.out[name][2]) for side in (b, c)):
        # a source that reads only counts and sums (PromQL without a sumsq query): the
        # variance is unknown, so neither a pass nor a fail can be justified
        return e.result(INCONCLUSIVE, f"outcome {name!r} has no sum of squares from "
                        f"{sample.source}, so its variance is unknown (give it a sumsq query)",
                        n_baseline=b.n, n_canary=c.n)  # fmt: skip

    def complete(key: Any) -> bool:
        if window is None or sample.now is None:
            return True
        return (int(key[0]) + 1) * sample.stratum_s + window <= sample.now

    def cell(side_cell: list[Any]) -> tuple[float, float, float]:
        if kind == "rate":
            return side_cell[0], side_cell[1], side_cell[1]
        if window is None:
            o = side_cell[2].get(name, (0, 0.0, 0.0))
        else:
            o = [0, 0.0, 0.0]
            for delay, vals in side_cell[3].get(name, {}).items():
                if int(delay) * EXPOSURE_S <= window:
                    o = [o[0] + vals[0], o[1] + vals[1], o[2] + vals[2]]
        return (o[0], o[1], o[2]) if kind == "outcome_mean" else (side_cell[0], o[1], o[2])

    cells: dict[str, dict[Any, tuple[float, float, float]]] = {"b": {}, "c": {}}
    excluded = 0
    for which, one in (("b", b), ("c", c)):
        for key, sc in one.strata.items():
            if complete(key):
                cells[which][key] = cell(sc)
            else:
                excluded += int(sc[0])

    def totals(which: str) -> tuple[float, float, float]:
        vals = cells[which].values()
        return sum(v[0] for v in vals), sum(v[1] for v in vals), sum(v[2] for v in vals)

    (n_b, sum_b, sq_b), (n_c, sum_c, sq_c) = totals("b"), totals("c")
    note = ""
    if excluded:
        assert window is not None
        note = (f" ({excluded:,} requests left out: their {format_window(window)} window is "
                "still open)")  # fmt: skip
    what = "observations" if kind == "outcome_mean" else "requests"
    m_b = sum_b / n_b if n_b else None
    m_c = sum_c / n_c if n_c else None
    common = {"n_baseline": int(n_b), "n_canary": int(n_c), "excluded": excluded}
    few = e.too_few(int(n_b), int(n_c), e.min, what, baseline=m_b, canary=m_c,
                    excluded=excluded)  # fmt: skip
    if few is not None:
        return replace(few, reason=few.reason + note)
    if m_b is None or m_c is None:
        return e.result(INCONCLUSIVE, "no data" + note, **common)
    if kind == "rate":
        var_b, var_c = stats.agresti_caffo_var(sum_b, n_b), stats.agresti_caffo_var(sum_c, n_c)
    else:
        var_b, var_c = stats.mean_var(n_b, sum_b, sq_b), stats.mean_var(n_c, sum_c, sq_c)
        if var_b == 0 and var_c == 0:
            # e.g. no conversion has arrived yet: every value is the same, a zero variance
            # would make any difference look certain. No information is not a pass.
            return e.result(
                INCONCLUSIVE, f"no information yet: every {what[:-1]}'s {name} is "
                f"{_fmt(check, m_b)} on both sides{note}", baseline=m_b, canary=m_c, **common,
            )  # fmt: skip
    bounds = _bounds(kind, name, b, c)
    if kind == "outcome" and bounds == (0.0, 1.0) and check.relative:
        # A 0/1 outcome per request (conversion) against the baseline: the variance under
        # the null, pooled over both sides (Agresti-Caffo-adjusted). Each side's own
        # variance shrinks with its count of events, so a canary that by chance has few
        # conversions yet (they arrive late) looked certain to be worse: 1.3% and 3.7% of
        # identical canaries were rolled back with 20 s and exponential 5 min delays
        # (bench/late_outcomes.py, issue 14).
        var_b = var_c = stats.agresti_caffo_var(sum_b + sum_c, n_b + n_c)
    if check.relative:
        assert check.ratio is not None
        keys = set(cells["b"]) & set(cells["c"])
        strata = [
            stats.Stratum(cells["c"][k][0], cells["c"][k][1], cells["b"][k][0], cells["b"][k][1])
            for k in sorted(keys)
        ]
        est, v, _, _, mb_w = stats.stratified_means(strata, var_c, var_b, check.ratio)
        if v <= 0:  # no window with both sides: compare the totals
            mb_w = m_b
            est = m_c - check.ratio * m_b
            v = var_c / n_c + check.ratio**2 * var_b / n_b
        limit = check.ratio * mb_w + check.delta
        t = s * (est - check.delta)
        shown_b = mb_w
    else:
        assert check.value is not None
        limit = check.value
        t, v = s * (m_c - limit), var_c / n_c
        shown_b = m_b
    tau = max(abs(limit), abs(check.delta), 1e-6)
    return e.decide(t, v, tau, limit, lambda x: limit + s * x, bounds, note,
                    baseline=shown_b, **common)  # fmt: skip


def _drift_check(e: _Eval, check: Check, b: Side, c: Side) -> CheckResult:
    n_b, n_c = _count(b.scores), _count(c.scores)
    few = e.too_few(n_b, n_c, e.min, "scores")
    if few:
        return few
    assert check.value is not None
    limit = check.value
    c_shown = check.metric
    if check.kind == "psi":
        value, expected, groups = stats.psi(c.scores, b.scores)
        excess = value - expected
        kw = dict(canary=value, limit=limit, n_baseline=n_b, n_canary=n_c)
        if excess > limit:
            return e.result(FAIL, f"{c_shown} {value:.3g} (expected {expected:.2g} with no drift, "
                            f"{groups} groups) above {limit:g}", **kw)  # fmt: skip
        if value <= limit:
            return e.result(PASS, f"{c_shown} {value:.3g} within {limit:g}", **kw)
        return e.result(INCONCLUSIVE, f"{c_shown} {value:.3g} above {limit:g}, but within what "
                        f"chance gives with these samples ({expected:.2g})", **kw)  # fmt: skip
    d, p = stats.ks_two_sample(c.scores, b.scores)
    r = stats.dkw_radius(n_c, e.alpha / 2) + stats.dkw_radius(n_b, e.alpha / 2)
    kw = dict(canary=d, limit=limit, low=max(d - r, 0.0), high=min(d + r, 1.0),
              n_baseline=n_b, n_canary=n_c)  # fmt: skip
    if d - r > limit:
        return e.result(
            FAIL, f"{c_shown} {d:.3g} above {limit:g} with confidence (KS p {p:.2g})", **kw
        )
    if d <= limit:
        return e.result(PASS, f"{c_shown} {d:.3g} within {limit:g} (KS p {p:.2g})", **kw)
    why = f"{c_shown} {d:.3g} above {limit:g}, not yet with confidence (KS p {p:.2g})"
    return e.result(INCONCLUSIVE, why, **kw)


def _kind(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None and v != ""]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    return "number" if present and numbers else "category"


def _feature_drift_check(e: _Eval, check: Check, b: Side, c: Side) -> CheckResult:
    """The canary's captured inputs against the baseline's (`analysis.drift`, issue 21).

    A feature fails when its statistic is above the limit *and* above its no-drift
    1 - alpha quantile for these sample sizes (`psi_limit`, `ks_limit`); above the limit
    but not significant is inconclusive; the check takes the worst of its features.
    """
    parts = check.metric.split(".")
    stat, named = parts[-1], None if parts[1] == "features" else ".".join(parts[2:-1])
    names = [named] if named else sorted(set(b.features) | set(c.features))
    assert check.value is not None
    limit, worst = check.value, None
    failed: list[str] = []
    held: list[str] = []
    few: list[str] = []
    for name in names:
        base, can = b.features.get(name, []), c.features.get(name, [])
        kind = _kind(base or can)
        if (stat == "ks" and kind != "number") or (stat == "tv" and kind == "number"):
            continue
        p, d = drift.between_samples(name, base, can, kind=kind)
        r = p if stat == "psi" else d
        if min(r.n_reference, r.n_production) < e.min:
            few.append(f"{name} ({r.n_reference:,}/{r.n_production:,})")
            continue
        chance = (drift.psi_limit(r.bins, r.n_reference, r.n_production, e.alpha) if stat == "psi"
                  else drift.ks_limit(r.n_reference, r.n_production, e.alpha))  # fmt: skip
        shown = f"{name} {r.method} {r.value:.3g}"
        if r.value > limit:
            (failed if r.value > chance else held).append(f"{shown} (chance {chance:.2g})")
        if worst is None or r.value > worst.value:
            worst = r
    kw: dict[str, Any] = {"limit": limit}
    if worst is not None:
        kw.update(canary=worst.value, n_baseline=worst.n_reference, n_canary=worst.n_production)
    if failed:
        return e.result(FAIL, f"{check.metric} above {limit:g}: {', '.join(failed)}", **kw)
    if held or few or worst is None:
        lacking = ", ".join(few) or "no captured inputs"
        why = (f"above {limit:g} but within chance: {', '.join(held)}" if held else
               f"needs {e.min:,} values per side: {lacking}")  # fmt: skip
        return e.result(INCONCLUSIVE, f"{check.metric} {why}", **kw)
    return e.result(PASS, f"{check.metric} within {limit:g} (worst {worst.feature} "
                    f"{worst.value:.3g})", **kw)  # fmt: skip


def judge(checks: Sequence[Check], policy: Policy, sample: Sample) -> tuple[str, list[CheckResult]]:
    """Every check's result and the overall verdict (alpha shared equally by the checks)."""
    alpha = policy.alpha / max(len(checks), 1)
    results = [_evaluate(c, sample, alpha, policy) for c in checks]
    verdicts = {r.verdict for r in results}
    if FAIL in verdicts:
        return FAIL, results
    if INCONCLUSIVE in verdicts or verdicts <= {SKIPPED}:
        return INCONCLUSIVE, results
    return PASS, results
