"""The canary part of `mreg demo`: release a version step by step to a simulated user stream.

`run_canary_demo` starts a release in a real store, opens a real `Router` on it, and at
each step of the plan sends a stream of simulated requests (users with a region, some of
them internal testers) through `route()`, counting where they went. It shows the split
following the weight, testers pinned to the canary, a region held on the baseline, and
stickiness: no user who saw the canary is moved back as the weight grows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelreg.release import ops
from modelreg.release.bucketing import format_weight, parse_weight

if TYPE_CHECKING:
    from modelreg.store import Store

__all__ = ["CanaryDemo", "CanaryStep", "run_canary_demo"]

REGIONS = ("eu", "us", "ap", "cn-north")
TESTERS = ("qa-1", "qa-2", "qa-3")
RULES = (
    f"testers: user_id in {','.join(TESTERS)} -> canary",
    "hold-cn: region=cn-north -> baseline",
)


@dataclass(frozen=True)
class CanaryStep:
    """One step of the demo: the command, the weight, and where the simulated requests went."""

    command: str
    weight: float
    requests: int
    canary: int
    open_requests: int
    """Requests no rule matched (the global weight applies to these)."""
    open_canary: int
    testers_on_canary: int
    held_on_baseline: int
    moved_back: int
    """Users who were on the canary at the previous step and are not any more (always 0)."""

    @property
    def share(self) -> float:
        """Percentage of rule-free requests that the canary answered."""
        return 100.0 * self.open_canary / self.open_requests if self.open_requests else 0.0

    def summary(self) -> str:
        """One line for people."""
        return (
            f"weight {self.weight:g}%: {self.requests:,} requests, canary {self.canary:,}; "
            f"unpinned users {self.share:.2f}% on the canary; testers "
            f"{self.testers_on_canary}/{len(TESTERS)} on the canary; cn-north "
            f"{self.held_on_baseline:,} held on the baseline; {self.moved_back} moved back"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "command": self.command,
            "weight": self.weight,
            "requests": self.requests,
            "canary": self.canary,
            "open_requests": self.open_requests,
            "open_canary": self.open_canary,
            "share": round(self.share, 4),
            "testers_on_canary": self.testers_on_canary,
            "held_on_baseline": self.held_on_baseline,
            "moved_back": self.moved_back,
        }


@dataclass(frozen=True)
class CanaryDemo:
    """What the canary demo did."""

    model: str
    baseline: str
    canary: str
    steps: tuple[CanaryStep, ...]
    final_command: str
    final_summary: str
    production: str | None

    def commands(self) -> list[tuple[str, str]]:
        """(command line, summary) pairs, in order: the demo's steps for people."""
        out = [(s.command, s.summary()) for s in self.steps]
        out.append((self.final_command, self.final_summary))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (part of `mreg demo --json`)."""
        return {
            "model": self.model,
            "baseline": self.baseline,
            "canary": self.canary,
            "steps": [s.to_dict() for s in self.steps],
            "final": {"command": self.final_command, "summary": self.final_summary},
            "production": self.production,
        }


def run_canary_demo(
    store: Store,
    name: str,
    canary: str,
    *,
    baseline: str | None = None,
    plan: Sequence[float] = (1, 5, 25, 50),
    users: int = 5_000,
    requests: int = 20_000,
    promote: bool = True,
    seed: str | None = None,
    rng_seed: int = 7,
    actor: str | None = None,
) -> CanaryDemo:
    """Release `canary` of `name` through `plan`, routing a simulated stream at each step.

    Args:
        store: The store (its model needs a `production` alias unless `baseline` is given).
        name: The model.
        canary: The version to release.
        baseline: The version it competes with (default: production).
        plan: The weights to step through, in percent.
        users: How many distinct simulated users.
        requests: How many requests per step (users drawn at random, so users repeat).
        promote: Promote the canary to production at the end (else abort the release).
        seed: The release's bucketing seed (default: a new random one).
        rng_seed: Seed of the simulated stream.
        actor: Who acts (default: the usual author lookup).

    Returns:
        The steps with their splits, and the final promote or abort.
    """
    from modelreg.serving import Router

    rng = random.Random(rng_seed)
    population = [(f"user-{i}", rng.choice(REGIONS)) for i in range(users)] + [
        (t, "eu") for t in TESTERS
    ]
    region_of = dict(population)
    weights = [parse_weight(w) for w in plan]
    steps_text = ",".join(str(format_weight(w)) for w in weights)
    change = ops.start(
        store, name, canary, baseline=baseline, weight=plan[0], steps=steps_text,
        rules=RULES, seed=seed, actor=actor, reason="demo canary",
    )  # fmt: skip
    r = change.rollout
    # The demo runs the change check right after each command (`check()`); a serving
    # process relies on the throttled check instead (every second by default).
    router = Router.open(name, store=store.root, check_interval_ms=60_000, materialize=False)
    done: list[CanaryStep] = []
    on_canary: set[str] = set()
    command = (
        f"mreg release start {name} --canary {canary} --weight {plan[0]:g} "
        f"--steps {steps_text} " + " ".join(f"--rule '{x}'" for x in RULES)
    )
    try:
        for i, w in enumerate(weights):
            if i:
                ops.step(store, name, actor=actor, reason="demo: metrics look fine")
                router.check()
                command = f"mreg release step {name}"
            now_canary: set[str] = set()
            counts = {"canary": 0, "open": 0, "open_canary": 0, "held": 0}
            for _ in range(requests):
                uid, region = population[rng.randrange(len(population))]
                d = router.route(user_id=uid, attributes={"region": region})
                is_canary = d.variant == "canary"
                counts["canary"] += is_canary
                if d.reason == "weight":
                    counts["open"] += 1
                    counts["open_canary"] += is_canary
                elif d.rule == "hold-cn" and not is_canary:
                    counts["held"] += 1
                if is_canary:
                    now_canary.add(uid)
            testers = sum(router.route(user_id=t).variant == "canary" for t in TESTERS)
            # Users seen on the canary before who are now routed to the baseline.
            moved = sum(
                router.route(user_id=u, attributes={"region": region_of[u]}).variant != "canary"
                for u in on_canary
            )
            on_canary |= now_canary
            done.append(
                CanaryStep(
                    command,
                    format_weight(w),
                    requests,
                    counts["canary"],
                    counts["open"],
                    counts["open_canary"],
                    testers,
                    counts["held"],
                    moved,
                )
            )
        if promote:
            end = ops.promote(store, name, actor=actor, reason="demo: canary healthy")
            final = (f"mreg release promote {name}", f"production → {end.rollout.canary.version}")
        else:
            end = ops.abort(store, name, actor=actor, reason="demo: abort")
            final = (f"mreg release abort {name}", f"all traffic → {end.rollout.baseline.version}")
        router.check()
        final_summary = (
            f"{final[1]}; the router now sends every request to {router.route().version}"
        )
    finally:
        router.close()
    return CanaryDemo(
        name, r.baseline.version, r.canary.version, tuple(done), final[0], final_summary,
        end.status.production,
    )  # fmt: skip
