"""The forced abort: aborting a release whose rollout manifest is damaged (issue 14).

Domain layer (docs/architecture.md). `release.ops.abort(..., force=True, reason=...)` comes
here when the manifest is truncated, unparsable, schema-invalid, has generations out of order,
is missing while the audit trail records releases, or is older than the audit trail. The
release is recovered from what can still be read (the manifest's readable fields and
history, the audit trail's `release.*` entries, else the `production` alias), and a valid
aborted manifest is committed above every generation seen, with what was damaged in its
audit entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelreg import layout, yamlio
from modelreg.catalog import load_version
from modelreg.errors import IntegrityError, MregError, TransitionRefused
from modelreg.refs import read_alias
from modelreg.release.bucketing import check_seed, format_weight, new_seed, parse_weight
from modelreg.release.changes import commit
from modelreg.release.manifestfile import read_manifest_bytes
from modelreg.release.results import PRODUCTION, Recovery, ReleaseChange
from modelreg.release.rollout import (
    ABORTED,
    DEFAULT_STEPS,
    LIVE,
    NONE,
    PROGRESSING,
    PROMOTED,
    STATES,
    Event,
    Rollout,
    Side,
    parse_steps,
)
from modelreg.release.rules import check_attribute, rules_from_list

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle
    from modelreg.refs import AliasRef

__all__ = ["FORCE_HINT", "forced_abort", "missing_damage", "stale_damage"]

FORCE_HINT = (
    "to send all traffic to the baseline anyway, run "
    "'mreg release abort {name} --force --reason TEXT'"
)


def missing_damage(store: StoreHandle, name: str, path: Path) -> str | None:
    """Why a missing manifest is damage (the audit trail shows releases), else None."""
    events = _audit_events(store, name)
    if not events:
        return None
    last = max(events, key=lambda e: e.generation)
    return (
        f"{_rel(store, path)}: the rollout manifest is missing, but the audit trail records "
        f"release {last.release} of {name} (generation {last.generation}, {last.state})"
    )


def stale_damage(store: StoreHandle, name: str, path: Path, rollout: Rollout) -> str | None:
    """Why a readable manifest is stale (the audit trail has later generations), else None."""
    latest = max((e.generation for e in _audit_events(store, name)), default=0)
    if latest <= rollout.generation:
        return None
    return (
        f"{_rel(store, path)}: generation {rollout.generation}, but the audit trail records "
        f"generation {latest} of {name}'s releases (an older copy of the manifest?)"
    )


def _rel(store: StoreHandle, path: Path) -> str:
    try:
        return path.relative_to(store.root).as_posix()
    except ValueError:  # pragma: no cover (every release path is under the store)
        return str(path)


# -- forced abort: recovering a damaged manifest ------------------------------------------------

_TOP_KEY = re.compile(r"[A-Za-z_][\w-]*\s*:")
_MAX_SALVAGE = 64
T = TypeVar("T")


def _salvage(data: bytes | None) -> dict[str, Any]:
    """What can still be read of a damaged manifest ({} when nothing parses).

    The whole document if it parses; else each top-level field on its own (a manifest is
    block-style YAML, one top-level key per unindented line), keeping those that parse: a
    truncated file keeps the fields before the cut, a file broken in one field keeps the
    others. Invalid UTF-8 is replaced first.
    """
    if not data or len(data) > yamlio.MAX_BYTES:
        return {}
    text = data.decode("utf-8", errors="replace")
    whole = _load_mapping(text)
    if whole is not None:
        return whole
    blocks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if _TOP_KEY.match(line):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    out: dict[str, Any] = {}
    for block in blocks[:_MAX_SALVAGE]:
        for key, value in (_load_mapping("".join(block)) or {}).items():
            out.setdefault(key, value)
    return out


def _load_mapping(text: str) -> dict[str, Any] | None:
    try:
        doc = yamlio.load(text.encode(), "<salvage>", IntegrityError)
    except MregError:
        return None
    return doc if isinstance(doc, dict) else None


def _metrics_releases(store: StoreHandle, name: str) -> list[int]:
    """The release numbers the model's metrics and judgment files are kept under."""
    judged = layout.analysis_log(store.root, name, 0).parent  # analysis/NAME/<release>.jsonl
    found: list[int] = []
    for directory in (layout.metrics_dir(store.root, name), judged):
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        found.extend(int(n) for e in entries if (n := e.removesuffix(".jsonl")).isdigit())
    return found


def _field(doc: dict[str, Any], key: str, parse: Callable[[Any], T]) -> T | None:
    """`parse(doc[key])`, or None when the field is absent or does not parse."""
    if key not in doc:
        return None
    try:
        return parse(doc[key])
    except (MregError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"not a count: {value!r}")
    return value


def _event(doc: Any) -> Event | None:
    e = _field({"e": doc}, "e", Event.from_dict)
    return e if e is not None and e.release >= 1 and e.generation >= 1 else None


def _audit_events(store: StoreHandle, name: str) -> list[Event]:
    """The model's release changes as the audit trail recorded them (unreadable lines skipped).

    Each `release.ACTION` entry holds the change's release, generation, state, weight, shadow
    flag and reason besides its details: everything a history event holds.
    """
    from modelreg.audit import AuditEntry

    try:
        data = store.audit.path.read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):
        if b'"release.' not in line:
            continue
        try:
            entry = AuditEntry.parse(line)
        except ValueError:
            continue
        if entry.model != name or not entry.action.startswith("release."):
            continue
        d = dict(entry.details)
        doc = {k: d.pop(k, None) for k in ("release", "generation", "state", "weight", "shadow")}
        doc.update(action=entry.action.removeprefix("release."), actor=entry.actor,
                   time=entry.time, reason=d.pop("reason", ""), details=d)  # fmt: skip
        e = _event(doc)
        if e is not None:
            out.append(e)
    return out


def _side_of(doc: Any) -> Side:
    return Side.from_dict(doc, "side")


def _side_in(details: dict[str, Any], role: str) -> Side | None:
    return _field({"s": {"version": details.get(role), "id": details.get(f"{role}_id")}}, "s",
                  _side_of)  # fmt: skip


def _routable(store: StoreHandle, name: str, side: Side | None) -> bool:
    """True when `side`'s version exists with the manifest id recorded (routers need that)."""
    if side is None:
        return False
    try:
        return load_version(store, name, side.version).id == side.id
    except MregError:
        return False


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)


def _recover(
    store: StoreHandle, name: str, path: Path, damage: str
) -> tuple[Rollout, Recovery, AliasRef | None]:
    """The release as it was at its last readable generation, rebuilt from what is left.

    History: the manifest's readable events merged with the audit trail's (the audit trail
    wins for a generation both have). The release is the highest one seen; its baseline and
    canary come from its `start` event (history or audit), else from the manifest's own
    readable fields, else (the baseline) from the production alias. The release number is the
    highest the file, the history, the audit trail or the metrics directories name, so the
    next release cannot reuse one. Returns the recovered
    release (its state the last readable one), what was recovered, and the production alias.
    """
    try:
        data = read_manifest_bytes(path)
    except IntegrityError:
        data = None
    doc = _salvage(data)
    listed = doc.get("history")
    own_events = [e for e in map(_event, listed) if e] if isinstance(listed, list) else []
    source = {e.generation: (e, "history") for e in own_events}
    source.update({e.generation: (e, "audit") for e in _audit_events(store, name)})
    history = tuple(source[g][0] for g in sorted(source))

    doc_release = _field(doc, "release", _count)
    # the highest release anything names: a truncated file may have lost its `release`
    seen = [doc_release or 0, *(e.release for e in history), *_metrics_releases(store, name)]
    release = max(seen) or 1
    own = doc if doc_release in (None, release) else {}  # the manifest's fields, if of this release
    mine = [e for e in history if e.release == release]
    start = next((e for e in reversed(mine) if e.action == "start"), None)
    begun = start.details if start else {}
    begun_from = source[start.generation][1] if start else ""
    own_state = own.get("state")
    if mine:
        previous = mine[-1].state
    elif isinstance(own_state, str) and own_state in STATES and own_state != NONE:
        previous = own_state
    else:
        previous = "unknown"
    if previous == PROMOTED:
        raise TransitionRefused(
            f"cannot abort the release of {name}: {damage}; its last readable change promoted "
            f"release {release}, so no canary is left to take traffic from: restore "
            f"{_rel(store, path)}, or move production back with 'mreg rollback {name}'"
        )
    try:
        prod = read_alias(store, name, PRODUCTION)
    except MregError:
        prod = None

    baselines = [
        (_side_in(begun, "baseline"), begun_from),
        (_field(own, "baseline", _side_of), "manifest"),
        (Side(prod.version, prod.id) if prod else None, "production"),
    ]
    routable = [(s, src) for s, src in baselines if s is not None and _routable(store, name, s)]
    if not routable:
        raise IntegrityError(
            f"cannot abort {name} by force: {damage}; and no baseline can be recovered: its "
            "history, the audit trail and the production alias name no version that exists"
        )
    baseline, baseline_from = routable[0]
    named = [(_side_in(begun, "canary"), begun_from), (_field(own, "canary", _side_of), "manifest")]
    canaries = [(s, src) for s, src in named if s is not None and s.version != baseline.version]
    canaries.sort(key=lambda c: not _routable(store, name, c[0]))  # an existing version first
    if not canaries:
        raise IntegrityError(
            f"cannot abort {name} by force: {damage}; and neither the manifest, its history nor "
            f"the audit trail names the release's canary: restore {_rel(store, path)} from a "
            "backup"
        )
    canary, canary_from = canaries[0]

    set_rules = next((e.details["rules"] for e in reversed(mine) if "rules" in e.details), None)
    analysis = own.get("analysis")
    generation = max([_field(doc, "generation", _count) or 0, *(e.generation for e in history)])
    recovered = Rollout(
        model=name,
        release=release,
        state=previous if previous in (*LIVE, ABORTED) else PROGRESSING,
        baseline=baseline,
        canary=canary,
        weight=mine[-1].weight if mine else (_field(own, "weight", parse_weight) or 0),
        seed=_first(_field(begun, "seed", check_seed), _field(own, "seed", check_seed))
        or new_seed(),
        stick_by=_first(
            _field(begun, "stick_by", check_attribute), _field(own, "stick_by", check_attribute)
        )
        or "user_id",
        rules=_first(
            _field(own, "rules", rules_from_list), _field({"r": set_rules}, "r", rules_from_list)
        )
        or (),
        steps=_first(_field(own, "steps", parse_steps), _field(begun, "steps", parse_steps))
        or DEFAULT_STEPS,
        analysis=tuple(dict(a) for a in analysis)
        if isinstance(analysis, list) and all(isinstance(a, dict) for a in analysis)
        else (),
        generation=max(generation, 1),
        started=start.time if start else str(own.get("started") or ""),
        history=history,
    )
    recovery = Recovery(
        damage, release, previous, baseline_from, canary_from, len(history), generation
    )
    return recovered, recovery, prod


def forced_abort(
    store: StoreHandle, name: str, damage: str, path: Path, who: str, reason: str
) -> ReleaseChange:
    """Recover the release from what can be read, and write it aborted (lock held)."""
    damage = damage.replace(str(path), _rel(store, path))
    before, recovery, prod = _recover(store, name, path, damage)
    after = before.replace(
        state=ABORTED, weight=0, shadow=False, production_generation=prod.generation if prod else 0
    )
    details = {
        "previous_weight": format_weight(before.weight),
        "baseline": before.baseline.version,
        "forced": True,
        "recovery": recovery.to_dict(),
    }
    if os.path.isdir(path) and not os.path.islink(path):  # atomic_write cannot replace it
        try:
            os.rmdir(path)
        except OSError:
            raise IntegrityError(
                f"cannot abort {name} by force: {_rel(store, path)} is a directory that is not "
                "empty; move it away and try again"
            ) from None
    return commit(store, before, after, "abort", who, reason, details, recovery=recovery)
