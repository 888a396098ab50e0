"""`mreg hook ...` end to end: exit codes, stdout untouched, `kill -9` mid-delivery (issue 19)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelreg import Store
from tests.hooks.conftest import SECRET
from tests.hooks.receiver import Receiver, verify
from tests.release.util import make_model


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    return make_model(store, tmp_path)


def _wait(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def _in_order_and_complete(receiver: Receiver, store: Store, actions: set[str]) -> None:
    """Every matching entry of the trail arrived at least once, first copies in seq order."""
    want = [e.seq for e in store.log() if e.action in actions]
    got = [e["seq"] for e in receiver.entries()]
    assert got == want


def test_add_list_remove_and_exit_codes(model, receiver, run_mreg):
    for url in ("ftp://example.com/x", "https://u:p@example.com/x", "example.com"):
        r = run_mreg("hook", "add", url)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r
    r = run_mreg("hook", "add", receiver.url, "--name", "ci", "-e", "promote",
                 "--secret-env", "HOOK_SECRET", "--json")  # fmt: skip
    assert r.returncode == 0, r
    assert r.json()["events"] == ["promote"] and r.json()["secret_set"] is True
    r = run_mreg("promote", "m@1.1.0", "--to", "production", "--json")
    assert (
        r.returncode == 0 and r.stderr == "" and r.json()["version"] == "1.1.0"
    )  # stdout: JSON only
    assert receiver.actions() == ["promote"] and verify(SECRET.encode(), receiver.received[0])
    rows = run_mreg("hook", "list", "--json").json()
    assert [(h["name"], h["backlog"], h["delivered"]) for h in rows] == [("ci", 0, 1)]
    assert run_mreg("hook", "test", "ci").returncode == 0
    assert receiver.actions()[-1] == "ping"
    assert run_mreg("hook", "remove", "nope").returncode == 2
    assert run_mreg("hook", "remove", "ci").returncode == 0
    assert run_mreg("hook", "list", "--json").json() == []
    assert run_mreg("fsck", "--quick").returncode == 0


def test_a_down_receiver_changes_no_exit_code_and_hook_deliver_catches_up(
    model, receiver, run_mreg
):
    assert run_mreg("hook", "add", receiver.url, "--name", "ci").returncode == 0
    receiver.stop()
    r = run_mreg("promote", "m@1.1.0", "--to", "production")
    assert r.returncode == 0, r
    assert r.stderr.startswith("mreg: hook ci: delivery failed") and r.stderr.count("\n") == 1
    r = run_mreg("hook", "deliver")
    assert r.returncode == 1 and "ci" in r.stderr, r
    assert run_mreg("hook", "test", "ci").returncode == 1
    receiver.start()
    r = run_mreg("hook", "deliver", "--json")
    assert r.returncode == 0 and r.json()["delivered"] == 1 and r.json()["backlog"] == 0, r
    assert [e["details"]["version"] for e in receiver.entries()] == ["1.1.0"]


def test_kill_9_of_hook_deliver_loop_mid_delivery_loses_nothing(model, receiver, monkeypatch):
    monkeypatch.setenv("MREG_HOOK_TIMEOUT", "0")  # commands leave all delivery to the daemon
    for i in range(6):  # 13 events (with make_model's promotion) replayed with --from-start
        model.promote(f"m@1.{(i % 2) + 1}.0", "production", reason=f"r{i}")
        model.rollback("m", reason=f"b{i}")
    actions = {"promote", "rollback"}
    model.hook_add(receiver.url, name="ci", secret_env="HOOK_SECRET", from_start=True,
                   events=sorted(actions))  # fmt: skip
    receiver.delay = 0.3  # each answer takes a while: the kill lands while one is in flight
    env = {**os.environ, "MREG_STORE": str(model.root)}
    cmd = [sys.executable, "-m", "modelreg", "hook", "deliver", "--loop", "--interval", "0.2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: len(receiver.received) >= 4)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    got = len(receiver.received)
    assert 4 <= got < 13, got
    receiver.delay = 0
    r = subprocess.run([*cmd[:-3]], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _in_order_and_complete(receiver, model, actions)
    assert len(receiver.received) <= 14  # the one in flight at the kill may come twice
    assert Store.open(model.root).hook_list()[0].backlog == 0
    assert all(verify(SECRET.encode(), x) for x in receiver.received)


def test_kill_9_of_a_command_while_it_delivers(model, receiver, run_mreg):
    model.hook_add(receiver.url, name="ci")
    receiver.delay = 30  # the receiver holds the request; the command waits on its budget
    env = {**os.environ, "MREG_STORE": str(model.root), "MREG_HOOK_TIMEOUT": "60"}
    cmd = [sys.executable, "-m", "modelreg", "promote", "m@1.1.0", "--to", "production"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: len(receiver.received) == 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert Store.open(model.root).resolve("m@production").version == "1.1.0"  # the write stands
    receiver.delay = 0
    r = run_mreg("hook", "deliver", "--json")
    assert r.returncode == 0 and r.json()["delivered"] == 1, r
    # received twice (the first answer never reached the killed command), same delivery id
    assert receiver.actions() == ["promote", "promote"]
    assert len({x.delivery for x in receiver.received}) == 1
    assert run_mreg("fsck", "--quick").returncode == 0
