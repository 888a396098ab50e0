"""The monitoring commands of the `Store` facade (issue 21): `mreg monitor`, drift over time.

Facade layer (docs/architecture.md): each method is a lazy import of the domain function
(`monitoring`) and one call; `Store` inherits them (as `TrustCommands`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.monitoring import DriftLimit, DriftReport, DriftSeries

__all__ = ["MonitorCommands"]


class MonitorCommands(StoreHandle):
    """`monitor`, and `drift_series` for the web view's charts."""

    def monitor(
        self,
        spec: str,
        *,
        since: float | None = None,
        until: float | None = None,
        window: float | None = None,
        limits: Sequence[str | DriftLimit] | None = None,
        data: str | None = None,
        min_rows: int = 100,
    ) -> DriftReport:
        """Drift of a version's captured inputs against its training profile (`mreg monitor`)."""
        from modelreg.monitoring import drift_report

        return drift_report(
            self,
            spec,
            since=since,
            until=until,
            window=window,
            limits=limits,
            data=data,
            min_rows=min_rows,
        )

    def drift_series(
        self,
        spec: str,
        *,
        since: float | None = None,
        until: float | None = None,
        step: float = 3600.0,
        data: str | None = None,
    ) -> DriftSeries:
        """Per-feature drift per time bucket of `step` seconds (the web view's charts)."""
        from modelreg.monitoring import drift_series

        return drift_series(self, spec, since=since, until=until, step=step, data=data)
