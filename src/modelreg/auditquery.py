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

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.audit import AuditEntry
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.handle import StoreHandle
from modelreg.layout import rel_alias
from modelreg.names import check_alias, check_name

if TYPE_CHECKING:
    from modelreg.refs import AliasEvent

__all__ = ["MOVE_SKEW", "AliasAt", "alias_at", "entries", "format_time", "parse_time"]

# How far the audit entry of an alias move may be stamped after the move itself. Both times
# come from the same clock in the same process under the store lock, the entry's a moment
# later (after the alias file is written and fsynced), so they are equal or a second apart;
# anything outside [0, MOVE_SKEW] means one of the two records was changed.
MOVE_SKEW = timedelta(seconds=60)

_BLOCK = 1 << 16  # bytes read at a time when the trail is read from its end
_MOVES = ("promote", "rollback")  # the actions that move an alias (modelreg.aliases._move)

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


def _action_matcher(action: str) -> tuple[str, bool]:
    """(text, is_prefix) of an action pattern; InvalidInput for a malformed one."""
    if not action.strip():
        raise InvalidInput("the action to match is empty: give one, e.g. promote or release.*")
    head, star, rest = action.partition("*")
    if rest or (star and "*" in head):
        raise InvalidInput(
            f"action {action!r}: only a trailing * is supported (release.*, pull*), or none"
        )
    return head, bool(star)


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

    if limit is None:
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


# -- mreg show NAME@ALIAS --at TIME --------------------------------------------------------


@dataclass(frozen=True)
class AliasAt:
    """Which version an alias pointed at, at `at`: the move that put it there, and until when.

    `move` is the alias history's event (generation, action, version, id, previous, actor,
    time, reason, forced); `until` is the time of the next move (None: it still points
    there), `next` that move; `audit_seq` is the audit entry that records `move`.
    """

    model: str
    alias: str
    at: str
    move: AliasEvent
    until: str | None
    next: AliasEvent | None
    audit_seq: int

    @property
    def version(self) -> str:
        """The version the alias pointed at."""
        return self.move.version

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg show NAME@ALIAS --at TIME`."""
        m = self.move
        return {
            "name": self.model,
            "alias": self.alias,
            "at": self.at,
            "version": m.version,
            "id": m.id,
            "since": m.time,
            "until": self.until,
            "generation": m.generation,
            "action": m.action,
            "actor": m.actor,
            "reason": m.reason,
            "forced": m.forced,
            "previous": m.previous,
            "next": None
            if self.next is None
            else {
                "version": self.next.version,
                "action": self.next.action,
                "actor": self.next.actor,
                "reason": self.next.reason,
                "generation": self.next.generation,
            },
            "audit_seq": self.audit_seq,
        }


def _describe(e: AliasEvent) -> str:
    return f"{e.action} to {e.version} at {e.time} by {e.actor}"


def _describe_entry(e: AuditEntry) -> str:
    d = e.details
    return f"{e.action} to {d.get('version')} at {e.time} by {e.actor}"


def _agrees(event: AliasEvent, e: AuditEntry) -> bool:
    """The audit entry records exactly this move (its time at most MOVE_SKEW later)."""
    d = e.details
    same = (
        e.action == event.action
        and e.actor == event.actor
        and d.get("version") == event.version
        and d.get("id") == event.id
        and d.get("previous") == event.previous
        and d.get("reason", "") == event.reason
        and bool(d.get("forced", False)) == event.forced
    )
    if not same:
        return False
    lag = _stored_time(e.time, f"audit entry {e.seq}") - _stored_time(event.time, "alias move")
    return timedelta(0) <= lag <= MOVE_SKEW


def _chained(trail: list[AuditEntry], i: int) -> bool:
    """Entry `i` is unedited and anchored: its hash is right and the next entry names it."""
    e = trail[i]
    try:
        if e.compute_hash() != e.hash:
            return False
    except (ValueError, RecursionError):
        return False
    return i + 1 == len(trail) or trail[i + 1].prev == e.hash


def alias_at(store: StoreHandle, name: str, alias: str, when: datetime) -> AliasAt:
    """Which version `NAME@ALIAS` pointed at, at `when` (a naive datetime is UTC).

    The alias's moves are its history (generations 1, 2, ... in order); a move stamped at
    time T is in force from T (inclusive) until the next move's time (exclusive), so at the
    exact instant of a move the answer is the version it moved to. The answer is the move of
    the highest generation stamped at or before `when`.

    Every move of the history is cross-checked with the audit trail: each must be recorded by
    a `promote`/`rollback` entry of this model and alias with the same generation, action,
    version, manifest id, previous version, actor, reason and forced flag, stamped at the
    move's time or up to MOVE_SKEW later, whose own hash is intact and which the next entry
    chains to; and every such entry after the last `pull-theirs` of this alias (which records
    local moves replaced by a remote's history) must be in the history.

    Raises:
        NotFound: no such model, or the alias never existed; or it did not exist yet at
            `when` (before its first move) (exit 2).
        IntegrityError: the alias history and the audit trail disagree, or the history is
            malformed (exit 1): the message names both records.
    """
    from modelreg.catalog import require_model
    from modelreg.refs import read_alias

    check_name(name)
    check_alias(alias)
    require_model(store, name)
    ref = read_alias(store, name, alias)
    if ref is None:
        raise NotFound(f"{name}@{alias}: no such alias")
    at = _aware(when).astimezone(timezone.utc)
    where = f"{name}@{alias}"
    history = list(ref.history)
    if [e.generation for e in history] != list(range(1, len(history) + 1)) or (
        history and (history[-1].version, history[-1].id) != (ref.version, ref.id)
    ):
        raise IntegrityError(
            f"{where}: the alias file's history is not a complete sequence of moves ending at "
            f"{ref.version} (generation {ref.generation}); run mreg fsck"
        )
    seqs = _cross_check(store, name, alias, history)
    times = [_stored_time(e.time, f"{where} move {e.generation}") for e in history]
    before = [i for i, t in enumerate(times) if t <= at]
    if not before:
        first = f": its first move was at {history[0].time}" if history else ""
        raise NotFound(f"{where}: {alias} did not exist at {format_time(at)}{first}")
    i = before[-1]
    nxt = history[i + 1] if i + 1 < len(history) else None
    move = history[i]
    return AliasAt(
        name, alias, format_time(at), move, nxt.time if nxt else None, nxt, seqs[move.generation]
    )


def _moves_of(trail: list[AuditEntry], name: str, alias: str) -> list[int]:
    return [
        i
        for i, e in enumerate(trail)
        if e.model == name and e.action in _MOVES and e.details.get("alias") == alias
    ]


def _cross_check(
    store: StoreHandle, name: str, alias: str, history: list[AliasEvent]
) -> dict[int, int]:
    """Check every move of `history` against the trail (see `alias_at`).

    Returns the `seq` of the audit entry recording each generation.
    """
    trail = store.audit.entries()
    where = f"{name}@{alias}"
    moves = _moves_of(trail, name, alias)
    by_gen: dict[int, list[int]] = {}
    for i in moves:
        by_gen.setdefault(_generation(trail[i]), []).append(i)
    used: dict[int, int] = {}  # trail index -> generation
    for event in history:
        candidates = by_gen.get(event.generation, [])
        match = next((i for i in candidates if _agrees(event, trail[i])), None)
        if match is None:
            recorded = (
                f"audit entry {trail[candidates[-1]].seq} records "
                f"{_describe_entry(trail[candidates[-1]])}"
                if candidates
                else "the audit trail has no entry for it"
            )
            raise IntegrityError(
                f"{where}: the alias history and the audit trail disagree: generation "
                f"{event.generation} in the alias file is {_describe(event)}, but {recorded}"
            )
        if not _chained(trail, match):
            raise IntegrityError(
                f"{where}: audit entry {trail[match].seq}, which records generation "
                f"{event.generation} ({_describe(event)}) of the alias history, is not intact "
                "in the hash chain (edited); run mreg verify"
            )
        used[match] = event.generation
    rel = rel_alias(name, alias)
    theirs = [
        i
        for i, e in enumerate(trail)
        if e.action == "pull-theirs" and e.model == name and e.details.get("ref") == rel
    ]
    after = theirs[-1] if theirs else -1
    for i in moves:
        if i > after and i not in used:
            e = trail[i]
            raise IntegrityError(
                f"{where}: the alias history and the audit trail disagree: audit entry {e.seq} "
                f"records generation {_generation(e)}, {_describe_entry(e)}, which the alias "
                "file's history does not have"
            )
    return {generation: trail[i].seq for i, generation in used.items()}


def _generation(e: AuditEntry) -> int:
    try:
        return int(e.details.get("generation", 0))
    except (TypeError, ValueError):
        return 0
