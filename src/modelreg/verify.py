"""`verify`: check the audit chain, every manifest and ref, and every object's digest.

Since issue 8 the checks are `modelreg.fsck`'s (one checker, not two): `verify` keeps its
one-line-per-problem report and `--json` shape, and lists fsck's errors (plus a torn audit
line, which verify has always reported), not its warnings (orphans, leftover temp files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg.handle import StoreHandle

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """What was checked and every problem found (one line each)."""

    problems: tuple[str, ...]
    versions: int
    objects: int
    audit_entries: int

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg verify`."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "versions": self.versions,
            "objects": self.objects,
            "audit_entries": self.audit_entries,
        }


def verify(store: StoreHandle, *, objects: bool = True) -> VerifyReport:
    """Check everything the store holds; never modifies it (`objects=False`: no re-hashing)."""
    from modelreg.fsck import fsck

    report = fsck(store, quick=not objects)
    problems = tuple(
        f.message for f in report.findings if f.severity == "error" or f.kind == "audit-torn-line"
    )
    return VerifyReport(problems, report.versions, report.hashed, report.audit_entries)
