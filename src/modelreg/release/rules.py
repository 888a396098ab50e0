"""Routing rules: pin groups of requests to a side, or split a group by its own percentage.

A rule has conditions and an outcome. Conditions (all must hold):

- `users`: an explicit list of user IDs (e.g. internal testers);
- `when`: attribute tests on what the request carries: equality (`region: eu`), set
  membership (`device: {in: [ios, android]}`) or prefix (`app_version: {prefix: "2."}`).
  The attribute `user_id` means the request's user ID.

The outcome is `variant: canary|baseline` (pin the group) or `weight: P` (P% of the group
goes to the canary, chosen by the same sticky bucket as the global weight). Rules are
evaluated in order and the first match decides; requests that match no rule are split by
the global weight. Each rule also has a one-line text form, used by `--rule`::

    testers: user_id in u-1,u-2 -> canary
    region=cn-north -> 10%
    device in ios,android and app_version^=2. -> baseline

Attribute values are compared as strings (a non-string value in a request is converted with
`str()`). This module is pure: parsing, printing and compiling to fast matchers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelreg.errors import InvalidInput
from modelreg.release.bucketing import format_weight, parse_weight

__all__ = [
    "USER_ID",
    "Check",
    "Match",
    "Rule",
    "check_attribute",
    "compile_rule",
    "parse_rule",
    "rules_from_list",
]

USER_ID = "user_id"
Op = Literal["eq", "in", "prefix"]
Variant = Literal["canary", "baseline"]
Check = Callable[[Any, "Mapping[str, Any] | None"], bool]
"""A compiled condition: `check(user_id, attributes) -> bool`; never raises."""

_ATTR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TEXT_NAME_RE = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):\s+(.*)\Z", re.S)
_COND_RE = re.compile(
    r"\s*(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})\s*(?P<op>\^=|=|\s+in\s+)\s*(?P<value>.*?)\s*\Z",
    re.S,
)
MAX_VALUE = 256
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_VALUES = 100_000


def check_attribute(key: object) -> str:
    """Return `key` if it is a valid attribute name (`region`, `app_version`...)."""
    if not isinstance(key, str) or not _ATTR_RE.fullmatch(key):
        raise InvalidInput(
            f"invalid attribute name {key!r}: use letters, digits, '_', '.', '-', "
            "starting with a letter or '_'"
        )
    return key


def _value(v: object, what: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise InvalidInput(f"{what}: expected a string, got {v!r}")
    text = str(v)
    if not text or len(text) > MAX_VALUE or any(ord(c) < 32 for c in text):
        raise InvalidInput(f"{what}: values must be 1-{MAX_VALUE} printable characters")
    if _SURROGATE.search(text):  # the manifest is UTF-8: it could not be written
        raise InvalidInput(f"{what}: {text!r} is not valid Unicode text (a lone surrogate)")
    return text


@dataclass(frozen=True)
class Match:
    """One attribute test: `key` equal to, in, or starting with `values`."""

    key: str
    op: Op
    values: tuple[str, ...]

    def to_value(self) -> Any:
        """The value under `when: {key: ...}` in the manifest."""
        if self.op == "eq":
            return self.values[0]
        if self.op == "in":
            return {"in": list(self.values)}
        return {"prefix": self.values[0]}

    def text(self) -> str:
        """The text form: `key=v`, `key in a,b`, `key^=p`."""
        if self.op == "eq":
            return f"{self.key}={self.values[0]}"
        if self.op == "in":
            return f"{self.key} in {','.join(self.values)}"
        return f"{self.key}^={self.values[0]}"

    @classmethod
    def from_value(cls, key: str, value: Any) -> Match:
        """Parse `when: {key: value}`: a scalar (equality), `{in: [...]}` or `{prefix: ...}`."""
        check_attribute(key)
        where = f"rule condition {key!r}"
        if isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in ("in", "prefix"):
                raise InvalidInput(f"{where}: expected a value, {{in: [...]}} or {{prefix: ...}}")
            op, raw = next(iter(value.items()))
            items = raw if isinstance(raw, list) and op == "in" else [raw]
            if not items or len(items) > MAX_VALUES:
                raise InvalidInput(f"{where}: expected 1 to {MAX_VALUES} values")
            values = tuple(dict.fromkeys(_value(v, where) for v in items))
            return cls(key, op, values)
        return cls(key, "eq", (_value(value, where),))


@dataclass(frozen=True)
class Rule:
    """A routing rule: conditions (`users`, `when`) and an outcome (`variant` or `weight`)."""

    users: tuple[str, ...] = ()
    when: tuple[Match, ...] = ()
    variant: Variant | None = None
    weight: int | None = None
    """Percentage of the group sent to the canary, in hundredths of a percent."""
    name: str = ""

    def __post_init__(self) -> None:
        if not self.users and not self.when:
            raise InvalidInput("a rule needs a condition: users or an attribute test")
        if (self.variant is None) == (self.weight is None):
            raise InvalidInput("a rule needs exactly one outcome: canary, baseline or a weight")
        if self.variant not in (None, "canary", "baseline"):
            raise InvalidInput(f"invalid variant {self.variant!r}: use canary or baseline")
        keys = [m.key for m in self.when]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a rule may test each attribute once")
        if self.name and not _NAME_RE.fullmatch(self.name):
            raise InvalidInput(f"invalid rule name {self.name!r}")

    def outcome_text(self) -> str:
        """`canary`, `baseline` or `P%`."""
        return self.variant if self.variant else f"{format_weight(self.weight or 0)}%"

    def text(self) -> str:
        """The one-line text form (parses back to an equal rule)."""
        conds = []
        if self.users:
            conds.append(f"{USER_ID} in {','.join(self.users)}")
        conds.extend(m.text() for m in self.when)
        body = f"{' and '.join(conds)} -> {self.outcome_text()}"
        return f"{self.name}: {body}" if self.name else body

    def describe(self) -> str:
        """What the rule does, for people (`status`)."""
        if self.variant:
            return f"{self.text()}  (pinned to the {self.variant})"
        return f"{self.text()}  ({self.outcome_text()} of this group to the canary)"

    def to_dict(self) -> dict[str, Any]:
        """The rule as stored in the rollout manifest."""
        doc: dict[str, Any] = {}
        if self.name:
            doc["name"] = self.name
        if self.users:
            doc["users"] = list(self.users)
        if self.when:
            doc["when"] = {m.key: m.to_value() for m in self.when}
        if self.variant:
            doc["variant"] = self.variant
        else:
            doc["weight"] = format_weight(self.weight or 0)
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> Rule:
        """Parse a stored rule; raise InvalidInput saying what is wrong."""
        if not isinstance(doc, dict):
            raise InvalidInput(f"a rule must be a mapping, got {doc!r}")
        unknown = set(doc) - {"name", "users", "when", "variant", "weight"}
        if unknown:
            raise InvalidInput(f"unknown rule field(s): {', '.join(sorted(map(str, unknown)))}")
        users = doc.get("users") or []
        when = doc.get("when") or {}
        if not isinstance(users, list) or len(users) > MAX_VALUES:
            raise InvalidInput("rule users must be a list of user IDs")
        if not isinstance(when, dict):
            raise InvalidInput("rule 'when' must map attribute names to tests")
        name = doc.get("name")  # absent or null: unnamed (labelled by position), not "None"
        weight = doc.get("weight")
        return cls(
            users=tuple(dict.fromkeys(_value(u, "rule users") for u in users)),
            when=tuple(Match.from_value(str(k), v) for k, v in sorted(when.items())),
            variant=doc.get("variant"),
            weight=None if weight is None else parse_weight(weight),
            name="" if name is None else name if isinstance(name, str) else str(name),
        )


def _split_list(text: str, where: str) -> tuple[str, ...]:
    items = [v.strip() for v in text.split(",")]
    if not all(items):
        raise InvalidInput(f"{where}: empty value in list {text!r}")
    return tuple(dict.fromkeys(_value(v, where) for v in items))


def parse_rule(text: str) -> Rule:
    """Parse the text form `[NAME: ]COND [and COND]... -> canary|baseline|P%`.

    A condition is `key=value`, `key in v1,v2` or `key^=prefix`; `user_id in ...` and
    `user_id=...` make an explicit user-ID list.

    Raises:
        InvalidInput: the text does not follow the grammar, saying where.
    """
    where = f"invalid rule {text!r}"
    name = ""
    named = _TEXT_NAME_RE.match(text)
    body = text
    if named and "->" in named.group(2) and "=" not in named.group(1):
        name, body = named.group(1), named.group(2)
    conds_text, arrow, outcome = body.rpartition("->")
    if not arrow or not conds_text.strip():
        raise InvalidInput(f"{where}: expected CONDITION -> canary|baseline|P%")
    outcome = outcome.strip()
    variant: Variant | None = None
    weight = None
    if outcome in ("canary", "baseline"):
        variant = outcome  # type: ignore[assignment]
    elif outcome.endswith("%"):
        weight = parse_weight(outcome)
    else:
        raise InvalidInput(f"{where}: the outcome must be canary, baseline or a percentage")
    users: tuple[str, ...] = ()
    when: list[Match] = []
    for part in re.split(r"\s+and\s+", conds_text.strip()):
        m = _COND_RE.match(part)
        if not m or not m.group("value"):
            raise InvalidInput(f"{where}: cannot read condition {part.strip()!r}")
        key, op, value = m.group("key"), m.group("op").strip(), m.group("value")
        if key == USER_ID and op in ("=", "in"):
            if users:
                raise InvalidInput(f"{where}: give the user IDs in one condition")
            users = _split_list(value, where) if op == "in" else (_value(value, where),)
        elif op == "in":
            when.append(Match(key, "in", _split_list(value, where)))
        else:
            when.append(Match(key, "eq" if op == "=" else "prefix", (_value(value, where),)))
    return Rule(users, tuple(sorted(when, key=lambda c: c.key)), variant, weight, name)


def rules_from_list(docs: Any) -> tuple[Rule, ...]:
    """Parse a list of rules, each a mapping or a text form."""
    if not isinstance(docs, list):
        raise InvalidInput("rules must be a list")
    out = []
    for i, d in enumerate(docs, 1):
        try:
            out.append(parse_rule(d) if isinstance(d, str) else Rule.from_dict(d))
        except InvalidInput as exc:
            raise InvalidInput(f"rule {i}: {exc}") from None
    return tuple(out)


# -- compiling to matchers (the router's hot path: no regex, no allocation) -------------------


def _attr_check(key: str, op: Op, values: tuple[str, ...]) -> Check:
    if key == USER_ID:
        return _user_id_check(op, values)
    if op == "eq":
        want = values[0]

        def eq(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
            if not attrs:
                return False
            v = attrs.get(key)
            if v.__class__ is not str:
                v = None if v is None else str(v)
            return v == want

        return eq
    if op == "in":
        wants = frozenset(values)

        def member(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
            if not attrs:
                return False
            v = attrs.get(key)
            if v.__class__ is not str:
                v = None if v is None else str(v)
            return v in wants

        return member
    prefix = values[0]

    def starts(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
        if not attrs:
            return False
        v = attrs.get(key)
        if v.__class__ is not str:
            if v is None:
                return False
            v = str(v)
        return v.startswith(prefix)

    return starts


def _user_id_check(op: Op, values: tuple[str, ...]) -> Check:
    """A test on the user ID: the `user_id` argument, else `attributes["user_id"]`."""

    def fetch(uid: Any, attrs: Mapping[str, Any] | None) -> str | None:
        v = uid if uid is not None else (attrs.get(USER_ID) if attrs else None)
        if v is None or v.__class__ is str:
            return v
        return str(v)

    if op == "in" or op == "eq":
        wants = frozenset(values)
        return lambda uid, attrs: fetch(uid, attrs) in wants
    prefix = values[0]

    def starts(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
        v = fetch(uid, attrs)
        return v is not None and v.startswith(prefix)

    return starts


def _user_check(users: Sequence[str]) -> Check:
    wanted = frozenset(users)

    def check(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
        if uid is None:
            uid = attrs.get(USER_ID) if attrs else None
        if uid.__class__ is not str:
            uid = None if uid is None else str(uid)
        return uid in wanted

    return check


def compile_rule(rule: Rule) -> Check:
    """A fast `check(user_id, attributes) -> bool` for the rule's conditions (all must hold)."""
    checks: list[Check] = []
    if rule.users:
        checks.append(_user_check(rule.users))
    checks.extend(_attr_check(m.key, m.op, m.values) for m in rule.when)
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def all_hold(uid: Any, attrs: Mapping[str, Any] | None) -> bool:
        for c in frozen:
            if not c(uid, attrs):
                return False
        return True

    return all_hold
