"""The rollout manifest (`releases/NAME.yaml`) and the release state machine. Pure: no I/O.

One manifest per model holds its current (or last) release: baseline and canary (version
and manifest id), the canary weight, stickiness key and seed, routing rules, the step plan,
analysis checks, the state, a generation number raised on every change, and the history of
every change of every release of the model. docs/release.md documents the schema.

The states and the transition table (`TRANSITIONS`, `transition`, `refusal`) are in
`release.states`; this module re-exports them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.hashing import is_digest
from modelreg.names import Version, check_name
from modelreg.release.bucketing import FULL, check_seed, format_weight, parse_weight
from modelreg.release.rules import Rule, check_attribute, parse_rule, rules_from_list
from modelreg.release.states import (
    ABORTED,
    ACTIONS,
    LIVE,
    NONE,
    PAUSED,
    PROGRESSING,
    PROMOTED,
    STATES,
    TRANSITIONS,
    refusal,
    transition,
)
from modelreg.release.states import State as State  # re-exported, as before the split

__all__ = [
    "ABORTED",
    "ACTIONS",
    "DEFAULT_PLAN",
    "DEFAULT_STEPS",
    "KIND",
    "LIVE",
    "NONE",
    "PAUSED",
    "PROGRESSING",
    "PROMOTED",
    "SCHEMA",
    "SHADOW",
    "STATES",
    "TRANSITIONS",
    "Event",
    "Rollout",
    "Side",
    "parse_steps",
    "refusal",
    "rule_as_written",
    "transition",
]

SCHEMA = "mreg/v1"
KIND = "Rollout"

SHADOW = "shadow"
"""The step plan's token for a shadow (mirror) step: live traffic all on the baseline."""
DEFAULT_PLAN = "1,5,10,25,50,100"
"""The default step plan, in percent."""


def parse_steps(value: Any) -> tuple[int | str, ...]:
    """Parse a step plan: `1,5,10` or a list; `shadow` may come first; weights increase."""
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise InvalidInput("the step plan must list at least one weight, e.g. 1,5,10,25,50,100")
    steps: list[int | str] = []
    for i, item in enumerate(items):
        if item == SHADOW:
            if i != 0:
                raise InvalidInput("'shadow' can only be the first step of the plan")
            steps.append(SHADOW)
            continue
        w = parse_weight(item)
        last = steps[-1] if steps else None
        if w == 0 or (isinstance(last, int) and w <= last):
            raise InvalidInput(
                f"invalid step plan {value!r}: weights must be above 0 and increasing"
            )
        steps.append(w)
    if steps == [SHADOW]:
        raise InvalidInput("the step plan needs at least one live weight after 'shadow'")
    return tuple(steps)


DEFAULT_STEPS = parse_steps(DEFAULT_PLAN)
"""The default plan in hundredths of a percent: (100, 500, 1000, 2500, 5000, 10000)."""


def rule_as_written(text: str) -> str:
    """The one-line form of rule `text`, its conditions in the order they were written.

    `Rule` keeps its conditions in a canonical order (the user list first, then attributes by
    name) because the manifest stores them as a mapping, and canonical YAML sorts mapping keys:
    a rule must compare equal after a round trip through the file. People read rules in the
    order they wrote them, so the release commands keep this text in the history (`rules` of
    a `start` or `set` event) and print it (`Rollout.rule_texts`). Spacing is normalised;
    anything else is exactly `Rule.text()`'s.

    Raises:
        InvalidInput: `text` is not a rule (`parse_rule`'s message).
    """
    rule = parse_rule(text)
    body = text.split(":", 1)[1] if rule.name else text
    conds = body.rpartition("->")[0].strip()
    parts = []
    for part in re.split(r"\s+and\s+", conds):
        one = parse_rule(f"{part} -> canary").text()  # the condition's canonical spelling
        parts.append(one.rpartition(" -> ")[0])
    out = f"{' and '.join(parts)} -> {rule.outcome_text()}"
    out = f"{rule.name}: {out}" if rule.name else out
    return out if parse_rule(out) == rule else rule.text()


def _step_value(s: int | str) -> int | float | str:
    return s if isinstance(s, str) else format_weight(s)


@dataclass(frozen=True)
class Side:
    """A version taking part in a release: its version string and manifest id."""

    version: str
    id: str

    def to_dict(self) -> dict[str, str]:
        """Plain-data form."""
        return {"version": self.version, "id": self.id}

    @classmethod
    def from_dict(cls, doc: Any, what: str) -> Side:
        """Parse `{version, id}`; raise InvalidInput if malformed."""
        if not isinstance(doc, dict) or not is_digest(doc.get("id")):
            raise InvalidInput(f"{what}: expected {{version, id}} with a sha256 id")
        return cls(Version.parse(str(doc.get("version"))).text, doc["id"])


@dataclass(frozen=True)
class Event:
    """One change of a release: which, by whom, when, why, and the state it left."""

    release: int
    generation: int
    action: str
    actor: str
    time: str
    state: str
    weight: int
    shadow: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (stored in the manifest; `release history --json`)."""
        return {
            "release": self.release,
            "generation": self.generation,
            "action": self.action,
            "actor": self.actor,
            "time": self.time,
            "state": self.state,
            "weight": format_weight(self.weight),
            "shadow": self.shadow,
            "reason": self.reason,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Event:
        """Parse a stored event."""
        if not isinstance(doc, dict):
            raise InvalidInput("a history event must be a mapping")
        if doc.get("action") not in ACTIONS or doc.get("state") not in STATES:
            raise InvalidInput(f"history event with unknown action or state: {doc!r}")
        details = doc.get("details") or {}
        if not isinstance(details, dict):
            raise InvalidInput("history event details must be a mapping")
        return cls(
            release=int(doc["release"]),
            generation=int(doc["generation"]),
            action=str(doc["action"]),
            actor=str(doc["actor"]),
            time=str(doc["time"]),
            state=str(doc["state"]),
            weight=parse_weight(doc["weight"]),
            shadow=bool(doc.get("shadow", False)),
            reason=str(doc.get("reason") or ""),
            details=details,
        )


@dataclass(frozen=True)
class Rollout:
    """The rollout manifest of one model: its current (or last) release and every change."""

    model: str
    release: int
    state: str
    baseline: Side
    canary: Side
    weight: int
    """Canary weight for requests no rule matched, in hundredths of a percent (500 = 5%)."""
    seed: str
    stick_by: str = "user_id"
    shadow: bool = False
    """Shadow (mirror) mode: every request is answered by the baseline and names the canary."""
    rules: tuple[Rule, ...] = ()
    steps: tuple[int | str, ...] = DEFAULT_STEPS
    analysis: tuple[dict[str, Any], ...] = ()
    generation: int = 1
    started: str = ""
    updated: str = ""
    production_generation: int | None = None
    """The `production` alias's generation when the release ended (None while it is live)."""
    history: tuple[Event, ...] = ()

    @property
    def live(self) -> bool:
        """True while the release splits traffic (progressing or paused)."""
        return self.state in LIVE

    @property
    def canary_share(self) -> int:
        """The canary's share of requests no rule matched (hundredths of a percent)."""
        if self.state == PROMOTED:
            return FULL
        if not self.live or self.shadow:
            return 0
        return self.weight

    def steps_done(self) -> tuple[int | str, ...]:
        """Plan steps reached so far in this release (shadow counts once live traffic began)."""
        done: list[int | str] = []
        for s in self.steps:
            if s == SHADOW:
                if self.shadow or self.weight > 0 or self.state == PROMOTED:
                    done.append(s)
            elif self.state == PROMOTED or (
                not self.shadow and isinstance(s, int) and s <= self.weight
            ):
                done.append(s)
        return tuple(done)

    def next_step(self) -> int | None:
        """The weight `step` moves to: the first plan weight above the current one, or None."""
        if not self.live:
            return None
        for s in self.steps:
            if isinstance(s, int) and (self.shadow or s > self.weight):
                return s
        return None

    def routing_order(self) -> list[str]:
        """How a request is routed, in precedence order (shown by `release status`)."""
        base, can = self.baseline.version, self.canary.version
        if self.state == PROMOTED:
            return [f"every request -> canary {can} (promoted to production)"]
        if self.state == ABORTED:
            return [f"every request -> baseline {base} (release aborted)"]
        if self.shadow:
            return [
                f"every request -> baseline {base}; the canary {can} shadows it (mirror mode: "
                "rules do not apply until live traffic starts)"
            ]
        lines = []
        for i, (r, text) in enumerate(zip(self.rules, self.rule_texts(), strict=True), 1):
            what = (
                f"pinned to the {r.variant}"
                if r.variant
                else f"{r.outcome_text()} of this group to the canary"
            )
            lines.append(f"{i}. {text}  ({what})")
        lines.append(
            f"{'then' if self.rules else 'every request'}: {format_weight(self.weight)}% to the "
            f"canary {can}, the rest to the baseline {base}, by a sticky hash of "
            f"{self.stick_by} (requests without one: at random)"
        )
        return lines

    def rule_texts(self) -> tuple[str, ...]:
        """The rules' one-line forms, each as it was written (see `rule_as_written`).

        The text comes from the last change of this release that set the rules (its `rules`
        detail), when it still parses to the same rule; otherwise `Rule.text()`.
        """
        written: Any = None
        for e in reversed(self.history):
            if e.release != self.release:
                break
            if "rules" in e.details:
                written = e.details["rules"]
                break
        ok = isinstance(written, list) and len(written) == len(self.rules)
        out = []
        for i, rule in enumerate(self.rules):
            text = written[i] if ok else None
            try:
                same = isinstance(text, str) and parse_rule(text) == rule
            except InvalidInput:
                same = False
            out.append(text if same and isinstance(text, str) else rule.text())
        return tuple(out)

    def replace(self, **changes: Any) -> Rollout:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The manifest document (also the core of `release status --json`)."""
        return {
            "schema": SCHEMA,
            "kind": KIND,
            "model": self.model,
            "release": self.release,
            "state": self.state,
            "baseline": self.baseline.to_dict(),
            "canary": self.canary.to_dict(),
            "weight": format_weight(self.weight),
            "shadow": self.shadow,
            "stick_by": self.stick_by,
            "seed": self.seed,
            "rules": [r.to_dict() for r in self.rules],
            "steps": [_step_value(s) for s in self.steps],
            "analysis": [dict(a) for a in self.analysis],
            "generation": self.generation,
            "started": self.started,
            "updated": self.updated,
            "production_generation": self.production_generation,
            "history": [e.to_dict() for e in self.history],
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Rollout:
        """Parse and check a manifest document.

        Raises:
            InvalidInput: the document is not a valid rollout manifest (the message says why).
        """
        try:
            return _from_dict(doc)
        except InvalidInput:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInput(f"malformed rollout manifest: {detail}") from None

    @classmethod
    def stored(cls, doc: Any, where: str, name: str) -> Rollout:
        """A manifest read from a store: checked, and for model `name`.

        Raises:
            IntegrityError: `where` (the file or URL it came from) holds no valid rollout
                manifest of `name` (the message says why).
        """
        try:
            rollout = cls.from_dict(doc)
        except InvalidInput as exc:
            raise IntegrityError(f"{where}: {exc}") from None
        if rollout.model != name:
            raise IntegrityError(f"{where}: manifest is for {rollout.model!r}, not {name!r}")
        return rollout

    @classmethod
    def parse(cls, data: bytes, where: str, name: str) -> Rollout:
        """The rollout manifest of `name` in a file's bytes, as the store's reader checks it.

        The store's reader and `mreg pull` (a remote's manifest, issue 15) both come here, so
        a store never takes in a manifest it would then call damaged. (Routers parse with
        `stored` alone: they route by the current state and ignore the history.)

        Raises:
            IntegrityError: as `stored`, or the bytes are not a safe YAML document.
        """
        from modelreg import yamlio

        rollout = cls.stored(yamlio.load(data, where, IntegrityError), where, name)
        gens = [e.generation for e in rollout.history]
        if any(b <= a for a, b in pairwise(gens)):
            raise IntegrityError(f"{where}: history generations do not increase")
        if gens and gens[-1] != rollout.generation:
            raise IntegrityError(
                f"{where}: generation {rollout.generation}, but its history ends at generation "
                f"{gens[-1]}"
            )
        return rollout


def _from_dict(doc: Any) -> Rollout:
    if not isinstance(doc, dict):
        raise InvalidInput("a rollout manifest must be a mapping")
    if doc.get("schema") != SCHEMA or doc.get("kind") != KIND:
        raise InvalidInput(
            f"expected schema {SCHEMA!r} kind {KIND!r}, got {doc.get('schema')!r} "
            f"{doc.get('kind')!r}"
        )
    state = doc["state"]
    if state not in STATES or state == NONE:
        raise InvalidInput(f"invalid release state {state!r}")
    baseline = Side.from_dict(doc["baseline"], "baseline")
    canary = Side.from_dict(doc["canary"], "canary")
    if baseline.version == canary.version:
        raise InvalidInput("the baseline and the canary are the same version")
    analysis = doc.get("analysis") or []
    if not isinstance(analysis, list) or not all(isinstance(a, dict) for a in analysis):
        raise InvalidInput("analysis must be a list of mappings")
    prod_gen = doc.get("production_generation")
    history = doc.get("history") or []
    if not isinstance(history, list):
        raise InvalidInput("history must be a list")
    release, generation = int(doc["release"]), int(doc["generation"])
    if release < 1 or generation < 1:
        raise InvalidInput("release and generation count from 1")
    return Rollout(
        model=check_name(doc["model"]),
        release=release,
        state=state,
        baseline=baseline,
        canary=canary,
        weight=parse_weight(doc["weight"]),
        seed=check_seed(doc["seed"]),
        stick_by=check_attribute(doc.get("stick_by", "user_id")),
        shadow=_bool(doc.get("shadow", False), "shadow"),
        rules=rules_from_list(doc.get("rules") or []),
        steps=parse_steps(doc["steps"]),
        analysis=tuple(dict(a) for a in analysis),
        generation=generation,
        started=str(doc.get("started") or ""),
        updated=str(doc.get("updated") or ""),
        production_generation=None if prod_gen is None else int(prod_gen),
        history=tuple(Event.from_dict(e) for e in history),
    )


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false")
    return value
