"""Conditions on versions: `test.f1 >= 0.9 and params.lr < 0.01`, `tags.candidate`.

Used by `mreg list --where` and by promotion gates in `config.yaml`; one grammar, one set of
error messages (issue 13). A filter is one or more conditions joined by `and`:

    FILTER    := CONDITION ("and" CONDITION)*
    CONDITION := FIELD OP VALUE | "tags." TAG
    FIELD     := SPLIT "." METRIC | "metrics." SPLIT "." METRIC | "params." KEY ("." KEY)*
    OP        := ">=" | "<=" | ">" | "<" | "==" | "=" | "!="
    VALUE     := a number | a quoted 'string' or "string" | a bare word (true, adam, ...)

The `metrics.`, `params.` and `tags.` prefixes are MLflow's filter-string spelling. A bare
VALUE is read as a YAML scalar, so `0.9`, `3`, `true` and `adam` are a float, an int, a
bool and a string; a quoted one is always a string. Ordering operators compare numbers only.
A version lacking the field fails the condition. Anything that does not parse raises
`InvalidInput` naming the column of the problem: never a silently empty result.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.manifest import ModelVersion

__all__ = ["Condition", "parse_filter", "parse_scalar"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_ORDERING = (">=", "<=", ">", "<")
HAS_TAG = "has"  # the operator of a `tags.NAME` condition

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<op>>=|<=|==|!=|=|>|<)
      | (?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<word>[^\s<>=!'"]+)
      | (?P<bad>.)""",
    re.VERBOSE,
)
_WORD = re.compile(r"[^\s<>=!'\"]+")
_FIELD_PART = re.compile(r"[A-Za-z0-9_\-/]+")
_EXAMPLES = "e.g. 'test.f1 >= 0.9', 'params.lr < 0.01' or 'tags.candidate'"


def parse_scalar(text: str) -> Any:
    """Read a command-line value as a YAML scalar (int, float, bool, null or string)."""
    from modelreg import yamlio

    try:
        value = yamlio.load(text.encode("utf-8"), "value")
    except InvalidInput:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


@dataclass(frozen=True)
class _Token:
    kind: str  # op, quoted, word
    text: str
    column: int  # 1-based


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "bad"
        if kind == "space":
            continue
        if kind == "bad":
            raise _ParseError(m.start() + 1, f"unexpected {m.group()!r}")
        out.append(_Token(kind, m.group(), m.start() + 1))
    return out


class _ParseError(Exception):
    def __init__(self, column: int, problem: str) -> None:
        super().__init__(problem)
        self.column, self.problem = column, problem


def _field(tok: _Token) -> str:
    """The canonical field of a FIELD token (the `metrics.` prefix dropped)."""
    parts = tok.text.split(".")
    if tok.kind != "word" or not all(_FIELD_PART.fullmatch(p) for p in parts):
        raise _ParseError(tok.column, f"expected a field, found {tok.text!r} ({_EXAMPLES})")
    head = parts[0]
    if head == "metrics":
        if len(parts) != 3:
            raise _ParseError(tok.column, f"expected metrics.SPLIT.METRIC, found {tok.text!r}")
        return ".".join(parts[1:])
    if head in ("params", "tags"):
        if len(parts) < 2 or (head == "tags" and len(parts) != 2):
            raise _ParseError(tok.column, f"expected {head}.NAME, found {tok.text!r}")
        return tok.text
    if len(parts) != 2:
        raise _ParseError(
            tok.column,
            f"unknown field {tok.text!r}: expected SPLIT.METRIC, metrics.SPLIT.METRIC, "
            "params.KEY or tags.NAME",
        )
    return tok.text


def _value(tok: _Token) -> Any:
    if tok.kind == "quoted":
        body = tok.text[1:-1]
        return re.sub(r"\\(.)", r"\1", body)
    if tok.kind != "word":
        raise _ParseError(tok.column, f"expected a value, found {tok.text!r}")
    return parse_scalar(tok.text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse(text: str) -> tuple[Condition, ...]:
    toks = _tokens(text)
    if not toks:
        raise _ParseError(1, f"empty condition ({_EXAMPLES})")
    out: list[Condition] = []
    i = 0
    while True:
        if i >= len(toks):
            raise _ParseError(len(text) + 1, "expected a condition after 'and'")
        field_tok = toks[i]
        field = _field(field_tok)
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if field.startswith("tags."):
            if nxt is not None and nxt.kind == "op":
                raise _ParseError(
                    nxt.column, f"tags have no values: write {field!r} to ask for the tag"
                )
            out.append(Condition(field, HAS_TAG, None))
            i += 1
        else:
            if nxt is None:
                where = field_tok.column + len(field_tok.text)
                raise _ParseError(where, f"expected an operator after {field_tok.text!r}")
            if nxt.kind != "op":
                raise _ParseError(
                    nxt.column, f"expected an operator (>= <= > < == !=), found {nxt.text!r}"
                )
            if i + 2 >= len(toks):
                raise _ParseError(len(text) + 1, f"expected a value after {nxt.text!r}")
            op = "==" if nxt.text == "=" else nxt.text
            value_tok = toks[i + 2]
            value = _value(value_tok)
            if op in _ORDERING and not _is_number(value):
                raise _ParseError(
                    value_tok.column, f"{op} compares numbers, and {value_tok.text!r} is not one"
                )
            out.append(Condition(field, op, value))
            i += 3
        if i == len(toks):
            return tuple(out)
        joiner = toks[i]
        if joiner.kind != "word" or joiner.text.lower() != "and":
            raise _ParseError(joiner.column, f"expected 'and' or the end, found {joiner.text!r}")
        i += 1


def parse_filter(text: str) -> tuple[Condition, ...]:
    """Parse a filter (conditions joined by `and`); raise InvalidInput naming the column."""
    try:
        return _parse(text)
    except _ParseError as exc:
        raise InvalidInput(
            f"invalid condition {text!r}: {exc.problem} (column {exc.column})"
        ) from None


@dataclass(frozen=True)
class Condition:
    """One parsed condition, e.g. Condition('test.f1', '>=', 0.9)."""

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

    def lookup(self, mv: ModelVersion) -> Any:
        """The field's value in a version, or None when it has none."""
        head, _, rest = self.field.partition(".")
        node: Any
        if head == "params":
            node = mv.params
            for part in rest.split("."):
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
            return node
        if head == "tags":
            return True if rest in mv.tags else None
        return mv.metric(self.field)

    def holds(self, mv: ModelVersion, tags: Collection[str] | None = None) -> bool:
        """True when the version satisfies the condition (False when the field is missing).

        `tags` are the version's current tags (manifest tags plus those added later with
        `mreg tag`); the manifest's are used when it is not given.
        """
        if self.op == HAS_TAG:
            return self.field.partition(".")[2] in (mv.tags if tags is None else tags)
        actual = self.lookup(mv)
        if actual is None:
            return False
        expected = self.value
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
            if isinstance(actual, float) and math.isnan(actual):
                return False
        elif self.op not in ("==", "!="):
            return False
        else:
            actual, expected = str(actual), str(expected)
        try:
            return _OPS[self.op](actual, expected)
        except TypeError:
            return False

    def __str__(self) -> str:
        if self.op == HAS_TAG:
            return self.field
        value = self.value
        if isinstance(value, str) and (parse_scalar(value) != value or not _plain(value)):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = "null"
        return f"{self.field} {self.op} {value}"


def _plain(text: str) -> bool:
    """Whether a string value can be written without quotes and read back the same."""
    return _WORD.fullmatch(text) is not None and text.lower() != "and"
