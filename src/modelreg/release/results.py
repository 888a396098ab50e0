"""What the release commands return: a release's status, a change, a forced abort's recovery.

Model layer (docs/architecture.md): plain data over a `Rollout`, no I/O. The commands that
build them are in `release.ops`; `release.ops` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelreg.release.bucketing import FULL, format_weight
from modelreg.release.rollout import NONE, Rollout

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange

__all__ = ["LAST_CHANGES", "PRODUCTION", "Recovery", "ReleaseChange", "ReleaseStatus"]

PRODUCTION = "production"
"""The alias a release moves when it is promoted, and its baseline by default."""
LAST_CHANGES = 5
"""How many changes of the current release `release status --json` lists."""


@dataclass(frozen=True)
class ReleaseStatus:
    """A model's release as `release status` shows it (`rollout` is None: no release)."""

    model: str
    rollout: Rollout | None
    production: str | None
    production_generation: int = 0
    targets: tuple[dict[str, Any], ...] = ()
    """The release targets and what each last applied (`release.targets.Applied.to_dict()`
    plus `format`; `generation` 0 and `ok` None for a target never applied)."""

    @property
    def state(self) -> str:
        """The release state, `none` when the model never had a release."""
        return self.rollout.state if self.rollout else NONE

    def routing(self) -> list[str]:
        """How requests are routed now, in precedence order (what routers do)."""
        r = self.rollout
        if r is None:
            return [f"every request -> production {self.production}"]
        if not r.live and self.production_generation > (r.production_generation or 0):
            return [
                f"every request -> production {self.production} (production moved after "
                f"release {r.release} {r.state})"
            ]
        return r.routing_order()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release status`."""
        r = self.rollout
        if r is None:
            doc = {"model": self.model, "state": NONE, "production": self.production}
            return {**doc, "targets": list(self.targets)} if self.targets else doc
        share = r.canary_share
        last = [e.to_dict() for e in r.history if e.release == r.release][-LAST_CHANGES:]
        return {
            "model": self.model,
            "state": r.state,
            "release": r.release,
            "generation": r.generation,
            "shadow": r.shadow,
            "baseline": {**r.baseline.to_dict(), "weight": format_weight(FULL - share)},
            "canary": {**r.canary.to_dict(), "weight": format_weight(share)},
            "stick_by": r.stick_by,
            "seed": r.seed,
            "rules": [
                {"order": i, "text": text, **x.to_dict()}
                for i, (x, text) in enumerate(zip(r.rules, r.rule_texts(), strict=True), 1)
            ],
            "routing": self.routing(),
            "steps": {
                "plan": [s if isinstance(s, str) else format_weight(s) for s in r.steps],
                "done": [s if isinstance(s, str) else format_weight(s) for s in r.steps_done()],
                "next": None if (n := r.next_step()) is None else format_weight(n),
            },
            "analysis": [dict(a) for a in r.analysis],
            "started": r.started,
            "updated": r.updated,
            "production": self.production,
            "last_changes": last,
            "targets": list(self.targets),
        }


@dataclass(frozen=True)
class Recovery:
    """What a forced abort found damaged, and where it found the release it aborted."""

    damage: str
    """Why the manifest could not be used (the reader's one-line message)."""
    release: int
    previous_state: str
    """The last state that could be read (`unknown` when none could)."""
    baseline_from: str
    """Where the baseline came from: `history` (the manifest's own), `audit` (the audit
    trail's `release.*` entries), `manifest` (its readable fields) or `production`."""
    canary_from: str
    events_recovered: int
    """History events kept in the new manifest (from its own history and the audit trail)."""
    max_generation: int
    """The highest generation seen anywhere; the abort is written one above it."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (in the audit entry and `release abort --json`)."""
        return {
            "damage": self.damage,
            "release": self.release,
            "previous_state": self.previous_state,
            "baseline_from": self.baseline_from,
            "canary_from": self.canary_from,
            "events_recovered": self.events_recovered,
            "max_generation": self.max_generation,
        }


@dataclass(frozen=True)
class ReleaseChange:
    """The result of a release command: what it did and the release's status after it."""

    action: str
    changed: bool
    previous_state: str
    status: ReleaseStatus
    promotion: AliasChange | None = None
    recovery: Recovery | None = None
    """Set by a forced abort over a damaged manifest: what was damaged and recovered."""

    @property
    def rollout(self) -> Rollout:
        """The rollout manifest after the change."""
        assert self.status.rollout is not None  # every change leaves a manifest
        return self.status.rollout

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release start|set|step|pause|resume|promote|abort`."""
        return {
            "action": self.action,
            "changed": self.changed,
            "previous_state": self.previous_state,
            "promotion": self.promotion.to_dict() if self.promotion else None,
            "recovery": self.recovery.to_dict() if self.recovery else None,
            "status": self.status.to_dict(),
        }
