"""Canary releases: the rollout manifest, bucketing, routing rules and the release commands.

The pure parts (`rollout`, `bucketing`, `rules`) are imported by serving processes; the
locked, audited operations live in `ops` (one function per `mreg release` command) and are
loaded on first use, so importing this package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelreg.release.bucketing import BUCKETS, bucket
from modelreg.release.rollout import STATES, TRANSITIONS, Rollout
from modelreg.release.rules import Rule, parse_rule

if TYPE_CHECKING:
    from modelreg.release.ops import (
        ReleaseChange,
        ReleaseStatus,
        abort,
        history,
        pause,
        promote,
        resume,
        start,
        status,
        step,
        update,
    )

__all__ = [
    "BUCKETS",
    "STATES",
    "TRANSITIONS",
    "ReleaseChange",
    "ReleaseStatus",
    "Rollout",
    "Rule",
    "abort",
    "bucket",
    "history",
    "parse_rule",
    "pause",
    "promote",
    "resume",
    "start",
    "status",
    "step",
    "update",
]

_OPS = {
    "ReleaseChange",
    "ReleaseStatus",
    "abort",
    "history",
    "pause",
    "promote",
    "resume",
    "start",
    "status",
    "step",
    "update",
}


def __getattr__(name: str) -> Any:
    # Lazy: the operations need the store, which serving processes never import.
    if name in _OPS:
        from modelreg.release import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'modelreg.release' has no attribute {name!r}")
