"""Metric and param conditions: `test.f1 >= 0.9`, `params.lr < 0.01`, `params.opt == adam`.

Used by `mreg list --where` and by promotion gates in `config.yaml`. A field is either
`SPLIT.METRIC` or `params.KEY` (a dotted path into nested params). Operators: `>=`, `<=`,
`>`, `<`, `==`, `!=`. Values are read as YAML scalars, so `0.9`, `3`, `true` and `adam` are a
float, an int, a bool and a string. A version lacking the field fails the condition.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.manifest import ModelVersion

__all__ = ["Condition", "parse_scalar"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_COND_RE = re.compile(r"\s*([A-Za-z0-9_.\-/]+)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*")
_MISSING = object()


def parse_scalar(text: str) -> Any:
    """Read a command-line value as a YAML scalar (int, float, bool, null or string)."""
    from modelreg import yamlio

    try:
        value = yamlio.load(text.encode("utf-8"), "value")
    except InvalidInput:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


@dataclass(frozen=True)
class Condition:
    """One parsed condition, e.g. Condition('test.f1', '>=', 0.9)."""

    field: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Parse `FIELD OP VALUE`; raise InvalidInput with an example when malformed."""
        m = _COND_RE.fullmatch(text)
        if not m or "." not in m.group(1):
            raise InvalidInput(
                f"invalid condition {text!r}: expected FIELD OP VALUE, e.g. 'test.f1 >= 0.9' "
                "or 'params.lr < 0.01'"
            )
        return cls(m.group(1), m.group(2), parse_scalar(m.group(3)))

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
        return mv.metric(self.field)

    def holds(self, mv: ModelVersion) -> bool:
        """True when the version satisfies the condition (False when the field is missing)."""
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
        return f"{self.field} {self.op} {self.value}"
