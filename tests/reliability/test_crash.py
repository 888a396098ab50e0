"""Crash suite (issue 8): `kill -9` of real `mreg` processes at random points, many times.

Commands: register (a 4 MB file, so kills land inside object writes), promote, release
start/step/promote/abort, push and pull (to a `file://` remote and to moto's S3 server).
Each run is killed in one of three ways:

- `random`: after a random delay over the command's whole run (start-up included);
- `inside`: once the command is visibly writing (a temp file in `tmp/`, a new object on the
  remote), plus a random few milliseconds;
- `locked`: the test holds the store lock while the command starts, releases it, and kills
  within the next 80 ms: the kill lands in or around the command's critical section
  (manifest, refs, audit log), which is otherwise a few milliseconds of a 0.4 s run.

After every run: `fsck` of the store (and of a `file://` remote, itself a store) reports no
error; orphan objects and leftover temp files are allowed, as warnings (they are what a
crash is documented to leave, docs/store-format.md). Every command that exited 0 is fully
readable at once (show, get with every byte re-hashed) and again at the end of the test, and
the next command after a kill works. At the end, `fsck --repair` sweeps the leftovers.

`MREG_CRASH_ITERATIONS` (default 30) is the number of killed runs of the whole suite;
`MREG_CRASH_REPORT=FILE` writes the figures (runs, kill points, outcomes) as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import NotFound
from modelreg.fsck import fsck
from tests.remote.conftest import AWS_ENV

TOTAL = int(os.environ.get("MREG_CRASH_ITERATIONS", "30"))
SHARES = {"register": 0.3, "refs": 0.3, "sync-file": 0.2, "sync-s3": 0.2}
BIG = 4_000_000
SEED = int(os.environ.get("MREG_CRASH_SEED", "8"))

FIGURES: dict[str, Any] = {
    "iterations": TOTAL,
    "seed": SEED,
    "commands": defaultdict(lambda: {"runs": 0, "killed": 0, "exit_0": 0, "other_exit": 0}),
    "kill_points": defaultdict(Counter),
    "modes": Counter(),
}


def _iterations(share: str) -> int:
    return max(2, round(TOTAL * SHARES[share]))


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    out = os.environ.get("MREG_CRASH_REPORT")
    if out:
        doc = {**FIGURES, "commands": dict(FIGURES["commands"])}
        doc["kill_points"] = {k: dict(v) for k, v in FIGURES["kill_points"].items()}
        Path(out).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


@dataclass
class Run:
    """One `mreg` subprocess and how it ended."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    mode: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def _env() -> dict[str, str]:
    return {**os.environ, **AWS_ENV, "MREG_LOCK_TIMEOUT": "30"}


def mreg(
    command: str,
    args: list[str],
    cwd: Path,
    rng: random.Random,
    *,
    lock: Path | None = None,
    inside: Callable[[], bool] | None = None,
    span: float = 0.8,
) -> Run:
    """Run `mreg ARGS` and SIGKILL it in one of the three ways (see the module docstring)."""
    mode = rng.choice(["random", "locked" if lock else "random", "inside" if inside else "random"])
    held = None
    if mode == "locked":
        import filelock

        held = filelock.FileLock(str(lock))
        held.acquire()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if mode == "random":
            time.sleep(rng.uniform(0.0, span))
        elif mode == "locked":
            time.sleep(0.7)  # start-up: the command is waiting for the lock (or about to)
            assert held is not None
            held.release()
            held = None
            time.sleep(rng.uniform(0.0, 0.08))
        else:
            assert inside is not None
            deadline = time.monotonic() + 30
            while proc.poll() is None and not inside() and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if held is not None:
            held.release()
        if proc.poll() is None:  # pragma: no cover (a failed assertion above)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    run = Run(tuple(args), proc.returncode, out, err, mode)
    stats = FIGURES["commands"][command]
    stats["runs"] += 1
    FIGURES["modes"][mode] += 1
    if run.killed:
        stats["killed"] += 1
    elif run.returncode == 0:
        stats["exit_0"] += 1
    else:
        stats["other_exit"] += 1
        assert "Traceback" not in err and "internal error" not in err, run
    return run


def point(command: str, where: str) -> None:
    FIGURES["kill_points"][command][where] += 1


def assert_clean(root: Path, what: str = "store") -> None:
    """fsck finds no error (warnings, i.e. orphans and leftover temps, are allowed)."""
    report = fsck(Store.open(root))
    assert report.ok, f"{what}: " + "; ".join(f"{f.kind}: {f.message}" for f in report.errors)
    assert {f.kind for f in report.warnings} <= {"orphan-object", "leftover-temp"}, report


def assert_readable(store: Store, spec: str, out: Path, expect: dict[str, bytes] | None) -> None:
    """`show` + `get` (every byte re-hashed) of a version; the bytes are the registered ones."""
    info = store.info(spec)
    got = store.get(spec, out / uuid.uuid4().hex)
    assert len(got.written) == len(info.version.files)
    if expect is not None:
        for f in info.version.files:
            assert (Path(got.out) / f.path).read_bytes() == expect[f.path]


def _tmp_busy(root: Path) -> bool:
    try:
        return any(os.scandir(root / "tmp"))
    except FileNotFoundError:
        return False


def _temps_left(root: Path) -> bool:
    return _tmp_busy(root) or any(p.name.startswith(".tmp-") for p in root.rglob(".tmp-*"))


# -- register ----------------------------------------------------------------------------------


def test_kill_register(store: Store, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    promised: dict[str, dict[str, bytes]] = {}
    version, content = "1.0.0", None
    n = _iterations("register")
    for i in range(n):
        if content is None:  # a new version; after a kill, the same one again (a CI re-run)
            version = f"1.0.{i}"
            content = {"model.bin": rng.randbytes(BIG), "config.json": f'{{"i": {i}}}'.encode()}
            src = tmp_path / f"src-{version}"
            src.mkdir()
            for rel, data in content.items():
                (src / rel).write_bytes(data)
        entries = len(store.log())
        digest = hashlib.sha256(content["model.bin"]).hexdigest()
        had = store.objects.has(digest)
        run = mreg(
            "register",
            ["register", "m", str(src), "--version", version, "--no-code", "--json"],
            store.root.parent,
            rng,
            lock=store.root / "locks" / "store.lock",
            inside=lambda: _tmp_busy(store.root),
            span=1.0,
        )
        manifest = store.manifest_path("m", version).exists()
        if run.returncode == 0:
            point("register", "not killed (exit 0)")
            assert json.loads(run.stdout)["version"] == version
            promised[version] = content
            content = None
        elif manifest and len(store.log()) > entries:
            point("register", "after the audit entry, before exit")
            promised[version] = content
            content = None
        elif manifest:
            point("register", "between manifest and audit entry")
            content = None
        elif store.objects.has(digest) and not had:
            point("register", "after the objects, before the manifest")
        elif _tmp_busy(store.root):
            point("register", "inside an object write")
        else:
            point("register", "before any write")
        assert_clean(store.root)
        if version in promised:
            assert_readable(store, f"m@{version}", tmp_path / "out", promised[version])
    for v, data in promised.items():
        assert_readable(store, f"m@{v}", tmp_path / "out", data)
    _final_repair(store)


def _final_repair(store: Store) -> None:
    """`mreg fsck --repair --temp-age 0` sweeps what the kills left; then only orphans remain."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelreg", "fsck", "--repair", "--temp-age", "0", "--json"],
        cwd=store.root.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    after = fsck(Store.open(store.root))
    assert after.ok and {f.kind for f in after.findings} <= {"orphan-object"}, after.findings
    assert not _temps_left(store.root)


# -- promote and release ---------------------------------------------------------------------


def _refs_state(store: Store) -> dict[str, bytes]:
    out = {}
    for top in ("models", "releases"):
        for p in (store.root / top).rglob("*.yaml"):
            if "versions" not in p.parts and not p.name.startswith(".tmp-"):
                out[p.relative_to(store.root).as_posix()] = p.read_bytes()
    return out


def test_kill_promote_and_release(store: Store, tmp_path: Path) -> None:
    from modelreg.release import ops

    rng = random.Random(SEED + 1)
    for i in range(4):
        src = tmp_path / f"v{i}.bin"
        src.write_bytes(f"weights {i}".encode() * 1000)
        store.register("m", [src], version=f"1.{i}.0", detect_code=False)
    store.promote("m@1.0.0", "production")
    versions = [f"1.{i}.0" for i in range(4)]
    for _ in range(_iterations("refs")):
        rollout = ops.read_rollout(store, "m")
        prod = store.resolve("m@production").version
        live = rollout is not None and rollout.live
        choices = ["promote"] + (["step", "release-promote", "abort"] if live else ["start"])
        action = rng.choice(choices)
        if action == "promote":
            target = rng.choice([v for v in versions if v != prod])
            args = ["promote", f"m@{target}", "--to", "production"]
            if live:
                args = ["promote", f"m@{target}", "--to", "staging"]
        elif action == "start":
            target = rng.choice([v for v in versions if v != prod])
            args = ["release", "start", "m", "--canary", target]
        else:
            target = None
            args = ["release", action.removeprefix("release-"), "m"]
        before, entries = _refs_state(store), len(store.log())
        run = mreg(action, args, store.root.parent, rng, lock=store.root / "locks" / "store.lock")
        after = _refs_state(store)
        if run.returncode == 0:
            point(action, "not killed (exit 0)")
        elif len(store.log()) > entries:
            point(action, "after the audit entry, before exit")
        elif after != before:
            changed = len([k for k in set(before) | set(after) if before.get(k) != after.get(k)])
            point(action, f"{changed} ref(s) written, audit entry not yet")
        else:
            point(action, "before any write")
        assert run.killed or run.returncode in (0, 1), run  # 1: a refused transition
        assert_clean(store.root)
        now = ops.read_rollout(store, "m")
        if run.returncode == 0 and action == "promote":
            alias = "staging" if "staging" in args else "production"
            assert store.resolve(f"m@{alias}").version == target
        elif run.returncode == 0 and action == "start":
            assert now is not None and now.live and now.canary.version == target
        elif run.returncode == 0 and action == "release-promote":
            assert now is not None and now.state == "promoted"
            assert store.resolve("m@production").version == now.canary.version
        elif run.returncode == 0 and action == "abort":
            assert now is not None and now.state == "aborted"
        for alias in ("production", "staging"):
            if store.alias_path("m", alias).exists():
                assert_readable(store, f"m@{alias}", tmp_path / "out", None)
    _final_repair(store)


# -- push and pull -----------------------------------------------------------------------------


@dataclass
class Sync:
    """An origin store, its remote and a mirror store that pulls from it."""

    origin: Store
    mirror: Store
    remote_dir: Path | None
    count_remote: Callable[[], int]
    promised_push: set[str] = field(default_factory=set)
    promised_pull: set[str] = field(default_factory=set)


def _sync_setup(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Sync:
    origin = Store.init(tmp_path / "origin")
    mirror = Store.init(tmp_path / "mirror")
    if kind == "file":
        remote_dir = tmp_path / "remote" / ".modelreg"  # a file:// remote is itself a store
        url, options = str(remote_dir), {}

        def count() -> int:
            objs = remote_dir / "objects"
            return sum(len(os.listdir(objs / d)) for d in os.listdir(objs)) if objs.is_dir() else 0

    else:
        from modelreg.remote.backend import Backend
        from modelreg.remote.config import RemoteSpec

        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"crash-{uuid.uuid4().hex[:12]}"
        url, options, remote_dir = f"s3://{bucket}/reg", {"endpoint_url": endpoint}, None
        backend = Backend(RemoteSpec("t", url, options))
        backend.fs.mkdir(bucket)

        def count() -> int:
            return len(backend.list("objects"))

    origin.remotes.add("origin", url, options)
    mirror.remotes.add("origin", url, options)
    return Sync(origin, mirror, remote_dir, count)


def _remote_state(s: Sync, versions: list[str]) -> tuple[int, bool]:
    """(objects on the remote, whether it has every version's manifest)."""
    from modelreg.remote import Remote

    r = Remote.from_spec(s.origin.remotes.get("origin"), cache_dir=s.origin.root.parent / "cache")
    return s.count_remote(), set(r.versions("m")) >= set(versions)


def _check_remote(s: Sync, tmp_path: Path) -> None:
    """The remote is a valid store: a file remote passes fsck; any remote pulls cleanly."""
    if s.remote_dir is not None and (s.remote_dir / "config.yaml").exists():
        assert_clean(s.remote_dir, "remote")
    scratch = Store.init(tmp_path / f"scratch-{uuid.uuid4().hex[:8]}")
    scratch.remotes.add("origin", s.origin.config.remotes["origin"].url,
                        s.origin.config.remotes["origin"].options)  # fmt: skip
    if s.count_remote() or s.promised_push:
        try:
            result = scratch.pull()
        except NotFound:  # killed before the first push wrote config.yaml
            assert not s.promised_push
            return
        assert result.rejected == (), result.rejected
        assert_clean(scratch.root, "a fresh clone of the remote")
        for v in s.promised_push:
            assert_readable(scratch, f"m@{v}", tmp_path / "out", None)


def _versions(store: Store) -> set[str]:
    from modelreg.catalog import version_list

    return {v.text for v in version_list(store, "m")}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_kill_push_and_pull(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    s = _sync_setup(kind, tmp_path, request)
    rng = random.Random(SEED + 2 + (kind == "s3"))
    versions: list[str] = []
    n = _iterations(f"sync-{kind}")
    for i in range(max(1, n // 2)):
        version = f"2.{i}.0"
        src = tmp_path / f"src-{version}"
        src.mkdir()
        (src / "model.bin").write_bytes(rng.randbytes(BIG))
        (src / "small.txt").write_bytes(f"{i}".encode())
        s.origin.register("m", [src], version=version, detect_code=False)
        s.origin.promote(f"m@{version}", "production")
        versions.append(version)
        # push, killed
        before = _remote_state(s, versions)
        run = mreg(
            "push",
            ["push", "--jobs", "2", "--json"],
            s.origin.root.parent,
            rng,
            inside=lambda ob=before[0]: s.count_remote() > ob,
            span=1.5,
        )
        if run.returncode == 0:
            point(f"push-{kind}", "not killed (exit 0)")
            s.promised_push.update(versions)
        else:
            assert run.killed, run
            objects, manifests = _remote_state(s, versions)
            if manifests:
                where = "after the manifest (refs, audit log pending or sent)"
            elif objects > before[0]:
                where = "after some objects, before the manifest"
            else:
                where = "before any object arrived"
            point(f"push-{kind}", where)
        assert_clean(s.origin.root)
        _check_remote(s, tmp_path)
        # pull into the mirror, killed
        had = _versions(s.mirror)
        run = mreg(
            "pull",
            ["pull", "--jobs", "2", "--json"],
            s.mirror.root.parent,
            rng,
            lock=s.mirror.root / "locks" / "store.lock",
            inside=lambda: _tmp_busy(s.mirror.root),
            span=1.5,
        )
        now = _versions(s.mirror)
        if run.returncode == 0:
            point(f"pull-{kind}", "not killed (exit 0)")
            assert json.loads(run.stdout)["ok"] is True
            s.promised_pull |= now
        elif run.killed:
            if now - had:
                point(f"pull-{kind}", "after installing manifests")
            elif _tmp_busy(s.mirror.root):
                point(f"pull-{kind}", "inside an object download")
            else:
                point(f"pull-{kind}", "before installing any manifest")
        else:  # e.g. a NotFound because the remote is still empty (push killed early)
            point(f"pull-{kind}", f"exit {run.returncode} (not killed)")
        assert_clean(s.mirror.root, "mirror")
        for v in s.promised_pull:
            assert_readable(s.mirror, f"m@{v}", tmp_path / "out", None)
    # the last word: an uninterrupted push and pull make both sides whole and equal
    s.origin.push()
    s.promised_push.update(versions)
    _check_remote(s, tmp_path)
    result = s.mirror.pull()
    assert result.ok, result.to_dict()
    assert {v.version.version for v in s.mirror.versions("m")} == set(versions)
    for v in versions:
        assert s.mirror.resolve(f"m@{v}").id == s.origin.resolve(f"m@{v}").id
        assert_readable(s.mirror, f"m@{v}", tmp_path / "out", None)
    _final_repair(s.mirror)
    _final_repair(s.origin)


# -- the audit head across crashes (deterministic: the exact states a kill can leave) -------


def test_crashes_between_audit_append_and_head_update_stay_clean(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands killed in a row between the append and the head update (found at 300
    iterations): each append first brings a lagging head up, so it is never two behind."""
    from modelreg.fsutil import atomic_write

    head = store.audit.head_path
    writes: list[bytes] = []

    def record(path: Path, data: bytes, mode: int = 0o644) -> None:
        writes.append(data)
        atomic_write(path, data, mode)

    monkeypatch.setattr("modelreg.audit.atomic_write", record)
    for i in range(4):
        before = head.read_bytes() if head.exists() else None
        writes.clear()
        store.record("Test", "tag", "m", n=i)
        # the kill: the append's last write (the new head) never happened
        kept = writes[-2] if len(writes) > 1 else before
        if kept is None:
            head.unlink()
        else:
            head.write_bytes(kept)
        assert_clean(store.root)
        assert json.loads(head.read_bytes())["seq"] == len(store.log()) - 1 if i else True
    assert len(writes) == 2  # the catch-up, then the new head


def test_a_pull_killed_while_rewriting_the_audit_log_stays_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.fsutil import atomic_write

    origin, mirror = Store.init(tmp_path / "origin"), Store.init(tmp_path / "mirror")
    for s in (origin, mirror):
        s.remotes.add("origin", str(tmp_path / "remote"))
    origin.record("Test", "note", None, n=0)
    origin.push()
    assert mirror.pull().ok
    for n in range(1, 4):  # the remote moves on by 3 entries; the mirror by 2 of its own
        origin.record("Test", "note", None, n=n)
    origin.push()
    mirror.record("Test", "local", None, n=1)
    mirror.record("Test", "local", None, n=2)
    # run the pull's audit rewrite, stopping ("killing") it after each of its writes
    writes: list[tuple[Path, bytes]] = []
    real = atomic_write

    def record(path: Path, data: bytes, mode: int = 0o644) -> None:
        writes.append((path, data))
        real(path, data, mode)

    saved = {p: p.read_bytes() for p in (mirror.audit.path, mirror.audit.head_path)}
    monkeypatch.setattr("modelreg.remote.pull.atomic_write", record)
    assert mirror.pull().ok
    monkeypatch.undo()
    audit_writes = [(p, d) for p, d in writes if p.parent == mirror.audit.path.parent]
    assert [p.name for p, _ in audit_writes] == ["head.json", "log.jsonl", "head.json"]
    final = {p: p.read_bytes() for p in saved}
    for k in range(len(audit_writes) + 1):  # the state after the first k writes
        state = dict(saved)
        for p, d in audit_writes[:k]:
            state[p] = d
        for p, d in state.items():
            p.write_bytes(d)
        assert_clean(mirror.root)
    for p, d in final.items():
        p.write_bytes(d)
    assert len(mirror.log()) == 6 and mirror.verify().ok
