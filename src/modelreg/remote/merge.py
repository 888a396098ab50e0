"""Deciding, for each moving ref and for the audit log, which side is ahead. Pure: no I/O.

Moving refs (aliases, version state, rollout manifests) are compared three ways: the local
bytes, the remote bytes, and `base`, the remote content at the last sync (see tracking.py):

| local vs remote                                   | state      | push          | pull        |
|---------------------------------------------------|------------|---------------|-------------|
| equal                                             | `same`     | nothing       | nothing     |
| only local (never synced)                         | `ahead`    | create        | keep        |
| only remote                                       | `behind`   | nothing       | take        |
| remote unchanged since last sync, or a ref with a | `ahead`    | replace (CAS) | keep        |
| `history` (alias, rollout) whose remote history   |            |               |             |
| is a prefix of the local one                      |            |               |             |
| local unchanged since last sync, or the reverse   | `behind`   | nothing       | take        |
| both changed                                      | `diverged` | refused       | conflict    |

A ref whose both sides carry a `generation` is `ahead` only if the local generation is the
higher one (and `behind` only if it is the lower one): a push always raises the remote's
generation, which is the compare-and-swap on generation numbers; the backend's conditional
write (or lock) makes the swap atomic.

The audit log is compared by entries: equal prefixes are in sync; when one log is a prefix
of the other that side is ahead; otherwise the logs diverged, and `rebase` re-chains the
local-only entries (never pushed, so nobody else has them) after the remote's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelreg import yamlio
from modelreg.audit import GENESIS, AuditEntry
from modelreg.audit import head_bytes as audit_head_bytes
from modelreg.errors import IntegrityError, MregError
from modelreg.hashing import hash_bytes

__all__ = [
    "LogComparison",
    "RefState",
    "compare_logs",
    "compare_ref",
    "head_bytes",
    "log_bytes",
    "parse_log",
    "rebase",
]

RefState = Literal["same", "ahead", "behind", "diverged"]


def _doc(data: bytes) -> dict[str, Any] | None:
    try:
        doc = yamlio.load(data, "<ref>", IntegrityError)
    except MregError:
        return None
    return doc if isinstance(doc, dict) else None


def _generation(doc: dict[str, Any] | None) -> int | None:
    value = doc.get("generation") if doc else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _prefix(short: Sequence[Any], long: Sequence[Any]) -> bool:
    return len(short) <= len(long) and list(long[: len(short)]) == list(short)


def compare_ref(kind: str, local: bytes | None, remote: bytes | None, base: str | None) -> RefState:
    """Which side of a moving ref is ahead (see the module docstring's table)."""
    if local == remote:
        return "same"
    if remote is None:
        # Created here, or deleted on the remote since we last synced it.
        return "ahead" if base is None else "diverged"
    if local is None:
        return "behind"
    ldoc, rdoc = _doc(local), _doc(remote)
    state: RefState = "diverged"
    if kind in ("alias", "release", "policy") and ldoc is not None and rdoc is not None:
        lh, rh = ldoc.get("history") or [], rdoc.get("history") or []
        if isinstance(lh, list) and isinstance(rh, list):
            if _prefix(rh, lh):
                state = "ahead"
            elif _prefix(lh, rh):
                state = "behind"
    if state == "diverged" and base is not None:
        if base == hash_bytes(remote):
            state = "ahead"
        elif base == hash_bytes(local):
            state = "behind"
    lg, rg = _generation(ldoc), _generation(rdoc)
    if lg is not None and rg is not None:
        if (state == "ahead" and lg <= rg) or (state == "behind" and lg >= rg):
            return "diverged"
    return state


def parse_log(data: bytes, source: str) -> list[AuditEntry]:
    """The complete entries of an audit log, with the hash chain checked.

    A torn last line (an interrupted append) is ignored, as the local reader does; any
    other damage raises IntegrityError, so a tampered log is never merged.
    """
    entries: list[AuditEntry] = []
    prev, seq = GENESIS, 0
    for lineno, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            e = AuditEntry.parse(line)
            intact = e.compute_hash() == e.hash
        except (ValueError, RecursionError):
            raise IntegrityError(f"{source}:{lineno}: unreadable audit entry") from None
        if not intact or e.prev != prev or e.seq != seq + 1:
            raise IntegrityError(f"{source}:{lineno}: audit chain broken at entry {e.seq}")
        entries.append(e)
        prev, seq = e.hash, e.seq
    return entries


def log_bytes(entries: Sequence[AuditEntry]) -> bytes:
    """The file bytes of a log holding `entries` (one canonical JSON line each)."""
    return b"".join(e.line() for e in entries)


def head_bytes(entries: Sequence[AuditEntry]) -> bytes:
    """The `audit/head.json` that goes with a log ending in `entries[-1]`."""
    return audit_head_bytes(entries[-1] if entries else None)


@dataclass(frozen=True)
class LogComparison:
    """How two audit logs relate: `common` leading entries shared, then each side's own."""

    state: RefState
    common: int
    local_only: int
    remote_only: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (part of `status --json`)."""
        return {
            "state": self.state,
            "common": self.common,
            "local_only": self.local_only,
            "remote_only": self.remote_only,
        }


def compare_logs(
    local: Sequence[AuditEntry], remote: Sequence[AuditEntry], base: tuple[int, str] | None
) -> LogComparison:
    """Compare two checked logs; IntegrityError if the remote rewrote what we synced before."""
    if base is not None:
        count, head = base
        if count > len(remote) or (count and remote[count - 1].hash != head):
            raise IntegrityError(
                f"the remote audit trail was rewritten: it no longer holds entry {count} "
                f"({head[:12]}) that this store synchronised; refusing to merge it"
            )
    common = 0
    for a, b in zip(local, remote, strict=False):
        if a.hash != b.hash:
            break
        common += 1
    lo, ro = len(local) - common, len(remote) - common
    state: RefState = (
        "same" if not lo and not ro else "ahead" if not ro else "behind" if not lo else "diverged"
    )
    return LogComparison(state, common, lo, ro)


def rebase(
    local: Sequence[AuditEntry], remote: Sequence[AuditEntry], common: int
) -> list[AuditEntry]:
    """The remote log followed by the local-only entries, re-chained after it.

    Each re-chained entry keeps its time, actor, action, model and details; only `seq`,
    `prev` and so `hash` change. Those entries were never pushed, so nobody has the old
    hashes (with several remotes, push to all of them before pulling; see docs/remotes.md).
    """
    out = list(remote)
    prev, seq = (out[-1].hash, out[-1].seq) if out else (GENESIS, 0)
    for e in local[common:]:
        seq += 1
        moved = AuditEntry(seq, e.time, e.actor, e.action, e.model, e.details, prev)
        moved = AuditEntry(**{**moved.body(), "hash": moved.compute_hash()})
        out.append(moved)
        prev = moved.hash
    return out
