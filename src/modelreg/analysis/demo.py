"""Synthetic serving traffic, and the automatic-rollback part of `mreg demo` (issue 6).

`Simulation` is a serving loop in simulated time: at `rps` requests per simulated second it
routes simulated users through a real `Router`, draws each request's latency, error,
conversion and score from the behaviour of the version that answers it, and records them
with `router.record` (and, in shadow mode, `router.record_shadow`). Its `sleep(seconds)`
is what `watch` calls between analyses, so a whole release runs in a fraction of a second
of real time, deterministically, with no sleeping.

`run_analysis_demo` registers a faulty version, releases it at 5% with analysis checks,
and lets `watch` catch it: the release is rolled back automatically.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.serving import Router

if TYPE_CHECKING:
    from modelreg.analysis.watch import WatchReport
    from modelreg.store import Store

__all__ = ["AnalysisDemo", "Behaviour", "Clock", "Simulation", "run_analysis_demo"]


@dataclass(frozen=True)
class Behaviour:
    """How a simulated version behaves: error rate, latency (log-normal), conversion, scores."""

    error_rate: float = 0.01
    latency_ms: float = 20.0
    """Median latency."""
    latency_sigma: float = 0.5
    conversion: float = 0.10
    score_shift: float = 0.0
    """Added to the baseline's score distribution (drift)."""


class Clock:
    """A simulated clock in seconds: monotonic and wall time at once."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        """The current simulated time."""
        return self.t


class Simulation:
    """A synthetic serving process routing simulated users through a real `Router`."""

    def __init__(
        self,
        store: Store,
        name: str,
        behaviours: dict[str, Behaviour],
        *,
        rps: int = 1000,
        users: int = 50_000,
        seed: int = 1,
        clock: Clock | None = None,
        delay: Callable[[random.Random], float] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.delay = delay
        """Seconds a conversion takes to arrive (drawn per request); None: with the request."""
        self._due: list[tuple[float, int, dict[str, Any]]] = []
        self.behaviours = behaviours
        self.rps = rps
        self.users = users
        self.rng = random.Random(seed)
        self.requests = 0
        self.router = Router.open(
            name, store=store.root, check_interval_ms=1000, materialize=False,
            clock=self.clock, wall=self.clock, flush_interval_s=10.0,
        )  # fmt: skip

    def _one(self, uid: str) -> None:
        rng, router = self.rng, self.router
        d = router.route(user_id=uid)
        b = self.behaviours[d.version]
        score = min(max(rng.betavariate(2, 5) + b.score_shift, 0.0), 1.0)
        converted = rng.random() < b.conversion
        latency = b.latency_ms * math.exp(b.latency_sigma * rng.gauss(0, 1))
        error = rng.random() < b.error_rate
        if self.delay is None:
            router.record(d, latency_ms=latency, error=error, score=score,
                          conversion=1 if converted else 0)  # fmt: skip
        else:
            # the conversion is reported later, attributed to this request's exposure
            router.record(d, latency_ms=latency, error=error, score=score)
            if converted:
                due = self.clock.t + self.delay(rng)
                heapq.heappush(self._due, (due, self.requests, d.to_dict(at=self.clock.t)))
        if d.shadow is not None:
            c = self.behaviours[d.shadow.version]
            mirrored = min(max(score + c.score_shift, 0.0), 1.0)
            router.record_shadow(
                d, round(score, 2), round(mirrored, 2),
                latency_ms=c.latency_ms * math.exp(c.latency_sigma * rng.gauss(0, 1)),
                error=rng.random() < c.error_rate, score=mirrored,
            )  # fmt: skip

    def sleep(self, seconds: float) -> None:
        """Serve `seconds` of simulated traffic (what `watch` calls between analyses)."""
        steps = max(round(seconds), 1)
        for _ in range(steps):
            for _ in range(self.rps):
                self._one(f"user-{self.rng.randrange(self.users)}")
                self.requests += 1
            self.clock.t += seconds / steps
            while self._due and self._due[0][0] <= self.clock.t:
                _, _, logged = heapq.heappop(self._due)
                self.router.record_outcome(logged, conversion=1)
        self.router.metrics.flush()

    def close(self) -> None:
        """Flush and close the router."""
        self.router.close()


@dataclass(frozen=True)
class AnalysisDemo:
    """What the rollback demo did."""

    model: str
    canary: str
    report: WatchReport
    requests: int
    simulated_s: float
    start_command: str

    def commands(self) -> list[tuple[str, str]]:
        """(command line, summary) pairs, in order, as `mreg demo` shows its steps."""
        events = self.report.events
        first_fail = next((e for e in events if e.verdict == "fail"), None)
        watch_summary = (
            f"{len(events)} analyses over {self.simulated_s:g} simulated seconds, "
            f"{self.requests:,} requests; "
            + (f"rolled back automatically: {first_fail.summary}" if first_fail else
               f"outcome {self.report.outcome}")
        )  # fmt: skip
        return [
            (self.start_command, f"release of {self.canary} at 5% with analysis checks"),
            (f"mreg release watch {self.model} --interval 30s", watch_summary),
            (f"mreg release status {self.model}", f"state {self.report.state}: all traffic on "
             "the baseline"),
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "model": self.model,
            "canary": self.canary,
            "requests": self.requests,
            "simulated_s": self.simulated_s,
            "watch": self.report.to_dict(),
        }


CHECKS = (
    "errors: error_rate <= baseline + 0.5pt",
    "p99: latency.p99 <= 1.2x baseline",
    "conversion >= baseline",
    "guard: error_rate < 5%",
)


def run_analysis_demo(
    store: Store,
    name: str,
    workdir: Path,
    *,
    version: str = "1.2.0",
    actor: str | None = None,
    seed: int = 11,
) -> AnalysisDemo:
    """Register a faulty `version` of `name`, release it at 5%, and let `watch` roll it back.

    The faulty version fails 3% of its requests where production fails 1%; the watch
    analyses every 30 simulated seconds and aborts the release at the first failing check.
    """
    from modelreg.analysis.watch import watch
    from modelreg.release import ops

    prod = store.resolve(f"{name}@production")
    model_file = workdir / "build" / version / "model.json"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_text(json.dumps({"note": "quantized, with a bug on rare inputs"}))
    store.register(
        name, [model_file], version=version, params={"quantized": True},
        metrics={"test": {"f1": prod.metric("test.f1") or 0.0}}, detect_code=False,
        message="quantized build", author=actor,
    )  # fmt: skip
    ops.start(
        store, name, version, steps="5,25,50,100", analysis=CHECKS, actor=actor,
        reason="demo: canary with analysis",
    )  # fmt: skip
    clock = Clock()
    sim = Simulation(
        store, name,
        {prod.version: Behaviour(), version: Behaviour(error_rate=0.03, latency_ms=18.0)},
        rps=400, seed=seed, clock=clock,
    )  # fmt: skip
    start = clock.t
    try:
        report = watch(
            store, name, interval_s=30, max_duration_s=3600, actor=actor, clock=clock,
            sleep=sim.sleep,
        )  # fmt: skip
    finally:
        sim.close()
    command = f"mreg release start {name} --canary {version} --steps 5,25,50,100 " + " ".join(
        f"--check '{c}'" for c in CHECKS
    )
    return AnalysisDemo(name, version, report, sim.requests, clock.t - start, command)
