"""Canary analysis (issue 6): judge a release's canary against its baseline, and act on it.

`analyze(store, name)` returns an `Analysis` (every check's verdict with its statistics);
`watch(store, name)` steps the release up while it passes, promotes it after the last step,
and aborts it at the first failing analysis. The checks and the policy live in the rollout
manifest's `analysis` field (`modelreg.analysis.checks`). docs/analysis.md documents the
methods and their false-alarm rate.
"""

from __future__ import annotations

from modelreg.analysis.checks import DEFAULT_CHECKS, Check, Policy
from modelreg.analysis.judge import CheckResult
from modelreg.analysis.sources import PrometheusSource, StoreSource
from modelreg.analysis.watch import (
    Analysis,
    CheckFailed,
    Inconclusive,
    WatchEvent,
    WatchReport,
    analyze,
    watch,
)

__all__ = [
    "DEFAULT_CHECKS",
    "Analysis",
    "Check",
    "CheckFailed",
    "CheckResult",
    "Inconclusive",
    "Policy",
    "PrometheusSource",
    "StoreSource",
    "WatchEvent",
    "WatchReport",
    "analyze",
    "watch",
]
