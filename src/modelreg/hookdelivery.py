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
sets the first delay). One process delivers at a time: `locks/hooks.lock`, which a command
waits for only within its delivery budget (and delivery never holds the store's write lock).
The cursors are `modelreg.hookcursor`.

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

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.audit import AuditEntry
from modelreg.errors import IntegrityError, LockTimeout
from modelreg.hookcursor import (
    Cursor,
    backlog,
    end_cursor,
    entry_id,
    pending,
    read_cursor,
    wanted,
    write_cursor,
)
from modelreg.hookspec import HookSpec, body, headers

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "BACKOFF_ENV",
    "TIMEOUT_ENV",
    "DeliveryReport",
    "HookResult",
    "after_write",
    "deliver",
    "post",
]

BACKOFF_ENV = "MREG_HOOK_BACKOFF"
"""Seconds before the first retry of a failed hook (default 10); doubles up to MAX_BACKOFF."""
TIMEOUT_ENV = "MREG_HOOK_TIMEOUT"
"""Seconds a command may spend delivering after its write, in total (default 2)."""
MAX_BACKOFF = 3600.0


def _env_float(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


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
    sent = 0
    while True:  # until the trail has nothing new: entries appended meanwhile go out too
        entries, skip = pending(root, c)
        if not entries:
            return HookResult(spec.name, sent, 0)
        for n, (e, start, end) in enumerate(entries):
            eid = entry_id(e)
            if not spec.wants(e.action) or eid in skip:
                c.passed(e, start, end)
                continue
            left = deadline - time.monotonic()
            if left <= 0:  # out of time, not a failure: a later command or `hook deliver` goes on
                write_cursor(root, spec.name, c)
                return HookResult(spec.name, sent, wanted(spec, entries[n:], skip))
            error = _send(store, spec, e, eid, min(timeout, left))
            if error is not None:
                _failed(c, store, error)
                write_cursor(root, spec.name, c)
                return HookResult(
                    spec.name, sent, wanted(spec, entries[n:], skip), error, c.next_try
                )
            c.passed(e, start, end, sent=True)
            c.last_ok = store.now()
            write_cursor(root, spec.name, c)  # after the 2xx: killed before this, it is resent
            sent += 1
        write_cursor(root, spec.name, c)


def _send(
    store: StoreHandle, spec: HookSpec, e: AuditEntry, eid: str, timeout: float
) -> str | None:
    """POST one entry to the hook, signed; None when it was accepted (2xx), else why not."""
    try:
        secret = spec.secret()
    except KeyError:
        return f"environment variable {spec.secret_env} is not set (the signing secret)"
    data = body(spec, e.to_dict(), _store_label(store.root))
    return post(
        spec.url, data, headers(spec, data, e.action, eid, secret, int(time.time())), timeout
    )


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
    wait: float | None = None,
) -> DeliveryReport:
    """Deliver what waits, hook by hook, in the trail's order; one round.

    `hooks` (default: the store's config) are delivered under `locks/hooks.lock`, waited for
    up to `wait` seconds (None: MREG_LOCK_TIMEOUT, then LockTimeout; a number: then a busy
    report). `due_only`
    skips hooks backing off after a failure; `budget` bounds the round's seconds in total and
    `timeout` each request.
    """
    from modelreg.locking import StoreLock

    specs = store.config.hooks if hooks is None else hooks
    if not specs:
        return DeliveryReport()
    deadline = time.monotonic() + (budget if budget is not None else 1e9)
    try:
        with StoreLock(store.root / layout.HOOKS_LOCK).hold(wait):
            results = tuple(
                _deliver_one(store, spec, due_only=due_only, deadline=deadline, timeout=timeout)
                for _, spec in sorted(specs.items())
            )
    except LockTimeout:
        if wait is None:
            raise
        return DeliveryReport(busy=True)
    return DeliveryReport(results)


def after_write(store: StoreHandle, note: Callable[[str], None] | None) -> None:
    """Deliver what is due after a write, within MREG_HOOK_TIMEOUT seconds; never raises.

    Skipped at once when no hook is behind the trail's end. When another process is
    delivering, it waits for it within the same budget (that process re-reads the trail
    before it stops, so it usually delivers this write's entry itself). A failure is
    reported through `note` (one line), never raised: the write it follows has succeeded,
    and its exit code stays what it was.
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
            store, hooks=behind, due_only=True, budget=budget, timeout=budget, wait=budget
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
