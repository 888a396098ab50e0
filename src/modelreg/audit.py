"""The append-only, hash-chained audit trail: `audit/log.jsonl`.

Each line is one JSON entry: `seq`, `time`, `actor`, `action`, `model`, `details`, the
`prev` hash (the previous entry's `hash`, or 64 zeros for the first) and its own `hash`, the
SHA-256 of the entry's canonical JSON without `hash`. Editing, inserting, reordering or
deleting an entry breaks the chain, which `verify` reports. Appends happen under the store
lock with O_APPEND and fsync; a line torn by a crash (no final newline) is ignored by
readers and cut off by the next append.

After each append, `audit/head.json` records the last entry's `seq` and `hash` (replaced
atomically). A chain alone cannot show that its last entries were cut off; the head can:
`verify` reports a log that ends before the head. (A crash between the append and the head
update leaves the head one entry behind, which is accepted; the next append first brings
a lagging head up to date.)

Which commands append which `action`, with which `details`, is listed in
docs/store-format.md ("Audit actions"); a command that changes nothing appends nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import atomic_write

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "action_matches", "action_pattern", "head_bytes"]

GENESIS = "0" * 64
_TAIL_BYTES = 1 << 16


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class AuditEntry:
    """One audited state change."""

    seq: int
    time: str
    actor: str
    action: str
    model: str | None
    details: dict[str, Any] = field(default_factory=dict)
    prev: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """The hashed part of the entry (everything but `hash`)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "model": self.model,
            "details": self.details,
            "prev": self.prev,
        }

    def line(self) -> bytes:
        """The entry as stored: canonical JSON and a newline."""
        return _canonical(self.to_dict()) + b"\n"

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON body."""
        return hashlib.sha256(_canonical(self.body())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The stored line, and the `--json` shape of `mreg log`."""
        return {**self.body(), "hash": self.hash}

    @classmethod
    def parse(cls, line: bytes) -> AuditEntry:
        """One stored line as an entry; ValueError for anything unreadable.

        That includes JSON nested too deeply for the parser (a RecursionError, which used to
        escape as an internal error, issue 15) and lines of the wrong shape.
        """
        try:
            return cls.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ValueError(f"unreadable audit entry ({type(exc).__name__})") from None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AuditEntry:
        """Parse a stored line (KeyError/TypeError on a malformed one)."""
        return cls(
            seq=int(doc["seq"]),
            time=str(doc["time"]),
            actor=str(doc["actor"]),
            action=str(doc["action"]),
            model=doc["model"],
            details=dict(doc["details"]),
            prev=str(doc["prev"]),
            hash=str(doc["hash"]),
        )


def action_pattern(action: str) -> tuple[str, bool]:
    """(text, is_prefix) of an action pattern; InvalidInput for a malformed one.

    An exact action (`promote`), or a prefix ending in a single `*` (`release.*`, `pull*`,
    `*`): the one grammar of `mreg log --action` and of `mreg hook add --event`.
    """
    if not action.strip():
        raise InvalidInput("the action to match is empty: give one, e.g. promote or release.*")
    head, star, rest = action.partition("*")
    if rest or (star and "*" in head):
        raise InvalidInput(
            f"action {action!r}: only a trailing * is supported (release.*, pull*), or none"
        )
    return head, bool(star)


def action_matches(pattern: tuple[str, bool], action: str) -> bool:
    """True when `action` matches a pattern of `action_pattern`."""
    text, prefix = pattern
    return action.startswith(text) if prefix else action == text


def head_bytes(last: AuditEntry | None) -> bytes:
    """The `audit/head.json` of a log whose last entry is `last` (None: an empty log)."""
    return _canonical({"seq": last.seq, "hash": last.hash} if last else {"seq": 0, "hash": GENESIS})


class AuditLog:
    """The log file at `path`; `append` must be called under the store lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.parent / "head.json"

    def append(
        self, *, time: str, actor: str, action: str, model: str | None, details: dict[str, Any]
    ) -> AuditEntry:
        """Append one entry chained to the last complete one; fsync before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            last = self._last_complete(fd)
            if last is not None and self._head_lags(last):
                # A crash after the previous append left the head behind: bring it up first,
                # so a crash after this append leaves it one entry behind, never more (#8).
                atomic_write(self.head_path, head_bytes(last))
            seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
            entry = AuditEntry(seq, time, actor, action, model, details, prev)
            entry = AuditEntry(**{**entry.body(), "hash": entry.compute_hash()})
            os.write(fd, entry.line())
            os.fsync(fd)
        finally:
            os.close(fd)
        atomic_write(self.head_path, head_bytes(entry))
        return entry

    def _head_lags(self, last: AuditEntry) -> bool:
        """True when the head names an entry before `last` (or is absent after the first one).

        An unreadable head, or one absent after several entries, is left for verify to report.
        """
        try:
            return 0 <= int(json.loads(self.head_path.read_bytes())["seq"]) < last.seq
        except FileNotFoundError:  # the first append was killed before it wrote the head
            return last.seq == 1
        except (ValueError, KeyError, TypeError, RecursionError):
            return False

    def last(self) -> AuditEntry | None:
        """The last complete entry (None: an empty log), read only: a torn tail is left alone.

        Raises:
            IntegrityError: the last complete line is unreadable, so nothing can be appended
                (commands that must audit what they do check this before they act).
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return self._last_complete(fd, cut=False)
        finally:
            os.close(fd)

    def _last_complete(self, fd: int, *, cut: bool = True) -> AuditEntry | None:
        """The last newline-terminated entry; cut off a torn tail left by a crash (`cut`)."""
        end = os.lseek(fd, 0, os.SEEK_END)
        if end == 0:
            return None
        window = _TAIL_BYTES
        while True:  # widen the window until it holds the last complete line
            start = max(0, end - window)
            tail = os.pread(fd, end - start, start)
            nl = tail.rfind(b"\n")
            prev_nl = tail.rfind(b"\n", 0, nl) if nl >= 0 else -1
            if start == 0 or prev_nl >= 0:
                break
            window *= 2
        if nl + 1 < len(tail) and cut:  # a torn final line from an interrupted append: drop it
            os.ftruncate(fd, start + nl + 1)
        if nl < 0:
            return None
        line = tail[prev_nl + 1 : nl]
        try:
            return AuditEntry.parse(line)
        except ValueError:
            raise IntegrityError(
                f"{self.path}: last entry is unreadable; run mreg verify"
            ) from None

    def entries(self) -> list[AuditEntry]:
        """Every complete entry in order (a torn last line is skipped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        lines = data.split(b"\n")
        for lineno, line in enumerate(lines[:-1], 1):  # the last piece is "" or a torn line
            try:
                out.append(AuditEntry.parse(line))
            except ValueError:
                raise IntegrityError(f"{self.path}:{lineno}: unreadable audit entry") from None
        return out

    def verify(self) -> list[str]:
        """Problems with the chain (empty when intact): edited, missing or reordered entries."""
        try:
            entries = self.entries()
        except IntegrityError as exc:
            return [str(exc)]
        problems = []
        prev, seq = GENESIS, 0
        for e in entries:
            try:
                edited = e.compute_hash() != e.hash
            except (ValueError, RecursionError):  # details nested too deeply to re-encode
                edited = True
            if edited:
                problems.append(f"audit entry {e.seq}: content does not match its hash (edited)")
            if e.prev != prev or e.seq != seq + 1:
                problems.append(
                    f"audit entry {e.seq}: chain broken after entry {seq} (deleted or reordered)"
                )
            prev, seq = e.hash, e.seq
        try:
            if self.path.read_bytes()[-1:] not in (b"", b"\n"):
                problems.append("audit log ends with a torn line (an interrupted write)")
        except FileNotFoundError:
            pass
        problems.extend(self._check_head(entries))
        return problems

    def _check_head(self, entries: list[AuditEntry]) -> list[str]:
        try:
            head = json.loads(self.head_path.read_bytes())
            seq, digest = int(head["seq"]), str(head["hash"])
        except FileNotFoundError:  # one entry: the first append, killed before its head
            return ["audit head is missing: entries may have been deleted"] if entries[1:] else []
        except (ValueError, KeyError, TypeError, RecursionError):
            return [f"{self.head_path}: unreadable"]
        last = entries[-1].seq if entries else 0
        if last < seq:
            return [f"audit trail ends at entry {last} but entry {seq} was written: deleted"]
        # Entries after the head are accepted: each crash between an append (or a pull's
        # rewrite) and the head update leaves it behind; the entry it names must still be
        # there, unchanged (#8, found by the crash suite).
        recorded = next((e for e in entries if e.seq == seq), None)
        if recorded is not None and recorded.hash != digest:
            return [f"audit entry {seq} differs from the one recorded as the head: rewritten"]
        return []
