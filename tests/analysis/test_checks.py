"""Checks: the one-line grammar, the manifest form, the policy, and the judge's verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.analysis.checks import DEFAULT_CHECKS, Check, Policy, plan_of, read_checks_file
from modelreg.analysis.judge import judge
from modelreg.analysis.sources import Sample, Side
from modelreg.errors import InvalidInput, NotFound
from modelreg.release import ops

GOOD = [
    ("error_rate <= baseline + 0.5pt", "rate", dict(ratio=1.0, delta=0.005)),
    ("latency.p99 <= 1.2x baseline", "quantile", dict(ratio=1.2)),
    ("conversion >= baseline", "outcome", dict(ratio=1.0)),
    ("revenue.mean >= 0.95 * baseline - 1pt", "outcome_mean", dict(ratio=0.95, delta=-0.01)),
    ("guard: error_rate < 2%", "rate", dict(value=0.02, name="guard")),
    ("latency.p50 < 0.25s", "quantile", dict(value=250.0)),
    ("latency.mwu <= 0.55", "mwu", dict(value=0.55)),
    ("agreement >= 99% within 0.01 min 200", "agreement", dict(value=0.99, tolerance=0.01)),
    ("drift.psi <= 0.2", "psi", dict(value=0.2)),
    ("drift.ks <= 0.1", "ks", dict(value=0.1)),
]


@pytest.mark.parametrize(("text", "kind", "fields"), GOOD)
def test_checks_parse_and_round_trip(text, kind, fields):
    c = Check.parse(text)
    assert c.kind == kind
    for k, v in fields.items():
        assert getattr(c, k) == pytest.approx(v) if isinstance(v, float) else getattr(c, k) == v
    assert Check.parse(c.text()) == c
    assert Check.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    "text",
    [
        "error_rate",
        "error_rate == baseline",
        "error_rate <= soon",
        "latency.p99 <= baseline + 5pt",
        "latency.p100 <= 1.2x baseline",
        "drift.ks <= 1.1x baseline",
        "error_rate <= 1% within 0.1",
        "latency <= 3",
        "conversion >= 0x baseline",
        "x: error_rate < 1% min 0",
    ],
)
def test_bad_checks_are_refused_with_exit_2(text):
    with pytest.raises(InvalidInput) as err:
        Check.parse(text)
    assert err.value.exit_code == 2


@given(
    st.sampled_from(["error_rate", "conversion", "latency.p95", "revenue.mean"]),
    st.sampled_from(["<=", "<", ">=", ">"]),
    st.floats(0.1, 5).map(lambda x: round(x, 3)),
    st.floats(-0.05, 0.05).map(lambda x: round(x, 4)),
)
def test_relative_checks_round_trip(metric, op, ratio, delta):
    if metric.startswith("latency"):
        delta = 0.0
    c = Check(metric, op, ratio=ratio, delta=delta).validated()
    assert Check.parse(c.text()) == c


def test_policy_and_defaults(tmp_path):
    checks, policy = plan_of([])
    assert [c.text() for c in checks] == list(DEFAULT_CHECKS) and policy == Policy()
    f = tmp_path / "checks.yaml"
    f.write_text(
        "checks:\n- error_rate <= baseline + 1pt\n- {metric: conversion, op: '>=', "
        "baseline: {ratio: 1}}\npolicy: {alpha: 0.01, passes: 5, promote: manual}\n"
    )
    items = read_checks_file(f)
    checks, policy = plan_of(items)
    assert [c.metric for c in checks] == ["error_rate", "conversion"]
    assert (policy.alpha, policy.passes, policy.promote) == (0.01, 5, "manual")
    for bad in ("{policy: {alpha: 2}}", "{policy: {colour: red}}", "[1, 2]", "- a\n- a: b"):
        f.write_text(bad)
        with pytest.raises(InvalidInput):
            read_checks_file(f)
    f.write_text("- error_rate < 1%\n- error_rate < 2%\n")
    with pytest.raises(InvalidInput, match="named"):
        read_checks_file(f)
    with pytest.raises(NotFound):
        read_checks_file(tmp_path / "missing.yaml")


def test_release_start_stores_the_checks_in_the_manifest(model):
    change = ops.start(model, "m", "1.1.0", analysis=["p99: latency.p99 <= 1.5x baseline",
                                                      {"policy": {"passes": 4}}])  # fmt: skip
    stored = change.rollout.analysis
    assert stored[0] == {"metric": "latency.p99", "op": "<=", "name": "p99",
                         "baseline": {"ratio": 1.5, "delta": 0.0}}  # fmt: skip
    assert stored[1]["policy"]["passes"] == 4
    assert ops.read_rollout(model, "m").analysis == stored
    ops.abort(model, "m")
    with pytest.raises(InvalidInput):
        ops.start(model, "m", "1.1.0", analysis=["error_rate <= nope"])
    assert ops.read_rollout(model, "m").state == "aborted"  # nothing changed


def side(n, errors, strata=None, latency=None) -> Side:
    s = Side(n=n, errors=errors, latency=latency or [])
    s.strata = strata or {0: [n, errors, {}]}
    return s


def test_verdicts_fail_pass_and_inconclusive():
    checks = (Check.parse("error_rate <= baseline + 0.5pt"),)
    policy = Policy(min_samples=500)
    few = Sample(side(100_000, 1000), side(100, 9), "live", "test")
    assert judge(checks, policy, few)[0] == "inconclusive"  # 100 canary requests: too few
    bad = Sample(side(100_000, 1000), side(5000, 150), "live", "test")
    verdict, [r] = judge(checks, policy, bad)
    assert verdict == "fail" and r.limit == pytest.approx(0.015) and r.low > 0.015
    assert r.p_value is not None and r.p_value <= r.alpha
    fine = Sample(side(100_000, 1000), side(5000, 52), "live", "test")
    assert judge(checks, policy, fine)[0] == "pass"
    leaning = Sample(side(100_000, 1000), side(5000, 95), "live", "test")
    assert judge(checks, policy, leaning)[0] == "inconclusive"  # looks worse, not proven
    shadow = Sample(side(100_000, 1000), side(5000, 52), "shadow", "test")
    verdict, results = judge((Check.parse("conversion >= baseline"),), policy, shadow)
    assert verdict == "inconclusive" and results[0].verdict == "skipped"


def test_latency_quantile_check():
    def lat(scale, n):
        return [(float(i) * scale, float(i + 1) * scale, n // 100) for i in range(100)]

    checks = (Check.parse("latency.p99 <= 1.2x baseline"),)
    same = Sample(
        side(100_000, 0, latency=lat(1, 100_000)),
        side(10_000, 0, latency=lat(1, 10_000)),
        "live",
        "t",
    )
    assert judge(checks, Policy(), same)[0] == "pass"
    slow = Sample(
        side(100_000, 0, latency=lat(1, 100_000)),
        side(10_000, 0, latency=lat(2, 10_000)),
        "live",
        "t",
    )
    verdict, [r] = judge(checks, Policy(), slow)
    assert verdict == "fail" and r.difference == pytest.approx(2.0, rel=0.05)
