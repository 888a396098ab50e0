"""The small interfaces between the serving modules, so that none needs another's class.

Serving layer (docs/architecture.md). `Recorder` is what a `Timer` records into;
`Totals` is what the Prometheus collector (`serving.prometheus`) reads at each scrape.
`serving.metrics.Metrics` is both; the collector and the timer import neither it nor the
router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from modelreg.serving.aggregate import Group
from modelreg.serving.decision import Decision, RouterStats

__all__ = ["Recorder", "Totals"]


class Recorder(Protocol):
    """Records one request answered as a decision said (`Metrics.record`)."""

    def record(
        self,
        d: Decision,
        latency_ms: float | None = None,
        error: bool = False,
        score: float | None = None,
        **outcomes: float,
    ) -> None:
        """Record one request (see `Metrics.record`)."""


class Totals(Protocol):
    """The running totals of a serving process, and the router's health, for exposition."""

    @property
    def health(self) -> Callable[[], RouterStats] | None:
        """The router's `stats` (configuration checks and their failures), if any."""

    def groups(self) -> list[Group]:
        """The decision groups recorded so far."""

    def retired(self) -> dict[tuple[str, str, bool], dict[str, Any]]:
        """Totals of groups dropped after they went idle, by (version, variant, shadow)."""
