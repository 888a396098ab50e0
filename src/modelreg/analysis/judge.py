"""The judge: each check's verdict on a `Sample`, and the analysis's verdict. Pure.

Every check reduces to an *excess* T: how far the canary's value lies beyond its limit on
the bad side (T > 0: worse than allowed), with a variance V. With the check's share of the
false-alarm budget, alpha / (number of checks), the always-valid radius r (`msprt_radius`)
gives the verdict:

- **inconclusive** while either side has fewer than the minimum samples;
- **fail** when T - r > 0: the canary is beyond its limit with confidence, at any look;
- **inconclusive** when T / sqrt(V) > 1.645: the canary looks beyond its limit at 95%
  confidence *for this look alone*, not yet with always-valid confidence: hold and gather
  more data rather than step up;
- **pass** otherwise: the data give no reason to hold the canary back.

The analysis fails if any check fails, is inconclusive if any check is (or none applies),
and passes otherwise. docs/analysis.md gives the methods and the false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelreg.analysis import stats
from modelreg.analysis.checks import Check, Policy
from modelreg.analysis.sources import Bins, Sample, Side

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
        self, t: float, v: float, tau: float, limit: float, to_value: Any, **kw: Any
    ) -> CheckResult:
        """Verdict from the excess `t` (> 0: worse than `limit`) and its variance `v`.

        The sequential test mixes two scales, `tau` and `tau / 10`: effects of about the
        size of the limit and a tenth of it are detected nearly as fast as with a test
        tuned for them.
        """
        taus = (max(tau / 10, 1e-12), max(tau, 1e-11))
        r = stats.sequential_radius(v, taus, self.alpha)
        ends = sorted((to_value(t - r), to_value(t + r)))
        p = stats.sequential_p(t, v, taus) if t > 0 else 1.0
        canary = to_value(t)
        c = self.check
        shown = f"{c.metric} {_fmt(c, canary)} vs limit {_fmt(c, limit)}"
        if t - r > 0:
            verdict = FAIL
            why = f"{shown}: beyond the limit with confidence (p {p:.2g} <= {self.alpha:.2g})"
        elif v > 0 and t / math.sqrt(v) > HOLD_Z:
            verdict = INCONCLUSIVE
            why = f"{shown}: looks beyond the limit, not yet with confidence (p {p:.2g})"
        else:
            verdict = PASS
            why = f"{shown}: " + ("within" if t <= 0 else "not significantly beyond") + " the limit"
        return self.result(
            verdict, why, canary=canary, limit=limit, low=ends[0], high=ends[1], p_value=p, **kw
        )


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
        return _mean_check(e, check, b, c, policy)
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
    return _drift_check(e, check, b, c)


def _mean_check(e: _Eval, check: Check, b: Side, c: Side, policy: Policy) -> CheckResult:
    kind, s = check.kind, e.s
    name = check.outcome

    def totals(side: Side) -> tuple[float, float, float]:
        if kind == "rate":
            return side.n, side.errors, side.errors
        o = side.out.get(name, [0, 0.0, 0.0])
        return (o[0], o[1], o[2]) if kind == "outcome_mean" else (side.n, o[1], o[2])

    def cell(side_cell: list[Any]) -> tuple[float, float]:
        if kind == "rate":
            return side_cell[0], side_cell[1]
        o = side_cell[2].get(name, [0, 0.0, 0.0])
        return (o[0], o[1]) if kind == "outcome_mean" else (side_cell[0], o[1])

    n_b, sum_b, sq_b = totals(b)
    n_c, sum_c, sq_c = totals(c)
    if kind != "rate" and not (b.out.get(name) and c.out.get(name)):
        side = "either side" if not (b.out.get(name) or c.out.get(name)) else "one side"
        return e.result(INCONCLUSIVE, f"no outcome {name!r} recorded on {side}",
                        n_baseline=int(n_b), n_canary=int(n_c))  # fmt: skip
    what = "observations" if kind == "outcome_mean" else "requests"
    m_b = sum_b / n_b if n_b else None
    m_c = sum_c / n_c if n_c else None
    few = e.too_few(int(n_b), int(n_c), e.min, what, baseline=m_b, canary=m_c)
    if few or m_b is None or m_c is None:
        return few or e.result(INCONCLUSIVE, "no data")
    if kind == "rate":
        var_b, var_c = stats.agresti_caffo_var(sum_b, n_b), stats.agresti_caffo_var(sum_c, n_c)
    else:
        var_b, var_c = stats.mean_var(n_b, sum_b, sq_b), stats.mean_var(n_c, sum_c, sq_c)
    if check.relative:
        assert check.ratio is not None
        keys = set(b.strata) & set(c.strata)
        strata = [stats.Stratum(*cell(c.strata[k]), *cell(b.strata[k])) for k in sorted(keys)]
        est, v, _ = stats.stratified_excess(strata, var_c, var_b, check.ratio)
        if v <= 0:  # no window with both sides: compare the totals
            est = m_c - check.ratio * m_b
            v = var_c / n_c + check.ratio**2 * var_b / n_b
        limit = check.ratio * m_b + check.delta
        t = s * (est - check.delta)
    else:
        assert check.value is not None
        limit = check.value
        t, v = s * (m_c - limit), var_c / n_c
    tau = max(abs(limit), abs(check.delta), 1e-6)
    return e.decide(t, v, tau, limit, lambda x: limit + s * x,
                    baseline=m_b, n_baseline=int(n_b), n_canary=int(n_c))  # fmt: skip


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
