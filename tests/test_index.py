"""The derived index (issue 18): built, kept current, rebuilt, never disagreeing with the files."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg import Store
from modelreg.index import MARK, NAME
from modelreg.indexcheck import check
from modelreg.indexrows import version_key
from modelreg.listing import _from_files
from modelreg.names import Version

ROOT = Path(__file__).resolve().parents[1]


def make(store: Store, tmp: Path, n: int, name: str = "m", start: int = 0) -> None:
    f = tmp / "w.bin"
    f.write_bytes(b"weights")
    for i in range(start, start + n):
        store.register(
            name, [f], version=f"1.{i}.0", metrics={"test": {"f1": (i * 37 % 100) / 100}},
            params={"lr": 0.001 * (i % 7), "opt": "adam" if i % 2 else "sgd"},
            tags=["even"] if i % 2 == 0 else [], detect_code=False,
        )  # fmt: skip


def listing(store: Store, **kw: object) -> list[tuple[str, str]]:
    return [(r.version.name, r.version.version) for r in store.versions(**kw)]  # type: ignore[arg-type]


def from_files(store: Store, **kw: object) -> list[tuple[str, str]]:
    args = {"name": None, "tags": (), "alias": None, "conds": [], "sort": "version",
            "descending": False, "include_deprecated": True, "limit": None, "offset": 0}  # fmt: skip
    args.update(kw)
    page = _from_files(store, *args.values())  # type: ignore[arg-type]
    return [(r.version.name, r.version.version) for r in page]


QUERIES: list[dict[str, object]] = [
    {},
    {"name": "m"},
    {"name": "m", "descending": True},
    {"sort": "test.f1"},
    {"sort": "test.f1", "descending": True},
    {"sort": "params.opt"},
    {"sort": "created", "descending": True},
    {"tags": ("even",)},
    {"alias": "production"},
    {"include_deprecated": False},
    {"where": ["test.f1 >= 0.5 and params.lr < 0.004"], "sort": "test.f1"},
    {"where": ["alias = production"]},
    {"where": ["alias != production", "deprecated = false"], "descending": True},
    {"where": ["deprecated = true"]},
    {"where": ["name LIKE 'team/%'"]},
    {"where": ["created >= 2020-01-01 and author != nobody"]},
    {"where": ["tags.even and params.opt IN ('adam', 'x')"]},
    {"where": ["version ILIKE '1.2%'"], "sort": "params.lr", "descending": True},
]


def agrees(store: Store, *, pages: bool = False) -> None:
    """Every listing from the index equals the listing from the files, whichever condition
    drives the query (the rarest, or none: walk and probe); so does every alias history;
    fsck agrees."""
    from modelreg import listing as listing_module
    from modelreg.conditions import parse_filter

    for q in QUERIES:
        files_kw = {k: v for k, v in q.items() if k != "where"}
        files_kw["conds"] = [c for w in q.get("where", []) for c in parse_filter(w)]  # type: ignore[attr-defined]
        files_kw.setdefault("tags", ())
        want = from_files(store, **files_kw)
        for driver_rows in (0, 10**9):  # never a driver; always the rarest set condition
            saved, listing_module._DRIVER_ROWS = listing_module._DRIVER_ROWS, driver_rows
            try:
                assert listing(store, **q) == want, (q, driver_rows)
                if pages:  # and page by page (every page of 7)
                    got = [listing(store, **q, limit=7, offset=o) for o in range(0, len(want), 7)]
                    assert [row for page in got for row in page] == want, (q, driver_rows)
            finally:
                listing_module._DRIVER_ROWS = saved
    for name in {r.name for r in store.models()}:
        assert store.history(name) == history_from_files(store, name)
    assert check(store) == []


def history_from_files(store: Store, name: str) -> list[object]:
    from modelreg.refs import list_aliases

    events = [e for a in list_aliases(store, name) for e in a.history]
    return sorted(events, key=lambda e: (e.time, e.alias, e.generation))


@pytest.fixture
def filled(store: Store, tmp_path: Path) -> Store:
    make(store, tmp_path, 30)
    make(store, tmp_path, 5, name="team/other")
    store.promote("m@1.3.0", "production")
    store.promote("m@1.4.0", "staging")
    store.tag("m@1.5.0", add=["candidate"], remove=[])
    store.deprecate("m@1.6.0", reason="bad data")
    return store


def test_the_first_read_builds_the_index_and_writes_keep_it_current(filled: Store, tmp_path):
    assert not (filled.root / NAME).exists()  # nothing read yet: no index
    agrees(filled)
    assert (filled.root / NAME).exists()
    make(filled, tmp_path, 3, start=30)
    filled.promote("m@1.31.0", "production")
    filled.tag("m@1.2.0", add=["even", "x"], remove=["even"])
    assert not (filled.root / MARK).exists()
    page = filled.versions("m", tags=["x"])
    assert [r.version.version for r in page] == ["1.2.0"]
    agrees(filled, pages=True)
    page = filled.versions("m", limit=5, offset=30, descending=True)
    assert page.total == 33 and len(page) == 3 and page.more == 0
    assert filled.models()[0].name == "m" and filled.models()[0].versions == 33


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated", "other-format", "rows"])
def test_a_damaged_or_missing_index_is_rebuilt(filled: Store, damage: str) -> None:
    agrees(filled)
    index = filled.root / NAME
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        for suffix in ("-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        index.write_bytes(os.urandom(5000))
    elif damage == "truncated":
        index.write_bytes(index.read_bytes()[:100])
    elif damage == "other-format":
        with sqlite3.connect(index) as db:
            db.execute("UPDATE meta SET value = '0' WHERE key = 'format'")
    else:  # rows changed behind mreg's back: fsck sees it, --repair rebuilds
        with sqlite3.connect(index) as db:
            db.execute("DELETE FROM versions WHERE version = '1.7.0'")
            db.execute("UPDATE aliases SET version = '1.9.0'")
        problems = check(filled)
        assert any("1.7.0: not in the index" in p for p in problems)
        assert any("other aliases" in p for p in problems)
        report = filled.fsck(quick=True)
        assert [f.kind for f in report.errors] == ["index-mismatch"] * len(problems)
        repaired = filled.fsck(quick=True, repair=True)
        assert [r.action for r in repaired.repairs] == ["rebuilt-index"]
    agrees(filled)


def test_a_write_by_another_mreg_is_caught_up(filled: Store, tmp_path: Path) -> None:
    """An index behind the audit log (a writer that did not update it) catches up on read."""
    agrees(filled)
    index = filled.root / NAME
    with sqlite3.connect(index) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stale = index.read_bytes()
    make(filled, tmp_path, 2, start=40)
    filled.promote("m@1.41.0", "production")
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(stale)
    agrees(filled)
    assert listing(filled, alias="production") == [("m", "1.41.0")]


def test_the_log_answers_from_the_index(filled: Store) -> None:
    with sqlite3.connect(filled.root / NAME) as db:
        pass
    filled.versions("m", limit=1)
    with sqlite3.connect(filled.root / NAME) as db:
        n = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY seq")]
    entries = filled.audit.entries()
    assert n == len(entries) and actions == [e.action for e in entries]


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelreg import Store
    s = Store.open(sys.argv[1])
    f = Path(sys.argv[1]).parent / f"w{sys.argv[2]}.bin"
    f.write_bytes(b"w" + sys.argv[2].encode())
    for i in range(int(sys.argv[3]), int(sys.argv[4])):
        s.register("m", [f], version=f"2.{i}.0", metrics={"test": {"f1": i / 1000}},
                   detect_code=False)
        if i % 5 == 0:
            s.promote(f"m@2.{i}.0", "production")
        if i % 7 == 0:
            s.tag(f"m@2.{i}.0", add=["seven"])
    """
)


def test_concurrent_writers_and_readers_never_disagree(filled: Store) -> None:
    agrees(filled)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-c", WRITER, str(filled.root)]
    writers = [
        subprocess.Popen([*cmd, str(k), str(a), str(b)], env=env)
        for k, (a, b) in enumerate(((0, 25), (25, 50)))
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        page = filled.versions("m", limit=10, descending=True)
        assert page.total >= 30
        reads += 1
    assert all(w.returncode == 0 for w in writers)
    assert reads > 0
    assert len(filled.versions("m", where=["test.f1 >= 0"])) >= 50
    agrees(filled)


def test_kill_9_during_writes_leaves_an_index_that_catches_up(filled: Store) -> None:
    agrees(filled)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    rng = random.Random(3)
    for round_ in range(4):
        start = 100 + round_ * 40
        w = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(filled.root), "9", str(start), str(start + 40)],
            env=env,
        )  # fmt: skip
        time.sleep(0.4 + rng.random() * 0.6)
        w.send_signal(signal.SIGKILL)
        w.wait()
        # fsck --repair sweeps what the kill left half-written (temp files, a torn audit line)
        filled.fsck(quick=True, repair=True, temp_age=0)
        agrees(filled)


def test_a_store_the_index_cannot_be_written_in_is_read_from_its_files(filled: Store) -> None:
    """Whatever stops the index (a read-only store, a full disk): reads use the files."""
    (filled.root / NAME).mkdir()  # nothing can create or open the index there
    (filled.root / NAME / "x").write_text("in the way")
    agrees_without_index = listing(filled, name="m", sort="test.f1", descending=True)
    assert agrees_without_index == from_files(filled, name="m", sort="test.f1", descending=True)
    assert filled.versions("m", limit=3).total == 30
    shutil.rmtree(filled.root / NAME)
    agrees(filled)


def test_a_count_stops_at_its_bound_and_says_so(filled: Store, run_mreg) -> None:
    every = ["version LIKE '1.%'"]  # a filter all 30 versions of m match
    page = filled.versions("m", where=every, limit=5, count_limit=10)
    assert [r.version.version for r in page] == [f"1.{i}.0" for i in range(5)]
    assert (page.total, page.exact, page.more) == (11, False, 6)  # at least 11 match
    page = filled.versions("m", where=every, limit=5, offset=20, count_limit=10)
    assert (page.total, page.exact, page.more) == (26, False, 1)  # counted past the page
    for exact in (filled.versions("m", where=every, limit=5),
                  filled.versions("m", where=every, count_limit=10),  # no limit: every row
                  filled.versions("m", where=every, limit=5, count_limit=None),
                  filled.versions("m", limit=5, count_limit=10)):  # no filter  # fmt: skip
        assert (exact.total, exact.exact) == (30, True)
    page = filled.versions("m", where=["test.f1 >= 0.5"], limit=2, count_limit=3)
    assert (page.total, page.exact) == (4, False)
    args = ("list", "m", "--where", every[0], "--limit", "5")
    r = run_mreg(*args, "--count-limit", "10", "--json")
    assert len(json.loads(r.stdout)) == 5
    assert "at least 6 more of over 10 matching version(s): --offset 5" in r.stderr
    r = run_mreg(*args, "--count-limit", "0")
    assert r.returncode == 0 and "25 more of 30 matching" in r.stderr


def test_history_pages_from_the_index(filled: Store, run_mreg) -> None:
    for i in range(7, 19):
        filled.promote(f"m@1.{i}.0", "production" if i % 3 else "staging")
    filled.rollback("m", "production")
    every = filled.history("m")
    assert len(every) == 15 and every == history_from_files(filled, "m")
    assert filled.history("m", limit=4) == every[-4:]
    prod = filled.history("m", "production", limit=3)
    assert prod == [e for e in every if e.alias == "production"][-3:]
    agrees(filled)
    r = run_mreg("history", "m", "-n", "4", "--json")
    assert [e["version"] for e in json.loads(r.stdout)] == [e.version for e in every[-4:]]
    assert "the newest 4 moves; older ones: -n 0 for all" in r.stderr
    r = run_mreg("history", "m", "-n", "0", "--json")
    assert len(json.loads(r.stdout)) == 15 and "newest" not in r.stderr
    r = run_mreg("history", "m", "--alias", "nope")
    assert r.returncode == 2 and "m@nope: no such alias" in r.stderr
    assert run_mreg("history", "m", "--alias", "Not An Alias!").returncode == 2
    assert run_mreg("history", "m", "-n", "-1").returncode == 2
    (filled.root / NAME).unlink()  # the same answer from the alias files
    with sqlite3.connect(filled.root / NAME) as c:
        c.execute("CREATE TABLE x(y)")  # not an index: rebuilt by the next read
    assert filled.history("m", limit=4) == every[-4:]


def test_list_pages_through_the_cli(filled: Store, run_mreg) -> None:
    r = run_mreg("list", "m", "--limit", "5", "--json")
    assert [d["version"] for d in json.loads(r.stdout)] == [f"1.{i}.0" for i in range(5)]
    assert "25 more of 30 matching version(s): --offset 5" in r.stderr
    r = run_mreg("list", "m", "--limit", "5", "--offset", "28", "--json")
    assert [d["version"] for d in json.loads(r.stdout)] == ["1.28.0", "1.29.0"]
    assert "more" not in r.stderr
    r = run_mreg("list", "m", "--limit", "0", "--json")
    assert len(json.loads(r.stdout)) == 30
    r = run_mreg("list", "m", "--limit", "-1")
    assert r.returncode == 2
    r = run_mreg("list", "m", "--where", "alias = production", "--json")
    assert [d["version"] for d in json.loads(r.stdout)] == ["1.3.0"]
    for bad, column in (("test.f1 >= ", 12), ("name LIKE", 10), ("created >= soon", 12),
                        ("test.f1 > 0.5 or tags.x", 15)):  # fmt: skip
        r = run_mreg("list", "m", "--where", bad)
        assert r.returncode == 2 and f"(column {column})" in r.stderr, (bad, r.stderr)


_IDENT = st.one_of(
    st.integers(0, 10**12).map(str),
    st.text("abcxyzABC-0123456789", min_size=1, max_size=6).filter(lambda s: not s.isdigit()),
)
_VERSIONS = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (("-" + ".".join(pre)) if pre else ""),
    st.integers(0, 10**15), st.integers(0, 30), st.integers(0, 30),
    st.lists(_IDENT, max_size=3),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_VERSIONS, min_size=2, max_size=8))
def test_the_version_key_sorts_as_semver(texts: list[str]) -> None:
    texts = [t for t in texts if Version.is_version(t)]
    by_key = sorted(texts, key=version_key)
    by_semver = sorted(texts, key=Version)
    assert [Version(t) for t in by_key] == [Version(t) for t in by_semver]
