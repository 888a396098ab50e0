"""Drift of production data: per feature, against the training profile or a baseline sample.

Model layer (docs/architecture.md): pure functions of a `modelreg.dataprofile.Profile` and
samples given as column -> values. Issue 21; docs/monitoring.md has the definitions, and the
false-alarm rates measured by bench/drift.py.

Per feature two statistics, each a `FeatureDrift`:

- **psi**, the population stability index sum((p - r) ln(p / r)) over the reference's bins:
  a number's quantile bins from the profile (deciles by default), a category's top values
  plus one bin for every other value. Empty bins are smoothed by half a count on each side,
  p = (count + 0.5) / (n + 0.5 B), as `analysis.stats.psi` does (the usual epsilon, scaled
  to the sample: it keeps PSI finite and adds little bias when n >> B).
- **distance**: for numbers the Kolmogorov–Smirnov distance max |F_prod - F_ref| evaluated at
  the profile's bin edges (`method` "ks"; with exact bins it is the KS distance itself,
  otherwise a lower bound of it); for categories and booleans the total variation distance
  (1/2) sum |p - r| over the same bins (`method` "tv": the largest difference in share
  that any set of values can show; the categorical analogue of KS).

With no drift PSI is about chi-square with B - 1 degrees of freedom times (1/n_ref +
1/n_prod), so a fixed limit (0.1, 0.2) alarms often on small windows and never on tiny but
real shifts of large ones; `psi_limit` gives the sample-size-aware limit (the null's
1 - alpha quantile), `ks_limit` the same for the KS distance.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from modelreg.analysis.stats import kolmogorov_sf, ks_two_sample, norm_ppf, psi
from modelreg.dataprofile import Feature, Profile

__all__ = [
    "FeatureDrift",
    "against_profile",
    "between_samples",
    "bin_counts",
    "chi2_ppf",
    "feature_drift",
    "ks_limit",
    "psi_limit",
]

SMOOTHING = 0.5
"""Counts added to every bin on each side before PSI's logarithm."""


@dataclass(frozen=True)
class FeatureDrift:
    """One drift statistic of one feature.

    Attributes:
        feature: The feature (column) name.
        statistic: "psi" or "distance" (what a check names: `drift.feature.age.psi`).
        method: "psi", "ks" (numbers) or "tv" (categories, booleans).
        value: The statistic.
        n_reference: Values in the reference (the profile's count, or the baseline sample).
        n_production: Values in the production (or canary) sample.
        bins: Bins compared.
    """

    feature: str
    statistic: str
    method: str
    value: float
    n_reference: int
    n_production: int
    bins: int

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return asdict(self)


def _numbers(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or v is None or v == "":
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append(x)
    return out


def _labels(values: Sequence[Any], boolean: bool) -> list[str]:
    out = []
    for v in values:
        if v is None or v == "":
            continue
        if boolean and isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str):
            out.append(v.lower() if boolean else v)
    return out


def _psi(ref: Sequence[float], prod: Sequence[float]) -> float:
    b = len(ref)
    n_r, n_p = sum(ref), sum(prod)
    total = 0.0
    for r, p in zip(ref, prod, strict=True):
        pr = (r + SMOOTHING) / (n_r + SMOOTHING * b)
        pp = (p + SMOOTHING) / (n_p + SMOOTHING * b)
        total += (pp - pr) * math.log(pp / pr)
    return total


def _pair(
    name: str, dist: str, psi_value: float, d: float, n_ref: int, n_prod: int, b: int
) -> tuple[FeatureDrift, FeatureDrift]:
    return (
        FeatureDrift(name, "psi", "psi", psi_value, n_ref, n_prod, b),
        FeatureDrift(name, "distance", dist, d, n_ref, n_prod, b),
    )


def bin_counts(feature: Feature, values: Sequence[Any]) -> tuple[list[float], list[int]]:
    """The reference's and a sample's counts in the bins PSI compares for `feature`.

    Numbers: the profile's histogram bins, (-inf, e1], (e1, e2], ..., (ek, +inf) (the
    reference's counts are its shares times its count); categories and booleans: the
    profile's top values in order, then one bin for every other value. Missing values and
    values of another type are not counted.
    """
    n_ref = feature.count
    if feature.type == "number":
        counts = [0] * (len(feature.edges) + 1)
        for x in _numbers(values):
            counts[bisect.bisect_left(feature.edges, x)] += 1
        return [s * n_ref for s in feature.shares] or [0.0], counts
    index = {v: i for i, (v, _) in enumerate(feature.top)}
    counts = [0] * (len(feature.top) + 1)
    for label in _labels(values, feature.type == "boolean"):
        counts[index.get(label, len(feature.top))] += 1
    return [float(c) for _, c in feature.top] + [float(feature.other)], counts


def feature_drift(feature: Feature, values: Sequence[Any]) -> tuple[FeatureDrift, FeatureDrift]:
    """PSI and distance of a production sample of one feature against its profile.

    Missing values and values of another type are left out (n_production counts the rest);
    with no value on either side both statistics are 0.
    """
    n_ref = feature.count
    ref, counts = bin_counts(feature, values)
    method = "ks" if feature.type == "number" else "tv"
    n_prod = sum(counts)
    if not n_ref or not n_prod:
        return _pair(feature.name, method, 0.0, 0.0, n_ref, n_prod, len(ref))
    fr = [r / n_ref for r in ref]
    fp = [c / n_prod for c in counts]
    if method == "ks":
        d = cr = cp = 0.0
        for r, p in zip(fr[:-1], fp[:-1], strict=True):
            cr, cp = cr + r, cp + p
            d = max(d, abs(cr - cp))
    else:
        d = 0.5 * sum(abs(r - p) for r, p in zip(fr, fp, strict=True))
    return _pair(feature.name, method, _psi(ref, counts), d, n_ref, n_prod, len(ref))


def against_profile(profile: Profile, sample: Mapping[str, Sequence[Any]]) -> list[FeatureDrift]:
    """Drift of every profiled feature present in `sample` (column -> values), in profile order.

    Returns:
        Two results per feature (psi, then distance); features absent from `sample` are left
        out.
    """
    out: list[FeatureDrift] = []
    for feature in profile.features:
        if feature.name in sample:
            out.extend(feature_drift(feature, sample[feature.name]))
    return out


def between_samples(
    name: str, baseline: Sequence[Any], canary: Sequence[Any], *, kind: str = "number"
) -> tuple[FeatureDrift, FeatureDrift]:
    """PSI and distance of a canary's sample of a feature against the baseline's sample.

    Numbers reuse `analysis.stats.psi` (over the baseline's deciles, half-count smoothing)
    and `analysis.stats.ks_two_sample` (the exact two-sample KS distance); categories use
    the baseline's values plus one bin for the canary's unseen ones, with PSI and total
    variation as against a profile.
    """
    if kind == "number":
        a, b = _numbers(baseline), _numbers(canary)
        bins_a, bins_b = _point_bins(a), _point_bins(b)
        value, _, groups = psi(bins_b, bins_a)
        d, _ = ks_two_sample(bins_b, bins_a)
        return _pair(name, "ks", value, d, len(a), len(b), groups)
    la, lb = _labels(baseline, kind == "boolean"), _labels(canary, kind == "boolean")
    index: dict[str, int] = {}
    for label in sorted(set(la)):
        index[label] = len(index)
    ref = [0.0] * (len(index) + 1)
    counts = [0.0] * (len(index) + 1)
    for label in la:
        ref[index[label]] += 1
    for label in lb:
        counts[index.get(label, len(index))] += 1
    if not la or not lb:
        return _pair(name, "tv", 0.0, 0.0, len(la), len(lb), len(ref))
    d = 0.5 * sum(abs(r / len(la) - c / len(lb)) for r, c in zip(ref, counts, strict=True))
    return _pair(name, "tv", _psi(ref, counts), d, len(la), len(lb), len(ref))


def _point_bins(xs: Sequence[float]) -> list[tuple[float, float, int]]:
    counts: dict[float, int] = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    return [(x, x, counts[x]) for x in sorted(counts)]


def chi2_ppf(p: float, df: int) -> float:
    """The p-quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty).

    Within 1% of the exact quantile for df >= 3 and p in [0.9, 0.999].
    """
    if df <= 0:
        return 0.0
    z = norm_ppf(p)
    h = 2 / (9 * df)
    return df * max(1 - h + z * math.sqrt(h), 0.0) ** 3


def psi_limit(bins: int, n_reference: int, n_production: int, alpha: float = 0.01) -> float:
    """PSI's 1 - alpha quantile with no drift: chi2(bins - 1) (1/n_ref + 1/n_prod).

    The sample-size-aware limit: a PSI above it is drift at level alpha for this window's
    size. With a profile of a large training set 1/n_ref is negligible.
    """
    if n_reference <= 0 or n_production <= 0:
        return math.inf
    return chi2_ppf(1 - alpha, bins - 1) * (1 / n_reference + 1 / n_production)


def ks_limit(n_reference: int, n_production: int, alpha: float = 0.05) -> float:
    """The KS distance's 1 - alpha quantile with no drift (asymptotic Kolmogorov).

    Conservative for a distance measured at bin edges, which can only be smaller.
    """
    if n_reference <= 0 or n_production <= 0:
        return 1.0
    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kolmogorov_sf(mid) > alpha else (lo, mid)
    return min(1.0, hi * math.sqrt(1 / n_reference + 1 / n_production))
