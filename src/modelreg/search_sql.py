"""The search language compiled to SQL for the derived index (issue 18). Pure, stdlib only.

`where_sql` turns parsed conditions (`modelreg.conditions`) into a WHERE fragment over the
index's tables, the versions table aliased `v`:

    versions(model, version, vkey, id, created, author, deprecated, ...)
    fields(model, version, key, num, text)  -- one row per metric and param leaf:
        key 'metrics.SPLIT.METRIC' or 'params.K[.K...]'; num the value as a float when it
        is an int, float or bool (NULL for NaN and for anything else); text str(value)
    tags(model, version, tag)               -- the version's current tags
    aliases(model, alias, version)

It selects exactly the versions `Condition.holds` accepts (tests/test_search.py checks it
on generated manifests and filters): numbers compare as numbers only when both sides are
numbers, `==`/`!=` otherwise compare the texts, a missing field fails every condition
(`!=` and NOT IN included), NaN fails a comparison with a number. The connection must run
`PRAGMA case_sensitive_like = ON`: LIKE is case-sensitive, ILIKE is `lower(x) LIKE lower(?)`
(ASCII folding, which `conditions.like` mirrors). `created` is ISO 8601 UTC text of a fixed
width (`2026-01-01T12:00:00Z`), so it orders as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from modelreg.conditions import HAS_TAG, ILIKE, IN, LIKE, NOT_IN, Condition

__all__ = ["condition_sql", "where_sql"]

_ORDERING = (">=", "<=", ">", "<")
_SQL_OP = {">=": ">=", "<=": "<=", ">": ">", "<": "<", "==": "=", "!=": "!="}
_COLUMNS = {"name": "v.model", "version": "v.version", "author": "v.author", "created": "v.created"}
_VERSION_IN = "(v.model, v.version) IN"
_VERSION_NOT_IN = "(v.model, v.version) NOT IN"
"""A version among a subquery's (model, version) rows: SQLite builds the set once, where a
correlated EXISTS would probe the fields once per version (a minute at 100,000 versions)."""
Sql = tuple[str, list[Any]]


def where_sql(conds: Sequence[Condition]) -> tuple[str, list[Any]]:
    """A WHERE fragment (the conditions joined with AND; "1" when none) and its parameters."""
    if not conds:
        return "1", []
    parts, params = [], []
    for cond in conds:
        sql, more = condition_sql(cond)
        parts.append(f"({sql})")
        params.extend(more)
    return " AND ".join(parts), params


def condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """One condition as an SQL expression over `v` and its parameters."""
    kind, op, value = cond.kind, cond.op, cond.value
    if kind == "tag":
        if op != HAS_TAG:
            return _never()
        tag = cond.field.partition(".")[2]
        return f"{_VERSION_IN} (SELECT t.model, t.version FROM tags t WHERE t.tag = ?)", [tag]
    if kind == "deprecated":
        if op not in ("==", "!=") or not isinstance(value, bool):
            return _never()
        wanted = value == (op == "==")
        return f"coalesce(v.deprecated, 0) {'!=' if wanted else '='} 0", []
    if kind == "alias":
        return _alias(op, value)
    if kind in ("text", "created"):
        return _each(op, value, lambda o, e: _text(_COLUMNS[cond.field], kind, o, e))
    key = cond.field if kind == "param" else f"metrics.{cond.field}"
    pred, params = _each(op, value, _field)
    if pred == "0":
        return _never()
    rows = "SELECT f.model, f.version FROM fields f WHERE f.key = ?"
    return f"{_VERSION_IN} ({rows} AND {pred})", [key, *params]


def _values(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _never() -> Sql:
    return "0", []


def _each(op: str, value: Any, one: Callable[[str, Any], Sql]) -> Sql:
    """IN as the OR of `==`, NOT IN as the AND of `!=`, any other operator as itself."""
    if op not in (IN, NOT_IN):
        return one(op, value)
    parts: list[Sql] = [one("==" if op == IN else "!=", v) for v in _values(value)]
    joiner, empty = (" OR ", "0") if op == IN else (" AND ", "1")
    if not parts:
        return empty, []
    params = [p for _, ps in parts for p in ps]
    return "(" + joiner.join(f"({sql})" for sql, _ in parts) + ")", params


def _like(column: str, op: str, pattern: Any) -> Sql:
    if op == LIKE:
        return f"{column} LIKE ?", [str(pattern)]
    return f"lower({column}) LIKE lower(?)", [str(pattern)]


def _text(column: str, kind: str, op: str, expected: Any) -> Sql:
    """A comparison of a text attribute: names, versions and authors; `created` orders too."""
    if op in (LIKE, ILIKE):
        return _like(column, op, expected)
    if op not in _SQL_OP or (op in _ORDERING and kind != "created"):
        return _never()
    return f"{column} {_SQL_OP[op]} ?", [str(expected)]


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except OverflowError:
        return None


def _field(op: str, expected: Any) -> Sql:
    """A comparison of one `fields` row `f` (a metric or param leaf) with `expected`."""
    if op in (LIKE, ILIKE):
        return _like("f.text", op, expected)
    if op not in _SQL_OP:
        return _never()
    if isinstance(expected, (int, float)):  # bool included, as 1.0 / 0.0
        want = _as_float(expected)
        if want is None or math.isnan(want):
            return _never()
        if op in _ORDERING:
            return f"f.num {op} ?", [want]
        text = str(expected)
        if op == "==":
            # a number equals a number; a non-number equals when its text is the number's
            return "(f.num = ? OR (f.num IS NULL AND f.text = ?))", [want, text]
        # NaN (num NULL, text 'nan') fails, like the text 'nan' the index cannot tell apart
        return (
            "((f.num IS NOT NULL AND f.num != ?) "
            "OR (f.num IS NULL AND f.text != 'nan' AND f.text != ?))"
        ), [want, text]
    if op in _ORDERING:
        return _never()
    return f"f.text {_SQL_OP[op]} ?", [str(expected)]


def _alias(op: str, value: Any) -> Sql:
    """Some alias of the version matches (`=`, IN, LIKE, ILIKE), or none does (`!=`, NOT IN)."""
    rows = "SELECT a.model, a.version FROM aliases a WHERE 1"
    if op in (LIKE, ILIKE):
        pred, params = _like("a.alias", op, value)
        return f"{_VERSION_IN} ({rows} AND {pred})", params
    if op not in ("==", "!=", IN, NOT_IN):
        return _never()
    wanted = [str(v) for v in _values(value)]
    if not wanted:
        return ("0", []) if op in ("==", IN) else ("1", [])
    marks = ", ".join("?" * len(wanted))
    found = f"({rows} AND a.alias IN ({marks}))"
    return f"{_VERSION_IN if op in ('==', IN) else _VERSION_NOT_IN} {found}", wanted
