"""A hostile audit trail (issue 15, class 6): JSON nested too deeply is an unreadable entry.

json's C parser refuses deep nesting with RecursionError, which escaped every reader of the
trail as an internal error (exit 70): log, verify, fsck, register, and the web view's audit
page (HTTP 500). Each must see an unreadable entry: a one-line error with exit 1, or a
problem reported by verify and fsck.
"""

from __future__ import annotations

import pytest

from modelreg import Store
from tests.cli.helpers import make_writable
from tests.conftest import snapshot

DEPTHS = {
    "deep list": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
}


def _poison(store: Store, payload: bytes, *, last: bool) -> None:
    log = store.root / "audit" / "log.jsonl"
    make_writable(log)
    lines = log.read_bytes().splitlines(keepends=True)
    bad = (
        b'{"seq": 2, "time": "t", "actor": "a", "action": "x", "model": null, "details": '
        + payload
        + b', "prev": "p", "hash": "h"}\n'
    )
    lines = [*lines, bad] if last else [lines[0], bad, *lines[1:]]
    log.write_bytes(b"".join(lines))


@pytest.fixture
def filled(store: Store, tmp_path) -> Store:
    for v in ("1.0.0", "1.1.0"):
        f = tmp_path / "in" / v / "model.onnx"
        f.parent.mkdir(parents=True)
        f.write_bytes(f"weights {v}".encode())
        store.register("m", [f], version=v, detect_code=False)
    return store


@pytest.mark.parametrize("payload", list(DEPTHS), ids=list(DEPTHS))
@pytest.mark.parametrize("last", [True, False], ids=["last line", "middle line"])
def test_every_reader_of_the_trail_reports_an_unreadable_entry(
    filled, run_mreg, tmp_path, payload, last
):
    _poison(filled, DEPTHS[payload], last=last)
    before = snapshot(filled.root)
    for args in (("log",), ("log", "m"), ("verify", "--no-objects"), ("fsck", "--quick")):
        res = run_mreg(*args)
        assert res.returncode == 1, (args, res)
        assert "Traceback" not in res.stderr and "internal error" not in res.stderr, (args, res)
    verify = run_mreg("verify", "--no-objects", "--json")
    assert any(
        "unreadable audit entry" in p or "unreadable" in p for p in verify.json()["problems"]
    )
    (tmp_path / "x.onnx").write_bytes(b"new weights")
    res = run_mreg("register", "m", str(tmp_path / "x.onnx"), "--version", "2.0.0", "--no-code")
    if last:
        # the change could not be audited: refused before anything is written (class 7)
        assert res.returncode == 1 and "internal error" not in res.stderr, res
        assert len(res.stderr.splitlines()) == 1 and "unreadable" in res.stderr, res
        assert snapshot(filled.root) == before
    else:
        # a damaged entry further back does not stop appending; verify keeps reporting it
        assert res.returncode == 0, res
        assert run_mreg("verify", "--no-objects").returncode == 1


@pytest.mark.parametrize(
    "command",
    [("promote", "m@1.0.0", "--to", "production"), ("tag", "m@1.0.0", "blue"),
     ("deprecate", "m@1.0.0", "--reason", "x"), ("release", "start", "m", "--canary", "1.1.0")],
    ids=["promote", "tag", "deprecate", "release start"],
)  # fmt: skip
def test_a_change_that_cannot_be_audited_changes_nothing(filled, run_mreg, command):
    if command[0] == "release":
        filled.promote("m@1.0.0", "production")
    _poison(filled, DEPTHS["deep object"], last=True)
    before = snapshot(filled.root)
    res = run_mreg(*command)
    assert res.returncode == 1 and "internal error" not in res.stderr, res
    assert snapshot(filled.root) == before


def test_the_web_views_audit_page_lists_the_problem(filled):
    from modelreg.ui import pages
    from modelreg.ui.views import LocalView

    _poison(filled, DEPTHS["deep list"], last=False)
    page = pages.audit_page(LocalView(filled))  # raised RecursionError: HTTP 500
    assert page["problems"] and not page["ok"]
