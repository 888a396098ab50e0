"""Drift against a training profile and between two samples (issue 21)."""

from __future__ import annotations

import random

import pytest

from modelreg.analysis import drift
from modelreg.profiling import ProfileBuilder

pytest.importorskip("datasketches")

COUNTRIES = ["de", "fr", "it", "es", "nl"]


def draw(rnd: random.Random, n: int, shift: float = 0.0, fr_share: float = 0.05) -> dict:
    """Rows of a number x ~ N(shift, 1) and a category whose `fr` share is `fr_share`."""
    others = [c for c in COUNTRIES if c != "fr"]
    return {
        "x": [rnd.gauss(shift, 1) for _ in range(n)],
        "country": ["fr" if rnd.random() < fr_share else rnd.choice(others) for _ in range(n)],
        "vip": [rnd.random() < 0.2 for _ in range(n)],
    }


@pytest.fixture(scope="module")
def profile():
    rnd = random.Random(1)
    builder = ProfileBuilder({"x": "number", "country": "category", "vip": "boolean"}, fmt="jsonl")
    for _ in range(10):
        builder.add(draw(rnd, 5000), 5000)
    return builder.profile()


def by_key(results):
    return {(r.feature, r.statistic): r for r in results}


def test_the_reference_itself_shows_no_drift(profile):
    # the profile's own shares, as a production sample: PSI and distances ~0
    x = profile.feature("x")
    sample = []
    for i, share in enumerate(x.shares):
        lo = x.edges[i - 1] if i else x.edges[0] - 1
        hi = x.edges[i] if i < len(x.edges) else x.edges[-1] + 1
        sample += [(lo + hi) / 2] * round(share * 10_000)
    got = by_key(drift.against_profile(profile, {"x": sample}))
    assert got["x", "psi"].value < 1e-3
    assert got["x", "distance"].value < 1e-3
    assert got["x", "distance"].method == "ks"
    assert got["x", "psi"].n_reference == 50_000 and got["x", "psi"].bins == 10


def test_a_shifted_number_and_a_moved_category_cross_the_limits(profile):
    rnd = random.Random(2)
    got = by_key(drift.against_profile(profile, draw(rnd, 2000, shift=0.5, fr_share=0.15)))
    assert got["x", "psi"].value > 0.2
    assert got["x", "distance"].value > 0.15
    assert got["country", "psi"].value > 0.1
    assert got["country", "distance"].method == "tv"
    assert got["country", "distance"].value == pytest.approx(0.10, abs=0.03)
    assert got["vip", "psi"].value < 0.01  # not moved
    assert got["x", "psi"].n_production == 2000


def test_missing_and_other_type_values_are_left_out(profile):
    (psi_x, _) = drift.feature_drift(profile.feature("x"), [1.0, None, "", "abc", True, "2.5"])
    assert psi_x.n_production == 2
    (psi_c, dist_c) = drift.feature_drift(profile.feature("country"), ["xx"] * 50)
    assert psi_c.n_production == 50 and dist_c.value == pytest.approx(1.0)
    (psi_e, dist_e) = drift.feature_drift(profile.feature("x"), [])
    assert (psi_e.value, dist_e.value, psi_e.n_production) == (0.0, 0.0, 0)


def test_between_samples_reuses_the_two_sample_statistics():
    rnd = random.Random(3)
    base = [rnd.gauss(0, 1) for _ in range(3000)]
    same = [rnd.gauss(0, 1) for _ in range(3000)]
    moved = [rnd.gauss(0.5, 1) for _ in range(3000)]
    p0, d0 = drift.between_samples("x", base, same)
    p1, d1 = drift.between_samples("x", base, moved)
    assert p0.value < 0.02 < 0.1 < p1.value
    assert d0.value < drift.ks_limit(3000, 3000) < d1.value
    cats_a = ["a"] * 500 + ["b"] * 500
    cats_b = ["a"] * 700 + ["b"] * 250 + ["new"] * 50
    p, d = drift.between_samples("c", cats_a, cats_b, kind="category")
    assert d.value == pytest.approx(0.25) and p.bins == 3 and p.value > 0.1


def test_limits_by_sample_size():
    # scipy.stats.chi2.ppf(0.99, 9) = 21.666; Wilson-Hilferty is within 1%
    assert drift.chi2_ppf(0.99, 9) == pytest.approx(21.666, rel=0.01)
    assert drift.psi_limit(10, 10**6, 100) > 0.2 > drift.psi_limit(10, 10**6, 1000)
    # scipy.stats.kstwobign.isf(0.05) = 1.3581
    assert drift.ks_limit(10**9, 100) == pytest.approx(0.13581, rel=1e-3)


def test_simulated_windows_detect_the_shift_and_not_the_null(profile):
    """Seeded windows of 1,000: a 0.5 sd shift is flagged in each, a null window in none."""
    rnd = random.Random(4)
    flagged = {"null": 0, "shifted": 0}
    for _ in range(20):
        for kind, shift in (("null", 0.0), ("shifted", 0.5)):
            got = by_key(drift.against_profile(profile, draw(rnd, 1000, shift=shift)))
            psi_x = got["x", "psi"]
            limit = drift.psi_limit(psi_x.bins, psi_x.n_reference, psi_x.n_production)
            flagged[kind] += psi_x.value > max(0.1, limit)
    assert flagged == {"null": 0, "shifted": 20}
