"""Hot reload: the throttled check, no I/O on the hot path, bad manifests never break serving."""

from __future__ import annotations

import builtins
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from modelreg.release import ops
from modelreg.serving import Router
from tests.release.util import SEED

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def age_files(router: Router, seconds: float = 10.0) -> None:
    """Make the watched files look old, so the racy-file rule does not force re-reads."""
    past = time.time() - seconds
    for p in (router._source.rollout_path, router._source.alias_path):
        if p.exists():
            os.utime(p, (past, past))


@pytest.fixture
def io_counter(monkeypatch):
    """Count stat() and open() calls (wrapping the standard library, not our code)."""
    counts = {"stat": 0, "open": 0}
    real_stat, real_open = os.stat, builtins.open

    def stat(*a, **k):
        counts["stat"] += 1
        return real_stat(*a, **k)

    def open_(*a, **k):
        counts["open"] += 1
        return real_open(*a, **k)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(builtins, "open", open_)
    return counts


def test_hot_path_does_no_io_and_the_check_is_throttled(model, io_counter):
    ops.start(model, "m", "1.1.0", weight=5, rules=["region=eu -> canary"])
    clock = FakeClock()
    router = Router.open("m", store=model.root, check_interval_ms=500, clock=clock)
    age_files(router)
    clock.t += 1
    router.route(user_id="u")  # absorbs the aged signature
    io_counter.update(stat=0, open=0)
    for i in range(10_000):
        router.route(user_id=f"u-{i}", attributes={"region": "us"})
    assert io_counter == {"stat": 0, "open": 0}
    clock.t += 0.499
    router.route(user_id="u")
    assert io_counter == {"stat": 0, "open": 0}
    clock.t += 0.002  # the interval has passed: one check, two stat() calls, nothing read
    for _ in range(1000):
        router.route(user_id="u")
    assert io_counter == {"stat": 2, "open": 0}
    assert router.stats().checks == 2


def test_a_change_is_seen_at_the_next_check_and_abort_sends_all_to_baseline(model):
    ops.start(model, "m", "1.1.0", weight=100)
    clock = FakeClock()
    router = Router.open("m", store=model.root, check_interval_ms=1000, clock=clock)
    assert router.route(user_id="u").variant == "canary"
    ops.abort(model, "m", reason="errors")
    assert router.route(user_id="u").variant == "canary"  # not yet: the check is throttled
    clock.t += 1.0
    assert {router.route(user_id=f"u{i}").version for i in range(100)} == {"1.0.0"}
    assert router.route(user_id="u").reason == "aborted"
    assert router.stats().generation == 2


def bad_contents(valid: bytes, canary_id: str) -> dict[str, bytes | None]:
    return {
        "truncated": valid[: len(valid) // 2],
        "empty": b"",
        "garbage": os.urandom(300),
        "not yaml": b"state: [unclosed\n  - : :",
        "wrong kind": valid.replace(b"kind: Rollout", b"kind: Alias"),
        "invalid weight": valid.replace(b"\nweight: 5\n", b"\nweight: 500\n"),
        "unknown version": valid.replace(b"version: 1.1.0", b"version: 9.9.9"),
        "changed id": valid.replace(canary_id.encode(), b"f" * 64),  # no manifest has this id
        "a list": b"- 1\n- 2\n",
        "missing": None,
    }


@pytest.mark.parametrize(
    "case",
    [
        "truncated", "empty", "garbage", "not yaml", "wrong kind", "invalid weight",
        "unknown version", "changed id", "a list", "missing",
    ],
)  # fmt: skip
def test_bad_manifest_keeps_the_last_good_configuration(model, case, caplog):
    ops.start(model, "m", "1.1.0", weight=5, seed=SEED)
    router = Router.open("m", store=model.root, check_interval_ms=0)
    before = [router.route(user_id=f"u{i}") for i in range(200)]
    path = ops.release_path(model, "m")
    valid = path.read_bytes()
    bad = bad_contents(valid, model.resolve("m@1.1.0").id)[case]
    if bad is None:
        path.unlink()
    else:
        path.write_bytes(bad)  # in place, not atomic: what a half-finished hand edit leaves
    with caplog.at_level(logging.WARNING, logger="modelreg.serving"):
        after = [router.route(user_id=f"u{i}") for i in range(200)]
    assert after == before
    stats = router.stats()
    assert stats.errors >= 1 and stats.last_error and stats.generation == 1
    warnings = [r for r in caplog.records if r.name == "modelreg.serving"]
    assert len(warnings) == 1, warnings  # logged once, counted every time
    assert "keeping the configuration of generation 1" in warnings[0].getMessage()
    # the next good manifest is picked up
    path.write_bytes(valid)
    ops.update(model, "m", weight=100)
    assert router.route(user_id="u1").variant == "canary"
    assert router.stats().generation == 2


def test_damaged_manifest_at_start_up_serves_production(model):
    ops.start(model, "m", "1.1.0", weight=100)
    ops.release_path(model, "m").write_bytes(b"\x00\x01 garbage")
    router = Router.open("m", store=model.root)
    d = router.route(user_id="u")
    assert (d.version, d.reason) == ("1.0.0", "production")
    assert router.stats().errors == 1


def test_background_thread_follows_changes_without_route_calls(model):
    ops.start(model, "m", "1.1.0", weight=0)
    with Router.open("m", store=model.root, check_interval_ms=20, background=True) as router:
        ops.update(model, "m", weight=100)
        deadline = time.monotonic() + 5
        while router.stats().generation < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert router.route(user_id="u").variant == "canary"
        assert router.stats().checks > 0


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from modelreg import Store
    from modelreg.fsutil import atomic_write
    from modelreg.release import ops

    store = Store.open(sys.argv[1])
    path = ops.release_path(store, "m")
    end = time.monotonic() + float(sys.argv[2])
    weights = [1, 5, 10, 25, 50, 75, 100]
    i = 0
    while time.monotonic() < end:
        good = path.read_bytes()
        with open(path, "r+b") as fh:        # half-written: truncated in place
            fh.truncate(len(good) // 3)
        time.sleep(0.002)
        with open(path, "wb") as fh:         # garbage
            fh.write(os.urandom(200))
        time.sleep(0.002)
        path.unlink()                        # missing
        time.sleep(0.002)
        with open(path, "wb") as fh:         # valid YAML, invalid manifest
            fh.write(good.replace(b"kind: Rollout", b"kind: Nope"))
        time.sleep(0.002)
        atomic_write(path, good)             # restored, then a real change through the library
        ops.update(store, "m", weight=weights[i % len(weights)], reason="writer")
        i += 1
    ops.abort(store, "m", reason="writer done")
    print(i)
    """
)


def test_hot_reload_while_another_process_rewrites_the_manifest(model):
    """A second process rewrites the manifest (truncated, garbage, missing, invalid, valid)
    while this one routes in a loop: zero exceptions, and the final abort is followed."""
    ops.start(model, "m", "1.1.0", weight=0.5, seed=SEED)
    router = Router.open("m", store=model.root, check_interval_ms=1)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(model.root), "3"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    exceptions, calls, generations = 0, 0, []
    logging.getLogger("modelreg.serving").setLevel(logging.CRITICAL)
    try:
        while writer.poll() is None:
            for i in range(200):
                try:
                    d = router.route(user_id=f"user-{i}", attributes={"region": "eu"})
                    assert d.version in ("1.0.0", "1.1.0")
                except Exception:
                    exceptions += 1
                calls += 1
            generations.append(router.stats().generation)
    finally:
        logging.getLogger("modelreg.serving").setLevel(logging.NOTSET)
        writer.wait(timeout=60)
    rounds = int(writer.stdout.read())
    assert writer.returncode == 0
    assert exceptions == 0
    assert rounds >= 5 and calls > 10_000
    assert generations == sorted(generations)  # never went back to an older configuration
    stats = router.stats()
    assert stats.reloads >= 3 and stats.errors >= 1
    time.sleep(0.002)
    d = router.route(user_id="user-1")
    assert (d.variant, d.reason) == ("baseline", "aborted")
    assert router.stats().generation == rounds + 2


def test_serving_import_stays_light():
    code = (
        "import sys, modelreg.serving\n"
        "heavy = ['typer', 'rich', 'git', 's3fs', 'fsspec', 'filelock', 'semver', 'click',"
        " 'modelreg.store', 'modelreg.cli', 'modelreg.release.ops']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


DECISIONS = textwrap.dedent(
    """
    import hashlib, sys
    from modelreg.serving import Router
    r = Router.open("m", store=sys.argv[1], materialize=False)
    regions = ["eu", "us", "cn-north"]
    out = [r.route(user_id=f"user-{i}", attributes={"region": regions[i % 3]}) for i in range(5000)]
    print(hashlib.sha256(repr([(d.variant, d.rule) for d in out]).encode()).hexdigest())
    """
)


def test_identical_decisions_across_processes_with_different_hash_seeds(model):
    ops.start(
        model, "m", "1.1.0", weight=30, seed=SEED,
        rules=["region=cn-north -> 10%", "region in us -> baseline"],
    )  # fmt: skip
    digests = set()
    for hash_seed in ("0", "1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", DECISIONS, str(model.root)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    import hashlib

    r = Router.open("m", store=model.root, materialize=False)
    regions = ["eu", "us", "cn-north"]
    mine = [
        r.route(user_id=f"user-{i}", attributes={"region": regions[i % 3]}) for i in range(5000)
    ]
    assert hashlib.sha256(repr([(d.variant, d.rule) for d in mine]).encode()).hexdigest() in digests
