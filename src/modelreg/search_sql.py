"""The search language compiled to SQL for the derived index (issue 18). Pure, stdlib only.

`where_sql` turns parsed conditions (`modelreg.conditions`) into a WHERE fragment over the
index's tables, the versions table aliased `v`:

    versions(model, version, vkey, id, created, author, deprecated, ...)
    fields(model, version, key, num, text)  -- one row per metric and param leaf:
        key 'metrics.SPLIT.METRIC' or 'params.K[.K...]'; num the value as a float when it
        is an int, float or bool (NULL for NaN and for anything else); text str(value)
    tags(model, version, tag)               -- the version's current tags
    aliases(model, alias, version)

A condition on the version's tags, aliases, metrics or params has two forms that select the
same versions: a set, `(v.model, v.version) IN (SELECT ...)`, which SQLite builds once and
which can drive the query from its rows, and a probe, a correlated `EXISTS (...)` looked up
in a covering index per version. `where_sql(conds, sets=...)` says which conditions take the
set form; `rows_sql` gives a positive set condition's rows, so that a caller can count them
(cheaply, in a covering index) and let the rarest one drive (`modelreg.listing`).

Either form selects exactly the versions `Condition.holds` accepts (tests/test_search.py checks it
on generated manifests and filters): numbers compare as numbers only when both sides are
numbers, `==`/`!=` otherwise compare the texts, a missing field fails every condition
(`!=` and NOT IN included), NaN fails a comparison with a number. The connection must run
`PRAGMA case_sensitive_like = ON`: LIKE is case-sensitive, ILIKE is `lower(x) LIKE lower(?)`
(ASCII folding, which `conditions.like` mirrors). `created` is ISO 8601 UTC text of a fixed
width (`2026-01-01T12:00:00Z`), so it orders as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence
from typing import Any

from modelreg.conditions import HAS_TAG, ILIKE, IN, LIKE, NOT_IN, Condition

__all__ = ["condition_sql", "rows_sql", "where_sql"]

_ORDERING = (">=", "<=", ">", "<")
_SQL_OP = {">=": ">=", "<=": "<=", ">": ">", "<": "<", "==": "=", "!=": "!="}
_COLUMNS = {"name": "v.model", "version": "v.version", "author": "v.author", "created": "v.created"}
_VERSION_IN = "(v.model, v.version) IN"
_VERSION_NOT_IN = "(v.model, v.version) NOT IN"
"""A version among a subquery's (model, version) rows: SQLite builds the set once (the set
form); the probe form is a correlated EXISTS on the covering index `fields_version`."""
Sql = tuple[str, list[Any]]


def where_sql(
    conds: Sequence[Condition], *, sets: Container[int] | None = None
) -> tuple[str, list[Any]]:
    """A WHERE fragment (the conditions joined with AND; "1" when none) and its parameters.

    `sets`: the positions of the conditions that take the set form (None: every one); the
    others are probes. Both forms select the same versions.
    """
    if not conds:
        return "1", []
    parts, params = [], []
    for i, cond in enumerate(conds):
        sql, more = condition_sql(cond, probe=sets is not None and i not in sets)
        parts.append(f"({sql})")
        params.extend(more)
    return " AND ".join(parts), params


def rows_sql(cond: Condition) -> Sql | None:
    """The (model, version) rows a set condition selects (None: not a positive set).

    Counting them costs a range of a covering index, whatever the store's size.
    """
    found = _set_of(cond)
    if found is None or found[0]:
        return None
    _, table, pred, params = found
    return f"SELECT x.model, x.version FROM {table} x WHERE {pred}", params


def condition_sql(cond: Condition, *, probe: bool = False) -> tuple[str, list[Any]]:
    """One condition as an SQL expression over `v` and its parameters (module docstring)."""
    found = _set_of(cond)
    if found is not None:
        negate, table, pred, params = found
        if probe:
            rows = f"SELECT 1 FROM {table} x WHERE x.model = v.model AND x.version = v.version"
            return f"{'NOT ' if negate else ''}EXISTS ({rows} AND {pred})", params
        rows = f"SELECT x.model, x.version FROM {table} x WHERE {pred}"
        return f"{_VERSION_NOT_IN if negate else _VERSION_IN} ({rows})", params
    kind, op, value = cond.kind, cond.op, cond.value
    if kind == "deprecated":
        if op not in ("==", "!=") or not isinstance(value, bool):
            return _never()
        wanted = value == (op == "==")
        return f"coalesce(v.deprecated, 0) {'!=' if wanted else '='} 0", []
    if kind in ("text", "created"):
        return _each(op, value, lambda o, e: _text(_COLUMNS[cond.field], kind, o, e))
    return _never()  # a set condition that can hold for no version (an empty IN, a bad op)


_Set = tuple[bool, str, str, list[Any]]
"""A set condition: (negated, table, predicate over its row `x`, parameters)."""


def _set_of(cond: Condition) -> _Set | None:
    """A tag, alias, metric or param condition as a set of rows.

    None: another kind, or a condition no version can satisfy (`0` in either form).
    """
    kind, op, value = cond.kind, cond.op, cond.value
    if kind == "tag":
        if op != HAS_TAG:
            return None
        return False, "tags", "x.tag = ?", [cond.field.partition(".")[2]]
    if kind == "alias":
        return _alias(op, value)
    if kind not in ("metric", "param"):
        return None
    key = cond.field if kind == "param" else f"metrics.{cond.field}"
    pred, params = _each(op, value, _field)
    if pred == "0":
        return None
    return False, "fields", f"x.key = ? AND {pred}", [key, *params]


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
    """A comparison of one `fields` row `x` (a metric or param leaf) with `expected`."""
    if op in (LIKE, ILIKE):
        return _like("x.text", op, expected)
    if op not in _SQL_OP:
        return _never()
    if isinstance(expected, (int, float)):  # bool included, as 1.0 / 0.0
        want = _as_float(expected)
        if want is None or math.isnan(want):
            return _never()
        if op in _ORDERING:
            return f"x.num {op} ?", [want]
        text = str(expected)
        if op == "==":
            # a number equals a number; a non-number equals when its text is the number's
            return "(x.num = ? OR (x.num IS NULL AND x.text = ?))", [want, text]
        # NaN (num NULL, text 'nan') fails, like the text 'nan' the index cannot tell apart
        return (
            "((x.num IS NOT NULL AND x.num != ?) "
            "OR (x.num IS NULL AND x.text != 'nan' AND x.text != ?))"
        ), [want, text]
    if op in _ORDERING:
        return _never()
    return f"x.text {_SQL_OP[op]} ?", [str(expected)]


def _alias(op: str, value: Any) -> _Set | None:
    """Some alias of the version matches (`=`, IN, LIKE, ILIKE), or none does (`!=`, NOT IN)."""
    if op in (LIKE, ILIKE):
        pred, params = _like("x.alias", op, value)
        return False, "aliases", pred, params
    if op not in ("==", "!=", IN, NOT_IN):
        return None
    wanted = [str(v) for v in _values(value)]
    negate = op in ("!=", NOT_IN)
    if not wanted:  # IN (): no version; NOT IN (): every version
        return (True, "aliases", "0", []) if negate else None
    marks = ", ".join("?" * len(wanted))
    return negate, "aliases", f"x.alias IN ({marks})", wanted
