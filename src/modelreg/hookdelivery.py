"""The webhook outbox (issue 19): the audit trail is the outbox, each hook has a cursor.

Every change of the store already appends one entry to the hash-chained trail
(`audit/log.jsonl`), fsynced under the store lock; so the events to deliver are already
durable, in order, before any delivery starts, and nothing else needs writing when an event
happens. Each hook keeps `hooks/NAME.json` (written atomically): the seq, hash and byte
offsets of the last entry it has passed, the ids of the last entries it delivered, and its
retry state. `deliver` POSTs, hook by hook, the entries after the cursor that the hook wants,
in the trail's order, and moves the cursor only after a 2xx answer: a process killed between
the answer and the cursor write sends that entry again (at least once; the `X-Mreg-Delivery`
id lets a receiver drop the copy). A failure stops that hook (order) and sets its next try
after an exponential backoff with jitter (10 s doubling up to an hour; `MREG_HOOK_BACKOFF`
sets the first delay). One process delivers at a time: `locks/hooks.lock`, which commands
only try (a command never waits for it, and delivery never holds the store's write lock).

`after_write` is what `StoreHandle.locked()` calls when a write ends and the store lock is
released: it delivers what is due within `MREG_HOOK_TIMEOUT` seconds (default 2) in total,
and reports a failure through the handle's `notes` (the CLI prints one line on stderr).

A `pull` that re-chains this store's entries after the remote's rewrites the trail; the
cursor then no longer matches, and delivery resumes after the newest of the cursor's marks
(entries it passed) still in place, skipping the ids it delivered already
(docs/hooks.md, "Pulled entries").

Storage layer: the trail, the config and the cursor files, and `urllib` to POST.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.audit import GENESIS, AuditEntry
from modelreg.errors import IntegrityError, LockTimeout
from modelreg.fsutil import atomic_write
from modelreg.hookspec import HookSpec, body, event_id, headers

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "BACKOFF_ENV",
    "TIMEOUT_ENV",
    "Cursor",
    "DeliveryReport",
    "HookResult",
    "after_write",
    "backlog",
    "deliver",
    "end_cursor",
    "post",
    "read_cursor",
    "write_cursor",
]

BACKOFF_ENV = "MREG_HOOK_BACKOFF"
"""Seconds before the first retry of a failed hook (default 10); doubles up to MAX_BACKOFF."""
TIMEOUT_ENV = "MREG_HOOK_TIMEOUT"
"""Seconds a command may spend delivering after its write, in total (default 2)."""
MAX_BACKOFF = 3600.0
RECENT = 256
"""How many delivered entries a cursor remembers (seq, hash, id), to resume after a pull."""


def _env_float(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


# -- the cursor -------------------------------------------------------------------------------


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


def _pending(root: Path, c: Cursor) -> tuple[list[tuple[AuditEntry, int, int]], set[str]]:
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
    entries, skip = _pending(root, c)
    return sum(1 for e, _, _ in entries if spec.wants(e.action) and _id(e) not in skip)


def _id(e: AuditEntry) -> str:
    return event_id(e.to_dict())


# -- posting --------------------------------------------------------------------------------------


def post(url: str, data: bytes, head: dict[str, str], timeout: float) -> str | None:
    """POST `data`; None on a 2xx answer, else why not (one short line, never the URL).

    Redirects are not followed (a 3xx is a failure): a hook's URL is what was configured.
    """
    import http.client
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    req = urllib.request.Request(url, data=data, headers=head, method="POST")
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout) as resp:
            resp.read(1 << 16)
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:g}s"
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return f"cannot connect: {text}"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except (OSError, http.client.HTTPException) as exc:
        return f"connection failed: {type(exc).__name__}"
    return None if 200 <= status < 300 else f"HTTP {status}"


# -- delivering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookResult:
    """What one delivery round did for one hook."""

    hook: str
    delivered: int
    backlog: int
    error: str | None = None
    next_try: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of each hook of `mreg hook deliver`."""
        return {
            "hook": self.hook,
            "delivered": self.delivered,
            "backlog": self.backlog,
            "error": self.error,
            "next_try_in": None
            if self.next_try is None
            else round(max(0.0, self.next_try - time.time()), 1),
        }


@dataclass(frozen=True)
class DeliveryReport:
    """One round of `deliver`: per hook, what was sent and what waits."""

    hooks: tuple[HookResult, ...] = ()
    busy: bool = False
    """Another process was delivering (the round did nothing)."""

    @property
    def failed(self) -> list[HookResult]:
        """The hooks whose delivery failed this round."""
        return [h for h in self.hooks if h.error is not None]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg hook deliver`."""
        return {
            "delivered": sum(h.delivered for h in self.hooks),
            "backlog": sum(h.backlog for h in self.hooks),
            "busy": self.busy,
            "hooks": [h.to_dict() for h in self.hooks],
        }


def _store_label(root: Path) -> str:
    return str(root.parent)


def _deliver_one(
    store: StoreHandle, spec: HookSpec, *, due_only: bool, deadline: float, timeout: float
) -> HookResult:
    root = store.root
    c = read_cursor(root, spec.name)
    if c is None:  # a hook written by hand, or its cursor lost: start at the end, no replay
        c = end_cursor(root)
        write_cursor(root, spec.name, c)
    if due_only and c.next_try > time.time():
        return HookResult(spec.name, 0, backlog(root, spec), None, c.next_try)
    entries, skip = _pending(root, c)
    sent = moved = 0
    error: str | None = None
    for n, (e, start, end) in enumerate(entries):
        eid = _id(e)
        if not spec.wants(e.action) or eid in skip:
            c.passed(e, start, end)
            moved += 1
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break  # out of time, not a failure: the next command or `hook deliver` goes on
        try:
            secret = spec.secret()
        except KeyError:
            error = f"environment variable {spec.secret_env} is not set (the signing secret)"
        else:
            data = body(spec, e.to_dict(), _store_label(root))
            head = headers(spec, data, e.action, eid, secret, int(time.time()))
            error = post(spec.url, data, head, min(timeout, left))
        if error is not None:
            _failed(c, store, error)
            write_cursor(root, spec.name, c)
            waiting = sum(
                1 for x, _, _ in entries[n:] if spec.wants(x.action) and _id(x) not in skip
            )
            return HookResult(spec.name, sent, waiting, error, c.next_try)
        c.passed(e, start, end, sent=True)
        c.last_ok = store.now()
        write_cursor(
            root, spec.name, c
        )  # after the 2xx: a kill before this resends (at least once)
        sent += 1
        moved = 0
    if moved:
        write_cursor(root, spec.name, c)
    return HookResult(spec.name, sent, backlog(root, spec) if entries else 0, None, None)


def _failed(c: Cursor, store: StoreHandle, error: str) -> None:
    c.attempts += 1
    base = _env_float(BACKOFF_ENV, 10.0)
    jitter = random.uniform(0.8, 1.0)  # so that hooks failing together retry apart
    delay = min(MAX_BACKOFF, base * 2 ** min(c.attempts - 1, 20)) * jitter
    c.next_try = time.time() + delay
    c.last_error, c.last_error_time = error, store.now()


def deliver(
    store: StoreHandle,
    *,
    hooks: dict[str, HookSpec] | None = None,
    due_only: bool = False,
    budget: float | None = None,
    timeout: float = 10.0,
    wait: bool = True,
) -> DeliveryReport:
    """Deliver what waits, hook by hook, in the trail's order; one round.

    `hooks` (default: the store's config) are delivered under `locks/hooks.lock`, waited for
    (`wait`, up to MREG_LOCK_TIMEOUT) or only tried (a busy report when taken). `due_only`
    skips hooks backing off after a failure; `budget` bounds the round's seconds in total and
    `timeout` each request.
    """
    from modelreg.locking import StoreLock

    specs = store.config.hooks if hooks is None else hooks
    if not specs:
        return DeliveryReport()
    deadline = time.monotonic() + (budget if budget is not None else 1e9)
    try:
        with StoreLock(store.root / layout.HOOKS_LOCK).hold(None if wait else 0):
            results = tuple(
                _deliver_one(store, spec, due_only=due_only, deadline=deadline, timeout=timeout)
                for _, spec in sorted(specs.items())
            )
    except LockTimeout:
        if wait:
            raise
        return DeliveryReport(busy=True)
    return DeliveryReport(results)


def after_write(store: StoreHandle, note: Callable[[str], None] | None) -> None:
    """Deliver what is due after a write, within MREG_HOOK_TIMEOUT seconds; never raises.

    Skipped at once when no hook is behind the trail's end, or when another process is
    delivering. A failure is reported through `note` (one line), never raised: the write it
    follows has succeeded, and its exit code stays what it was.
    """
    specs = store.config.hooks
    try:
        size = (store.root / layout.AUDIT_LOG).stat().st_size
    except OSError:
        return
    behind = {}
    for name, spec in specs.items():
        try:
            c = read_cursor(store.root, name)
        except IntegrityError as exc:
            _say(note, str(exc))
            continue
        if c is None or (c.end != size and c.next_try <= time.time()):
            behind[name] = spec
    if not behind:
        return
    budget = _env_float(TIMEOUT_ENV, 2.0)
    try:
        report = deliver(
            store, hooks=behind, due_only=True, budget=budget, timeout=budget, wait=False
        )
    except (IntegrityError, OSError) as exc:
        _say(note, f"webhooks not delivered: {exc}")
        return
    for h in report.failed:
        wait = (
            "" if h.next_try is None else f", next try in {max(0, h.next_try - time.time()):.0f}s"
        )
        _say(
            note,
            f"hook {h.hook}: delivery failed ({h.error}); {h.backlog} event(s) wait{wait} "
            "(mreg hook list, mreg hook deliver)",
        )


def _say(note: Callable[[str], None] | None, text: str) -> None:
    if note is not None:
        note(text)
        return
    import logging

    logging.getLogger("modelreg.hooks").warning("%s", text)
