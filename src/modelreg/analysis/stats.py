"""The statistics of canary analysis, in pure Python (the `math` module only). Issue 6.

docs/analysis.md explains the methods; in short:

- **Always-valid tests** (mixture sequential probability ratio tests, mSPRT; Robbins
  1970, Johari et al. 2017): for an estimate with variance `v` and a normal mixing
  distribution of variance `tau2`, `msprt_radius` is the half-width of a confidence
  interval that holds at level `alpha` *simultaneously at every look*, however many looks
  (intervals) there are. The judge uses the one-sided version with a mixture of two
  scales (`sequential_radius`): a check fails when its lower bound is beyond its limit.
- **Rates and means** (error rate, conversion): the two-sample difference of
  means/proportions, stratified by time window with Cochran–Mantel–Haenszel weights (so a
  weight that changes during a release, against a metric that drifts during the day, cannot
  create a difference), with Agresti–Caffo-adjusted proportions for the variance.
- **Quantiles** (p99 latency): the log of the quantile, with a standard error from the
  distribution-free order-statistic interval (Q(q ± sqrt(q(1-q)/n))).
- **Mann–Whitney U** on binned data, with the tie correction: the probabilistic index
  P(canary > baseline) + P(equal)/2.
- **Two-sample Kolmogorov–Smirnov** D over a common bin grid, with a Dvoretzky–Kiefer–
  Wolfowitz band made uniform over sample sizes by a union bound; the asymptotic Kolmogorov
  p-value is reported for a single look.
- **Population stability index** over the baseline's deciles, with its expected value
  under no drift subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Bins",
    "Stratum",
    "agresti_caffo_var",
    "dkw_radius",
    "kolmogorov_sf",
    "ks_two_sample",
    "mann_whitney",
    "mean_var",
    "msprt_p",
    "msprt_radius",
    "norm_cdf",
    "norm_ppf",
    "norm_sf",
    "psi",
    "quantile",
    "quantile_log_se",
    "sequential_log_lr",
    "sequential_p",
    "sequential_radius",
    "stratified_excess",
    "stratified_means",
]

Bins = Sequence[tuple[float, float, int]]
"""A binned distribution: (low, high, count) in increasing order, low == high for a point."""

_SQRT2 = math.sqrt(2.0)


def norm_cdf(z: float) -> float:
    """The standard normal cumulative distribution function."""
    return 0.5 * math.erfc(-z / _SQRT2)


def norm_sf(z: float) -> float:
    """The standard normal survival function, 1 - cdf, accurate in the tail."""
    return 0.5 * math.erfc(z / _SQRT2)


def norm_ppf(p: float) -> float:
    """The standard normal quantile function (Acklam's approximation + one Newton step)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"norm_ppf needs 0 < p < 1, got {p}")
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687,
         138.3577518672690, -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866,
         66.80131188771972, -13.28068155288572)  # fmt: skip
    c = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838,
         -2.549732539343734, 4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    lo = 0.02425
    if p < lo or p > 1 - lo:
        q = math.sqrt(-2 * math.log(p if p < lo else 1 - p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
        x = x if p < lo else -x
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        )
    e = norm_cdf(x) - p  # one Newton (Halley) refinement: full double precision
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def msprt_radius(v: float, tau2: float, alpha: float) -> float:
    """Half-width of the always-valid (1 - alpha) interval for an estimate of variance `v`.

    The normal-mixture SPRT with mixing variance `tau2` rejects theta0 when
    sqrt(v/(v+tau2)) exp(tau2 (est-theta0)^2 / (2 v (v+tau2))) >= 1/alpha; inverted, that is
    |est - theta0| > this radius. By Ville's inequality the probability that the interval
    ever misses the truth, over any number of looks, is at most alpha.
    """
    if v <= 0:
        return 0.0
    return math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))


def msprt_p(t: float, v: float, tau2: float) -> float:
    """The always-valid p-value of H0: theta = 0 at one look (1 / the mixture likelihood ratio)."""
    if v <= 0:
        return 0.0 if t else 1.0
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * t * t / (2 * v * (v + tau2))
    return 1.0 if log_lr <= 0 else math.exp(-log_lr)


def sequential_log_lr(t: float, v: float, taus: Sequence[float]) -> float:
    """Log of the one-sided mixture likelihood ratio for H0: theta <= 0 at estimate `t`.

    The mixing distribution on theta > 0 is an equal-weight mixture of half-normals with
    scales `taus`; for one scale tau, with a = tau^2 / (v (v + tau^2)):

        LR = 2 Phi(t tau / sqrt(v (v + tau^2))) sqrt(v / (v + tau^2)) exp(a t^2 / 2)

    A mixture of likelihood ratios with fixed weights is a nonnegative supermartingale for
    every theta <= 0, so rejecting when LR >= 1/alpha keeps the error below alpha over any
    number of looks (Ville's inequality). Several scales make the test adapt to the size of
    the effect (the right scale is about the effect), for the price of their count.
    """
    if v <= 0:
        return math.inf if t > 0 else -math.inf
    terms = []
    for tau in taus:
        tau2 = tau * tau
        z = t * tau / math.sqrt(v * (v + tau2))
        phi = norm_cdf(z)
        if phi <= 0:
            continue
        terms.append(
            math.log(2 * phi) + 0.5 * math.log(v / (v + tau2)) + tau2 * t * t / (2 * v * (v + tau2))
        )
    if not terms:
        return -math.inf
    top = max(terms)
    return top + math.log(sum(math.exp(x - top) for x in terms) / len(taus))


def sequential_p(t: float, v: float, taus: Sequence[float]) -> float:
    """The always-valid one-sided p-value of H0: theta <= 0 at one look (1 / the ratio)."""
    return min(1.0, math.exp(-sequential_log_lr(t, v, taus)))


def sequential_radius(v: float, taus: Sequence[float], alpha: float) -> float:
    """The excess c at which `sequential_p(c, v, taus)` equals alpha (found by bisection).

    An estimate t rejects H0: theta <= 0 exactly when t > c, so t - c is an always-valid
    lower confidence bound for theta; t + c is shown as the matching upper end.
    """
    if v <= 0:
        return 0.0
    target = math.log(1 / alpha)
    lo, hi = 0.0, math.sqrt(v)
    while sequential_log_lr(hi, v, taus) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if sequential_log_lr(mid, v, taus) < target:
            lo = mid
        else:
            hi = mid
    return hi


def agresti_caffo_var(x: float, n: float) -> float:
    """Bernoulli variance p(1-p) with p = (x + 1) / (n + 2): never 0, honest for few events."""
    p = (x + 1) / (n + 2)
    return p * (1 - p)


def mean_var(count: float, total: float, squares: float) -> float:
    """The variance of values from their count, sum and sum of squares (0 when undefined)."""
    if count <= 1:
        return 0.0
    m = total / count
    return max(squares / count - m * m, 0.0) * count / (count - 1)


@dataclass(frozen=True)
class Stratum:
    """One time window: count and sum of the canary's and the baseline's values."""

    n_c: float
    s_c: float
    n_b: float
    s_b: float


def stratified_means(
    strata: Iterable[Stratum], var_c: float, var_b: float, ratio: float
) -> tuple[float, float, float, float, float]:
    """`stratified_excess`, plus the canary's and the baseline's means with the same weights.

    The estimate is exactly `mean_c - ratio * mean_b`, and each mean is a weighted average
    of the windows' means, so it stays inside the range of the values (a rate in [0, 1], a
    mean of non-negative values >= 0), which a total-based mean plus a stratified
    difference does not (issue 14).

    Returns:
        (estimate, its variance, total weight, mean_c, mean_b); zeros when no window has
        both sides.
    """
    w_sum = est = var = mc = mb = 0.0
    for s in strata:
        if s.n_c <= 0 or s.n_b <= 0:
            continue
        w = s.n_c * s.n_b / (s.n_c + s.n_b)
        w_sum += w
        mc += w * s.s_c / s.n_c
        mb += w * s.s_b / s.n_b
        var += w * w * (var_c / s.n_c + ratio * ratio * var_b / s.n_b)
    if w_sum == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    mc, mb = mc / w_sum, mb / w_sum
    est = mc - ratio * mb
    return est, var / (w_sum * w_sum), w_sum, mc, mb


def stratified_excess(
    strata: Iterable[Stratum], var_c: float, var_b: float, ratio: float
) -> tuple[float, float, float]:
    """Mantel–Haenszel-weighted mean of (canary - ratio x baseline) over windows.

    Each window with both sides present has weight n_c n_b / (n_c + n_b); `var_c` and
    `var_b` are the per-observation variances (pooled over the release).

    Returns:
        (estimate, its variance, total weight); (0, 0, 0) when no window has both sides.
    """
    est, var, w_sum, _, _ = stratified_means(strata, var_c, var_b, ratio)
    return est, var, w_sum


def _total(bins: Bins) -> int:
    return sum(c for _, _, c in bins)


def quantile(bins: Bins, q: float) -> float | None:
    """The q-quantile of binned data, interpolating linearly inside the bin (None: empty)."""
    n = _total(bins)
    if n <= 0:
        return None
    rank = min(max(q, 0.0), 1.0) * n
    seen = 0
    for lo, hi, c in bins:
        if c and seen + c >= rank:
            if math.isinf(hi):
                return lo
            return lo + (hi - lo) * max(rank - seen, 0.0) / c
        seen += c
    return bins[-1][0] if math.isinf(bins[-1][1]) else bins[-1][1]


def quantile_log_se(bins: Bins, q: float) -> float | None:
    """Standard error of log(quantile q), from its distribution-free order-statistic interval.

    The ranks n (q -/+ sqrt(q(1-q)/n)) bound a 68% interval for the quantile whatever the
    distribution; half the log-width of that interval is the standard error. None when
    the data are too few or not positive.
    """
    n = _total(bins)
    if n < 2:
        return None
    h = math.sqrt(q * (1 - q) / n)
    low, high = quantile(bins, q - h), quantile(bins, q + h)
    if low is None or high is None or low <= 0 or high <= 0:
        return None
    # A quantile inside one bin still has the bin's width as uncertainty.
    return max(math.log(high / low) / 2, 1e-9)


def _merged(a: Bins, b: Bins) -> list[tuple[tuple[float, float], int, int]]:
    """Both distributions on their common, ordered grid: ((low, high), count_a, count_b)."""
    grid: dict[tuple[float, float], list[int]] = {}
    for lo, hi, c in a:
        grid.setdefault((lo, hi), [0, 0])[0] += c
    for lo, hi, c in b:
        grid.setdefault((lo, hi), [0, 0])[1] += c
    return [(k, ca, cb) for k, (ca, cb) in sorted(grid.items())]


def mann_whitney(canary: Bins, baseline: Bins) -> tuple[float, float, float]:
    """Mann–Whitney U on binned data (values in one bin are ties).

    Returns:
        (theta, var0, p): theta = U / (n_c n_b) = P(canary > baseline) + P(tie)/2, its
        variance under no difference (with the tie correction), and the one-sided p-value
        of H0: theta <= 1/2 for a single look (normal approximation).
    """
    n_c, n_b = _total(canary), _total(baseline)
    if n_c == 0 or n_b == 0:
        return 0.5, 0.0, 1.0
    u = 0.0
    below_b = 0
    ties = 0.0
    for _, cc, cb in _merged(canary, baseline):
        u += cc * (below_b + 0.5 * cb)
        below_b += cb
        t = cc + cb
        ties += t * t * t - t
    n = n_c + n_b
    var_u = n_c * n_b / 12 * ((n + 1) - ties / (n * (n - 1)))
    theta = u / (n_c * n_b)
    var = var_u / (n_c * n_b) ** 2
    p = norm_sf((u - n_c * n_b / 2) / math.sqrt(var_u)) if var_u > 0 else 1.0
    return theta, var, p


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the asymptotic KS p-value)."""
    if x <= 0:
        return 1.0
    if x < 0.3:
        # The alternating series converges slowly here; use the dual (theta) form.
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * x * x)) for k in range(1, 6))
        return max(0.0, 1.0 - math.sqrt(2 * math.pi) / x * s)
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(max(total, 0.0), 1.0)


def ks_two_sample(canary: Bins, baseline: Bins) -> tuple[float, float]:
    """The two-sample KS statistic D over the common bin grid, and its asymptotic p-value."""
    n_c, n_b = _total(canary), _total(baseline)
    if n_c == 0 or n_b == 0:
        return 0.0, 1.0
    d = fc = fb = 0.0
    for _, cc, cb in _merged(canary, baseline):
        fc += cc / n_c
        fb += cb / n_b
        d = max(d, abs(fc - fb))
    en = math.sqrt(n_c * n_b / (n_c + n_b))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def dkw_radius(n: int, alpha: float) -> float:
    """A band sup|F_n - F| <= radius that holds for every n at once with prob. >= 1 - alpha.

    The DKW inequality (Massart's constant) at level alpha / (n (n + 1)) for sample size n,
    summed over all n by a union bound.
    """
    if n <= 0:
        return 1.0
    return min(1.0, math.sqrt(math.log(2 * n * (n + 1) / alpha) / (2 * n)))


def psi(canary: Bins, baseline: Bins, groups: int = 10) -> tuple[float, float, int]:
    """Population stability index of the canary against the baseline's quantile groups.

    Groups are cut at the baseline's deciles (on bin boundaries), proportions get half a
    count of smoothing. Returns (psi, its expected value with no drift, groups used): under
    no drift, PSI is about chi-square with (groups - 1) degrees of freedom times
    (1/n_c + 1/n_b).
    """
    n_c, n_b = _total(canary), _total(baseline)
    if n_c == 0 or n_b == 0:
        return 0.0, 0.0, 0
    cells: list[list[float]] = [[0.0, 0.0]]
    seen_b = 0
    cut = 1
    for _, cc, cb in _merged(canary, baseline):
        cells[-1][0] += cc
        cells[-1][1] += cb
        seen_b += cb
        if cut < groups and seen_b >= cut * n_b / groups:
            while cut < groups and seen_b >= cut * n_b / groups:
                cut += 1
            cells.append([0.0, 0.0])
    if cells[-1] == [0.0, 0.0] and len(cells) > 1:
        cells.pop()
    k = len(cells)
    value = 0.0
    for in_c, in_b in cells:
        pc = (in_c + 0.5) / (n_c + 0.5 * k)
        pb = (in_b + 0.5) / (n_b + 0.5 * k)
        value += (pc - pb) * math.log(pc / pb)
    return value, (k - 1) * (1 / n_c + 1 / n_b), k
