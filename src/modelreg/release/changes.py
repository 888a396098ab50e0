"""How a release command reads its release and commits a change (the lock held by the caller).

Domain layer (docs/architecture.md). `commit` is the one way a rollout manifest changes: it
raises the generation by one, appends the history event, writes the manifest atomically and
appends the `release.ACTION` audit entry. The commands (`release.ops`) and the forced abort
(`release.recovery`) both come here; so do the small readers they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelreg.catalog import has_versions
from modelreg.credentials import check_text
from modelreg.errors import InvalidInput, NotFound
from modelreg.manifest_credentials import FIXES
from modelreg.names import check_name
from modelreg.refs import read_alias
from modelreg.release.bucketing import format_weight
from modelreg.release.manifestfile import read_rollout, write_rollout
from modelreg.release.results import PRODUCTION, Recovery, ReleaseChange, ReleaseStatus
from modelreg.release.rollout import NONE, Event, Rollout, Side, rule_as_written
from modelreg.release.rules import Rule, parse_rule

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange
    from modelreg.handle import StoreHandle
    from modelreg.manifest import ModelVersion

__all__ = [
    "check_texts",
    "commit",
    "current",
    "normalize_analysis",
    "parse_rules",
    "production_version",
    "require_model",
    "side_of",
    "status_of",
    "unchanged",
]


def require_model(store: StoreHandle, name: str) -> None:
    """Raise NotFound unless the model has a version (InvalidInput for a malformed name)."""
    if not has_versions(store, check_name(name)):
        raise NotFound(f"no model named {name!r}")


def production_version(store: StoreHandle, name: str) -> str | None:
    """The version the model's `production` alias points to, if it has one."""
    ref = read_alias(store, name, PRODUCTION)
    return ref.version if ref else None


def status_of(store: StoreHandle, name: str, rollout: Rollout | None) -> ReleaseStatus:
    """The release status of `rollout` with the production alias as it is now."""
    ref = read_alias(store, name, PRODUCTION)
    return ReleaseStatus(name, rollout, ref.version if ref else None, ref.generation if ref else 0)


def parse_rules(rules: Sequence[Rule | str]) -> tuple[tuple[Rule, ...], list[str]]:
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


def normalize_analysis(items: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """Analysis checks and policy as the manifest stores them (`analysis.checks.normalize`)."""
    from modelreg.analysis.checks import normalize  # lazy: only releases with checks

    return normalize(items)


def check_texts(analysis: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any] | None]:
    """The checks of a manifest's `analysis` as one-line texts, and its policy entry."""
    from modelreg.analysis.checks import checks_from_list

    policy = next((dict(a["policy"]) for a in analysis if set(a) == {"policy"}), None)
    try:
        checks, _ = checks_from_list(list(analysis))
    except InvalidInput:  # a hand-edited manifest's checks: recorded as they are
        return [str(a) for a in analysis if set(a) != {"policy"}], policy
    return [c.text() for c in checks], policy


def current(store: StoreHandle, name: str) -> tuple[Rollout | None, str]:
    """The model's rollout manifest (None: no release) and its state (`none` then).

    Raises:
        NotFound: no such model.
        IntegrityError: the manifest is damaged.
    """
    require_model(store, name)
    r = read_rollout(store, name)
    return r, (r.state if r else NONE)


def commit(
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
    check_text(reason, "--reason", FIXES["text"])  # kept in the rollout's history (issue 19)
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
    status = status_of(store, after.model, after)
    previous = recovery.previous_state if recovery else (before.state if before else NONE)
    return ReleaseChange(action, True, previous, status, promotion, recovery)


def unchanged(store: StoreHandle, r: Rollout, action: str) -> ReleaseChange:
    """The result of a command that found nothing to change."""
    return ReleaseChange(action, False, r.state, status_of(store, r.model, r))


def side_of(mv: ModelVersion) -> Side:
    """A version as a side of a release: its version and manifest id."""
    return Side(mv.version, mv.id)
