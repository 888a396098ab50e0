"""`mreg show NAME@ALIAS --at TIME`: which version an alias pointed at, at a time (issue 18).

Answered from the alias's move history, cross-checked with the hash-chained audit trail:
when they disagree the store is damaged, and the answer is refused rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from modelreg.audit import AuditEntry
from modelreg.errors import IntegrityError, NotFound
from modelreg.handle import StoreHandle
from modelreg.layout import rel_alias
from modelreg.names import check_alias, check_name

if TYPE_CHECKING:
    from modelreg.refs import AliasEvent

from modelreg.auditquery import _aware, _stored_time, format_time

__all__ = ["MOVE_SKEW", "AliasAt", "alias_at"]

MOVE_SKEW = timedelta(seconds=60)
_MOVES = ("promote", "rollback")  # the actions that move an alias (modelreg.aliases._move)


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
