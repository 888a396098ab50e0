"""`mreg list`: models and versions, filtered, sorted and paged, from the index (issue 18).

`versions` and `models` answer from the derived index (`modelreg.index`) so that a listing
costs the same with 1,000 or 100,000 versions: the index selects, counts, sorts and pages;
only the page's manifests are read. Where the index cannot be used (a read-only store, a
write in progress in this process) the files are read, with the same results. A filter the
index cannot evaluate in SQL is evaluated on the manifests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from modelreg.catalog import (
    ModelSummary,
    VersionInfo,
    _info,
    check_model,
    load_version,
    model_names,
    version_list,
)
from modelreg.errors import InvalidInput
from modelreg.indexrows import index_aliases
from modelreg.names import Version, check_name
from modelreg.refs import AliasRef, list_aliases

if TYPE_CHECKING:
    from modelreg.conditions import Condition
    from modelreg.handle import StoreHandle
    from modelreg.index import Index

__all__ = ["COUNT_LIMIT", "DEFAULT_LIMIT", "VersionPage", "models", "versions"]

DEFAULT_LIMIT = 100
"""The page `mreg list` shows without `--limit` (the library's default is every row)."""


COUNT_LIMIT = 10_000
"""How far a listing with a limit counts the matching versions (`count_limit`): beyond it,
`total` is a lower bound (`exact` False), as Elasticsearch's `track_total_hits` does, so a
page costs the same whatever the number of matches. None counts every one."""
_DRIVER_ROWS = 2 * COUNT_LIMIT
"""A set condition with fewer rows drives the query (module `search_sql`); more, and the
versions are walked in order with every condition probed."""


class VersionPage(list[VersionInfo]):
    """A page of versions: the rows, and how many match in all (`total`) from `offset`.

    `exact` is False when the count stopped at its bound: `total` matching versions or more.
    """

    total: int = 0
    offset: int = 0
    exact: bool = True

    @property
    def more(self) -> int:
        """How many matching versions come after this page."""
        return max(self.total - self.offset - len(self), 0)


def models(store: StoreHandle) -> list[ModelSummary]:
    """Every model with its version count, latest version, aliases and last registration."""
    from modelreg.index import open_index

    with open_index(store) as idx:
        if idx is not None:
            return _models_from_index(idx)
    out = []
    for name in model_names(store):
        vs = version_list(store, name)
        latest = max(vs) if vs else None
        updated = load_version(store, name, latest.text).created if latest else None
        out.append(
            ModelSummary(
                name=name,
                versions=len(vs),
                latest=latest.text if latest else None,
                aliases={a.alias: a.version for a in list_aliases(store, name)},
                updated=updated,
            )
        )
    return out


def _models_from_index(idx: Index) -> list[ModelSummary]:
    rows = idx.conn.execute(
        "SELECT m.model, m.n, v.version, v.created FROM "
        "(SELECT model, COUNT(*) AS n, MAX(vkey) AS top FROM versions GROUP BY model) AS m "
        "JOIN versions v ON v.model = m.model AND v.vkey = m.top ORDER BY m.model"
    ).fetchall()
    aliases: dict[str, dict[str, str]] = {}
    for model, alias, version in idx.conn.execute(
        "SELECT model, alias, version FROM aliases ORDER BY model, alias"
    ):
        aliases.setdefault(model, {})[alias] = version
    return [
        ModelSummary(name=m, versions=n, latest=v, aliases=aliases.get(m, {}), updated=c)
        for m, n, v, c in rows
    ]


def _sort_key(sort: str) -> tuple[Any, Callable[[VersionInfo], bool]]:
    """The sort key for `sort`, and which rows have a value to sort by."""
    if sort == "version":
        return (lambda i: Version(i.version.version)), (lambda i: True)
    if sort == "created":
        return (lambda i: i.version.created), (lambda i: True)
    field = _sort_field(sort)
    from modelreg.conditions import Condition

    cond = Condition(field, "==", None)

    def key(i: VersionInfo) -> tuple[int, Any]:
        # numbers before other values, which compare as text, so mixed types never fail
        v = cond.lookup(i.version)
        if isinstance(v, (int, float)):
            return (0, v)
        return (1, str(v))

    return key, (lambda i: cond.lookup(i.version) is not None)


def _sort_field(sort: str) -> str:
    """The condition field a metric or parameter sort reads (`test.f1`, `params.lr`)."""
    if "." not in sort:
        raise InvalidInput(f"invalid --sort {sort!r}: use version, created or SPLIT.METRIC")
    return sort.removeprefix("metrics.") if sort.count(".") == 2 else sort


def _conditions(where: Sequence[Condition | str]) -> list[Condition]:
    from modelreg.conditions import Condition, parse_filter

    return [cond for c in where for cond in ((c,) if isinstance(c, Condition) else parse_filter(c))]


def versions(
    store: StoreHandle,
    name: str | None = None,
    *,
    tags: Sequence[str] = (),
    alias: str | None = None,
    where: Sequence[Condition | str] = (),
    sort: str = "version",
    descending: bool = False,
    include_deprecated: bool = True,
    limit: int | None = None,
    offset: int = 0,
    count_limit: int | None = COUNT_LIMIT,
) -> VersionPage:
    """Versions of `name` (or of every model) matching all filters, sorted, one page.

    `limit` None (or 0) means every matching version; `offset` skips that many first.
    `total` counts the matches up to `count_limit` (or past the page's end, if further;
    None: all), and says whether it stopped (`VersionPage.exact`).
    Versions without the sort field come last in either direction, in version order.
    """
    from modelreg.index import open_index

    if (limit is not None and limit < 0) or offset < 0:
        raise InvalidInput("--limit and --offset take a number of versions, 0 or more")
    conds = _conditions(where)
    _sort_key(sort)  # an invalid sort is refused before anything is read
    if name:
        check_name(name)
        check_model(store, name)
    with open_index(store) as idx:
        if idx is not None:
            found = _from_index(idx, name, tags, alias, conds, sort, descending,
                                include_deprecated, limit or None, offset,
                                count_limit)  # fmt: skip
            if found is not None:
                return found
    return _from_files(store, name, tags, alias, conds, sort, descending, include_deprecated,
                       limit or None, offset)  # fmt: skip


def _from_files(
    store: StoreHandle, name: str | None, tags: Sequence[str], alias: str | None,
    conds: list[Condition], sort: str, descending: bool, include_deprecated: bool,
    limit: int | None, offset: int,
) -> VersionPage:  # fmt: skip
    key, has_value = _sort_key(sort)
    names = [name] if name else model_names(store)
    rows: list[VersionInfo] = []
    for n in names:
        aliases = list_aliases(store, n)
        for v in sorted(version_list(store, n)):
            i = _info(load_version(store, n, v.text), aliases, store)
            if alias is not None and alias not in i.aliases:
                continue
            if any(t not in i.tags for t in tags):
                continue
            if not all(_holds(c, i) for c in conds):
                continue
            if i.deprecated and not include_deprecated:
                continue
            rows.append(i)
    present = [r for r in rows if has_value(r)]
    missing = [r for r in rows if not has_value(r)]
    ordered = sorted(present, key=key, reverse=descending) + missing
    page = VersionPage(ordered[offset : None if limit is None else offset + limit])
    page.total, page.offset = len(ordered), offset
    return page


def _holds(c: Condition, i: VersionInfo) -> bool:
    return c.holds(i.version, i.tags, aliases=i.aliases, deprecated=bool(i.deprecated))


def _from_index(
    idx: Index, name: str | None, tags: Sequence[str], alias: str | None,
    conds: list[Condition], sort: str, descending: bool, include_deprecated: bool,
    limit: int | None, offset: int, count_limit: int | None,
) -> VersionPage | None:  # fmt: skip
    """The page from the index (every condition compiles to SQL: `search_sql`).

    The rarest set condition drives the query (its rows counted in a covering index, up to
    `_DRIVER_ROWS`); when every one is common, the versions are walked in order and each
    condition probed, which stops at the page and at the count's bound. Either way the
    work is bounded by the page, the bound and the rarest condition, not by the store.
    """
    from modelreg.conditions import HAS_TAG, Condition
    from modelreg.search_sql import where_sql

    conds = [
        *(Condition(f"tags.{t}", HAS_TAG, None) for t in tags),
        *([Condition("alias", "==", alias)] if alias is not None else []),
        *conds,
    ]
    where, params = ["1"], []
    if name:
        where.append("v.model = ?")
        params.append(name)
    if not include_deprecated:
        where.append("v.deprecated = 0")
    drivers: tuple[int, ...] = ()
    if conds:
        drivers = _driver(idx, conds)
        sql, more = where_sql(conds, sets=drivers)
        where.append(f"({sql})")
        params.extend(more)
    clause = " AND ".join(where)
    direction = "DESC" if descending else "ASC"
    join, join_params = "", []
    if sort == "version":
        order = f"v.vkey {direction}, v.model"
    elif sort == "created":
        order = f"v.created {direction}, v.model, v.vkey"
    else:
        field = _sort_field(sort)
        join = "LEFT JOIN fields s ON s.model = v.model AND s.version = v.version AND s.key = ?"
        join_params = [field if field.startswith("params.") else f"metrics.{field}"]
        order = (
            "(s.key IS NULL), (s.num IS NULL) " + direction + ", s.num " + direction
            + ", s.text " + direction + ", v.model, v.vkey"
        )  # fmt: skip
    # a filter's matches are counted up to the bound; a model's versions (a range of an
    # index) are always counted
    bounded = conds and count_limit is not None and limit is not None
    bound = max(count_limit or 0, offset + (limit or 0)) + 1 if bounded else -1
    total = idx.conn.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM versions v WHERE {clause} LIMIT ?)",
        [*params, bound],
    ).fetchone()[0]
    if join and not drivers:  # walk the field's index in order; stop at the page
        rows = _by_field(idx, join_params[0], clause, params, descending, limit, offset)
    else:  # a version order (an index), or the rarest condition's few rows, sorted
        rows = idx.conn.execute(
            f"SELECT v.model, v.version FROM versions v {join} WHERE {clause} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*join_params, *params, -1 if limit is None else limit, offset],
        ).fetchall()
    store = idx.store
    aliases: dict[str, Any] = {}
    page = VersionPage()
    for model, version in rows:
        if model not in aliases:
            aliases[model] = _aliases(idx, model)
        page.append(_info(load_version(store, model, version), aliases[model], store))
    page.total, page.offset = int(total), offset
    if bound != -1 and total == bound:  # the count stopped at its bound: at least this many
        page.exact = False
    return page


def _by_field(
    idx: Index, key: str, clause: str, params: list[Any], descending: bool,
    limit: int | None, offset: int,
) -> list[tuple[str, str]]:  # fmt: skip
    """One page of the versions matching `clause`, sorted by a metric or param `key`.

    The order of `_from_files`: numbers, then other values (by their text), reversed when
    descending, and versions without the field last, ties in (model, version) order. Each
    of the three is one walk of an index in that order (`fields_key`, `versions_vkey`) that
    stops when the page is full, instead of a sort of every matching version.
    """
    direction = "DESC" if descending else "ASC"
    keyed = (
        "FROM fields s INDEXED BY fields_key CROSS JOIN versions v "
        "ON v.model = s.model AND v.version = s.version "
        "WHERE s.key = ? AND s.num IS {} NULL AND ({})"
    )
    numbers = (keyed.format("NOT", clause), f"s.num {direction}, v.model, v.vkey")
    texts = (keyed.format("", clause), f"s.text {direction}, v.model, v.vkey")
    missing = (
        "FROM versions v WHERE NOT EXISTS (SELECT 1 FROM fields s WHERE s.model = v.model "
        f"AND s.version = v.version AND s.key = ?) AND ({clause})",
        "v.model, v.vkey",
    )
    rows: list[tuple[str, str]] = []
    want = -1 if limit is None else limit
    for source, order in ([texts, numbers] if descending else [numbers, texts]) + [missing]:
        if want == 0:
            break
        got = idx.conn.execute(
            f"SELECT v.model, v.version {source} ORDER BY {order} LIMIT ? OFFSET ?",
            [key, *params, want, offset],
        ).fetchall()
        if offset and not got:  # the page starts after this part: skip all of it
            (n,) = idx.conn.execute(f"SELECT COUNT(*) {source}", [key, *params]).fetchone()
            offset = max(offset - n, 0)
        else:
            offset = 0
        rows += got
        want = -1 if want == -1 else want - len(got)
    return rows


def _driver(idx: Index, conds: Sequence[Condition]) -> tuple[int, ...]:
    """Which condition (by position) takes the set form and drives the query.

    The rarest set condition when its rows are fewer than `_DRIVER_ROWS`; else none (the
    versions are walked and every condition probed).
    """
    from modelreg.search_sql import rows_sql

    best: tuple[int, int] | None = None
    for i, cond in enumerate(conds):
        rows = rows_sql(cond)
        if rows is None:
            continue
        sql, params = rows
        (n,) = idx.conn.execute(
            f"SELECT COUNT(*) FROM ({sql} LIMIT ?)", [*params, _DRIVER_ROWS]
        ).fetchone()
        if n < _DRIVER_ROWS and (best is None or n < best[1]):
            best = (i, n)
    return () if best is None else (best[0],)


def _aliases(idx: Index, model: str) -> list[AliasRef]:
    """A model's aliases with the move that put each where it is, from the index."""
    return index_aliases(idx.conn, model)
