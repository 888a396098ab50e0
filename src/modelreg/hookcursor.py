"""Where each webhook is in the audit trail (issue 19): `hooks/NAME.json`, its cursor.

A cursor holds the seq, hash and byte offsets of the last entry its hook has passed, so the
entries after it are read from that offset (the trail is only ever appended to, except by a
pull that re-chains it). It also remembers `marks` (seq and hash of earlier entries: the
last few, then one per power of two back) and `recent` (seq, hash and id of the last 256
entries delivered). After a pull re-chained this store's unpushed entries after the
remote's, the newest of those still in place is where the trail the hook saw and the new
one agree; from there, the ids already delivered are skipped (docs/hooks.md, "Pulled
entries"). `modelreg.hookdelivery` moves cursors; this module reads and writes them.

Storage layer: the trail (`audit/log.jsonl`) and the cursor files, written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.audit import GENESIS, AuditEntry
from modelreg.errors import IntegrityError
from modelreg.fsutil import atomic_write
from modelreg.hookspec import HookSpec, event_id

__all__ = [
    "RECENT",
    "Cursor",
    "backlog",
    "end_cursor",
    "entry_id",
    "pending",
    "read_cursor",
    "wanted",
    "write_cursor",
]

RECENT = 256
"""How many delivered entries a cursor remembers (seq, hash, id), to resume after a pull."""


@dataclass
class Cursor:
    """Where a hook is in the trail (`hooks/NAME.json`), and how its deliveries went."""

    seq: int = 0
    hash: str = GENESIS
    start: int = 0
    """Byte offset of the cursor's entry in `audit/log.jsonl` (0 before the first)."""
    end: int = 0
    """Byte offset just after it: where the entries to deliver begin."""
    recent: list[tuple[int, str, str]] = field(default_factory=list)
    marks: list[tuple[int, str]] = field(default_factory=list)
    """(seq, hash) of entries at or before the cursor: the last few, then one per power of
    two further back. After a pull rewrote the trail, the newest still in place is where
    the trail the hook saw and the new one agree."""
    delivered: int = 0
    attempts: int = 0
    next_try: float = 0.0
    last_ok: str | None = None
    last_error: str | None = None
    last_error_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document of `hooks/NAME.json`."""
        return {
            "kind": "HookCursor",
            "seq": self.seq,
            "hash": self.hash,
            "start": self.start,
            "end": self.end,
            "recent": [list(r) for r in self.recent],
            "marks": [list(m) for m in self.marks],
            "delivered": self.delivered,
            "attempts": self.attempts,
            "next_try": self.next_try,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Cursor:
        """Parse a cursor document (KeyError, TypeError or ValueError when malformed)."""
        if doc.get("kind") != "HookCursor":
            raise ValueError("not a hook cursor")
        return cls(
            int(doc["seq"]), str(doc["hash"]), int(doc["start"]), int(doc["end"]),
            [(int(s), str(h), str(i)) for s, h, i in doc["recent"]],
            [(int(s), str(h)) for s, h in doc.get("marks", [])], int(doc["delivered"]),
            int(doc["attempts"]), float(doc["next_try"]), doc.get("last_ok"),
            doc.get("last_error"), doc.get("last_error_time"),
        )  # fmt: skip

    def passed(self, e: AuditEntry, start: int, end: int, *, sent: bool = False) -> None:
        """Move past entry `e` (at bytes `start:end`); `sent`: it was delivered."""
        self.seq, self.hash, self.start, self.end = e.seq, e.hash, start, end
        self.marks = _thin([*self.marks, (e.seq, e.hash)], e.seq)
        if sent:
            self.recent = [*self.recent, (e.seq, e.hash, event_id(e.to_dict()))][-RECENT:]
            self.delivered += 1
            self.attempts, self.next_try = 0, 0.0


def _thin(marks: list[tuple[int, str]], seq: int) -> list[tuple[int, str]]:
    """Keep the last 16 marks, and the oldest of those `2**k` to `2**(k+1)` entries back."""
    keep = marks[-16:]
    buckets: dict[int, tuple[int, str]] = {}
    for m in marks[:-16]:
        buckets.setdefault((seq - m[0]).bit_length(), m)
    return sorted({*buckets.values(), *keep})


def read_cursor(root: Path, hook: str) -> Cursor | None:
    """A hook's cursor (None: no file); IntegrityError when the file is unreadable."""
    path = layout.hook_state(root, hook)
    try:
        return Cursor.from_dict(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise IntegrityError(
            f"{path}: unreadable hook cursor; mreg hook remove {hook} and add it again"
        ) from None


def write_cursor(root: Path, hook: str, cursor: Cursor) -> None:
    """Replace a hook's cursor atomically (temp, fsync, rename)."""
    doc = json.dumps(cursor.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    atomic_write(layout.hook_state(root, hook), doc + b"\n")


# -- reading the trail from a cursor ------------------------------------------------------------


def _entries_from(path: Path, offset: int) -> list[tuple[AuditEntry, int, int]]:
    """Every complete entry from byte `offset` on, with its start and end offsets."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return []
    out, pos = [], offset
    for line in data.split(b"\n")[:-1]:  # the last piece is "" or a torn line
        try:
            e = AuditEntry.parse(line)
        except ValueError:
            raise IntegrityError(f"{path}: unreadable audit entry at byte {pos}") from None
        out.append((e, pos, pos + len(line) + 1))
        pos += len(line) + 1
    return out


def _still_there(path: Path, c: Cursor) -> bool:
    """True when the cursor's entry is still at its bytes (the trail was only appended to)."""
    if c.seq == 0:
        return c.end == 0
    try:
        with open(path, "rb") as fh:
            fh.seek(c.start)
            line = fh.read(c.end - c.start)
        e = AuditEntry.parse(line.rstrip(b"\n"))
    except (OSError, ValueError):
        return False
    return line.endswith(b"\n") and (e.seq, e.hash) == (c.seq, c.hash)


def pending(root: Path, c: Cursor) -> tuple[list[tuple[AuditEntry, int, int]], set[str]]:
    """The entries after the cursor, and the ids among them delivered already.

    When the trail was rewritten (a pull re-chained local entries after the remote's), the
    newest entry the cursor remembers (its marks and deliveries) that is still in place is
    the anchor: up to it, the trail is the one the hook saw; after it, the ids it delivered
    are skipped. None in place: from the start.
    """
    path = root / layout.AUDIT_LOG
    if _still_there(path, c):
        return _entries_from(path, c.end), set()
    everything = _entries_from(path, 0)
    at = {e.seq: i for i, (e, _, _) in enumerate(everything)}
    anchor = 0
    candidates = sorted({(c.seq, c.hash), *c.marks, *((r[0], r[1]) for r in c.recent)})
    for seq, digest in reversed(candidates):
        i = at.get(seq)
        if i is not None and everything[i][0].hash == digest:
            anchor = i + 1
            break
    return everything[anchor:], {i for _, _, i in c.recent}


def end_cursor(root: Path) -> Cursor:
    """A cursor at the current end of the trail: a new hook starts there (no replay)."""
    entries = _entries_from(root / layout.AUDIT_LOG, 0)
    c = Cursor()
    if entries:
        e, start, end = entries[-1]
        c.passed(e, start, end)
        back = [*range(1, 16), *(2**k for k in range(4, len(entries).bit_length()))]
        c.marks = sorted(
            {(x.seq, x.hash) for x, _, _ in (entries[-1 - b] for b in back if b < len(entries))}
            | {(e.seq, e.hash)}
        )
    return c


def backlog(root: Path, spec: HookSpec) -> int:
    """How many entries wait for this hook (0 when it has no cursor)."""
    c = read_cursor(root, spec.name)
    if c is None:
        return 0
    entries, skip = pending(root, c)
    return wanted(spec, entries, skip)


def entry_id(e: AuditEntry) -> str:
    """The delivery id of an entry (`hookspec.event_id`)."""
    return event_id(e.to_dict())


def wanted(spec: HookSpec, entries: list[tuple[AuditEntry, int, int]], skip: set[str]) -> int:
    """How many of `entries` the hook wants and has not delivered."""
    return sum(1 for e, _, _ in entries if spec.wants(e.action) and entry_id(e) not in skip)
