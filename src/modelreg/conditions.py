"""The search language: `test.f1 >= 0.9 and params.lr < 0.01`, `name LIKE 'fraud-%'`, ...

`mreg list --where`, promotion gates and (compiled by `modelreg.search_sql`) the derived
index share one grammar and one set of error messages (issues 13, 18). Conditions are joined
by `and`; there is no `or`, as in MLflow's filter strings:

    FILTER    := CONDITION ("and" CONDITION)*
    CONDITION := FIELD OP VALUE | FIELD ["NOT"] "IN" "(" VALUE ("," VALUE)* ")"
               | FIELD ("LIKE" | "ILIKE") PATTERN | "tags." TAG
    FIELD     := SPLIT "." METRIC | "metrics." SPLIT "." METRIC | "params." KEY ("." KEY)*
               | "declared." KEY ("." KEY)* | "name" | "version" | "created" | "author"
               | "alias" | "deprecated"
    OP        := ">=" | "<=" | ">" | "<" | "==" | "=" | "!="
    VALUE     := a number | a quoted 'string' or "string" | a bare word (true, adam, ...)

Keywords (`and`, `IN`, `NOT`, `LIKE`, `ILIKE`) are case-insensitive. For metrics and params a
bare VALUE is read as a YAML scalar, so `0.9`, `3`, `true` and `adam` are a float, an int, a
bool and a string; a quoted one is always a string; ordering operators compare numbers only.
`declared.*` fields (what the model files declare, `modelreg.declared.search_values`) compare
as params do, and hold when any of their values does.
`name`, `version`, `author` and `alias` compare as text (a bare value is its text), `created`
with a date (`2026-01-01`, the start of that day UTC) or a timestamp (`2026-01-01T12:00:00Z`),
`deprecated` with true or false. LIKE and ILIKE take SQL's `%` (any run of characters) and
`_` (one character); ILIKE folds ASCII letters only, as SQLite's lower() does. A version
lacking the field fails the condition, `!=` and NOT IN included. Anything that does not
parse raises `InvalidInput` naming the column of the problem: never a silently empty result.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from modelreg.declared import PREFIX, search_values
from modelreg.errors import InvalidInput
from modelreg.manifest import ModelVersion
from modelreg.sqllike import like

__all__ = ["ATTRIBUTES", "HAS_TAG", "ILIKE", "IN", "LIKE", "NOT_IN", "Condition",
           "field_kind", "like", "parse_filter", "parse_scalar"]  # fmt: skip

_OPS: dict[str, Callable[[Any, Any], bool]] = {">=": operator.ge, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}  # fmt: skip
_ORDERING = (">=", "<=", ">", "<")
HAS_TAG = "has"  # the operator of a `tags.NAME` condition
LIKE, ILIKE, IN, NOT_IN = "LIKE", "ILIKE", "IN", "NOT IN"
# The top-level fields: the manifest's header, and what lives beside it (aliases, deprecation).
ATTRIBUTES = ("name", "version", "created", "author", "alias", "deprecated")
_TEXT = ("name", "version", "author")
_PREFIXED = {"params": "param", "declared": "param", "tags": "tag"}  # fields' kinds by prefix

# Which operators each kind of field takes (`field_kind`), in the order messages list them.
_COMPARE = ("==", "!=")
_ALLOWED: dict[str, tuple[str, ...]] = {
    "metric": (*_ORDERING, *_COMPARE, IN, NOT_IN),
    "param": (*_ORDERING, *_COMPARE, LIKE, ILIKE, IN, NOT_IN),
    "text": (*_COMPARE, LIKE, ILIKE, IN, NOT_IN),
    "created": (*_ORDERING, *_COMPARE, LIKE, ILIKE, IN, NOT_IN),
    "alias": (*_COMPARE, LIKE, ILIKE, IN, NOT_IN),
    "deprecated": _COMPARE,
}

_WORD = re.compile(r"[^\s<>=!'\"]+")
_LIST_WORD = re.compile(r"[^\s<>=!'\"(),]+")  # inside IN (...), `(`, `,` and `)` end a word


def _lexer(word: re.Pattern[str], punct: str) -> re.Pattern[str]:
    return re.compile(
        r"(?P<space>\s+)|(?P<op>>=|<=|==|!=|=|>|<)" + punct
        + r"""|(?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
        + f"|(?P<word>{word.pattern})|(?P<bad>.)"
    )  # fmt: skip


_TOKEN = _lexer(_WORD, "")
_LIST_TOKEN = _lexer(_LIST_WORD, "|(?P<punct>[(),])")
_FIELD_PART = re.compile(r"[A-Za-z0-9_\-/]+")
_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[Tt ]\d\d:\d\d(?::\d\d)?(?:[Zz]|[+-]\d\d:\d\d)?)?")
_EXAMPLES = "e.g. 'test.f1 >= 0.9', 'params.lr < 0.01' or 'tags.candidate'"
_FIELDS = "SPLIT.METRIC, metrics.SPLIT.METRIC, params.KEY, declared.KEY, tags.NAME, "
_FIELDS += ", ".join(ATTRIBUTES)


def parse_scalar(text: str) -> Any:
    """Read a command-line value as a YAML scalar (int, float, bool, null or string)."""
    from modelreg import yamlio

    try:
        value = yamlio.load(text.encode("utf-8"), "value")
    except InvalidInput:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def field_kind(field: str) -> str:
    """What a canonical field is: metric, param, tag, text, created, alias or deprecated."""
    if field in ATTRIBUTES:
        return "text" if field in _TEXT else field
    return _PREFIXED.get(field.partition(".")[0], "metric")


def _timestamp(text: str) -> str | None:
    """A date or timestamp as the manifest spells `created` (UTC, `Z`), or None."""
    if not _TIME.fullmatch(text):
        return None
    try:
        t = datetime.fromisoformat(re.sub("[Zz]$", "+00:00", text).replace("t", "T"))
        t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class _Token:
    kind: str  # op, quoted, word, punct
    text: str
    column: int  # 1-based
    end: int = 0  # 0-based offset just after the token


class _ParseError(Exception):
    def __init__(self, column: int, problem: str) -> None:
        super().__init__(problem)
        self.column, self.problem = column, problem


class _Reader:
    """Tokens read on demand: inside IN's parentheses a word ends at `(`, `,` and `)`."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.end_column = text, 0, len(text) + 1

    def peek(self, pattern: re.Pattern[str] = _TOKEN) -> _Token | None:
        pos = self.pos
        while pos < len(self.text):
            m = pattern.match(self.text, pos)
            assert m is not None  # `bad` matches any character
            kind = m.lastgroup or "bad"
            if kind == "space":
                pos = m.end()
                continue
            if kind == "bad":
                raise _ParseError(m.start() + 1, f"unexpected {m.group()!r}")
            return _Token(kind, m.group(), m.start() + 1, m.end())
        return None

    def next(self, pattern: re.Pattern[str] = _TOKEN) -> _Token | None:
        tok = self.peek(pattern)
        if tok is not None:
            self.pos = tok.end
        return tok


def _field(tok: _Token) -> str:
    """The canonical field of a FIELD token (the `metrics.` prefix dropped)."""
    parts = tok.text.split(".")
    if tok.kind != "word" or not all(_FIELD_PART.fullmatch(p) for p in parts):
        raise _ParseError(tok.column, f"expected a field, found {tok.text!r} ({_EXAMPLES})")
    head = parts[0]
    if len(parts) == 1 and head in ATTRIBUTES:
        return head
    if head == "metrics":
        if len(parts) != 3:
            raise _ParseError(tok.column, f"expected metrics.SPLIT.METRIC, found {tok.text!r}")
        return ".".join(parts[1:])
    if head in ("params", "tags", "declared"):
        if len(parts) < 2 or (head == "tags" and len(parts) != 2):
            raise _ParseError(tok.column, f"expected {head}.NAME, found {tok.text!r}")
        return tok.text
    if len(parts) != 2:
        raise _ParseError(tok.column, f"unknown field {tok.text!r}: expected one of {_FIELDS}")
    return tok.text


def _unquote(tok: _Token) -> str:
    return re.sub(r"\\(.)", r"\1", tok.text[1:-1])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(value: Any) -> float | None:
    """A number (bool included, as 1.0/0.0) as a float; None when it has none."""
    try:
        return float(value)
    except OverflowError:
        return None


def _value(tok: _Token | None, reader: _Reader, kind: str, op: str, after: str) -> Any:
    """The VALUE at `tok` for a field of `kind` compared with `op` (`after`: what preceded)."""
    if tok is None:
        raise _ParseError(reader.end_column, f"expected a value after {after!r}")
    if tok.kind not in ("quoted", "word"):
        raise _ParseError(tok.column, f"expected a value, found {tok.text!r}")
    text = _unquote(tok) if tok.kind == "quoted" else tok.text
    if op in (LIKE, ILIKE) or kind in ("text", "alias"):
        return text
    if kind == "created":
        if (stamp := _timestamp(text)) is None:
            example = "a date (2026-01-01) or a timestamp (2026-01-01T12:00:00Z)"
            raise _ParseError(tok.column, f"expected {example}, found {tok.text!r}")
        return stamp
    if kind == "deprecated":
        if text.lower() not in ("true", "false"):
            raise _ParseError(tok.column, f"deprecated is true or false, found {tok.text!r}")
        return text.lower() == "true"
    value = text if tok.kind == "quoted" else parse_scalar(text)
    if op in _ORDERING and not _is_number(value):
        raise _ParseError(tok.column, f"{op} compares numbers, and {tok.text!r} is not one")
    if _is_number(value):
        number = _as_float(value)
        if number is None:
            raise _ParseError(tok.column, f"{tok.text!r} is too large a number")
        if math.isnan(number):
            raise _ParseError(tok.column, "NaN equals nothing, itself included")
    return value


def _operator(reader: _Reader, field_tok: _Token, kind: str) -> tuple[str, _Token]:
    """The canonical operator after `field_tok`, and its (last) token."""
    tok = reader.next()
    if tok is None:
        where = field_tok.column + len(field_tok.text)
        raise _ParseError(where, f"expected an operator after {field_tok.text!r}")
    allowed = _ALLOWED[kind]
    word = tok.text.upper() if tok.kind == "word" else ""
    if tok.kind == "op":
        op = "==" if tok.text == "=" else tok.text
    elif word in (LIKE, ILIKE, IN):
        op = word
    elif word == "NOT":
        after = reader.next()
        if after is None or after.kind != "word" or after.text.upper() != IN:
            found = "the end" if after is None else repr(after.text)
            column = reader.end_column if after is None else after.column
            raise _ParseError(column, f"expected IN after {tok.text!r}, found {found}")
        op, tok = NOT_IN, after
    else:
        raise _ParseError(
            tok.column, f"expected an operator ({' '.join(allowed)}), found {tok.text!r}"
        )
    if op not in allowed:
        raise _ParseError(tok.column, f"{field_tok.text} takes {' '.join(allowed)}, not {op}")
    return op, tok


def _list(reader: _Reader, kind: str, in_tok: _Token) -> tuple[Any, ...]:
    """The parenthesised values of IN / NOT IN."""
    tok = reader.next(_LIST_TOKEN)
    if tok is None or tok.text != "(":
        column = reader.end_column if tok is None else tok.column
        found = "the end" if tok is None else repr(tok.text)
        raise _ParseError(column, f"expected '(' after {in_tok.text!r}, found {found}")
    values: list[Any] = []
    while True:
        tok = reader.next(_LIST_TOKEN)
        if tok is not None and tok.text == ")" and not values:
            raise _ParseError(tok.column, "expected at least one value in IN (...)")
        values.append(_value(tok, reader, kind, "==", "(" if not values else ","))
        sep = reader.next(_LIST_TOKEN)
        if sep is None:
            raise _ParseError(reader.end_column, "expected ',' or ')', found the end")
        if sep.text == ")":
            return tuple(values)
        if sep.text != ",":
            raise _ParseError(sep.column, f"expected ',' or ')', found {sep.text!r}")


def _condition(reader: _Reader, field_tok: _Token) -> Condition:
    field = _field(field_tok)
    kind = field_kind(field)
    if kind == "tag":
        nxt = reader.peek()
        if nxt is not None and (nxt.kind == "op" or nxt.text.upper() in (LIKE, ILIKE, IN, "NOT")):
            raise _ParseError(
                nxt.column, f"tags have no values: write {field!r} to ask for the tag"
            )
        return Condition(field, HAS_TAG, None)
    op, op_tok = _operator(reader, field_tok, kind)
    if op in (IN, NOT_IN):
        return Condition(field, op, _list(reader, kind, op_tok))
    return Condition(field, op, _value(reader.next(), reader, kind, op, op_tok.text))


def _parse(text: str) -> tuple[Condition, ...]:
    reader = _Reader(text)
    while reader.next():  # a character no token starts with is reported first, wherever it is
        pass
    reader.pos = 0
    if reader.peek() is None:
        raise _ParseError(1, f"empty condition ({_EXAMPLES})")
    out: list[Condition] = []
    while True:
        field_tok = reader.next()
        if field_tok is None:
            raise _ParseError(reader.end_column, "expected a condition after 'and'")
        out.append(_condition(reader, field_tok))
        joiner = reader.next()
        if joiner is None:
            return tuple(out)
        if joiner.kind != "word" or joiner.text.lower() != "and":
            hint = ""
            if joiner.text.lower() == "or":
                hint = ": 'or' is not supported (use IN, or run one search per alternative)"
            raise _ParseError(
                joiner.column, f"expected 'and' or the end, found {joiner.text!r}{hint}"
            )


def parse_filter(text: str) -> tuple[Condition, ...]:
    """Parse a filter (conditions joined by `and`); raise InvalidInput naming the column."""
    try:
        return _parse(text)
    except _ParseError as exc:
        raise InvalidInput(
            f"invalid condition {text!r}: {exc.problem} (column {exc.column})"
        ) from None


_MISSING: Any = object()


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as one level of dotted keys, leaves only, as the index stores them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _compare(kind: str, actual: Any, op: str, expected: Any) -> bool:
    """`actual OP expected` for one present value of a metric, param or attribute.

    Numbers (bools as 1 and 0) compare as floats when both sides are numbers, and NaN fails;
    otherwise only == and != hold, comparing texts, and the text `nan` fails against a
    number too (the index stores NaN as that text, `search_sql` cannot tell them apart).
    Attributes compare as text; `created`, an ISO 8601 UTC timestamp, also orders as text.
    """
    if op in (LIKE, ILIKE):
        return like(str(actual), str(expected), ignore_case=op == ILIKE)
    fn = _OPS.get(op)
    if fn is None:
        return False
    if kind in ("text", "created"):
        return (op in _COMPARE or kind == "created") and fn(str(actual), str(expected))
    number = isinstance(expected, (int, float))
    want = _as_float(expected) if number else None
    if number and (want is None or math.isnan(want)):
        return False
    if isinstance(actual, (int, float)) and want is not None:
        have = _as_float(actual)
        return have is not None and not math.isnan(have) and fn(have, want)
    if op not in _COMPARE or (number and str(actual) == "nan"):
        return False
    return fn(str(actual), str(expected))


def _values(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class Condition:
    """One parsed condition, e.g. Condition('test.f1', '>=', 0.9).

    `field` is canonical (`test.f1`, `params.lr`, `tags.x`, `name`, ...); `op` one of `>= <=
    > < == !=`, LIKE, ILIKE, IN, NOT IN or `has` (a tag); `value` a scalar, a tuple of them
    for IN / NOT IN, a `...Z` timestamp for `created`, a bool for `deprecated`.
    """

    field: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Parse one condition (a gate); raise InvalidInput naming the column when malformed."""
        conds = parse_filter(text)
        if len(conds) != 1:
            raise InvalidInput(
                f"invalid condition {text!r}: a gate is one condition; list each one separately"
            )
        return conds[0]

    @property
    def kind(self) -> str:
        """The field's kind: metric, param, tag, text, created, alias or deprecated."""
        return field_kind(self.field)

    def _get(self, mv: ModelVersion, aliases: Collection[str], deprecated: bool) -> Any:
        kind = self.kind
        if kind == "param" and self.field.startswith(PREFIX):  # all its values (issue 20)
            return tuple(search_values(mv.declared).get(self.field, ())) or _MISSING
        if kind == "param":
            return _leaves(mv.params).get(self.field.partition(".")[2], _MISSING)
        if kind == "tag":
            return True if self.field.partition(".")[2] in mv.tags else _MISSING
        if kind in ("text", "created"):
            attrs = {"name": mv.name, "version": mv.version, "author": mv.author}
            return attrs.get(self.field, mv.created)
        if kind == "alias":
            return tuple(sorted(aliases)) if aliases else _MISSING
        if kind == "deprecated":
            return deprecated
        value = mv.metric(self.field)
        return _MISSING if value is None else value

    def lookup(
        self, mv: ModelVersion, *, aliases: Collection[str] = (), deprecated: bool = False
    ) -> Any:
        """The field's value in a version, or None when it has none (or it is null)."""
        value = self._get(mv, aliases, deprecated)
        return None if value is _MISSING else value

    def holds(
        self,
        mv: ModelVersion,
        tags: Collection[str] | None = None,
        *,
        aliases: Collection[str] = (),
        deprecated: bool = False,
    ) -> bool:
        """True when the version satisfies the condition (False when the field is missing).

        `tags` are the version's current tags (manifest tags plus those added later with
        `mreg tag`); the manifest's are used when it is not given. `aliases` are the
        aliases pointing at the version now, `deprecated` whether it is deprecated: only
        `alias` and `deprecated` conditions read them.
        """
        kind, op = self.kind, self.op
        if kind == "tag":
            return op == HAS_TAG and self.field.partition(".")[2] in (
                mv.tags if tags is None else tags
            )
        if kind == "deprecated":
            ok = op in _COMPARE and isinstance(self.value, bool)
            return ok and (bool(deprecated) == self.value) == (op == "==")
        if kind == "alias":
            if op in (LIKE, ILIKE):
                return any(like(str(a), str(self.value), ignore_case=op == ILIKE) for a in aliases)
            if op not in (*_COMPARE, IN, NOT_IN):
                return False
            wanted = {str(v) for v in _values(self.value)}
            found = any(str(a) in wanted for a in aliases)
            return found if op in ("==", IN) else not found
        actual = self._get(mv, aliases, deprecated)
        if actual is _MISSING:
            return False
        if self.field.startswith(PREFIX):
            return any(self._holds(kind, op, v) for v in actual)
        return self._holds(kind, op, actual)

    def _holds(self, kind: str, op: str, actual: Any) -> bool:
        if op == IN:
            return any(_compare(kind, actual, "==", v) for v in _values(self.value))
        if op == NOT_IN:
            return all(_compare(kind, actual, "!=", v) for v in _values(self.value))
        return _compare(kind, actual, op, self.value)

    def __str__(self) -> str:
        if self.op == HAS_TAG:
            return self.field
        if self.op in (IN, NOT_IN):
            items = ", ".join(_render(self.kind, v, _LIST_WORD) for v in _values(self.value))
            return f"{self.field} {self.op} ({items})"
        kind = "text" if self.op in (LIKE, ILIKE) else self.kind
        return f"{self.field} {self.op} {_render(kind, self.value, _WORD)}"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _render(kind: str, value: Any, word: re.Pattern[str]) -> str:
    """A value written so that it reads back the same for a field of `kind`."""
    plain = isinstance(value, str) and word.fullmatch(value) is not None
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if not isinstance(value, str):
        return str(value)
    if kind in ("text", "alias", "created"):
        return value if plain else _quote(value)
    if parse_scalar(value) != value or not plain or value.lower() == "and":
        return _quote(value)
    return value
