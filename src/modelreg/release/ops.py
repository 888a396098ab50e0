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

The commands are here; the rest is in modules of its own, whose public names this module
re-exports: the status and result types (`release.results`), the manifest file and rules
files (`release.manifestfile`), the commit of a change (`release.changes`) and the forced
abort's recovery (`release.recovery`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelreg.catalog import load_version, resolve
from modelreg.errors import IntegrityError, InvalidInput, NotFound, TransitionRefused
from modelreg.lineage import default_author
from modelreg.names import check_name
from modelreg.refs import read_alias, read_state
from modelreg.release.bucketing import FULL, check_seed, format_weight, new_seed, parse_weight
from modelreg.release.changes import (
    check_texts,
    commit,
    current,
    normalize_analysis,
    parse_rules,
    production_version,
    require_model,
    side_of,
    status_of,
    unchanged,
)
from modelreg.release.manifestfile import read_rollout, read_rules_file, release_path, write_rollout
from modelreg.release.recovery import FORCE_HINT, forced_abort, missing_damage, stale_damage
from modelreg.release.results import PRODUCTION, Recovery, ReleaseChange, ReleaseStatus
from modelreg.release.rollout import (
    DEFAULT_STEPS,
    NONE,
    SHADOW,
    Event,
    Rollout,
    parse_steps,
    transition,
)
from modelreg.release.rules import Rule, check_attribute

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

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
    rule_set, rule_texts = parse_rules(rules)
    check_attribute(stick_by)
    seed = new_seed() if seed is None else check_seed(seed)
    if analysis:
        analysis = normalize_analysis(analysis)
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
        before, state = current(store, name)
        after_state = transition(name, state, "start")
        can = resolve(store, f"{name}@{canary}")
        dep = read_state(store, name, can.version).deprecated
        if dep:
            raise TransitionRefused(
                f"cannot release {name}@{can.version}: it is deprecated ({dep.get('reason', '')})"
            )
        if baseline is None and production_version(store, name) is None:
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
            baseline=side_of(base),
            canary=side_of(can),
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
        return commit(store, before, rollout, "start", who, reason, details)


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
    mirrors it to the canary. `analysis` (checks as texts or mappings, and optionally one
    `{policy: ...}` and one `{queries: ...}` entry, as `start` takes them) is merged part by
    part: it replaces the release's checks when it holds checks, its policy when it holds
    one and its PromQL templates when it holds a queries entry; each part it does not hold
    is kept. `analysis=[]` (`--no-checks`) removes every check (the default checks apply
    again) and keeps the policy and the queries, which are not checks. Setting what is
    already in effect changes nothing.

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
    rule_set, rule_texts = (None, []) if rules is None else parse_rules(rules)
    given = None if analysis is None else normalize_analysis(analysis)
    who = actor or default_author()
    with store.writing():
        before, state = current(store, name)
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
            merged = _merge_analysis(before.analysis, given)
            after = after.replace(analysis=merged)
        if (after.weight, after.shadow, after.rules, after.analysis) == (
            before.weight,
            before.shadow,
            before.rules,
            before.analysis,
        ):
            return unchanged(store, before, "set")
        details: dict[str, Any] = {"previous_weight": format_weight(before.weight)}
        if rule_set is not None:
            details["rules"] = rule_texts
        if after.analysis != before.analysis:
            old_checks, old_policy = check_texts(before.analysis)
            new_checks, new_policy = check_texts(after.analysis)
            details["previous_checks"], details["checks"] = old_checks, new_checks
            if old_policy != new_policy:
                details["previous_policy"], details["policy"] = old_policy, new_policy
            old_queries = _queries_entry(before.analysis)
            new_queries = _queries_entry(after.analysis)
            if old_queries != new_queries:
                details["previous_queries"], details["queries"] = old_queries, new_queries
        return commit(store, before, after, "set", who, reason, details)


def _merge_analysis(
    current: Sequence[dict[str, Any]], given: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], ...]:
    """`current` with each part that `given` holds replaced: checks, policy, queries.

    Both are in the manifest form (`normalize_analysis`). An empty `given` removes the
    checks and keeps the policy and queries. The result is in the manifest's order: the
    checks, then the policy, then the queries entry.
    """
    cur_checks, cur_policy, cur_queries = _split_analysis(current)
    new_checks, new_policy, new_queries = _split_analysis(given)
    checks = new_checks if new_checks or not given else cur_checks
    return tuple(checks + (new_policy or cur_policy) + (new_queries or cur_queries))


def _split_analysis(
    items: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The checks, the `{policy: ...}` entry and the `{queries: ...}` entry (lists of 0 or 1)."""
    parts: dict[str, list[dict[str, Any]]] = {"checks": [], "policy": [], "queries": []}
    for item in items:
        key = next(iter(item)) if len(item) == 1 and set(item) <= {"policy", "queries"} else ""
        parts[key or "checks"].append(dict(item))
    return parts["checks"], parts["policy"], parts["queries"]


def _queries_entry(analysis: Sequence[dict[str, Any]]) -> Any:
    """A copy of the `{queries: ...}` entry's value in a manifest's `analysis` (None: none).

    A copy, so that the history event shares no object with the manifest's `analysis`: the
    YAML writer would make them an anchor and an alias, which the reader refuses.
    """
    found = next((a["queries"] for a in analysis if set(a) == {"queries"}), None)
    return copy.deepcopy(found)


def step(
    store: StoreHandle, name: str, *, reason: str = "", actor: str | None = None
) -> ReleaseChange:
    """Move the canary weight to the plan's next step (from shadow: the first live weight).

    Raises:
        TransitionRefused: no live, unpaused release, or the plan has no further step.
    """
    who = actor or default_author()
    with store.writing():
        before, state = current(store, name)
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
        return commit(store, before, after, "step", who, reason, details)


def _simple(
    store: StoreHandle, name: str, action: str, reason: str, actor: str | None
) -> ReleaseChange:
    who = actor or default_author()
    with store.writing():
        before, state = current(store, name)
        after_state = transition(name, state, action)
        assert before is not None
        return commit(store, before, before.replace(state=after_state), action, who, reason, {})


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
        before, state = current(store, name)
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
        return commit(store, before, after, "promote", who, reason, details, change)


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
        require_model(store, name)
        path = release_path(store, name)
        try:
            before = read_rollout(store, name)
        except IntegrityError as exc:
            if not force:
                raise IntegrityError(f"{exc}; {FORCE_HINT.format(name=name)}") from None
            return forced_abort(store, name, str(exc), path, who, reason)
        if before is None:
            damage = missing_damage(store, name, path)
            if damage is not None and not force:
                raise IntegrityError(f"{damage}; {FORCE_HINT.format(name=name)}")
            if damage is not None:
                return forced_abort(store, name, damage, path, who, reason)
        elif force and (damage := stale_damage(store, name, path, before)) is not None:
            return forced_abort(store, name, damage, path, who, reason)
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
        return commit(store, before, after, "abort", who, reason, details)


def check_analyzable(store: StoreHandle, name: str) -> None:
    """Refuse to analyze a release that has ended (called before the analysis runs).

    A model without a release is left to the analysis (its own message); an unknown model
    raises NotFound.

    Raises:
        InvalidInput: the release was promoted or aborted: nothing to analyze (exit 2).
        NotFound: no such model.
        IntegrityError: the manifest is damaged.
    """
    rollout, _ = current(store, name)
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
    rollout, _ = current(store, name)
    return status_of(store, name, rollout)


def history(store: StoreHandle, name: str) -> list[Event]:
    """Every change of every release of the model, oldest first."""
    rollout, _ = current(store, name)
    return list(rollout.history) if rollout else []
