"""What a router decides, and what it reports: `Target`, `Decision`, `RouterStats`.

Serving layer (docs/architecture.md). Plain data with no import of mreg: the router
(`serving.router`, `serving.plan`) builds them, the recorder (`serving.metrics`) and the
Prometheus collector (`serving.prometheus`) read them, so neither depends on the router.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Decision", "RouterStats", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A version the router can send requests to: version, manifest id, files directory."""

    version: str
    id: str
    path: Path | None
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "version": self.version,
            "id": self.id,
            "path": None if self.path is None else str(self.path),
            "files": list(self.files),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes.

    `variant` is `canary` or `baseline`; `reason` says what decided: `rule` (see `rule`),
    `weight` (the global split), `shadow`, `promoted`, `aborted` or `production` (no live
    release). In shadow mode `shadow` names the canary, which serving code may run on a copy
    of the request; otherwise it is None.
    """

    variant: str
    target: Target
    reason: str
    rule: str | None = None
    shadow: Target | None = None
    generation: int = 0

    @property
    def version(self) -> str:
        """The version that answers the request."""
        return self.target.version

    @property
    def id(self) -> str:
        """Its manifest id."""
        return self.target.id

    @property
    def path(self) -> Path | None:
        """The directory holding its files (None when the router does not materialise)."""
        return self.target.path

    def to_dict(self, at: float | None = None) -> dict[str, Any]:
        """Plain-data form, for request logs and for `record_outcome` later.

        `time` is the request's exposure in epoch seconds: `at`, or now. Take the dict when
        the request is answered; `record_outcome(d_dict, ...)` attributes late outcomes to
        that exposure (the decision object itself is shared by many requests).
        """
        return {
            "variant": self.variant,
            "version": self.version,
            "id": self.id,
            "reason": self.reason,
            "rule": self.rule,
            "shadow": None if self.shadow is None else self.shadow.version,
            "generation": self.generation,
            "time": time.time() if at is None else at,
        }


@dataclass(frozen=True)
class RouterStats:
    """Counters and the configuration in force (for metrics and health checks).

    `errors` counts failed checks (each also logged once per distinct error on the
    `modelreg.serving` logger); Prometheus exposes them as `mreg_config_reload_failures_total`.
    """

    checks: int
    reloads: int
    errors: int
    last_error: str | None
    state: str
    generation: int
    versions: tuple[str, ...]
    failing: bool = False
    """True while the latest check failed: the last good configuration is still in force."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "checks": self.checks,
            "reloads": self.reloads,
            "errors": self.errors,
            "last_error": self.last_error,
            "state": self.state,
            "generation": self.generation,
            "versions": list(self.versions),
            "failing": self.failing,
        }
