"""Audit queries (issue 18): which entries of the trail, and which version an alias named when.

Two questions, both answered from the store's own records:

- `entries`: the audit entries matching a model, a time window, an actor and an action,
  optionally only the newest N (`mreg log`). It reads the trail (`audit/log.jsonl`) now; a
  derived index may answer it later with the same signature and the same semantics, which
  are therefore spelled out exactly in its docstring.
- `alias_at`: which version an alias pointed at, at a given time, with the move that put it
  there and the time it stayed until (`mreg show NAME@ALIAS --at TIME`). The answer comes from
  the alias file's history and is cross-checked against the hash-chained audit trail: when
  the two disagree the store is damaged, and the answer is an `IntegrityError`, never a guess.

`parse_time` reads the times people type (`2026-11-01`, `2026-11-01T12:00:00Z`, `2h`, `7d`)
for the CLI. Domain layer (docs/architecture.md): everything here takes a `StoreHandle`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.audit import AuditEntry
from modelreg.audit import action_pattern as _action_matcher
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.handle import StoreHandle
from modelreg.names import check_name

if TYPE_CHECKING:
    pass

__all__ = ["entries", "format_time", "parse_time"]

# How far the audit entry of an alias move may be stamped after the move itself. Both times
# come from the same clock in the same process under the store lock, the entry's a moment
# later (after the alias file is written and fsynced), so they are equal or a second apart;
# anything outside [0, MOVE_SKEW] means one of the two records was changed.

_BLOCK = 1 << 16  # bytes read at a time when the trail is read from its end

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_STAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"(Z|z|[+-]\d{2}:?\d{2})?"
)
_SPAN = re.compile(r"(\d{1,9})([smhdw])")
_SPANS = re.compile(r"(?:\d{1,9}[smhdw])+")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HOW = (
    "write a date (2026-11-01), a timestamp (2026-11-01T12:00:00Z; UTC unless it has an "
    "offset) or a duration ago (30m, 2h, 7d, 1d12h)"
)


# -- times ----------------------------------------------------------------------------------


def parse_time(text: str, now: datetime) -> datetime:
    """The time `text` names, as an aware UTC datetime; InvalidInput (exit 2) if it names none.

    Accepted:

    - a date, `2026-11-01`: its midnight, UTC;
    - a timestamp, `2026-11-01T12:00`, `2026-11-01T12:00:00Z`, `2026-11-01 12:00:00.5+02:00`:
      UTC unless it carries an offset (the audit trail records UTC);
    - a duration before `now`: one or more NUMBER UNIT pairs, units `s`, `m` (minutes), `h`,
      `d`, `w`, optionally followed by ` ago`: `30m`, `2h`, `7d ago`, `1d12h`;
    - `now`.
    """
    s = text.strip()
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    try:
        if s.lower() == "now":
            return now.astimezone(timezone.utc)
        span = s.removesuffix(" ago").replace(" ", "")
        if _SPANS.fullmatch(span):
            seconds = sum(int(n) * _UNIT[u] for n, u in _SPAN.findall(span))
            return now.astimezone(timezone.utc) - timedelta(seconds=seconds)
        if _DATE.fullmatch(s):
            return datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        m = _STAMP.fullmatch(s)
        if m is not None:
            date, clock, zone = m.groups()
            whole, dot, fraction = clock.partition(".")
            if dot:  # Python 3.10 reads 3 or 6 digits only
                clock = f"{whole}.{fraction.ljust(6, '0')}"
            when = datetime.fromisoformat(f"{date}T{clock}")
            if zone is None or zone in "Zz":
                return when.replace(tzinfo=timezone.utc)
            offset = zone.replace(":", "")
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            tz = timezone(delta if offset[0] == "+" else -delta)
            return when.replace(tzinfo=tz).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        pass
    raise InvalidInput(f"{text!r} is not a time: {_HOW}")


def format_time(when: datetime) -> str:
    """`when` in UTC as the trail writes times (`2026-11-25T08:50:48Z`; fractions kept)."""
    utc = _aware(when).astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _stored_time(text: str, where: str) -> datetime:
    """A time as stored in the trail or an alias file; IntegrityError when it is not one."""
    try:
        when = datetime.fromisoformat(text[:-1] if text.endswith("Z") else text)
    except ValueError:
        raise IntegrityError(f"{where}: unreadable time {text!r}") from None
    return _aware(when)


# -- mreg log -------------------------------------------------------------------------------


def entries(
    store: StoreHandle,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """The audit entries that match every filter given, in the trail's order (newest last).

    Filters (each None: no filter):

    - `model`: entries whose `model` is exactly this name (entries of no model, such as
      `push`, `pull` and `gc`, never match a model).
    - `since`, `until`: the half-open window `since <= time < until`, comparing the entry's
      recorded `time` (UTC, whole seconds) as an instant: an entry stamped exactly at `since`
      is included, one stamped exactly at `until` is not, so consecutive windows never share
      an entry. A naive datetime is taken as UTC. `since >= until` is InvalidInput (exit 2),
      not an empty answer.
    - `actor`: entries whose `actor` is exactly this string (case-sensitive, whole string:
      `Alice <alice@example.com>`).
    - `action`: an exact action (`promote` matches `promote` only), or a prefix ending in a
      single `*`: `release.*` matches every action starting with `release.`, `pull*` matches
      `pull` and `pull-theirs`, `*` matches all. A `*` anywhere else, or an empty pattern, is
      InvalidInput.
    - `limit`: at most this many of the matching entries, the newest ones (the last in the
      trail's order, which is the `seq` order); must be at least 1.

    "Newest" and the order of the answer are the trail's order (`seq`), not the `time`
    values, which a clock step or a merged pull may leave out of order; the time window is
    applied to each entry on its own.

    Raises:
        NotFound: `model` is given, no entry matched, and the store has no such model.
        InvalidInput: a malformed filter (above), a `limit` below 1.
        IntegrityError: an entry that had to be read is unreadable (exit 1). With `limit`,
            the trail is read from its end and only as far back as needed, so damage further
            back is left to `mreg verify`.
    """
    if model is not None:
        check_name(model)
    if limit is not None and limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    if actor is not None and not actor.strip():
        raise InvalidInput("the actor to match is empty")
    lo = _aware(since) if since is not None else None
    hi = _aware(until) if until is not None else None
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidInput(
            f"since {format_time(lo)} is not before until {format_time(hi)}: "
            "the window since <= time < until is empty"
        )
    pattern = _action_matcher(action) if action is not None else None

    def keep(e: AuditEntry) -> bool:
        if model is not None and e.model != model:
            return False
        if actor is not None and e.actor != actor:
            return False
        if pattern is not None:
            text, prefix = pattern
            if not (e.action.startswith(text) if prefix else e.action == text):
                return False
        if lo is not None or hi is not None:
            when = _stored_time(e.time, f"audit entry {e.seq}")
            if (lo is not None and when < lo) or (hi is not None and when >= hi):
                return False
        return True

    indexed = _from_index(store, model, actor, pattern, keep, limit)
    if indexed is not None:
        found = indexed
    elif limit is None:
        found = [e for e in store.audit.entries() if keep(e)]
    else:
        found = []
        for e in _newest_first(store.audit.path):
            if keep(e):
                found.append(e)
                if len(found) == limit:
                    break
        found.reverse()
    if model is not None and not found:
        # an unknown model is invalid input everywhere, as in `history` (issue 13)
        from modelreg.catalog import require_model

        require_model(store, model)
    return found


def _from_index(
    store: StoreHandle,
    model: str | None,
    actor: str | None,
    pattern: tuple[str, bool] | None,
    keep: Callable[[AuditEntry], bool],
    limit: int | None,
) -> list[AuditEntry] | None:
    """The matching entries from the derived index (None: no index here, read the trail).

    The index selects by model, actor and action and walks newest first; the time window
    and every other test are applied by `keep`, exactly as on the trail.
    """
    from modelreg.index import open_index

    where: list[str] = ["1"]
    params: list[str | int] = []
    if model is not None:
        where.append("model = ?")
        params.append(model)
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if pattern is not None:
        text, prefix = pattern
        if prefix:
            where.append("substr(action, 1, ?) = ?")
            params += [len(text), text]
        else:
            where.append("action = ?")
            params.append(text)
    with open_index(store) as idx:
        if idx is None:
            return None
        rows = idx.conn.execute(
            f"SELECT line FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC",
            params,
        )
        found = []
        for (line,) in rows:
            e = AuditEntry.from_dict(json.loads(line))
            if keep(e):
                found.append(e)
                if limit is not None and len(found) == limit:
                    break
    found.reverse()
    return found


def _newest_first(path: Path, block: int = _BLOCK) -> Iterator[AuditEntry]:
    """The trail's complete entries from the last to the first, reading `block` bytes at a time.

    Memory stays within one block plus the longest line. A torn final line (no newline: an
    interrupted append) is skipped, as `AuditLog.entries` skips it. The end of the file is
    taken once, so entries appended meanwhile are not seen.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        pos = os.lseek(fd, 0, os.SEEK_END)
        buf = b""
        torn_dropped = False
        while True:
            nl = buf.rfind(b"\n")
            if not torn_dropped and (nl >= 0 or pos == 0):
                buf = buf[:nl] if nl >= 0 else b""  # the part after the last newline is torn
                torn_dropped = True
                continue
            if torn_dropped and nl >= 0:
                line, buf = buf[nl + 1 :], buf[:nl]
                yield _parse(line, path, pos + nl + 1)
                continue
            if pos == 0:
                if torn_dropped and buf:
                    yield _parse(buf, path, 0)
                return
            start = max(0, pos - block)
            buf = os.pread(fd, pos - start, start) + buf
            pos = start
    finally:
        os.close(fd)


def _parse(line: bytes, path: Path, offset: int) -> AuditEntry:
    try:
        return AuditEntry.parse(line)
    except ValueError:
        raise IntegrityError(
            f"{path}: unreadable audit entry at byte {offset}; run mreg verify"
        ) from None
