"""Moving refs: promote and roll back aliases (through promotion gates), deprecate, tag.

Every change runs under the store lock, re-reads the current state inside it, writes the
ref file atomically and then appends to the audit trail. Repeating a change that is already
in effect (promoting the version an alias already points at, re-adding a tag) changes
nothing and succeeds, so CI steps can be re-run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelreg.catalog import has_versions, load_version, resolve
from modelreg.credentials import check_text
from modelreg.errors import Conflict, GateFailed, InvalidInput, NotFound, TransitionRefused
from modelreg.handle import StoreHandle
from modelreg.lineage import default_author
from modelreg.manifest import ModelVersion
from modelreg.manifest_credentials import FIXES
from modelreg.names import Version, check_alias, check_name, check_tag
from modelreg.refs import (
    AliasEvent,
    AliasRef,
    VersionState,
    list_aliases,
    read_alias,
    read_state,
    write_alias,
    write_state,
)

__all__ = [
    "AliasChange",
    "AliasEvent",
    "Deprecation",
    "TagChange",
    "check_gates",
    "deprecate",
    "history",
    "promote",
    "rollback",
    "tag",
]


@dataclass(frozen=True)
class AliasChange:
    """The result of promote or rollback."""

    model: str
    alias: str
    version: str
    id: str
    previous: str | None
    generation: int
    action: str
    changed: bool
    reason: str = ""
    forced: bool = False
    failed_gates: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg promote` and `mreg rollback`."""
        return {
            "name": self.model,
            "alias": self.alias,
            "version": self.version,
            "id": self.id,
            "previous": self.previous,
            "generation": self.generation,
            "action": self.action,
            "changed": self.changed,
            "reason": self.reason,
            "forced": self.forced,
            "failed_gates": list(self.failed_gates),
        }


@dataclass(frozen=True)
class Deprecation:
    """The result of deprecate."""

    model: str
    version: str
    reason: str
    changed: bool
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg deprecate`."""
        return {
            "name": self.model,
            "version": self.version,
            "reason": self.reason,
            "changed": self.changed,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class TagChange:
    """The result of tag: the version's tags after the change."""

    model: str
    version: str
    tags: tuple[str, ...]
    added: tuple[str, ...] = field(default=())
    removed: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """True when a tag was added or removed."""
        return bool(self.added or self.removed)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg tag`."""
        return {
            "name": self.model,
            "version": self.version,
            "tags": list(self.tags),
            "added": list(self.added),
            "removed": list(self.removed),
        }


def check_gates(store: StoreHandle, alias: str, mv: ModelVersion) -> list[str]:
    """The gate conditions of `alias` that `mv` fails, each with the value it has.

    The policy's gates (`policy.yaml`, issue 19), then `config.yaml`'s (local additions).
    """
    from modelreg.policy import gate_problems

    return gate_problems(store, alias, mv)


def _who(actor: str | None) -> str:
    return actor or default_author()


def _move(
    store: StoreHandle,
    mv: ModelVersion,
    alias: str,
    action: str,
    who: str,
    reason: str,
    forced: bool,
    failed: Sequence[str],
) -> AliasChange:
    """Point the alias at `mv` (caller holds the lock); no-op if it already does.

    The policy says who may move the alias (issue 19): anyone else is refused.
    """
    from modelreg.policy import mover_problem, read_policy

    check_text(reason, "--reason", FIXES["text"])  # kept in the alias history (issue 19)
    current = read_alias(store, mv.name, alias)
    if current is not None and current.version == mv.version and action == "promote":
        return AliasChange(
            mv.name, alias, mv.version, mv.id, current.version, current.generation, action, False
        )
    refused = mover_problem(alias, who, read_policy(store))
    if refused:
        raise TransitionRefused(f"cannot {action} {mv.name}@{alias}: {refused}")
    generation = (current.generation if current else 0) + 1
    previous = current.version if current else None
    event = AliasEvent(
        generation, alias, action, mv.version, mv.id, previous, who, store.now(), reason, forced
    )
    history = (current.history if current else ()) + (event,)
    write_alias(store, AliasRef(mv.name, alias, mv.version, mv.id, generation, history))
    store.record(
        who, action, mv.name, alias=alias, version=mv.version, id=mv.id, previous=previous,
        generation=generation, reason=reason, forced=forced, failed_gates=list(failed),
    )  # fmt: skip
    return AliasChange(
        mv.name, alias, mv.version, mv.id, previous, generation, action, True, reason, forced,
        tuple(failed),
    )  # fmt: skip


def _refuse_deprecated(store: StoreHandle, mv: ModelVersion, what: str) -> None:
    dep = read_state(store, mv.name, mv.version).deprecated
    if dep:
        raise TransitionRefused(
            f"cannot {what} {mv.name}@{mv.version}: it is deprecated ({dep.get('reason', '')})"
        )


def promote(
    store: StoreHandle,
    spec: str,
    alias: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
) -> AliasChange:
    """Point `alias` at the version `spec` names, if it passes the alias's gates.

    `force` overrides failed gates but needs a `reason`; both are recorded. A deprecated
    version is never promoted.
    """
    check_alias(alias)
    if force and not reason.strip():
        raise InvalidInput("--force needs --reason: a forced promotion must say why")
    who = _who(actor)
    with store.writing():
        mv = resolve(store, spec)
        _refuse_deprecated(store, mv, "promote")
        failed = check_gates(store, alias, mv)
        if failed and not force:
            raise GateFailed(
                f"{mv.name}@{mv.version} fails the {alias} gate: {'; '.join(failed)} "
                "(use --force --reason to override)"
            )
        return _move(store, mv, alias, "promote", who, reason, bool(failed) and force, failed)


def _stack(ref: AliasRef) -> list[str]:
    """The alias's version stack: promote pushes, rollback pops back to its target."""
    stack: list[str] = []
    for e in ref.history:
        if e.action == "rollback" and e.version in stack:
            while stack[-1] != e.version:
                stack.pop()
        elif not stack or stack[-1] != e.version:
            stack.append(e.version)
    return stack


def _nothing_left(name: str, alias: str, current: AliasRef) -> str:
    """Why a plain rollback has nowhere to go, with the versions the alias has held."""
    seen: list[str] = []
    for e in current.history:
        if e.version not in seen:
            seen.append(e.version)
    if len(seen) == 1:
        return f"nothing to roll back to: {name}@{alias} has only pointed at {current.version}"
    return (
        f"nothing to roll back to: {name}@{alias} is back at {current.version}, the bottom of "
        f"its rollback stack (it has pointed at {', '.join(seen)}); use --to VERSION"
    )


def rollback(
    store: StoreHandle,
    name: str,
    alias: str = "production",
    *,
    to: str | None = None,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
) -> AliasChange:
    """Move `alias` back to the version it pointed at before the current one (or to `to`).

    Repeated rollbacks walk further back, like popping a stack: after promoting 1, 2, 3, two
    rollbacks land on 1. Gates are not applied (the target passed them when it was
    promoted, and a rollback is an emergency); a deprecated target needs `force`.
    """
    check_name(name)
    check_alias(alias)
    who = _who(actor)
    with store.writing():
        current = read_alias(store, name, alias)
        if current is None:
            if not has_versions(store, name):
                raise NotFound(f"no model named {name!r}")
            raise NotFound(f"{name}@{alias}: no such alias, nothing to roll back")
        if to is not None:
            target = Version.parse(to).text
            if not store.manifest_path(name, target).is_file():
                raise NotFound(f"{name}@{target}: no such version")
        else:
            stack = _stack(current)
            if len(stack) < 2:
                raise Conflict(_nothing_left(name, alias, current))
            target = stack[-2]
        mv = load_version(store, name, target)
        if target == current.version:
            # already there: a no-op that exits 0, as `promote` does (idempotent CI re-runs)
            return AliasChange(
                name, alias, target, mv.id, current.version, current.generation, "rollback", False
            )
        if force and not reason.strip():
            raise InvalidInput("--force needs --reason: a forced rollback must say why")
        if not force:
            _refuse_deprecated(store, mv, "roll back to")
        return _move(store, mv, alias, "rollback", who, reason, force, ())


def history(
    store: StoreHandle, name: str, alias: str | None = None, *, limit: int | None = None
) -> list[AliasEvent]:
    """Every move of the model's aliases (or of one alias), in time order.

    `limit`: only the newest N moves (still in time order); None or 0: all. Answered from
    the derived index when it can be used (an alias file holds its whole history, so reading
    the files grows with the moves), else from the alias files.
    """
    from modelreg.index import open_index

    if limit is not None and limit < 0:
        raise InvalidInput("--limit takes a number of moves, 0 or more")
    if not has_versions(store, name):
        raise NotFound(f"no model named {name!r}")
    if alias is not None:
        check_alias(alias)
    with open_index(store) as idx:
        if idx is not None:
            if (
                alias is not None
                and not idx.conn.execute(
                    "SELECT 1 FROM aliases WHERE model = ? AND alias = ?", (name, alias)
                ).fetchone()
            ):
                raise NotFound(f"{name}@{alias}: no such alias")
            rows = idx.conn.execute(
                "SELECT move FROM moves WHERE model = ? AND (? IS NULL OR alias = ?) "
                "ORDER BY time DESC, alias DESC, generation DESC LIMIT ?",
                (name, alias, alias, limit or -1),
            ).fetchall()
            return [AliasEvent(**json.loads(row[0])) for row in reversed(rows)]
    if alias is not None:
        ref = read_alias(store, name, alias)
        if ref is None:
            raise NotFound(f"{name}@{alias}: no such alias")
        refs = [ref]
    else:
        refs = list_aliases(store, name)
    events = sorted(
        (e for r in refs for e in r.history), key=lambda e: (e.time, e.alias, e.generation)
    )
    return events[-limit:] if limit else events


def deprecate(
    store: StoreHandle, spec: str, *, reason: str, actor: str | None = None
) -> Deprecation:
    """Mark a version deprecated (files kept, promotion refused from now on)."""
    if not reason.strip():
        raise InvalidInput("deprecate needs --reason")
    check_text(reason, "--reason", FIXES["text"])  # kept in the version state (issue 19)
    who = _who(actor)
    with store.writing():
        mv = resolve(store, spec)
        state = read_state(store, mv.name, mv.version)
        here = tuple(a.alias for a in list_aliases(store, mv.name) if a.version == mv.version)
        if state.deprecated:
            return Deprecation(mv.name, mv.version, state.deprecated["reason"], False, here)
        dep = {"reason": reason, "actor": who, "time": store.now()}
        write_state(
            store,
            mv.name,
            mv.version,
            VersionState(state.tags, dep, state.generation + 1),
        )
        store.record(who, "deprecate", mv.name, version=mv.version, id=mv.id, reason=reason)
    return Deprecation(mv.name, mv.version, reason, True, here)


def tag(
    store: StoreHandle,
    spec: str,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    *,
    actor: str | None = None,
) -> TagChange:
    """Add and remove tags of a version; tags live in its state file, not the manifest."""
    add = [check_tag(t) for t in add]
    for t in add:  # tags are pushed with the version: no credential (issue 19)
        check_text(t, "the tag", FIXES["text"])
    remove = [check_tag(t) for t in remove]
    if not add and not remove:
        raise InvalidInput("give at least one tag to add or remove")
    who = _who(actor)
    with store.writing():
        mv = resolve(store, spec)
        state = read_state(store, mv.name, mv.version)
        before = state.tags if state.tags is not None else mv.tags
        after = tuple(dict.fromkeys(t for t in (*before, *add) if t not in remove))
        added = tuple(t for t in after if t not in before)
        removed = tuple(t for t in before if t not in after)
        if added or removed:
            write_state(
                store,
                mv.name,
                mv.version,
                VersionState(after, state.deprecated, state.generation + 1),
            )
            store.record(
                who, "tag", mv.name, version=mv.version, added=list(added), removed=list(removed)
            )
    return TagChange(mv.name, mv.version, after, added, removed)
