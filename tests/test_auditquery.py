"""Audit queries (issue 18): `mreg log` filters and `mreg show NAME@ALIAS --at TIME`.

The store's clock is injected (`Store.init(..., clock=...)`), so every entry and alias move
has a known time; the CLI runs as a subprocess against that store. `show --at` answers from
the alias history and must agree with the hash-chained audit trail, else it exits 1.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modelreg import Store, auditquery, yamlio
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from tests.cli.helpers import assert_one_line_error, make_writable, ok
from tests.release.util import SEED

UTC = timezone.utc
T0 = datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC)
ALICE, BOB, CAROL = "Alice <a@x.org>", "Bob <b@x.org>", "Carol <c@x.org>"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def stamp(hours: float) -> str:
    return at(hours).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """A settable clock: `clock.set(hours)` moves it to T0 + hours."""

    def __init__(self) -> None:
        self.now = T0

    def set(self, hours: float) -> None:
        self.now = at(hours)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def timed(tmp_path: Path) -> Store:
    """Two models; fraud's production moves at hours 2 (1.0.0), 5 (1.1.0), 9 (1.2.0), 30
    (rollback to 1.1.0); staging once; churn's production once; tags, a release.

    seq: 1-3 register fraud (h0, h0.5, h1), 4 register churn (h1.5), 5 promote fraud 1.0.0
    (h2, Alice), 6 promote churn (h3, Bob), 7 promote fraud 1.1.0 (h5, Bob), 8 tag (h6,
    Carol), 9 promote staging 1.2.0 (h7, Carol), 10 promote fraud 1.2.0 (h9, Alice),
    11 register churn 0.2.0 (h9.5), 12 release.start churn (h10, Bob), 13 release.step
    (h11, Bob), 14 rollback fraud (h30, Carol).
    """
    clock = Clock()
    store = Store.init(tmp_path / "work", clock=clock)

    def reg(name: str, version: str, hours: float) -> None:
        clock.set(hours)
        f = tmp_path / "in" / name / version / "model.onnx"
        f.parent.mkdir(parents=True)
        f.write_bytes(f"{name} {version}".encode())
        store.register(name, [f], version=version, detect_code=False, author=ALICE)

    reg("fraud", "1.0.0", 0)
    reg("fraud", "1.1.0", 0.5)
    reg("fraud", "1.2.0", 1)
    reg("churn", "0.1.0", 1.5)
    clock.set(2)
    store.promote("fraud@1.0.0", "production", reason="first", actor=ALICE)
    clock.set(3)
    store.promote("churn@0.1.0", "production", actor=BOB)
    clock.set(5)
    store.promote("fraud@1.1.0", "production", reason="better recall", actor=BOB)
    clock.set(6)
    store.tag("fraud@1.1.0", ["blessed"], actor=CAROL)
    clock.set(7)
    store.promote("fraud@1.2.0", "staging", actor=CAROL)
    clock.set(9)
    store.promote("fraud@1.2.0", "production", reason="new data", actor=ALICE)
    reg("churn", "0.2.0", 9.5)
    clock.set(10)
    store.release_start("churn", "0.2.0", weight=5, seed=SEED, actor=BOB)
    clock.set(11)
    store.release_step("churn", actor=BOB)
    clock.set(30)
    store.rollback("fraud", reason="complaints", actor=CAROL)
    return store


def seqs(entries: list) -> list[int]:  # type: ignore[type-arg]
    return [e.seq if hasattr(e, "seq") else e["seq"] for e in entries]


def test_the_fixture_is_what_the_tests_assume(timed: Store) -> None:
    actions = [(e.seq, e.time, e.action, e.model) for e in timed.log()]
    assert actions == [
        (1, stamp(0), "register", "fraud"),
        (2, stamp(0.5), "register", "fraud"),
        (3, stamp(1), "register", "fraud"),
        (4, stamp(1.5), "register", "churn"),
        (5, stamp(2), "promote", "fraud"),
        (6, stamp(3), "promote", "churn"),
        (7, stamp(5), "promote", "fraud"),
        (8, stamp(6), "tag", "fraud"),
        (9, stamp(7), "promote", "fraud"),
        (10, stamp(9), "promote", "fraud"),
        (11, stamp(9.5), "register", "churn"),
        (12, stamp(10), "release.start", "churn"),
        (13, stamp(11), "release.step", "churn"),
        (14, stamp(30), "rollback", "fraud"),
    ]


# -- parse_time -------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01 12:00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00.250Z", datetime(2026, 11, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-01T14:00:00+02:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T07:30:00-0430", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("45s", NOW - timedelta(seconds=45)),
        ("7d", NOW - timedelta(days=7)),
        ("7d ago", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("1d12h", NOW - timedelta(hours=36)),
        (" 2h ", NOW - timedelta(hours=2)),
        ("0s", NOW),
        ("now", NOW),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    got = auditquery.parse_time(text, NOW)
    assert got == expected and got.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2026-13-01", "2026-11-31", "2026-11-01T25:00:00Z", "2026-11-1",
     "11/01/2026", "2h30", "-2h", "2y", "2 months", "1.5h", "2026-11-01T12:00:00+25:00",
     "99999999999d", "999999999w", "2026-11-01T12", "ago", "h"],
)  # fmt: skip
def test_parse_time_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a time"):
        auditquery.parse_time(text, NOW)


def test_format_time() -> None:
    assert auditquery.format_time(datetime(2026, 11, 1, 12, tzinfo=UTC)) == "2026-11-01T12:00:00Z"
    assert auditquery.format_time(datetime(2026, 11, 1, 12)) == "2026-11-01T12:00:00Z"
    plus2 = timezone(timedelta(hours=2))
    assert auditquery.format_time(datetime(2026, 11, 1, 14, tzinfo=plus2)) == (
        "2026-11-01T12:00:00Z"
    )


# -- entries (Store.log) ----------------------------------------------------------------------


def test_each_filter_alone(timed: Store) -> None:
    assert seqs(timed.log()) == list(range(1, 15))
    assert seqs(timed.log("churn")) == [4, 6, 11, 12, 13]
    assert seqs(timed.log(since=at(9))) == [10, 11, 12, 13, 14]  # since is inclusive
    assert seqs(timed.log(until=at(2))) == [1, 2, 3, 4]  # until is exclusive
    assert seqs(timed.log(actor=BOB)) == [6, 7, 12, 13]
    assert seqs(timed.log(actor="Bob")) == []  # exact, not a substring
    assert seqs(timed.log(action="promote")) == [5, 6, 7, 9, 10]
    assert seqs(timed.log(action="release.*")) == [12, 13]
    assert seqs(timed.log(action="release.start")) == [12]
    assert seqs(timed.log(action="release")) == []  # exact: no action is just "release"
    assert seqs(timed.log(action="r*")) == [1, 2, 3, 4, 11, 12, 13, 14]
    assert seqs(timed.log(action="*")) == list(range(1, 15))
    assert seqs(timed.log(limit=3)) == [12, 13, 14]
    assert seqs(timed.log(limit=100)) == list(range(1, 15))


def test_limit_is_the_newest_n_after_filtering(timed: Store) -> None:
    assert seqs(timed.log("fraud", 2)) == [10, 14]  # positional (name, limit) still works
    assert seqs(timed.log(action="promote", limit=2)) == [9, 10]
    assert seqs(timed.log("fraud", limit=2, until=at(9))) == [8, 9]
    assert seqs(timed.log(actor=ALICE, action="promote", limit=1)) == [10]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "fraud", "since": at(2), "until": at(9)}, [5, 7, 8, 9]),
        ({"name": "fraud", "since": at(2), "until": at(9), "action": "promote"}, [5, 7, 9]),
        ({"name": "fraud", "since": at(2), "actor": ALICE}, [5, 10]),
        ({"name": "churn", "action": "release.*", "actor": BOB, "limit": 1}, [13]),
        ({"since": at(3), "until": at(3) + timedelta(seconds=1)}, [6]),  # one second
        ({"since": at(3) + timedelta(seconds=0.5), "until": at(5)}, []),  # 3:00:00 < since
        ({"since": at(10) - timedelta(microseconds=1), "until": at(10)}, []),
        ({"actor": CAROL, "action": "rollback", "since": at(29), "until": at(31)}, [14]),
        ({"name": "churn", "actor": ALICE}, [4, 11]),
        ({"name": "churn", "since": at(12)}, []),  # a known model with nothing in the window
    ],
)
def test_combinations(timed: Store, kwargs: dict, expected: list[int]) -> None:  # type: ignore[type-arg]
    assert seqs(timed.log(**kwargs)) == expected


def test_times_with_an_offset_or_naive_are_instants(timed: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 1, 11, 0, 0, tzinfo=plus2)  # 09:00 UTC = at(1)
    assert seqs(timed.log(since=local, until=at(2))) == [3, 4]
    assert seqs(timed.log(since=at(1).replace(tzinfo=None), until=at(2))) == [3, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be at least 1"),
        ({"limit": -3}, "limit must be at least 1"),
        ({"since": at(5), "until": at(5)}, "is not before until"),
        ({"since": at(6), "until": at(5)}, "is not before until"),
        ({"action": "*promote"}, "only a trailing"),
        ({"action": "rel*se"}, "only a trailing"),
        ({"action": "release.**"}, "only a trailing"),
        ({"action": ""}, "empty"),
        ({"actor": " "}, "empty"),
        ({"name": "../etc"}, ""),
    ],
)
def test_malformed_filters_are_invalid_input(timed: Store, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput, match=message or None):
        timed.log(**kwargs)


def test_an_unknown_model_is_not_found(timed: Store) -> None:
    with pytest.raises(NotFound, match="no model named 'nosuch'"):
        timed.log("nosuch", since=at(1))
    with pytest.raises(NotFound):
        timed.log("nosuch", 3)


def test_an_empty_store_has_no_entries(store: Store) -> None:
    assert store.log() == [] and store.log(limit=5) == []
    assert store.log(since=T0) == []


# -- reading the trail from its end ------------------------------------------------------------


def _log_path(store: Store) -> Path:
    path = store.audit.path
    make_writable(path)
    return path


def test_limit_reads_from_the_end_with_a_bounded_buffer(timed: Store) -> None:
    everything = timed.audit.entries()
    for block in (1, 7, 64, 1 << 16):
        newest_first = list(auditquery._newest_first(timed.audit.path, block))
        assert newest_first == everything[::-1], block


def _without_index(store: Store) -> None:
    """Make the derived index unusable, so the trail itself is read (a read-only store)."""
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store.root / name).unlink(missing_ok=True)
    (store.root / "index.sqlite").mkdir()


def test_limit_reads_only_as_far_back_as_needed(
    timed: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the index (a store it cannot be written in), the trail is read from its end."""
    _without_index(timed)
    path = _log_path(timed)
    # a large trail: 2,000 more entries, ~0.5 MB
    lines = path.read_bytes()
    for i in range(2000):
        timed.audit.append(time=stamp(40), actor=ALICE, action="note", model=None, details={"i": i})
    size = path.stat().st_size
    assert size > len(lines) * 10
    read = []
    real = auditquery.os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        read.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(auditquery.os, "pread", counting)
    newest = timed.log(limit=5)
    assert [e.details["i"] for e in newest] == [1995, 1996, 1997, 1998, 1999]
    assert sum(read) <= 1 << 16 and sum(read) < size / 4
    read.clear()
    assert seqs(timed.log(action="rollback", limit=1)) == [14]  # must go back to entry 14
    assert sum(read) == size


def test_limit_never_parses_damage_further_back(timed: Store) -> None:
    path = _log_path(timed)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"not": "an entry"}\n'
    path.write_bytes(b"".join(lines))
    assert seqs(timed.log(limit=2)) == [13, 14]  # read from the end: entry 3 never parsed
    with pytest.raises(IntegrityError, match="unreadable audit entry"):
        timed.log()  # the whole trail: reported, as before
    with pytest.raises(IntegrityError, match="unreadable audit entry at byte"):
        timed.log(action="register", limit=10)  # had to read back to it


def test_a_torn_last_line_is_skipped_from_the_end_too(timed: Store) -> None:
    path = _log_path(timed)
    with path.open("ab") as f:
        f.write(b'{"seq": 15, "time": "2026-11')  # an interrupted append
    assert seqs(timed.log(limit=2)) == [13, 14]
    assert seqs(timed.log()) == list(range(1, 15))


def test_a_line_longer_than_the_buffer(timed: Store) -> None:
    timed.audit.append(
        time=stamp(41), actor=BOB, action="note", model=None, details={"big": "x" * 200_000}
    )
    newest = list(auditquery._newest_first(timed.audit.path, 4096))
    assert newest[0].details["big"] == "x" * 200_000 and newest[1].seq == 14


# -- alias_at (show NAME@ALIAS --at TIME) -----------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "version", "since", "until"),
    [
        (2, "1.0.0", 2, 5),  # the exact instant of the first move
        (3, "1.0.0", 2, 5),
        (5 - 1 / 3600, "1.0.0", 2, 5),  # one second before the next move
        (5, "1.1.0", 5, 9),  # a move's own timestamp belongs to the new version
        (8.99, "1.1.0", 5, 9),
        (9, "1.2.0", 9, 30),
        (29.5, "1.2.0", 9, 30),
        (30, "1.1.0", 30, None),  # the rollback, still in force
        (24 * 365, "1.1.0", 30, None),  # long after the last move
    ],
)
def test_alias_at(
    timed: Store, hours: float, version: str, since: float, until: float | None
) -> None:
    found = timed.alias_at("fraud", "production", at(hours))
    assert found.version == version
    assert found.move.time == stamp(since)
    assert found.until == (stamp(until) if until is not None else None)
    assert (found.next is None) == (until is None)


def test_alias_at_says_who_why_and_which_audit_entry(timed: Store) -> None:
    found = timed.alias_at("fraud", "production", at(6))
    doc = found.to_dict()
    assert doc == {
        "name": "fraud",
        "alias": "production",
        "at": stamp(6),
        "version": "1.1.0",
        "id": timed.resolve("fraud@1.1.0").id,
        "since": stamp(5),
        "until": stamp(9),
        "generation": 2,
        "action": "promote",
        "actor": BOB,
        "reason": "better recall",
        "forced": False,
        "previous": "1.0.0",
        "next": {
            "version": "1.2.0",
            "action": "promote",
            "actor": ALICE,
            "reason": "new data",
            "generation": 3,
        },
        "audit_seq": 7,
    }
    rolled = timed.alias_at("fraud", "production", at(31)).to_dict()
    assert (rolled["action"], rolled["actor"], rolled["reason"], rolled["audit_seq"]) == (
        "rollback",
        CAROL,
        "complaints",
        14,
    )
    assert rolled["until"] is None and rolled["next"] is None
    assert timed.alias_at("fraud", "staging", at(8)).version == "1.2.0"
    assert timed.alias_at("churn", "production", at(8)).audit_seq == 6


def test_alias_at_before_the_first_move(timed: Store) -> None:
    with pytest.raises(NotFound) as exc:
        timed.alias_at("fraud", "production", at(2) - timedelta(seconds=1))
    assert str(exc.value) == (
        f"fraud@production: production did not exist at 2026-11-01T09:59:59Z: its first move "
        f"was at {stamp(2)}"
    )
    with pytest.raises(NotFound, match="staging did not exist"):
        timed.alias_at("fraud", "staging", at(6))


def test_alias_at_unknown_model_or_alias(timed: Store) -> None:
    with pytest.raises(NotFound, match="no model named 'nosuch'"):
        timed.alias_at("nosuch", "production", at(5))
    with pytest.raises(NotFound, match="fraud@canary: no such alias"):
        timed.alias_at("fraud", "canary", at(5))
    with pytest.raises(InvalidInput):
        timed.alias_at("fraud", "Bad Alias!", at(5))


def _rewrite_alias(store: Store, name: str, alias: str, change) -> None:  # type: ignore[no-untyped-def]
    path = store.alias_path(name, alias)
    make_writable(path)
    doc = yamlio.load_file(path, IntegrityError)
    change(doc)
    path.write_bytes(yamlio.dump(doc))


def _rewrite_audit(store: Store, seq: int, change, *, rehash: bool) -> None:  # type: ignore[no-untyped-def]
    from modelreg.audit import AuditEntry

    path = _log_path(store)
    lines = path.read_bytes().splitlines(keepends=True)
    doc = json.loads(lines[seq - 1])
    change(doc)
    entry = AuditEntry.from_dict(doc)
    if rehash:
        entry = AuditEntry(**{**entry.body(), "hash": entry.compute_hash()})
    lines[seq - 1] = entry.line()
    path.write_bytes(b"".join(lines))


def test_a_tampered_alias_history_disagrees_with_the_audit_trail(timed: Store) -> None:
    v120 = timed.resolve("fraud@1.2.0")

    def lie(doc: dict) -> None:  # type: ignore[type-arg]
        # generation 2 (hour 5) went straight to 1.2.0, says the alias file
        doc["history"][1].update(version="1.2.0", id=v120.id)

    _rewrite_alias(timed, "fraud", "production", lie)
    with pytest.raises(IntegrityError) as exc:
        timed.alias_at("fraud", "production", at(6))
    message = str(exc.value)
    assert "\n" not in message
    assert "alias history and the audit trail disagree" in message
    assert f"promote to 1.2.0 at {stamp(5)} by {BOB}" in message  # the alias file's claim
    assert f"audit entry 7 records promote to 1.1.0 at {stamp(5)}" in message  # the trail's
    # every question about this alias is refused, not only those about the tampered move
    with pytest.raises(IntegrityError):
        timed.alias_at("fraud", "production", at(31))
    assert timed.alias_at("fraud", "staging", at(8)).version == "1.2.0"  # other aliases: fine


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["history"][0].update(time=stamp(1)),  # moved an hour earlier
        lambda d: d["history"][0].update(actor=CAROL),
        lambda d: d["history"][1].update(reason="it was fine"),
        lambda d: d["history"][2].update(forced=True),
        lambda d: d["history"].pop(1),  # a move deleted from the history
    ],
    ids=["time", "actor", "reason", "forced", "deleted move"],
)
def test_any_change_to_a_move_is_caught(timed: Store, change) -> None:  # type: ignore[no-untyped-def]
    _rewrite_alias(timed, "fraud", "production", change)
    with pytest.raises(IntegrityError):
        timed.alias_at("fraud", "production", at(6))


def test_the_audit_side_is_checked_too(timed: Store) -> None:
    # an audit entry edited and re-hashed: the next entry's prev no longer names it
    _rewrite_audit(timed, 7, lambda d: d["details"].update(reason="x"), rehash=True)
    with pytest.raises(IntegrityError, match="disagree"):
        timed.alias_at("fraud", "production", at(6))


def test_an_edited_audit_entry_that_still_agrees_is_caught_by_its_hash(timed: Store) -> None:
    # the entry is changed where the alias history does not look (failed_gates), not re-hashed
    _rewrite_audit(timed, 7, lambda d: d["details"].update(failed_gates=["x"]), rehash=False)
    with pytest.raises(IntegrityError, match=r"audit entry 7.*not intact in the hash chain"):
        timed.alias_at("fraud", "production", at(6))


def test_a_move_in_the_trail_missing_from_the_history(timed: Store) -> None:
    # the alias file replaced by an older copy: generation 4 (the rollback) is gone
    def older(doc: dict) -> None:  # type: ignore[type-arg]
        doc["history"].pop()
        last = doc["history"][-1]
        doc.update(version=last["version"], id=last["id"], generation=3)

    _rewrite_alias(timed, "fraud", "production", older)
    with pytest.raises(IntegrityError) as exc:
        timed.alias_at("fraud", "production", at(10))
    assert "audit entry 14 records generation 4, rollback to 1.1.0" in str(exc.value)


def test_moves_replaced_by_pull_theirs_are_accepted(timed: Store) -> None:
    # pull --theirs replaced the local alias file with a remote's history; the undone local
    # move stays in the trail, followed by the pull-theirs entry that says why
    timed.audit.append(
        time=stamp(31), actor=ALICE, action="promote", model="fraud",
        details={"alias": "production", "version": "1.0.0", "id": "0" * 64, "generation": 5,
                 "previous": "1.1.0", "reason": "", "forced": False, "failed_gates": []},
    )  # fmt: skip
    with pytest.raises(IntegrityError, match="generation 5"):
        timed.alias_at("fraud", "production", at(10))
    timed.audit.append(
        time=stamp(32), actor=ALICE, action="pull-theirs", model="fraud",
        details={"ref": "models/fraud/aliases/production.yaml", "remote": "origin"},
    )  # fmt: skip
    assert timed.alias_at("fraud", "production", at(10)).version == "1.2.0"


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_log_options(timed: Store, run_mreg) -> None:  # type: ignore[no-untyped-def]
    def log(*args: str) -> list[int]:
        return seqs(ok(run_mreg("log", *args, "--json")).json())

    assert log() == list(range(1, 15))
    assert log("-n", "2") == [13, 14]
    assert log("--limit", "2") == [13, 14]
    assert log("fraud", "-n", "2") == [10, 14]
    assert log("--since", stamp(9), "--until", stamp(11)) == [10, 11, 12]
    # 11:00+01:00 is 10:00Z, the instant of entry 5: until is exclusive
    assert log("--since", "2026-11-01", "--until", "2026-11-01T11:00:00+01:00") == [1, 2, 3, 4]
    assert log("--since", "2026-11-02") == [14]
    assert log("--actor", BOB) == [6, 7, 12, 13]
    assert log("--action", "release.*") == [12, 13]
    assert log("--action", "promote", "--actor", ALICE, "fraud") == [5, 10]
    assert log("churn", "--action", "release.*", "-n", "1") == [13]
    assert log("--actor", "nobody") == []
    entry = ok(run_mreg("log", "-n", "1", "--json")).json()[0]
    assert set(entry) == {"seq", "time", "actor", "action", "model", "details", "prev", "hash"}
    table = ok(run_mreg("log", "fraud", "--action", "rollback")).stdout
    assert "complaints" in table and "promote" not in table
    assert "No audit entry matches" in ok(run_mreg("log", "--actor", "nobody")).stdout


def test_cli_log_relative_times(store: Store, tmp_path: Path, run_mreg) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    clock = Clock()
    timed = Store.open(store.root, clock=clock)
    for i, hours_ago in enumerate((50, 3, 0.5)):
        clock.now = now - timedelta(hours=hours_ago)
        f = tmp_path / f"m{i}.onnx"
        f.write_bytes(f"weights {i}".encode())
        timed.register("m", [f], version=f"1.{i}.0", detect_code=False)
    versions = [
        e["details"]["version"] for e in ok(run_mreg("log", "--since", "2h", "--json")).json()
    ]
    assert versions == ["1.2.0"]
    both = ok(run_mreg("log", "--since", "2d ago", "--until", "1h", "--json")).json()
    assert [e["details"]["version"] for e in both] == ["1.1.0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday' is not a time"),
        (("--until", "2026-02-30"), "--until '2026-02-30' is not a time"),
        (("--since", "2h30"), "is not a time"),
        (("--since", "2026-11-02", "--until", "2026-11-01"), "is not before until"),
        (("--action", "*.start"), "only a trailing *"),
        (("nosuch", "--since", "1h"), "no model named 'nosuch'"),
    ],
)
def test_cli_log_malformed_input_exits_2(timed: Store, run_mreg, args, message) -> None:  # type: ignore[no-untyped-def]
    line = assert_one_line_error(run_mreg("log", *args), 2)
    assert message in line


def test_cli_show_at(timed: Store, run_mreg) -> None:  # type: ignore[no-untyped-def]
    doc = ok(run_mreg("show", "fraud@production", "--at", stamp(5), "--json")).json()
    assert (doc["version"], doc["since"], doc["until"], doc["actor"], doc["audit_seq"]) == (
        "1.1.0",
        stamp(5),
        stamp(9),
        BOB,
        7,
    )
    # one second earlier it was 1.0.0
    early = datetime(2026, 11, 1, 12, 59, 59, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        ok(run_mreg("show", "fraud@production", "--at", early, "--json")).json()["version"]
        == "1.0.0"
    )
    text = ok(run_mreg("show", "fraud@production", "--at", "2026-11-01T15:30:00Z")).stdout
    assert "fraud@production at 2026-11-01T15:30:00Z: 1.1.0" in text
    assert f"since  {stamp(5)}, promote by {BOB}" in text
    assert "why    better recall" in text
    assert f"until  {stamp(9)}, promote to 1.2.0 by {ALICE}" in text
    assert "audit entry 7" in text
    now = ok(run_mreg("show", "fraud@production", "--at", "now")).stdout
    assert "1.1.0" in now and "still points there" in now and "complaints" in now
    card = ok(run_mreg("show", "fraud@production", "--json")).json()  # without --at: the card
    assert card["version"] == "1.1.0" and "files" in card


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fraud@production", "--at", "2026-11-01T09:59:59Z"),
         "fraud@production: production did not exist at 2026-11-01T09:59:59Z"),
        (("fraud@production", "--at", "2026-11-01"), "production did not exist at"),
        (("fraud@1.1.0", "--at", "1h"), "--at needs NAME@ALIAS"),
        (("fraud@latest", "--at", "1h"), "--at needs NAME@ALIAS"),
        (("fraud", "--at", "1h"), "--at needs NAME@ALIAS"),
        (("fraud@production", "--at", "soon"), "--at 'soon' is not a time"),
        (("fraud@canary", "--at", "1h"), "no such alias"),
        (("nosuch@production", "--at", "1h"), "no model named"),
    ],
)  # fmt: skip
def test_cli_show_at_refusals_exit_2(timed: Store, run_mreg, args, message) -> None:  # type: ignore[no-untyped-def]
    assert message in assert_one_line_error(run_mreg("show", *args), 2)


def test_cli_show_at_on_a_tampered_history_exits_1(timed: Store, run_mreg) -> None:  # type: ignore[no-untyped-def]
    v120 = timed.resolve("fraud@1.2.0")
    _rewrite_alias(
        timed, "fraud", "production", lambda d: d["history"][1].update(version="1.2.0", id=v120.id)
    )
    line = assert_one_line_error(run_mreg("show", "fraud@production", "--at", stamp(6)), 1)
    assert "alias history and the audit trail disagree" in line
    assert "alias file" in line and "audit entry 7" in line
    err = run_mreg("show", "fraud@production", "--at", stamp(6), "--json")
    assert err.returncode == 1 and json.loads(err.stderr)["error"]["type"] == "IntegrityError"
