"""Release operations: one function per `mreg release` command, each locked and audited.

Every change runs under the store lock, re-reads the rollout manifest inside it, checks the
transition against the state machine (`rollout.TRANSITIONS`), writes the manifest atomically
with its generation raised by one and a history event, and then appends to the audit trail
(action `release.ACTION`). `promote` moves the `production` alias through
`modelreg.aliases.promote`, so the same promotion gates apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import yamlio
from modelreg.catalog import load_version, resolve, version_list
from modelreg.errors import IntegrityError, InvalidInput, NotFound, TransitionRefused
from modelreg.fsutil import atomic_write
from modelreg.lineage import default_author
from modelreg.names import check_name
from modelreg.refs import read_alias, read_state
from modelreg.release.bucketing import FULL, check_seed, format_weight, new_seed, parse_weight
from modelreg.release.rollout import (
    DEFAULT_STEPS,
    NONE,
    SHADOW,
    Event,
    Rollout,
    Side,
    parse_steps,
    transition,
)
from modelreg.release.rules import Rule, check_attribute, parse_rule, rules_from_list

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange
    from modelreg.manifest import ModelVersion
    from modelreg.store import Store

__all__ = [
    "PRODUCTION",
    "ReleaseChange",
    "ReleaseStatus",
    "abort",
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
                {"order": i, "text": x.text(), **x.to_dict()} for i, x in enumerate(r.rules, 1)
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
class ReleaseChange:
    """The result of a release command: what it did and the release's status after it."""

    action: str
    changed: bool
    previous_state: str
    status: ReleaseStatus
    promotion: AliasChange | None = None

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
            "status": self.status.to_dict(),
        }


# -- the manifest file ------------------------------------------------------------------------


def release_path(store: Store, name: str) -> Path:
    """`releases/NAME.yaml` (namespaced names: `releases/team/name.yaml`); name checked first."""
    *ns, last = check_name(name).split("/")
    return store.root.joinpath("releases", *ns, f"{last}.yaml")


def read_rollout(store: Store, name: str) -> Rollout | None:
    """The model's rollout manifest, or None when it never had a release.

    Raises:
        IntegrityError: the file exists but is not a valid rollout manifest of this model.
    """
    path = release_path(store, name)
    if not path.exists():
        return None
    return Rollout.stored(yamlio.load_file(path, IntegrityError), str(path), name)


def write_rollout(store: Store, rollout: Rollout) -> None:
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


def _require_model(store: Store, name: str) -> None:
    if not version_list(store, check_name(name)):
        raise NotFound(f"no model named {name!r}")


def _production(store: Store, name: str) -> str | None:
    ref = read_alias(store, name, PRODUCTION)
    return ref.version if ref else None


def _status(store: Store, name: str, rollout: Rollout | None) -> ReleaseStatus:
    ref = read_alias(store, name, PRODUCTION)
    return ReleaseStatus(name, rollout, ref.version if ref else None, ref.generation if ref else 0)


def _rules(rules: Sequence[Rule | str]) -> tuple[Rule, ...]:
    out = []
    for i, r in enumerate(rules, 1):
        try:
            out.append(r if isinstance(r, Rule) else parse_rule(r))
        except InvalidInput as exc:
            raise InvalidInput(f"rule {i}: {exc}") from None
    return tuple(out)


def _current(store: Store, name: str) -> tuple[Rollout | None, str]:
    _require_model(store, name)
    r = read_rollout(store, name)
    return r, (r.state if r else NONE)


def _commit(
    store: Store,
    before: Rollout | None,
    after: Rollout,
    action: str,
    who: str,
    reason: str,
    details: dict[str, Any],
    promotion: AliasChange | None = None,
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
    return ReleaseChange(
        action, True, before.state if before else NONE, status, promotion
    )  # fmt: skip


def _unchanged(store: Store, r: Rollout, action: str) -> ReleaseChange:
    return ReleaseChange(action, False, r.state, _status(store, r.model, r))


def _side(mv: ModelVersion) -> Side:
    return Side(mv.version, mv.id)


# -- the commands -----------------------------------------------------------------------------


def start(
    store: Store,
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
    rule_set = _rules(rules)
    check_attribute(stick_by)
    seed = new_seed() if seed is None else check_seed(seed)
    if analysis:
        from modelreg.analysis.checks import normalize  # lazy: only releases with checks

        analysis = normalize(analysis)
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
    with store.locked():
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
            "rules": [r.text() for r in rule_set],
            "steps": [s if isinstance(s, str) else format_weight(s) for s in plan],
        }  # fmt: skip
        return _commit(store, before, rollout, "start", who, reason, details)


def update(
    store: Store,
    name: str,
    *,
    weight: float | str | None = None,
    rules: Sequence[Rule | str] | None = None,
    shadow: bool | None = None,
    reason: str = "",
    actor: str | None = None,
) -> ReleaseChange:
    """`mreg release set`: change the canary weight, replace the rules, or enter/leave shadow.

    A new weight ends shadow mode; `shadow=True` sends all live traffic to the baseline and
    mirrors it to the canary. Setting what is already in effect changes nothing.

    Raises:
        TransitionRefused: there is no live, unpaused release.
        InvalidInput: nothing to change, or a malformed weight or rule.
    """
    if weight is None and rules is None and shadow is None:
        raise InvalidInput("nothing to set: give --weight, --rule/--no-rules or --shadow")
    w = None if weight is None else parse_weight(weight)
    if shadow and w:
        raise InvalidInput("shadow mode sends no live traffic to the canary: drop --weight")
    rule_set = None if rules is None else _rules(rules)
    who = actor or default_author()
    with store.locked():
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
        if (after.weight, after.shadow, after.rules) == (
            before.weight,
            before.shadow,
            before.rules,
        ):
            return _unchanged(store, before, "set")
        details: dict[str, Any] = {"previous_weight": format_weight(before.weight)}
        if rule_set is not None:
            details["rules"] = [r.text() for r in rule_set]
        return _commit(store, before, after, "set", who, reason, details)


def step(store: Store, name: str, *, reason: str = "", actor: str | None = None) -> ReleaseChange:
    """Move the canary weight to the plan's next step (from shadow: the first live weight).

    Raises:
        TransitionRefused: no live, unpaused release, or the plan has no further step.
    """
    who = actor or default_author()
    with store.locked():
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


def _simple(store: Store, name: str, action: str, reason: str, actor: str | None) -> ReleaseChange:
    who = actor or default_author()
    with store.locked():
        before, state = _current(store, name)
        after_state = transition(name, state, action)
        assert before is not None
        return _commit(store, before, before.replace(state=after_state), action, who, reason, {})


def pause(store: Store, name: str, *, reason: str = "", actor: str | None = None) -> ReleaseChange:
    """Freeze the release: traffic keeps its current split; set and step are refused.

    Raises:
        TransitionRefused: the release is not progressing.
    """
    return _simple(store, name, "pause", reason, actor)


def resume(store: Store, name: str, *, reason: str = "", actor: str | None = None) -> ReleaseChange:
    """Resume a paused release.

    Raises:
        TransitionRefused: the release is not paused.
    """
    return _simple(store, name, "resume", reason, actor)


def promote(
    store: Store,
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
    with store.locked():
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


def abort(store: Store, name: str, *, reason: str = "", actor: str | None = None) -> ReleaseChange:
    """Roll back instantly: all traffic to the baseline, the release ends.

    Raises:
        TransitionRefused: no live release.
    """
    who = actor or default_author()
    with store.locked():
        before, state = _current(store, name)
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


def status(store: Store, name: str) -> ReleaseStatus:
    """The model's release state, weights, rules, steps, generation and last changes."""
    rollout, _ = _current(store, name)
    return _status(store, name, rollout)


def history(store: Store, name: str) -> list[Event]:
    """Every change of every release of the model, oldest first."""
    rollout, _ = _current(store, name)
    return list(rollout.history) if rollout else []
