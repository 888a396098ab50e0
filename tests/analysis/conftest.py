"""Shared setup for the canary-analysis tests: a store with a model, and simulated releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg import Store
from modelreg.analysis import WatchReport, watch
from modelreg.analysis.demo import Behaviour, Clock, Simulation
from modelreg.release import ops
from tests.release.util import make_model

FAST = {"policy": {"passes": 2, "min_samples": 300}}
CHECKS = (
    "errors: error_rate <= baseline + 0.5pt",
    "p99: latency.p99 <= 1.2x baseline",
    "conversion >= baseline",
    "guard: error_rate < 5%",
    FAST,
)


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    """A store with model `m` (1.0.0, 1.1.0, 1.2.0) and production → 1.0.0."""
    return make_model(store, tmp_path)


def simulate_release(
    store: Store,
    canary: Behaviour,
    *,
    seed: int = 1,
    steps: str = "5,25,50,100",
    checks=CHECKS,
    rps: int = 100,
    interval_s: float = 30,
    max_duration_s: float = 2 * 3600,
    baseline: Behaviour | None = None,
) -> tuple[WatchReport, Simulation]:
    """Start a release of m@1.1.0 and let `watch` run it on simulated traffic to its end."""
    ops.start(store, "m", "1.1.0", steps=steps, analysis=checks, seed=f"{seed:032x}")
    clock = Clock()
    sim = Simulation(
        store, "m", {"1.0.0": baseline or Behaviour(), "1.1.0": canary}, rps=rps, seed=seed,
        clock=clock,
    )  # fmt: skip
    try:
        report = watch(
            store, "m", interval_s=interval_s, max_duration_s=max_duration_s, clock=clock,
            sleep=sim.sleep,
        )  # fmt: skip
    finally:
        sim.close()
    return report, sim
