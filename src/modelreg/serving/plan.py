"""Plans: a router's configuration compiled once, so that deciding is a few comparisons.

Serving layer (docs/architecture.md). A plan's `decide(user_id, attributes)` is the hot
path of `Router.route` (docs/release.md, "The Router"): every `Decision` it can return is
preallocated, a rule is a compiled predicate (`release.rules`), a bucket one SHA-256 of the
stickiness key (`release.bucketing`). `Router` builds a `Config` per rollout generation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelreg.release.bucketing import BUCKETS, Bucketer, threshold, unpack_u64
from modelreg.release.rollout import Rollout
from modelreg.release.rules import USER_ID, compile_rule
from modelreg.serving.decision import Decision, Target

__all__ = ["Config", "Fast", "Fixed", "Split"]

Fast = tuple[Any, int, Decision, Decision]
"""(seed prefix hash state, canary threshold, canary decision, baseline decision)."""


class Fixed:
    """One decision for every request (no release, an ended one, shadow mode, 0% or 100%)."""

    __slots__ = ("decision",)

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, user_id: Any, attributes: Mapping[str, Any] | None) -> Decision:
        """The one decision."""
        return self.decision


class Split:
    """The global weight, after the rules (if any) in order."""

    __slots__ = (
        "_by_user",
        "_rand",
        "_rules",
        "_stick",
        "baseline",
        "canary",
        "prefix",
        "threshold",
    )

    def __init__(
        self,
        rollout: Rollout,
        baseline: Target,
        canary: Target,
        rand: Callable[[], float],
    ) -> None:
        gen = rollout.generation
        self.prefix = Bucketer(rollout.seed).prefix
        self._stick = rollout.stick_by
        self._by_user = rollout.stick_by == USER_ID
        self._rand = rand
        self.threshold = threshold(rollout.weight)
        self.canary = Decision("canary", canary, "weight", None, None, gen)
        self.baseline = Decision("baseline", baseline, "weight", None, None, gen)
        rules = []
        for i, rule in enumerate(rollout.rules, 1):
            label = rule.name or str(i)
            c = Decision("canary", canary, "rule", label, None, gen)
            b = Decision("baseline", baseline, "rule", label, None, gen)
            if rule.variant is not None:
                pinned = c if rule.variant == "canary" else b
                rules.append((compile_rule(rule), -1, pinned, pinned))
            else:
                rules.append((compile_rule(rule), threshold(rule.weight or 0), c, b))
        self._rules = tuple(rules)

    def _bucket(self, user_id: Any, attributes: Mapping[str, Any] | None) -> int:
        if self._by_user:
            key = user_id
            if key is None and attributes:
                key = attributes.get(USER_ID)
        else:
            key = attributes.get(self._stick) if attributes else None
        if key is None:  # no stickiness key: split at random by the weight
            return int(self._rand() * BUCKETS)
        if key.__class__ is not str:
            key = str(key)
        h = self.prefix.copy()
        try:
            h.update(key.encode())
        except UnicodeEncodeError:
            h.update(key.encode("utf-8", "surrogatepass"))
        return int(unpack_u64(h.digest())[0]) % BUCKETS

    def decide(self, user_id: Any, attributes: Mapping[str, Any] | None) -> Decision:
        """The first matching rule's decision, else the global weight's."""
        for check, t, canary, baseline in self._rules:
            if check(user_id, attributes):
                if t < 0:
                    return canary
                return canary if self._bucket(user_id, attributes) < t else baseline
        return self.canary if self._bucket(user_id, attributes) < self.threshold else self.baseline


@dataclass(frozen=True)
class Config:
    """A compiled configuration: the plan, its inlined fast case, and what it routes to."""

    plan: Fixed | Split
    fast: Fast | None
    state: str
    generation: int
    targets: dict[str, Target]
    from_rollout: bool
