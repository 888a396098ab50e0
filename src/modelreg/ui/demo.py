"""A store to look at: a model with versions, aliases, and a canary rolled back automatically.

Used by the web view's tests, by `bench/ui.py` and to draw the screenshot in docs/. Unlike
`mreg demo`, the store's clock *is* the simulated clock, so the release's changes, the
analyses and the recorded metrics share one time line, as they do in a real deployment,
and the charts show the rollback where it happened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from modelreg.analysis.demo import CHECKS, Behaviour, Clock, Simulation
from modelreg.store import Store

__all__ = ["ReleaseDemo", "run_release_demo"]

MODEL = "churn-classifier"
AUTHOR = "Dana Ops <dana@example.com>"
SEED = "5bd083fc3cca355d3919f43df0a2c630"
"""The release's bucketing seed: fixed, so the demo draws the same charts every time."""


@dataclass(frozen=True)
class ReleaseDemo:
    """The store, the model, and what the watch did."""

    store: Store
    model: str
    canary: str
    outcome: str
    requests: int
    clock: Clock


def _register(store: Store, workdir: Path, version: str, f1: float, lr: float) -> None:
    path = workdir / "build" / version / "model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"weights": [lr, f1], "version": version}))
    data = workdir / "data" / "train.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        data.write_text("x1,x2,y\n0.1,0.2,1\n0.3,0.1,0\n")
    store.register(
        MODEL, [path], version=version,
        params={"model": "logistic-regression", "lr": lr, "epochs": 60, "features": 4},
        metrics={"train": {"f1": round(f1 + 0.02, 4)}, "test": {"f1": f1}},
        data=[str(data), "s3://features/2026-11"], detect_code=False,
        message=f"weekly retrain {version}", author=AUTHOR, tags=["candidate"],
    )  # fmt: skip


def run_release_demo(
    workdir: Path,
    *,
    rps: int = 400,
    seed: int = 11,
    faulty: bool = True,
    max_duration_s: float = 1800,
) -> ReleaseDemo:
    """Build the demo store in `workdir` and run the canary until the watch acts.

    Args:
        workdir: Where to create the store (`workdir/.modelreg`).
        rps: Simulated requests per second.
        seed: Random seed of the simulated traffic.
        faulty: The canary fails 3% of requests (vs 1%): the watch rolls it back. False: a
            healthy canary, stepped up by the watch.
        max_duration_s: Simulated seconds the watch may run.
    """
    from modelreg.analysis.watch import watch
    from modelreg.release import ops

    clock = Clock()
    Store.init(workdir)
    store = Store.open(workdir, clock=lambda: datetime.fromtimestamp(clock.t, timezone.utc))
    for version, f1, lr in (("1.0.0", 0.9, 0.5), ("1.1.0", 0.91, 0.3), ("1.2.0", 0.93, 0.2)):
        _register(store, workdir, version, f1, lr)
        clock.t += 3600
    store.promote(f"{MODEL}@1.0.0", "production", actor=AUTHOR, reason="first release")
    clock.t += 600
    store.promote(f"{MODEL}@1.1.0", "production", actor=AUTHOR, reason="better f1")
    clock.t += 600
    store.rollback(MODEL, "production", actor=AUTHOR, reason="conversion dropped")
    clock.t += 600
    store.promote(f"{MODEL}@1.2.0", "staging", actor=AUTHOR, reason="candidate")
    clock.t += 600
    ops.start(
        store, MODEL, "1.2.0", steps="5,25,50,100", analysis=CHECKS, actor=AUTHOR,
        rules=["testers: user_id in qa-1,qa-2 -> canary", "region=cn-north -> baseline"],
        reason="weekly canary", seed=SEED,
    )  # fmt: skip
    bad = Behaviour(error_rate=0.03, latency_ms=18.0) if faulty else Behaviour(latency_ms=19.0)
    sim = Simulation(
        store, MODEL, {"1.0.0": Behaviour(), "1.2.0": bad}, rps=rps, seed=seed, clock=clock
    )
    try:
        report = watch(
            store, MODEL, interval_s=30, max_duration_s=max_duration_s, actor="mreg-watch",
            clock=clock, sleep=sim.sleep,
        )  # fmt: skip
        if report.aborted:  # the baseline keeps serving after the rollback, as in production
            sim.sleep(60)
    finally:
        sim.close()
    return ReleaseDemo(store, MODEL, "1.2.0", report.outcome, sim.requests, clock)
