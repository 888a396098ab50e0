"""What `fsck` finds and what `repair` does: plain data shared by both (domain layer).

A finding's kind is one of ERROR_KINDS (the store is damaged: exit 1) or WARNING_KINDS
(garbage, harmless to readers); docs/maintenance.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ERROR_KINDS", "WARNING_KINDS", "Finding", "Repair"]

ERROR_KINDS = (
    "missing-object",
    "corrupt-object",
    "bad-manifest",
    "bad-ref",
    "dangling-alias",
    "dangling-state",
    "dangling-rollout-ref",
    "bad-signature",
    "dangling-signature",
    "bad-tombstone",
    "audit-chain-broken",
    "index-mismatch",
)
WARNING_KINDS = ("orphan-object", "leftover-temp", "audit-torn-line", "unfinished-delete")


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (see ERROR_KINDS, WARNING_KINDS), where, and what."""

    kind: str
    path: str
    message: str
    digest: str | None = None

    @property
    def severity(self) -> str:
        """`error` (the store is damaged) or `warning` (garbage, harmless to readers)."""
        return "warning" if self.kind in WARNING_KINDS else "error"

    def to_dict(self) -> dict[str, Any]:
        """One entry of `findings` in `mreg fsck --json`."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class Repair:
    """One thing `repair` did: removed a temp, cut the audit log, restored an object."""

    action: str
    path: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """One entry of `repairs` in `mreg fsck --json`."""
        return {"action": self.action, "path": self.path, "detail": self.detail}
