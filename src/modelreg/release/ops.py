"""Release operations: one function per `mreg release` command, each locked and audited.

Every change runs under the store lock, re-reads the rollout manifest inside it, checks the
transition against the state machine (`rollout.TRANSITIONS`), writes the manifest atomically
with its generation raised by one and a history event, and then appends to the audit trail
(action `release.ACTION`). `promote` moves the `production` alias through
`modelreg.aliases.promote`, so the same promotion gates apply.

`abort(..., force=True, reason=...)` is the emergency exit that works when the manifest
itself is damaged (truncated, unparsable, schema-invalid, generations out of order, missing):
it recovers the release from what can still be read (the manifest's readable parts, its
history, the audit trail's `release.*` entries, else the `production` alias), writes a valid
aborted manifest above every generation seen, and audits what was damaged.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelreg import yamlio
from modelreg.catalog import load_version, resolve, version_list
from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound, TransitionRefused
from modelreg.fsutil import atomic_write
from modelreg.lineage import default_author
from modelreg.names import check_name
from modelreg.refs import read_alias, read_state
from modelreg.release.bucketing import FULL, check_seed, format_weight, new_seed, parse_weight
from modelreg.release.rollout import (
    ABORTED,
    DEFAULT_STEPS,
    LIVE,
    NONE,
    PROGRESSING,
    PROMOTED,
    SHADOW,
    STATES,
    Event,
    Rollout,
    Side,
    parse_steps,
    rule_as_written,
    transition,
)
from modelreg.release.rules import Rule, check_attribute, parse_rule, rules_from_list

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange
    from modelreg.handle import StoreHandle
    from modelreg.manifest import ModelVersion
    from modelreg.refs import AliasRef

__all__ = [
    "PRODUCTION",
    "Recovery",
    "ReleaseChange",
    "ReleaseStatus",
    "abort",
    "check_analyzable",
    "history",
    "pause",
    "promote",
    "read_rollout",
    "read_rules_file",
    "release_path",
    "resume",
    "start",
    "status",
    "step",
    "update",
    "write_rollout",
]

PRODUCTION = "production"
LAST_CHANGES = 5


@dataclass(frozen=True)
class ReleaseStatus:
    """A model's release as `release status` shows it (`rollout` is None: no release)."""

    model: str
    rollout: Rollout | None
    production: str | None
    production_generation: int = 0

    @property
    def state(self) -> str:
        """The release state, `none` when the model never had a release."""
        return self.rollout.state if self.rollout else NONE

    def routing(self) -> list[str]:
        """How requests are routed now, in precedence order (what routers do)."""
        r = self.rollout
        if r is None:
            return [f"every request -> production {self.production}"]
        if not r.live and self.production_generation > (r.production_generation or 0):
            return [
                f"every request -> production {self.production} (production moved after "
                f"release {r.release} {r.state})"
            ]
        return r.routing_order()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release status`."""
        r = self.rollout
        if r is None:
            return {"model": self.model, "state": NONE, "production": self.production}
        share = r.canary_share
        last = [e.to_dict() for e in r.history if e.release == r.release][-LAST_CHANGES:]
        return {
            "model": self.model,
            "state": r.state,
            "release": r.release,
            "generation": r.generation,
            "shadow": r.shadow,
            "baseline": {**r.baseline.to_dict(), "weight": format_weight(FULL - share)},
            "canary": {**r.canary.to_dict(), "weight": format_weight(share)},
            "stick_by": r.stick_by,
            "seed": r.seed,
            "rules": [
                {"order": i, "text": text, **x.to_dict()}
                for i, (x, text) in enumerate(zip(r.rules, r.rule_texts(), strict=True), 1)
            ],
            "routing": self.routing(),
            "steps": {
                "plan": [s if isinstance(s, str) else format_weight(s) for s in r.steps],
                "done": [s if isinstance(s, str) else format_weight(s) for s in r.steps_done()],
                "next": None if (n := r.next_step()) is None else format_weight(n),
            },
            "analysis": [dict(a) for a in r.analysis],
            "started": r.started,
            "updated": r.updated,
            "production": self.production,
            "last_changes": last,
        }


@dataclass(frozen=True)
class Recovery:
    """What a forced abort found damaged, and where it found the release it aborted."""

    damage: str
    """Why the manifest could not be used (the reader's one-line message)."""
    release: int
    previous_state: str
    """The last state that could be read (`unknown` when none could)."""
    baseline_from: str
    """Where the baseline came from: `history` (the manifest's own), `audit` (the audit
    trail's `release.*` entries), `manifest` (its readable fields) or `production`."""
    canary_from: str
    events_recovered: int
    """History events kept in the new manifest (from its own history and the audit trail)."""
    max_generation: int
    """The highest generation seen anywhere; the abort is written one above it."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (in the audit entry and `release abort --json`)."""
        return {
            "damage": self.damage,
            "release": self.release,
            "previous_state": self.previous_state,
            "baseline_from": self.baseline_from,
            "canary_from": self.canary_from,
            "events_recovered": self.events_recovered,
            "max_generation": self.max_generation,
        }


@dataclass(frozen=True)
class ReleaseChange:
    """The result of a release command: what it did and the release's status after it."""

    action: str
    changed: bool
    previous_state: str
    status: ReleaseStatus
    promotion: AliasChange | None = None
    recovery: Recovery | None = None
    """Set by a forced abort over a damaged manifest: what was damaged and recovered."""

    @property
    def rollout(self) -> Rollout:
        """The rollout manifest after the change."""
        assert self.status.rollout is not None  # every change leaves a manifest
        return self.status.rollout

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release start|set|step|pause|resume|promote|abort`."""
        return {
            "action": self.action,
            "changed": self.changed,
            "previous_state": self.previous_state,
            "promotion": self.promotion.to_dict() if self.promotion else None,
            "recovery": self.recovery.to_dict() if self.recovery else None,
            "status": self.status.to_dict(),
        }


# -- the manifest file ------------------------------------------------------------------------


def release_path(store: StoreHandle, name: str) -> Path:
    """`releases/NAME.yaml` (namespaced names: `releases/team/name.yaml`); name checked first."""
    *ns, last = check_name(name).split("/")
    return store.root.joinpath("releases", *ns, f"{last}.yaml")


def read_rollout(store: StoreHandle, name: str) -> Rollout | None:
    """The model's rollout manifest, or None when it never had a release.

    Raises:
        IntegrityError: something is at the manifest's path but it is not a valid rollout
            manifest of this model: unreadable, not a file, unparsable, schema-invalid, or
            with generations out of order.
    """
    path = release_path(store, name)
    data = _read_manifest(path)
    return None if data is None else _parse_manifest(data, path, name)


def _read_manifest(path: Path) -> bytes | None:
    """The manifest's bytes (None: nothing there), opened without blocking (a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise IntegrityError(f"{path}: a symbolic link to nothing") from None
        return None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IntegrityError(f"{path}: a directory, not a rollout manifest")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IntegrityError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(yamlio.MAX_BYTES + 1)
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)


def _parse_manifest(data: bytes, path: Path, name: str) -> Rollout:
    return Rollout.parse(data, str(path), name)


def write_rollout(store: StoreHandle, rollout: Rollout) -> None:
    """Replace the manifest atomically (the caller holds the store lock)."""
    atomic_write(release_path(store, rollout.model), yamlio.dump(rollout.to_dict()))


def read_rules_file(path: str | Path) -> tuple[Rule, ...]:
    """Rules from a YAML or JSON file: a list of rule mappings or text forms (or `{rules: [...]}`).

    Raises:
        InvalidInput: the file is missing, unparsable, or holds an invalid rule.
    """
    doc = yamlio.loads_data(_read_bytes(Path(path)), str(path))
    if isinstance(doc, dict) and set(doc) == {"rules"}:
        doc = doc["rules"]
    try:
        return rules_from_list(doc)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


# -- helpers ----------------------------------------------------------------------------------


def _require_model(store: StoreHandle, name: str) -> None:
    if not version_list(store, check_name(name)):
        raise NotFound(f"no model named {name!r}")


def _production(store: StoreHandle, name: str) -> str | None:
    ref = read_alias(store, name, PRODUCTION)
    return ref.version if ref else None


def _status(store: StoreHandle, name: str, rollout: Rollout | None) -> ReleaseStatus:
    ref = read_alias(store, name, PRODUCTION)
    return ReleaseStatus(name, rollout, ref.version if ref else None, ref.generation if ref else 0)


def _rules(rules: Sequence[Rule | str]) -> tuple[tuple[Rule, ...], list[str]]:
    """The rules, and their texts as written (a text keeps its conditions' order)."""
    out, texts = [], []
    for i, r in enumerate(rules, 1):
        try:
            rule = r if isinstance(r, Rule) else parse_rule(r)
            texts.append(rule.text() if isinstance(r, Rule) else rule_as_written(r))
        except InvalidInput as exc:
            raise InvalidInput(f"rule {i}: {exc}") from None
        out.append(rule)
    return tuple(out), texts


def _analysis(items: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    from modelreg.analysis.checks import normalize  # lazy: only releases with checks

    return normalize(items)


def _check_texts(analysis: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any] | None]:
    """The checks of a manifest's `analysis` as one-line texts, and its policy entry."""
    from modelreg.analysis.checks import checks_from_list

    policy = next((dict(a["policy"]) for a in analysis if set(a) == {"policy"}), None)
    try:
        checks, _ = checks_from_list(list(analysis))
    except InvalidInput:  # a hand-edited manifest's checks: recorded as they are
        return [str(a) for a in analysis if set(a) != {"policy"}], policy
    return [c.text() for c in checks], policy


def _current(store: StoreHandle, name: str) -> tuple[Rollout | None, str]:
    _require_model(store, name)
    r = read_rollout(store, name)
    return r, (r.state if r else NONE)


def _commit(
    store: StoreHandle,
    before: Rollout | None,
    after: Rollout,
    action: str,
    who: str,
    reason: str,
    details: dict[str, Any],
    promotion: AliasChange | None = None,
    recovery: Recovery | None = None,
) -> ReleaseChange:
    """Raise the generation, append the history event, write, audit (lock held)."""
    generation = (before.generation if before else 0) + 1
    now = store.now()
    event = Event(
        after.release, generation, action, who, now, after.state, after.weight, after.shadow,
        reason, details,
    )  # fmt: skip
    history = (before.history if before else ()) + (event,)
    after = after.replace(generation=generation, updated=now, history=history)
    if action == "start":
        after = after.replace(started=now)
    write_rollout(store, after)
    store.record(
        who, f"release.{action}", after.model, release=after.release, generation=generation,
        state=after.state, weight=format_weight(after.weight), shadow=after.shadow,
        reason=reason, **details,
    )  # fmt: skip
    status = _status(store, after.model, after)
    previous = recovery.previous_state if recovery else (before.state if before else NONE)
    return ReleaseChange(action, True, previous, status, promotion, recovery)


def _unchanged(store: StoreHandle, r: Rollout, action: str) -> ReleaseChange:
    return ReleaseChange(action, False, r.state, _status(store, r.model, r))


def _side(mv: ModelVersion) -> Side:
    return Side(mv.version, mv.id)


# -- the commands -----------------------------------------------------------------------------


def start(
    store: StoreHandle,
    name: str,
    canary: str,
    *,
    baseline: str | None = None,
    weight: float | str | None = None,
    steps: str | Sequence[float | str] | None = None,
    stick_by: str = "user_id",
    rules: Sequence[Rule | str] = (),
    shadow: bool = False,
    reason: str = "",
    seed: str | None = None,
    actor: str | None = None,
    analysis: Sequence[Any] = (),
) -> ReleaseChange:
    """Start a release of `canary` against `baseline` (default: the `production` alias).

    The first weight is `weight`, else the plan's first step (`shadow` as the first step
    starts in shadow mode). A new random seed is drawn unless `seed` is given (tests).
    `analysis` holds the canary-analysis checks and policy (texts or mappings, see
    `modelreg.analysis.checks`); none means the default checks.

    Raises:
        TransitionRefused: a release is already progressing or paused, or the canary is
            deprecated.
        NotFound: the model, a version, or the production alias does not exist.
        InvalidInput: a malformed weight, plan, rule or stickiness key.
    """
    check_name(name)
    plan = DEFAULT_STEPS if steps is None else parse_steps(steps)
    rule_set, rule_texts = _rules(rules)
    check_attribute(stick_by)
    seed = new_seed() if seed is None else check_seed(seed)
    if analysis:
        analysis = _analysis(analysis)
    if weight is not None:
        w = parse_weight(weight)
        if shadow and w:
            raise InvalidInput(
                "a shadow release sends no live traffic to the canary: drop --weight"
            )
    elif shadow or plan[0] == SHADOW:
        w, shadow = 0, True
    else:
        w = int(plan[0])
    who = actor or default_author()
    with store.writing():
        before, state = _current(store, name)
        after_state = transition(name, state, "start")
        can = resolve(store, f"{name}@{canary}")
        dep = read_state(store, name, can.version).deprecated
        if dep:
            raise TransitionRefused(
                f"cannot release {name}@{can.version}: it is deprecated ({dep.get('reason', '')})"
            )
        if baseline is None and _production(store, name) is None:
            raise NotFound(
                f"{name} has no production alias to use as the baseline: pass --baseline VERSION"
            )
        base = resolve(store, f"{name}@{baseline or PRODUCTION}")
        if base.version == can.version:
            raise InvalidInput(
                f"the canary and the baseline are the same version ({can.version}): "
                "release another version, or pass --baseline"
            )
        rollout = Rollout(
            model=name,
            release=(before.release if before else 0) + 1,
            state=after_state,
            baseline=_side(base),
            canary=_side(can),
            weight=w,
            seed=seed,
            stick_by=stick_by,
            shadow=shadow,
            rules=rule_set,
            steps=plan,
            analysis=tuple(analysis),
        )
        details = {
            "baseline": base.version, "baseline_id": base.id, "canary": can.version,
            "canary_id": can.id, "stick_by": stick_by, "seed": seed,
            "rules": rule_texts,
            "steps": [s if isinstance(s, str) else format_weight(s) for s in plan],
        }  # fmt: skip
        return _commit(store, before, rollout, "start", who, reason, details)


def update(
    store: StoreHandle,
    name: str,
    *,
    weight: float | str | None = None,
    rules: Sequence[Rule | str] | None = None,
    shadow: bool | None = None,
    analysis: Sequence[Any] | None = None,
    reason: str = "",
    actor: str | None = None,
) -> ReleaseChange:
    """`mreg release set`: change the weight, replace the rules or checks, enter shadow mode.

    A new weight ends shadow mode; `shadow=True` sends all live traffic to the baseline and
    mirrors it to the canary. `analysis` (checks as texts or mappings, and optionally a
    `{policy: ...}` entry, as `start` takes them) replaces the release's checks when it holds
    checks, and its policy when it holds one; `analysis=[]` removes every check (the default
    checks apply again) and keeps the policy. Setting what is already in effect changes
    nothing.

    Raises:
        TransitionRefused: there is no live, unpaused release.
        InvalidInput: nothing to change, or a malformed weight, rule or check.
    """
    if weight is None and rules is None and shadow is None and analysis is None:
        raise InvalidInput(
            "nothing to set: give --weight, --rule/--no-rules, --check/--no-checks or --shadow"
        )
    w = None if weight is None else parse_weight(weight)
    if shadow and w:
        raise InvalidInput("shadow mode sends no live traffic to the canary: drop --weight")
    rule_set, rule_texts = (None, []) if rules is None else _rules(rules)
    given = None if analysis is None else _analysis(analysis)
    who = actor or default_author()
    with store.writing():
        before, state = _current(store, name)
        transition(name, state, "set")
        assert before is not None  # the transition table allows set only on a live release
        after = before
        if w is not None:
            after = after.replace(weight=w, shadow=False)
        if shadow is not None:
            after = after.replace(shadow=shadow, weight=0 if shadow else after.weight)
        if rule_set is not None:
            after = after.replace(rules=rule_set)
        if given is not None:
            merged = _merge_analysis(before.analysis, given, analysis or ())
            after = after.replace(analysis=merged)
        if (after.weight, after.shadow, after.rules, after.analysis) == (
            before.weight,
            before.shadow,
            before.rules,
            before.analysis,
        ):
            return _unchanged(store, before, "set")
        details: dict[str, Any] = {"previous_weight": format_weight(before.weight)}
        if rule_set is not None:
            details["rules"] = rule_texts
        if after.analysis != before.analysis:
            old_checks, old_policy = _check_texts(before.analysis)
            new_checks, new_policy = _check_texts(after.analysis)
            details["previous_checks"], details["checks"] = old_checks, new_checks
            if old_policy != new_policy:
                details["previous_policy"], details["policy"] = old_policy, new_policy
        return _commit(store, before, after, "set", who, reason, details)


def _merge_analysis(
    current: Sequence[dict[str, Any]], given: Sequence[dict[str, Any]], raw: Sequence[Any]
) -> tuple[dict[str, Any], ...]:
    """The checks of `given` (else `current`'s; none when `raw` is empty), then its policy.

    The policy is `given`'s when it has one, else `current`'s.
    """

    def split(items: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        policy = [dict(a) for a in items if set(a) == {"policy"}]
        return [dict(a) for a in items if set(a) != {"policy"}], policy

    cur_checks, cur_policy = split(current)
    new_checks, new_policy = split(given)
    checks = new_checks if new_checks or not raw else cur_checks
    return tuple(checks + (new_policy or cur_policy))


def step(
    store: StoreHandle, name: str, *, reason: str = "", actor: str | None = None
) -> ReleaseChange:
    """Move the canary weight to the plan's next step (from shadow: the first live weight).

    Raises:
        TransitionRefused: no live, unpaused release, or the plan has no further step.
    """
    who = actor or default_author()
    with store.writing():
        before, state = _current(store, name)
        transition(name, state, "step")
        assert before is not None
        nxt = before.next_step()
        if nxt is None:
            raise TransitionRefused(
                f"cannot step the release of {name}: it is at or past the last step of its plan "
                f"({format_weight(before.weight)}%); promote it with 'mreg release promote {name}'"
            )
        after = before.replace(weight=nxt, shadow=False)
        details = {"previous_weight": format_weight(before.weight), "was_shadow": before.shadow}
        return _commit(store, before, after, "step", who, reason, details)


def _simple(
    store: StoreHandle, name: str, action: str, reason: str, actor: str | None
) -> ReleaseChange:
    who = actor or default_author()
    with store.writing():
        before, state = _current(store, name)
        after_state = transition(name, state, action)
        assert before is not None
        return _commit(store, before, before.replace(state=after_state), action, who, reason, {})


def pause(
    store: StoreHandle, name: str, *, reason: str = "", actor: str | None = None
) -> ReleaseChange:
    """Freeze the release: traffic keeps its current split; set and step are refused.

    Raises:
        TransitionRefused: the release is not progressing.
    """
    return _simple(store, name, "pause", reason, actor)


def resume(
    store: StoreHandle, name: str, *, reason: str = "", actor: str | None = None
) -> ReleaseChange:
    """Resume a paused release.

    Raises:
        TransitionRefused: the release is not paused.
    """
    return _simple(store, name, "resume", reason, actor)


def promote(
    store: StoreHandle,
    name: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
) -> ReleaseChange:
    """Move `production` to the canary through its promotion gates, and end the release.

    The alias move is `modelreg.aliases.promote` (same gates, same `--force --reason`
    override, its own audit entry); if it fails, the release is unchanged.

    Raises:
        TransitionRefused: no live release.
        GateFailed: the canary fails a production gate (and `force` is not given).
        IntegrityError: the canary's manifest no longer has the id the release recorded.
    """
    from modelreg.aliases import promote as promote_alias

    if force and not reason.strip():
        raise InvalidInput("--force needs --reason: a forced promotion must say why")
    who = actor or default_author()
    with store.writing():
        before, state = _current(store, name)
        after_state = transition(name, state, "promote")
        assert before is not None
        mv = load_version(store, name, before.canary.version)
        if mv.id != before.canary.id:
            raise IntegrityError(
                f"{name}@{mv.version}: its manifest is {mv.short_id}, but the release recorded "
                f"{before.canary.id[:12]}: the manifest was changed"
            )
        change = promote_alias(
            store, f"{name}@{mv.version}", PRODUCTION, force=force, actor=who,
            reason=reason or f"release {before.release} of {name} promoted",
        )  # fmt: skip
        after = before.replace(
            state=after_state, weight=FULL, shadow=False, production_generation=change.generation
        )
        details = {
            "version": mv.version, "id": mv.id, "previous_weight": format_weight(before.weight),
            "production_generation": change.generation, "forced": change.forced,
        }  # fmt: skip
        return _commit(store, before, after, "promote", who, reason, details, change)


def abort(
    store: StoreHandle,
    name: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
) -> ReleaseChange:
    """Roll back instantly: all traffic to the baseline, the release ends.

    With `force` (which needs a `reason`), a damaged manifest does not stop the abort: the
    release is recovered from what can still be read — the manifest's readable fields and
    history, the audit trail's `release.*` entries, else the `production` alias as the
    baseline — and a valid aborted manifest is written one generation above any generation
    seen, with the history that could be recovered. Its audit entry (`release.abort`) carries
    `forced: true` and `recovery` (what was damaged, where the baseline came from). A
    readable manifest older than the audit trail (its generation below the trail's latest
    for this model: an older copy put back) counts as damaged too; on any other readable
    manifest `force` changes nothing: the abort is the ordinary one.

    Raises:
        InvalidInput: `force` without a reason.
        TransitionRefused: no live release (with `force`: the last readable state is
            promoted, or nothing shows the model ever had a release).
        IntegrityError: the manifest is damaged and `force` is not given (the message says
            how to force the abort), or forced, nothing names the release's canary.
    """
    if force and not reason.strip():
        raise InvalidInput("--force needs --reason: a forced abort must say why")
    who = actor or default_author()
    with store.writing():
        _require_model(store, name)
        path = release_path(store, name)
        try:
            before = read_rollout(store, name)
        except IntegrityError as exc:
            if not force:
                raise IntegrityError(f"{exc}; {_FORCE_HINT.format(name=name)}") from None
            return _forced_abort(store, name, str(exc), path, who, reason)
        if before is None:
            damage = _missing(store, name, path)
            if damage is not None and not force:
                raise IntegrityError(f"{damage}; {_FORCE_HINT.format(name=name)}")
            if damage is not None:
                return _forced_abort(store, name, damage, path, who, reason)
        elif force and (damage := _behind(store, name, path, before)) is not None:
            return _forced_abort(store, name, damage, path, who, reason)
        state = before.state if before else NONE
        after_state = transition(name, state, "abort")
        assert before is not None
        prod = read_alias(store, name, PRODUCTION)
        after = before.replace(
            state=after_state, weight=0, shadow=False,
            production_generation=prod.generation if prod else 0,
        )  # fmt: skip
        details = {
            "previous_weight": format_weight(before.weight),
            "baseline": before.baseline.version,
        }
        return _commit(store, before, after, "abort", who, reason, details)


_FORCE_HINT = (
    "to send all traffic to the baseline anyway, run "
    "'mreg release abort {name} --force --reason TEXT'"
)


def _missing(store: StoreHandle, name: str, path: Path) -> str | None:
    """Why a missing manifest is damage (the audit trail shows releases), else None."""
    events = _audit_events(store, name)
    if not events:
        return None
    last = max(events, key=lambda e: e.generation)
    return (
        f"{_rel(store, path)}: the rollout manifest is missing, but the audit trail records "
        f"release {last.release} of {name} (generation {last.generation}, {last.state})"
    )


def _behind(store: StoreHandle, name: str, path: Path, rollout: Rollout) -> str | None:
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
    *ns, last = name.split("/")
    found: list[int] = []
    for top in ("metrics", "analysis"):
        try:
            entries = os.listdir(store.root.joinpath(top, *ns, last))
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
        data = _read_manifest(path)
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


def _forced_abort(
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
    return _commit(store, before, after, "abort", who, reason, details, recovery=recovery)


def check_analyzable(store: StoreHandle, name: str) -> None:
    """Refuse to analyze a release that has ended (called before the analysis runs).

    A model without a release is left to the analysis (its own message); an unknown model
    raises NotFound.

    Raises:
        InvalidInput: the release was promoted or aborted: nothing to analyze (exit 2).
        NotFound: no such model.
        IntegrityError: the manifest is damaged.
    """
    rollout, _ = _current(store, name)
    if rollout is None or rollout.live:
        return
    ended = [
        e for e in rollout.history if e.release == rollout.release and e.state == rollout.state
    ]
    when = ended[0].time if ended else rollout.updated
    at = f" at {when}" if when else ""
    raise InvalidInput(
        f"release {rollout.release} of {name} ended ({rollout.state}{at}); nothing to analyze"
    )


def status(store: StoreHandle, name: str) -> ReleaseStatus:
    """The model's release state, weights, rules, steps, generation and last changes."""
    rollout, _ = _current(store, name)
    return _status(store, name, rollout)


def history(store: StoreHandle, name: str) -> list[Event]:
    """Every change of every release of the model, oldest first."""
    rollout, _ = _current(store, name)
    return list(rollout.history) if rollout else []
