"""`drift.feature*` checks in `release analyze`: the canary's captured inputs vs the baseline's."""

from __future__ import annotations

import random

import pytest

from modelreg.analysis import Check
from modelreg.errors import InvalidInput
from modelreg.release import ops
from modelreg.serving.router import Router

CHECKS = (
    "drift.feature.age.psi <= 0.1 min 200",
    "drift.feature.country.tv <= 0.1 min 200",
    "drift.features.psi <= 0.2 min 200",
)


def _serve(model, requests: int, shift: float) -> None:
    """A real router answers `requests`; the canary is given ages shifted by `shift` sd."""
    rng = random.Random(7)
    router = Router.open("m", store=model.root, flush_interval_s=3600)  # flushed once, at close
    router.sampler.configure(rate=1.0, size=2000, features=("age", "country"))
    for i in range(requests):
        d = router.route(user_id=f"u{i}")
        age = rng.gauss(40 + (10 * shift if d.version == "1.1.0" else 0), 10)
        router.capture(d, features={"age": age, "country": rng.choice("abcde")}, prediction=0.5)
    router.close()


def test_a_drifted_canary_fails_the_drift_check(model, run_mreg):
    ops.start(model, "m", "1.1.0", weight=50, analysis=list(CHECKS))
    empty = model.release_analyze("m")
    assert empty.verdict == "inconclusive"
    assert "needs 200 values per side: age (0/0)" in empty.results[0].reason
    assert "no captured inputs" in empty.results[2].reason

    _serve(model, 1200, shift=1.0)
    a = model.release_analyze("m")
    verdicts = {r.check.text(): r.verdict for r in a.results}
    assert a.verdict == "fail"
    assert verdicts == {CHECKS[0]: "fail", CHECKS[1]: "pass", CHECKS[2]: "fail"}
    age = a.results[0]
    assert "age psi" in age.reason and age.n_baseline >= 200 and age.n_canary >= 200
    out = run_mreg("release", "analyze", "m", cwd=model.root.parent)
    assert out.returncode == 1 and "drift.feature.age.psi" in out.stderr + out.stdout


def test_an_undrifted_canary_passes(model):
    ops.start(model, "m", "1.1.0", weight=50, analysis=list(CHECKS))
    _serve(model, 1200, shift=0.0)
    a = model.release_analyze("m")
    assert a.verdict == "pass", [r.reason for r in a.results]


@pytest.mark.parametrize(
    "text",
    ["drift.feature.age.psi <= baseline", "drift.features.mean <= 0.1", "drift.feature.psi <= 1"],
)
def test_malformed_drift_checks_are_refused(text):
    with pytest.raises(InvalidInput):
        Check.parse(text)
    assert Check.parse("drift.feature.age.ks < 0.1").kind == "feature_drift"
