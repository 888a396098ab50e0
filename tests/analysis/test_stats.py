"""The statistics, against reference values (computed once with SciPy 1.17) and by simulation."""

from __future__ import annotations

import math
import random

import pytest

from modelreg.analysis import stats

# scipy.stats.norm.ppf
NORM_PPF = [
    (1e-12, -7.034483825301131),
    (0.001, -3.090232306167813),
    (0.025, -1.9599639845400545),
    (0.5, 0.0),
    (0.9, 1.2815515655446004),
    (0.999, 3.090232306167813),
]
# scipy.stats.kstwobign.sf
KOLMOGOROV_SF = [
    (0.2, 0.999999999999495),
    (0.5, 0.9639452436648751),
    (1.0, 0.26999967167735456),
    (1.36, 0.049485876755377876),
    (2.5, 7.453306344157342e-06),
]
A = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
B = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3, 6, 0, 2, 8, 7]
# scipy.stats.mannwhitneyu(A, B, alternative="greater", method="asymptotic", use_continuity=False)
MWU_U, MWU_P = 277.5, 0.2634635360536803
KS_D = 0.16  # scipy.stats.ks_2samp(A, B).statistic


def points(values):
    """Exact values as point bins (ties share a bin)."""
    return [(float(v), float(v), values.count(v)) for v in sorted(set(values))]


@pytest.mark.parametrize(("p", "expected"), NORM_PPF)
def test_norm_ppf(p, expected):
    assert stats.norm_ppf(p) == pytest.approx(expected, abs=1e-12)
    assert stats.norm_cdf(stats.norm_ppf(p)) == pytest.approx(p, rel=1e-9)


def test_norm_ppf_refuses_the_ends():
    for p in (0.0, 1.0, -1.0):
        with pytest.raises(ValueError):
            stats.norm_ppf(p)


@pytest.mark.parametrize(("x", "expected"), KOLMOGOROV_SF)
def test_kolmogorov_sf(x, expected):
    assert stats.kolmogorov_sf(x) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_mann_whitney_matches_scipy_with_ties():
    theta, var, p = stats.mann_whitney(points(A), points(B))
    assert theta * len(A) * len(B) == pytest.approx(MWU_U)
    assert p == pytest.approx(MWU_P, rel=1e-9)
    assert var > 0
    assert stats.mann_whitney([], points(B)) == (0.5, 0.0, 1.0)


def test_ks_statistic_matches_scipy():
    d, p = stats.ks_two_sample(points(A), points(B))
    assert d == pytest.approx(KS_D)
    assert 0.8 < p <= 1.0
    d, p = stats.ks_two_sample(points(list(range(100))), points(list(range(50, 150))))
    assert d == pytest.approx(0.5) and p < 1e-9


def test_quantile_of_binned_data():
    bins = [(0.0, 10.0, 50), (10.0, 20.0, 40), (20.0, 100.0, 10)]
    assert stats.quantile(bins, 0.5) == pytest.approx(10.0)
    assert stats.quantile(bins, 0.7) == pytest.approx(15.0)
    assert stats.quantile(bins, 0.95) == pytest.approx(60.0)
    assert stats.quantile([], 0.5) is None
    se = stats.quantile_log_se(bins, 0.5)
    assert se is not None and se > 0


def test_msprt_interval_is_valid_at_every_look():
    """Under no difference, the always-valid interval misses 0 at *any* of 50 looks < alpha."""
    rng = random.Random(7)
    alpha, runs, misses = 0.05, 400, 0
    for _ in range(runs):
        total = 0.0
        for n in range(1, 51):  # 50 looks, 20 observations each
            total += sum(rng.gauss(0, 1) for _ in range(20))
            m = 20 * n
            est, v = total / m, 1 / m
            if abs(est) > stats.msprt_radius(v, 0.25, alpha):
                misses += 1
                break
    assert misses / runs < alpha
    # while a fixed-sample 95% test at each look would cry wolf much more often
    assert stats.msprt_radius(1e-4, 0.25, alpha) > 1.96 * 0.01


def test_msprt_p_and_radius_agree():
    v, tau2, alpha = 1e-4, 1e-3, 0.01
    r = stats.msprt_radius(v, tau2, alpha)
    assert stats.msprt_p(r, v, tau2) == pytest.approx(alpha, rel=1e-9)
    assert stats.msprt_p(0.0, v, tau2) == 1.0
    assert stats.msprt_radius(0.0, tau2, alpha) == 0.0


def test_stratification_removes_a_mix_effect():
    """Simpson's paradox: the canary is equal within each window, but weighted to the worse one."""
    strata = [stats.Stratum(900, 90, 100, 10), stats.Stratum(100, 30, 900, 270)]
    pooled = (90 + 30) / 1000 - (10 + 270) / 1000
    est, var, w = stats.stratified_excess(strata, 0.1, 0.1, 1.0)
    assert abs(pooled) > 0.15 and est == pytest.approx(0.0) and var > 0 and w > 0
    assert stats.stratified_excess([stats.Stratum(5, 1, 0, 0)], 0.1, 0.1, 1.0) == (0, 0, 0)


def test_psi_and_dkw():
    rng = random.Random(3)
    same_a = points([round(rng.random(), 2) for _ in range(2000)])
    same_b = points([round(rng.random(), 2) for _ in range(2000)])
    shifted = points([round(min(rng.random() + 0.3, 1.0), 2) for _ in range(2000)])
    value, expected, groups = stats.psi(same_a, same_b)
    assert groups == 10 and value < 3 * expected + 0.01
    value, _, _ = stats.psi(shifted, same_b)
    assert value > 0.5
    assert stats.dkw_radius(100, 0.05) > stats.dkw_radius(10_000, 0.05) > 0
    assert stats.dkw_radius(0, 0.05) == 1.0


def test_variances():
    assert stats.agresti_caffo_var(0, 10) == pytest.approx((1 / 12) * (11 / 12))
    assert stats.mean_var(4, 10.0, 30.0) == pytest.approx(5 / 3)
    assert stats.mean_var(1, 1.0, 1.0) == 0.0
    assert math.isclose(stats.norm_sf(1.96), 0.025, rel_tol=1e-3)


def test_one_sided_sequential_test_is_valid_and_consistent():
    taus = (0.02, 0.2)
    v, alpha = 1e-3, 0.025
    c = stats.sequential_radius(v, taus, alpha)
    assert stats.sequential_p(c, v, taus) == pytest.approx(alpha, rel=1e-6)
    assert stats.sequential_p(-0.5, v, taus) == 1.0  # the wrong side never rejects
    assert stats.sequential_radius(0.0, taus, alpha) == 0.0
    # Under theta = 0, over 50 looks, the one-sided test rejects less often than alpha.
    rng = random.Random(11)
    runs, rejected = 300, 0
    for _ in range(runs):
        total = 0.0
        for n in range(1, 51):
            total += sum(rng.gauss(0, 1) for _ in range(10))
            m = 10 * n
            if total / m > stats.sequential_radius(1 / m, (0.05, 0.5), alpha):
                rejected += 1
                break
    assert rejected / runs < alpha
