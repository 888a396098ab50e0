"""The search language (issue 18): parsing, Python evaluation, and the SQL it compiles to.

`where_sql` must select exactly the versions `Condition.holds` accepts; the property test
builds an in-memory SQLite database with the derived index's schema from generated
manifests and compares both on many generated conditions.
"""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg import Store
from modelreg.conditions import (
    HAS_TAG,
    ILIKE,
    IN,
    LIKE,
    NOT_IN,
    Condition,
    like,
    parse_filter,
)
from modelreg.errors import InvalidInput
from modelreg.manifest import ModelVersion
from modelreg.search_sql import rows_sql, where_sql
from tests.cli.helpers import assert_one_line_error, ok

C = Condition

# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the forms in use before issue 18, with the same meaning
        ("test.f1 >= 0.9", [C("test.f1", ">=", 0.9)]),
        (
            "metrics.test.f1 >= 0.9 and params.lr < 0.1",
            [C("test.f1", ">=", 0.9), C("params.lr", "<", 0.1)],
        ),
        ("test.f1 >= 0.5 AND params.C = 1", [C("test.f1", ">=", 0.5), C("params.C", "==", 1)]),
        ("params.optim == adam", [C("params.optim", "==", "adam")]),
        ("params.optim != 'adam'", [C("params.optim", "!=", "adam")]),
        ("params.opt.beta <= 3", [C("params.opt.beta", "<=", 3)]),
        ("params.flag = true", [C("params.flag", "==", True)]),
        ("params.n == '3'", [C("params.n", "==", "3")]),
        ("tags.candidate", [C("tags.candidate", HAS_TAG, None)]),
        (
            "tags.candidate and test.f1 > 0.8",
            [C("tags.candidate", HAS_TAG, None), C("test.f1", ">", 0.8)],
        ),
        # the new fields
        ("name LIKE 'fraud-%'", [C("name", LIKE, "fraud-%")]),
        ("name like fraud-%", [C("name", LIKE, "fraud-%")]),
        ("name ILIKE 'FRAUD%'", [C("name", ILIKE, "FRAUD%")]),
        ("name = team/fraud", [C("name", "==", "team/fraud")]),
        ("version = 1.0.0", [C("version", "==", "1.0.0")]),
        ("version != '2.0.0-rc.1'", [C("version", "!=", "2.0.0-rc.1")]),
        ("version = 1", [C("version", "==", "1")]),  # a bare value of a text field is its text
        ("created >= 2026-01-01", [C("created", ">=", "2026-01-01T00:00:00Z")]),
        ("created < '2026-01-01T12:00:00Z'", [C("created", "<", "2026-01-01T12:00:00Z")]),
        ("created > 2026-01-01T12:00:00+02:00", [C("created", ">", "2026-01-01T10:00:00Z")]),
        ("created = 2026-01-01T12:30", [C("created", "==", "2026-01-01T12:30:00Z")]),
        ("created LIKE '2026-01-%'", [C("created", LIKE, "2026-01-%")]),
        ("author = 'ana'", [C("author", "==", "ana")]),
        ("author LIKE 'ana <%'", [C("author", LIKE, "ana <%")]),
        ("alias = production", [C("alias", "==", "production")]),
        ("alias != production", [C("alias", "!=", "production")]),
        ("deprecated = true", [C("deprecated", "==", True)]),
        ("deprecated != FALSE", [C("deprecated", "!=", False)]),
        ("deprecated = 'false'", [C("deprecated", "==", False)]),
        # IN / NOT IN, keywords in any case
        ("name IN ('a', 'b')", [C("name", IN, ("a", "b"))]),
        ("name in (a,b)", [C("name", IN, ("a", "b"))]),
        ("name NOT IN ('a')", [C("name", NOT_IN, ("a",))]),
        ("alias not in (production, staging)", [C("alias", NOT_IN, ("production", "staging"))]),
        ("params.optim IN (adam, 'sgd', 3)", [C("params.optim", IN, ("adam", "sgd", 3))]),
        ("test.f1 IN (0.9,1)", [C("test.f1", IN, (0.9, 1))]),
        ("params.x IN ('a,b', \"c)\")", [C("params.x", IN, ("a,b", "c)"))]),
        ("params.x == a,b", [C("params.x", "==", "a,b")]),  # outside IN a comma is a character
        (
            "params.optim LIKE 'ad%' AnD params.optim ILIKE '%AM'",
            [C("params.optim", LIKE, "ad%"), C("params.optim", ILIKE, "%AM")],
        ),
        ("  name   =   x  ", [C("name", "==", "x")]),
    ],
)
def test_every_form_parses(text: str, expected: list[Condition]) -> None:
    assert list(parse_filter(text)) == expected


@pytest.mark.parametrize(
    ("text", "problem", "column"),
    [
        # the messages and columns of before issue 18
        ("test.f1 >> 0.9", "expected a value, found '>'", 10),
        ("test.f1 >= abc", ">= compares numbers, and 'abc' is not one", 12),
        (
            "test.f1 >= 0.9 or params.C == 1",
            "expected 'and' or the end, found 'or': 'or' is not supported",
            16,
        ),
        ("f1 >= 0.9", "unknown field 'f1'", 1),
        ("test.f1", "expected an operator after 'test.f1'", 8),
        ("test.f1 >= 0.9 and", "expected a condition after 'and'", 19),
        ("tags.candidate == yes", "tags have no values", 16),
        ("", "empty condition", 1),
        ("test.f1 >= 'abc", 'unexpected "\'"', 12),
        ("test.f1 ! 3", "unexpected '!'", 9),
        ("test.f1 >=", "expected a value after '>='", 11),
        ("test.f1 0.9", "expected an operator (>= <= > < == != IN NOT IN), found '0.9'", 9),
        ("test.f1 >= 0.9 test.f1 < 1", "expected 'and' or the end, found 'test.f1'", 16),
        # fields that cannot exist
        ("metrics.f1 > 0.5", "expected metrics.SPLIT.METRIC, found 'metrics.f1'", 1),
        ("metrics.a.b.c > 0.5", "expected metrics.SPLIT.METRIC", 1),
        ("params = 3", "expected params.NAME", 1),
        ("tags", "expected tags.NAME", 1),
        ("tags.a.b", "expected tags.NAME", 1),
        ("x.y.z = 1", "unknown field 'x.y.z': expected one of SPLIT.METRIC", 1),
        ("owner = ana", "unknown field 'owner'", 1),
        ("Name = x", "unknown field 'Name'", 1),
        ("test.f1 > 1 and >= 3", "expected a field, found '>='", 17),
        ("'name' = x", "expected a field, found \"'name'\"", 1),
        # operators a field does not take
        ("name >= a", "name takes == != LIKE ILIKE IN NOT IN, not >=", 6),
        ("test.f1 LIKE '0.9%'", "test.f1 takes >= <= > < == != IN NOT IN, not LIKE", 9),
        ("alias > a", "alias takes == != LIKE ILIKE IN NOT IN, not >", 7),
        ("deprecated IN (true)", "deprecated takes == !=, not IN", 12),
        ("name NOT LIKE 'a%'", "expected IN after 'NOT', found 'LIKE'", 10),
        ("name NOT", "expected IN after 'NOT', found the end", 9),
        ("name", "expected an operator after 'name'", 5),
        ("name LIKE", "expected a value after 'LIKE'", 10),
        ("name == >", "expected a value, found '>'", 9),
        ("tags.x IN (a)", "tags have no values", 8),
        ("tags.x LIKE a", "tags have no values", 8),
        # values a field cannot have
        (
            "created > yesterday",
            "expected a date (2026-01-01) or a timestamp (2026-01-01T12:00:00Z), found 'yesterday'",
            11,
        ),
        ("created > 2026-13-01", "expected a date", 11),
        ("created > '2026-01-01T12:00:00.5Z'", "expected a date", 11),
        ("created >= 2026-01-01 12:00", "expected 'and' or the end, found '12:00'", 23),
        ("deprecated = maybe", "deprecated is true or false, found 'maybe'", 14),
        ("params.lr = .nan", "NaN equals nothing", 13),
        ("params.lr > 1" + "0" * 400, "too large a number", 13),
        ("params.lr > '0.1'", "> compares numbers, and \"'0.1'\" is not one", 13),
        ("test.f1 IN (0.9, abc) and test.f1 > x", "> compares numbers, and 'x' is not one", 37),
        # IN lists
        ("name IN a", "expected '(' after 'IN', found 'a'", 9),
        ("name IN", "expected '(' after 'IN', found the end", 8),
        ("name IN ()", "expected at least one value in IN (...)", 10),
        ("name IN (a", "expected ',' or ')', found the end", 11),
        ("name IN (a,", "expected a value after ','", 12),
        ("name IN (a b)", "expected ',' or ')', found 'b'", 12),
        ("name IN (a,,b)", "expected a value, found ','", 12),
        ("name IN (", "expected a value after '('", 10),
        ("params.x IN (>)", "expected a value, found '>'", 14),
        ("a.b = 1 OR a.b = 2", "found 'OR': 'or' is not supported", 9),
    ],
)
def test_a_malformed_filter_names_the_problem_and_its_column(
    text: str, problem: str, column: int
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    message = str(info.value)
    assert message.startswith(f"invalid condition {text!r}: "), message
    assert problem in message, message
    assert message.endswith(f"(column {column})"), message


def test_a_gate_is_one_condition_of_the_same_grammar() -> None:
    assert Condition.parse("name LIKE 'fraud-%'") == C("name", LIKE, "fraud-%")
    with pytest.raises(InvalidInput, match="a gate is one condition"):
        Condition.parse("test.f1 > 0.5 and name = x")


@pytest.mark.parametrize(
    "cond",
    [
        C("test.f1", ">=", 0.9),
        C("params.optim", "==", "adam"),
        C("params.n", "==", "3"),
        C("params.s", "==", "a b"),
        C("params.s", "!=", "it's"),
        C("params.s", "==", "and"),
        C("params.flag", "==", True),
        C("params.x", "==", None),
        C("tags.candidate", HAS_TAG, None),
        C("name", LIKE, "fraud-%"),
        C("name", ILIKE, "it's %"),
        C("name", "==", "1.0"),
        C("author", "==", "Ana <ana@example.org>"),
        C("created", ">=", "2026-01-01T00:00:00Z"),
        C("alias", NOT_IN, ("production", "a,b")),
        C("params.optim", IN, ("adam", "3", 3, "x)", True)),
        C("version", IN, ("1.0.0",)),
        C("deprecated", "!=", True),
    ],
)
def test_a_condition_reads_back_from_its_text(cond: Condition) -> None:
    assert parse_filter(str(cond)) == (cond,)


# -- evaluation in Python ------------------------------------------------------------------


def mv(**kw: Any) -> ModelVersion:
    base: dict[str, Any] = {
        "name": "fraud-eu",
        "version": "1.2.0",
        "created": "2026-01-01T12:00:00Z",
        "author": "Ana <ana@example.org>",
        "files": (),
    }
    return ModelVersion(**{**base, **kw})


V = mv(
    metrics={"test": {"f1": 0.93}, "train": {"loss": 0.1}},
    params={"lr": 0.01, "optim": "Adam", "opt": {"beta": 2}, "flag": True, "none": None,
            "nan": float("nan"), "n": "3", "empty": {}},
    tags=("candidate",),
)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.test.f1 >= 0.9 and params.lr < 0.1", True),
        ("test.f1 > 0.93", False),
        ("test.f1 = 0.93", True),
        ("test.f1 != 0.93", False),
        ("test.f1 IN (0.9, 0.93)", True),
        ("test.f1 NOT IN (0.9, 0.93)", False),
        ("test.acc != 0.5", False),  # a missing field fails != too
        ("test.acc NOT IN (0.5)", False),
        ("params.nosuch != 3", False),
        ("params.opt.beta = 2", True),
        ("params.opt.beta = 2.0", True),
        ("params.opt != x", False),  # a mapping is not a value: no such leaf
        ("params.empty != x", False),
        ("params.flag = true", True),
        ("params.flag = 1", True),
        ("params.flag = 'True'", True),
        ("params.none = null", True),  # a null leaf is there, its text is None
        ("params.none != 3", True),
        ("params.nan != 1", False),  # NaN fails a comparison with a number
        ("params.nan = 'nan'", True),
        ("params.n = 3", True),  # a text equals a number when the texts are equal
        ("params.n > 2", False),  # ordering compares numbers only
        ("params.optim = adam", False),
        ("params.optim LIKE 'Ad%'", True),
        ("params.optim LIKE 'ad%'", False),
        ("params.optim ILIKE 'AD_M'", True),
        ("params.optim IN (sgd, Adam)", True),
        ("tags.candidate", True),
        ("tags.shadow", False),
        ("name LIKE 'fraud-%'", True),
        ("name LIKE 'fraud-_'", False),
        ("name LIKE 'fraud-__'", True),
        ("name LIKE 'FRAUD-%'", False),
        ("name ILIKE 'FRAUD-%'", True),
        ("name = fraud-eu", True),
        ("name IN ('churn', 'fraud-eu')", True),
        ("name NOT IN ('churn', 'fraud-eu')", False),
        ("version = 1.2.0", True),
        ("version != 1.2.0", False),
        ("created >= 2026-01-01", True),
        ("created >= 2026-01-02", False),
        ("created > 2026-01-01T12:00:00Z", False),
        ("created = 2026-01-01T13:00:00+01:00", True),
        ("created < 2026-01-01T12:00:01Z", True),
        ("author = 'ana'", False),
        ("author LIKE 'Ana %'", True),
        ("author ILIKE 'ana <%'", True),
    ],
)
def test_holds(text: str, expected: bool) -> None:
    assert all(c.holds(V) for c in parse_filter(text)) is expected


def test_alias_deprecated_and_current_tags_are_given_to_holds() -> None:
    [prod] = parse_filter("alias = production")
    [not_prod] = parse_filter("alias != production")
    [some] = parse_filter("alias LIKE 'prod%'")
    assert not prod.holds(V) and not_prod.holds(V)  # no alias given: points at none
    assert prod.holds(V, aliases=("production", "canary"))
    assert not not_prod.holds(V, aliases=("production",))
    assert some.holds(V, aliases=("production",)) and not some.holds(V, aliases=("staging",))
    [dep] = parse_filter("deprecated = true")
    [live] = parse_filter("deprecated = false")
    assert not dep.holds(V) and live.holds(V)
    assert dep.holds(V, deprecated=True) and not live.holds(V, deprecated=True)
    [tag] = parse_filter("tags.shadow")
    assert not tag.holds(V) and tag.holds(V, ("shadow",)) and not tag.holds(V, ())
    # the positional `tags` of before still works, and lookup still reads values
    assert C("test.f1", ">=", 0.9).holds(V, ["x"])
    assert C("params.opt.beta", "==", None).lookup(V) == 2
    assert C("params.opt", "==", None).lookup(V) is None
    assert C("alias", "==", None).lookup(V, aliases=("b", "a")) == ("a", "b")


@pytest.mark.parametrize(
    ("text", "pattern", "ignore_case", "expected"),
    [
        ("fraud-eu", "fraud-%", False, True),
        ("fraud-", "fraud-%", False, True),
        ("fraud", "fraud-%", False, False),
        ("a.b", "a_b", False, True),
        ("a\nb", "a%", False, True),
        ("a\nb", "a_b", False, True),
        ("(x)", "(%)", False, True),
        ("a+b", "a+b", False, True),
        ("aab", "a+b", False, False),
        ("FrAuD", "fraud", True, True),
        ("ÄNA", "äna", True, False),  # only ASCII folds, as SQLite's lower()
        ("ana", "%", False, True),
        ("", "%", False, True),
        ("", "_", False, False),
    ],
)
def test_like_is_sqlites(text: str, pattern: str, ignore_case: bool, expected: bool) -> None:
    assert like(text, pattern, ignore_case=ignore_case) is expected
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA case_sensitive_like = ON")
    sql = "SELECT lower(?) LIKE lower(?)" if ignore_case else "SELECT ? LIKE ?"
    assert bool(conn.execute(sql, (text, pattern)).fetchone()[0]) is expected


# -- SQL: the same answers as holds --------------------------------------------------------

SCHEMA = """
CREATE TABLE versions(model TEXT, version TEXT, vkey TEXT, id TEXT, created TEXT, author TEXT,
    deprecated INTEGER, manifest TEXT, PRIMARY KEY(model, version));
CREATE TABLE fields(model TEXT, version TEXT, key TEXT, num REAL, text TEXT);
CREATE TABLE tags(model TEXT, version TEXT, tag TEXT);
CREATE TABLE aliases(model TEXT, alias TEXT, version TEXT);
"""

NAMES = ("fraud-eu", "fraud-us", "Fraud-x", "churn", "team/fraud_1", "ünï")
VERSIONS = ("0.1.0", "1.0.0", "1.2.0", "2.0.0-rc.1", "2.0.0", "2.1.0", "3.0.0", "10.0.0")
AUTHORS = ("ana", "Ana <ana@example.org>", "bob", "ÄNA", "it's me")
TAGS = ("candidate", "shadow", "x")
ALIASES = ("production", "staging", "canary")
NAN, INF = float("nan"), float("inf")
PARAM_VALUES: tuple[Any, ...] = (
    0.1, 0.01, 1, 3, 0, -0.0, True, False, 10**20, NAN, INF, -INF, None,
    "0.1", "3", "3.0", "adam", "Adam", "ADAM", "nan", "None", "True", "inf", "",
    "a%b", "x_y", "it's", "ünï", [1, 2], {}, {"lr": 0.5},
)  # fmt: skip
METRIC_VALUES = (0.0, 0.5, 0.8, 0.9, 0.93, 0.95, 1.0, 3.0)


def corpus(seed: int, n: int) -> list[tuple[ModelVersion, tuple[str, ...], tuple[str, ...], bool]]:
    """n generated versions: (manifest, current tags, aliases here, deprecated)."""
    rng = random.Random(seed)
    out = []
    seen = set()
    pointed: dict[tuple[str, str], str] = {}
    while len(out) < n:
        name, version = rng.choice(NAMES), rng.choice(VERSIONS)
        if (name, version) in seen:
            continue
        seen.add((name, version))
        metrics: dict[str, dict[str, float]] = {}
        for split, metric in (("test", "f1"), ("test", "acc"), ("train", "loss")):
            if rng.random() < 0.7:
                metrics.setdefault(split, {})[metric] = rng.choice(METRIC_VALUES)
        params: dict[str, Any] = {}
        for key in ("lr", "optim", "n", "a.b"):
            if rng.random() < 0.7:
                params[key] = rng.choice(PARAM_VALUES)
        if rng.random() < 0.5:
            params["opt"] = {"lr": rng.choice(PARAM_VALUES), "beta": rng.choice(PARAM_VALUES)}
        manifest_tags = tuple(t for t in TAGS if rng.random() < 0.4)
        current = (
            manifest_tags if rng.random() < 0.6 else tuple(t for t in TAGS if rng.random() < 0.4)
        )
        day, second = rng.choice((30, 31)), rng.randrange(0, 86400, 1800)
        created = f"2025-12-{day}T{second // 3600:02d}:{second // 60 % 60:02d}:00Z"
        if rng.random() < 0.5:
            created = (
                f"2026-01-0{rng.choice((1, 2))}T{second // 3600:02d}:{second // 60 % 60:02d}:00Z"
            )
        v = mv(name=name, version=version, created=created, author=rng.choice(AUTHORS),
               metrics=metrics, params=params, tags=manifest_tags)  # fmt: skip
        for alias in ALIASES:
            if rng.random() < 0.3:
                pointed[(name, alias)] = version
        out.append((v, current, (), rng.random() < 0.3))
    return [
        (
            v,
            cur,
            tuple(a for (n, a), ver in pointed.items() if n == v.name and ver == v.version),
            dep,
        )
        for v, cur, _, dep in out
    ]


def leaves(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(f"{prefix}.{k}", v)]
    return [(prefix, value)]


def index_of(
    rows: list[tuple[ModelVersion, tuple[str, ...], tuple[str, ...], bool]],
) -> sqlite3.Connection:
    """The derived index's tables, filled as the brief of issue 18 describes them."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA case_sensitive_like = ON")
    conn.executescript(SCHEMA)
    for v, current, aliases, deprecated in rows:
        key = (v.name, v.version)
        conn.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, v.version, v.id, v.created, v.author, int(deprecated), ""),
        )
        for k, value in [*leaves("metrics", v.metrics), *leaves("params", v.params)]:
            num = None
            if isinstance(value, (int, float)) and not (
                isinstance(value, float) and math.isnan(value)
            ):
                num = float(value)
            conn.execute("INSERT INTO fields VALUES (?, ?, ?, ?, ?)", (*key, k, num, str(value)))
        conn.executemany("INSERT INTO tags VALUES (?, ?, ?)", [(*key, t) for t in current])
        conn.executemany(
            "INSERT INTO aliases VALUES (?, ?, ?)", [(v.name, a, v.version) for a in aliases]
        )
    return conn


ROWS = corpus(18, 40)
DB = index_of(ROWS)
CREATED = sorted({v.created for v, *_ in ROWS})

FIELDS = (
    "test.f1", "test.acc", "train.loss", "nosuch.metric", "params.lr", "params.optim",
    "params.n", "params.a.b", "params.opt", "params.opt.lr", "params.opt.beta", "params.nosuch",
    "tags.candidate", "tags.shadow", "tags.nosuch", "name", "version", "created", "author",
    "alias", "deprecated",
)  # fmt: skip
OPS = (">=", "<=", ">", "<", "==", "!=", LIKE, ILIKE, IN, NOT_IN, HAS_TAG)
SCALARS = st.one_of(
    st.sampled_from([v for v in PARAM_VALUES if not isinstance(v, (list, dict))]),
    st.sampled_from(METRIC_VALUES),
    st.sampled_from(NAMES + VERSIONS + AUTHORS + TAGS + ALIASES),
    st.sampled_from([*CREATED, "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z", "2026"]),
    st.sampled_from(["%", "_", "fraud-%", "FRAUD%", "%a%", "_.%", "%-%", "ad_m", "%1", "0.%",
                     "%e%", "ana%", "%<%", "2026-01-01%", "prod%", "%ING", "Tru_", "nan"]),
    st.sampled_from([NAN, 10**400]),
    st.floats(allow_nan=False, width=32) | st.integers(-5, 5),
)  # fmt: skip


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    field = draw(st.sampled_from(FIELDS))
    op = (
        HAS_TAG if field.startswith("tags.") and draw(st.booleans()) else draw(st.sampled_from(OPS))
    )
    if op in (IN, NOT_IN):
        return C(field, op, tuple(draw(st.lists(SCALARS, max_size=3))))
    return C(field, op, None if op == HAS_TAG else draw(SCALARS))


def selected_by_python(conds: list[Condition]) -> set[tuple[str, str]]:
    return {
        (v.name, v.version)
        for v, current, aliases, deprecated in ROWS
        if all(c.holds(v, current, aliases=aliases, deprecated=deprecated) for c in conds)
    }


def selected_by_sql(conds: list[Condition]) -> set[tuple[str, str]]:
    """What the SQL selects, the same in every form: all sets, all probes, one set driving."""
    found = []
    for sets in (None, (), (0,), (len(conds) - 1,)):
        sql, params = where_sql(conds, sets=sets)
        query = f"SELECT v.model, v.version FROM versions v WHERE {sql}"
        found.append(set(DB.execute(query, params).fetchall()))
    assert all(f == found[0] for f in found), [str(c) for c in conds]
    return found[0]


def test_a_set_conditions_rows_are_the_versions_it_selects() -> None:
    for text in ("test.f1 >= 0.9", "tags.candidate", "alias = production", "params.lr < 0.1"):
        (cond,) = parse_filter(text)
        rows = rows_sql(cond)
        assert rows is not None
        found = set(DB.execute(f"SELECT x.model, x.version FROM ({rows[0]}) x", rows[1]))
        assert found == selected_by_python([cond]) and found, text
    for text in ("alias != production", "name = churn", "created >= 2026-01-01"):
        assert rows_sql(parse_filter(text)[0]) is None, text


def test_the_corpus_is_varied() -> None:
    assert len(ROWS) == 40 and len({v.name for v, *_ in ROWS}) == len(NAMES)
    assert any(aliases for *_, aliases, _ in ROWS) and any(dep for *_, dep in ROWS)
    assert 5 < len(selected_by_sql([C("test.f1", ">=", 0.9)])) < 35


@settings(max_examples=800, deadline=None)
@given(st.lists(conditions(), min_size=1, max_size=3))
def test_where_sql_selects_exactly_what_holds_accepts(conds: list[Condition]) -> None:
    assert selected_by_sql(conds) == selected_by_python(conds), [str(c) for c in conds]


def words(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(text.split())


FILTER_PARTS = st.lists(
    st.one_of(
        st.tuples(
            words("test.f1 metrics.test.acc train.loss params.lr params.opt.beta"),
            words(">= <= > <"),
            words("0 0.5 0.9 0.93 1 3 0.1 -1 1.0e+3 .inf"),
        ).map(" ".join),
        st.tuples(
            words("test.f1 metrics.test.acc train.loss params.lr params.opt.beta"),
            words("= == !="),
            words("0 0.5 0.93 1 3 0.1 true '0.1' adam"),
        ).map(" ".join),
        st.tuples(
            words("params.optim params.n params.lr params.a.b"),
            words("= != LIKE ILIKE like"),
            words("adam 'Adam' '%a%' 'ad_m' 3 '3' nan None null 'True' true"),
        ).map(" ".join),
        st.tuples(
            words("name version author alias"),
            words("= != LIKE ILIKE"),
            words("'fraud-%' 'FRAUD%' 1.0.0 'ana' ana% production 'prod%' churn"),
        ).map(" ".join),
        st.tuples(
            words("name version author alias params.optim test.f1"),
            words("IN in NOT_IN"),
            words(
                "(churn) ('fraud-eu',ünï) (1.0.0,'2.0.0-rc.1') (production,staging) (adam,3) (0.9,1)"
            ),
        ).map(lambda t: " ".join(t).replace("NOT_IN", "NOT IN")),
        st.tuples(
            st.just("created"),
            words(">= <= > < = !="),
            words("2026-01-01 2025-12-31T12:00:00Z '2026-01-01T06:00:00+02:00' 2026-01-02"),
        ).map(" ".join),
        words("tags.candidate tags.shadow deprecated=true deprecated!=TRUE deprecated=false"),
    ),
    min_size=1,
    max_size=3,
)


def joined(parts: list[str], joiner: str) -> str:
    return joiner.join(parts)


FILTER_TEXTS = st.builds(joined, FILTER_PARTS, st.sampled_from([" and ", " AND ", " And "]))


@settings(max_examples=300, deadline=None)
@given(FILTER_TEXTS)
def test_parsed_filters_select_the_same_in_sql_and_python(text: str) -> None:
    conds = list(parse_filter(text))
    assert selected_by_sql(conds) == selected_by_python(conds), text


def test_where_sql_of_nothing_is_everything() -> None:
    assert where_sql([]) == ("1", [])
    assert len(selected_by_sql([])) == len(ROWS)


def test_where_sql_binds_every_value() -> None:
    sql, params = where_sql(
        parse_filter("name = \"x'; DROP TABLE versions; --\" and params.a.b IN (1, 'y')")
    )
    assert "DROP" not in sql and "'x'" not in sql
    assert params == ["x'; DROP TABLE versions; --", "params.a.b", 1.0, "1", "y"]


# -- through the CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "column"),
    [("name LIKE", 10), ("created > yesterday", 11), ("metrics.f1 > 0.5", 1),
     ("name IN ('a'", 13), ("name = a or name = b", 10), ("deprecated = maybe", 14)],
)  # fmt: skip
def test_a_malformed_search_exits_2_with_its_column(
    store: Store, run_mreg: Any, where: str, column: int
) -> None:
    line = assert_one_line_error(run_mreg("list", "--where", where), 2)
    assert f"invalid condition {where!r}" in line and line.endswith(f"(column {column})")


def test_the_new_fields_through_list(store: Store, tmp_path: Path, run_mreg: Any) -> None:
    for name in ("fraud-eu", "fraud-us", "churn"):
        f = tmp_path / "in" / name / "model.bin"
        f.parent.mkdir(parents=True)
        f.write_bytes(name.encode())
        store.register(name, [f], version="1.0.0", metrics={"test": {"f1": 0.9}}, detect_code=False)

    def names(where: str) -> list[str]:
        return [r["name"] for r in ok(run_mreg("list", "--where", where, "--json")).json()]

    assert names("name LIKE 'fraud-%'") == ["fraud-eu", "fraud-us"]
    assert names("name ILIKE 'FRAUD-E%' and test.f1 >= 0.9") == ["fraud-eu"]
    assert names("name NOT IN (churn, fraud-us)") == ["fraud-eu"]
    assert names("created >= 2000-01-01") == ["churn", "fraud-eu", "fraud-us"]
    assert names("created < 2000-01-01") == []
    assert names("version = 1.0.0 and name IN ('churn')") == ["churn"]
