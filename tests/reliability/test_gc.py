"""`mreg gc`: unreferenced objects go after the grace period; nothing referenced ever does."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from modelreg import Store
from modelreg.errors import IntegrityError
from modelreg.fsck import fsck
from modelreg.gc import _collect, _resend, gc, parse_duration
from tests.cli.helpers import make_writable, ok
from tests.remote.conftest import AWS_ENV

DAY = 86400


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def _register(store: Store, tmp_path, version: str, data: bytes, name: str = "fraud") -> str:
    src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
    src.mkdir()
    (src / "model.bin").write_bytes(data)
    return store.register(name, [src], version=version, detect_code=False).version.files[0].sha256


@pytest.fixture
def aged(store, tmp_path):
    """A store with 2 versions (one deprecated) and 3 orphans: 2 days, 2 hours and 0 s old."""
    kept = [_register(store, tmp_path, v, v.encode() * 1000) for v in ("1.0.0", "1.1.0")]
    store.deprecate("fraud@1.0.0", reason="superseded")
    for d in kept:
        _age(store.objects.path(d), 30 * DAY)  # referenced objects are kept however old
    old = store.objects.put_bytes(b"o" * 5000)
    _age(store.objects.path(old), 2 * DAY)
    hours = store.objects.put_bytes(b"h" * 300)
    _age(store.objects.path(hours), 2 * 3600)
    new = store.objects.put_bytes(b"n" * 70)
    return store, kept, old, hours, new


def test_parse_duration():
    assert parse_duration("0") == 0
    assert parse_duration("90") == parse_duration("90s") == 90
    assert parse_duration("30m") == 1800 and parse_duration("24h") == DAY
    assert parse_duration("1.5d") == 1.5 * DAY and parse_duration("2w") == 14 * DAY
    from modelreg.errors import InvalidInput

    for bad in ("", "-1", "1y", "h", "1 day"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


def test_dry_run_lists_and_removes_nothing(aged, run_mreg):
    from tests.conftest import snapshot

    store, _kept, old, hours, _new = aged
    before = snapshot(store.root)
    doc = ok(run_mreg("gc", "--dry-run", "--json")).json()
    assert doc["dry_run"] is True and doc["where"] == "local"
    assert doc["removed"] == [{"digest": old, "size": 5000}]
    assert doc["bytes_freed"] == 5000
    assert doc["objects"] == 5 and doc["referenced"] == 2 and doc["kept_recent"] == 2
    assert doc["grace_seconds"] == DAY
    assert snapshot(store.root) == before
    human = ok(run_mreg("gc", "-n", "--grace", "1h"))
    assert (
        f"would remove {old[:12]}" in human.stdout and f"would remove {hours[:12]}" in human.stdout
    )
    assert "would remove 2 of 5 object(s)" in human.stdout
    assert snapshot(store.root) == before


def test_gc_removes_only_unreferenced_objects_past_the_grace(aged, run_mreg, tmp_path):
    store, kept, old, hours, new = aged
    doc = ok(run_mreg("gc", "--json")).json()
    assert [r["digest"] for r in doc["removed"]] == [old]
    assert not store.objects.has(old)
    assert all(store.objects.has(d) for d in (*kept, hours, new))
    doc = ok(run_mreg("gc", "--grace", "0", "--json")).json()
    assert sorted(r["digest"] for r in doc["removed"]) == sorted([hours, new])
    assert sorted(store.objects.iter_digests()) == sorted(kept)  # deprecated 1.0.0 kept too
    assert ok(run_mreg("fsck", "--json")).json()["findings"] == []
    ok(run_mreg("get", "fraud@1.0.0", "-o", str(tmp_path / "out")))
    assert ok(run_mreg("gc", "--grace", "0", "--json")).json()["removed"] == []


def test_gc_keeps_objects_of_a_register_in_progress(store, tmp_path):
    """A re-put of an old object refreshes its mtime, so gc keeps it for the grace period."""
    digest = store.objects.put_bytes(b"weights" * 100)
    _age(store.objects.path(digest), 3 * DAY)
    assert store.objects.put_bytes(b"weights" * 100) == digest  # the register's copy step
    assert gc(store).removed == ()
    assert store.objects.has(digest)


def test_an_object_freshened_just_before_removal_goes_back(store):
    digest = store.objects.put_bytes(b"about to be named")
    path = store.objects.path(digest)
    _age(path, 3 * DAY)
    cutoff = time.time() - DAY
    # gc's first look saw it old; a writer freshens it before gc moves it aside:
    assert store.objects.freshen(digest)
    trash = store.root / "tmp" / "gc-trash"
    assert _collect(path, trash, cutoff) is False
    assert store.objects.verify(digest)
    assert list(trash.iterdir()) == []
    # once moved aside, a writer finds it absent and writes it again
    _age(path, 3 * DAY)
    assert _collect(path, trash, cutoff) is True
    assert not store.objects.freshen(digest)
    assert store.objects.put_bytes(b"about to be named") == digest and store.objects.verify(digest)


def test_gc_refuses_when_a_manifest_is_unreadable(aged, run_mreg):
    store, kept, old, *_ = aged
    manifest = store.manifest_path("fraud", "1.1.0")
    make_writable(manifest)
    manifest.write_bytes(b"kind: [broken")
    res = run_mreg("gc", "--grace", "0")
    assert res.returncode == 1, res
    assert "manifest unreadable" in res.stderr and "mreg fsck" in res.stderr
    assert store.objects.has(old) and all(store.objects.has(d) for d in kept)


def test_gc_sweeps_old_temp_files(store):
    dead = store.root / "tmp" / ".tmp-999999-abcdef-"
    dead.write_bytes(b"x" * 1234)
    _age(dead, 2 * DAY)
    fresh = store.root / "tmp" / ".tmp-999999-fedcba-"
    fresh.write_bytes(b"y")
    report = gc(store)
    assert (report.temps_removed, report.temp_bytes) == (1, 1234)
    assert not dead.exists() and fresh.exists()


# -- remote ----------------------------------------------------------------------------------


def _target(kind: str, tmp_path, request) -> tuple[str, dict]:
    if kind == "file":
        return str(tmp_path / "remote"), {}
    from modelreg.remote.backend import Backend
    from modelreg.remote.config import RemoteSpec

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"gc-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/reg"
    Backend(RemoteSpec("t", url, {"endpoint_url": endpoint})).fs.mkdir(bucket)
    return url, {"endpoint_url": endpoint}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_remote_gc(kind, store, tmp_path, request, run_mreg, monkeypatch):
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    url, options = _target(kind, tmp_path, request)
    store.remotes.add("origin", url, options)
    kept = _register(store, tmp_path, "1.0.0", b"a" * 4000)
    store.push()
    # another store pushed only the objects of a version (killed before its manifest)
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", url, options)
    orphan = _register(other, tmp_path, "2.0.0", b"b" * 3000)
    from modelreg.remote.backend import Backend
    from modelreg.remote.transfer import Transfer

    backend = Backend(store.remotes.get("origin"))
    with Transfer(backend, other.objects) as t:
        t.upload(orphan, 3000)
    # and one this store names but has not pushed yet: kept, the next push needs no resend
    local_only = _register(store, tmp_path, "1.1.0", b"c" * 2000)
    with Transfer(backend, store.objects) as t:
        t.upload(local_only, 2000)

    def remote_objects() -> set[str]:
        return {r.rsplit("/", 1)[1] for r in backend.list("objects")}

    assert remote_objects() == {kept, orphan, local_only}
    young = ok(run_mreg("gc", "--remote", "origin", "--json")).json()
    assert (
        young["removed"] == []
        and young["kept_recent"] == 1
        and young["url"] == store.remotes.get("origin").url
    )
    time.sleep(1.1)  # S3 times have a resolution of one second
    dry = ok(run_mreg("gc", "--remote", "origin", "--grace", "0", "-n", "--json")).json()
    assert dry["removed"] == [{"digest": orphan, "size": 3000}] and dry["dry_run"] is True
    assert remote_objects() == {kept, orphan, local_only}
    doc = ok(run_mreg("gc", "--remote", "origin", "--grace", "0", "--json")).json()
    assert doc["removed"] == [{"digest": orphan, "size": 3000}] and doc["bytes_freed"] == 3000
    assert doc["referenced"] == 2 and doc["resent"] == []
    assert remote_objects() == {kept, local_only}
    fresh = Store.init(tmp_path / "fresh")
    fresh.remotes.add("origin", url, options)
    assert fresh.pull().ok and fresh.verify().ok


def test_remote_gc_refuses_a_manifest_it_cannot_parse(store, tmp_path, run_mreg):
    remote = tmp_path / "remote"
    store.remotes.add("origin", str(remote))
    _register(store, tmp_path, "1.0.0", b"a" * 100)
    store.push()
    orphan = tmp_path / "remote" / "objects" / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"junk")
    (remote / "models" / "fraud" / "versions" / "9.0.0.yaml").write_bytes(b"{broken")
    res = run_mreg("gc", "--remote", "origin", "--grace", "0")
    assert res.returncode == 1, res
    assert "9.0.0.yaml" in res.stderr
    assert orphan.exists()
    (remote / "models" / "fraud" / "versions" / "9.0.0.yaml").unlink()
    (remote / "models" / "fraud" / "versions" / "not-a-version.yaml").write_bytes(b"x: 1")
    res = run_mreg("gc", "--remote", "origin", "--grace", "0")
    assert res.returncode == 1 and "not a manifest this mreg can read" in res.stderr, res
    assert orphan.exists()


def test_remote_gc_resends_an_object_a_concurrent_push_named(store, tmp_path):
    store.remotes.add("origin", str(tmp_path / "remote"))
    digest = _register(store, tmp_path, "1.0.0", b"z" * 500)
    store.push()
    path = tmp_path / "remote" / "objects" / digest[:2] / digest
    path.unlink()  # what gc removed while the push that names it was still running
    assert _resend(store, "origin", {digest: 500}) == (digest,)
    assert path.read_bytes() == b"z" * 500
    other = Store.init(tmp_path / "elsewhere")
    other.remotes.add("origin", str(tmp_path / "remote"))
    path.unlink()
    with pytest.raises(IntegrityError, match="push it from a store that does"):
        _resend(other, "origin", {digest: 500})


def test_gc_racing_registers_of_old_orphans_never_breaks_them(store, tmp_path):
    """A register whose objects exist as old orphans, with gc running at the same moment."""
    import random
    import subprocess
    import sys

    rng = random.Random(8)
    env = {**os.environ, "MREG_LOCK_TIMEOUT": "30"}
    for i in range(6):
        data = rng.randbytes(200_000)
        src = tmp_path / f"m{i}.bin"
        src.write_bytes(data)
        orphan = store.objects.put_bytes(data)  # left by an earlier, killed register
        _age(store.objects.path(orphan), 3 * DAY)
        cmd = [sys.executable, "-m", "modelreg"]
        reg = subprocess.Popen(
            [*cmd, "register", "m", str(src), "--version", f"1.0.{i}", "--no-code"],
            cwd=store.root.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(rng.uniform(0, 0.4))
        collect = subprocess.run(
            [*cmd, "gc", "--json"], cwd=store.root.parent, env=env, capture_output=True, text=True
        )
        _, err = reg.communicate(timeout=60)
        assert reg.returncode == 0, err
        assert collect.returncode == 0, collect.stderr
        assert store.objects.verify(orphan)
        assert store.resolve(f"m@1.0.{i}").files[0].sha256 == orphan
    assert fsck(store).findings == ()


# -- the audit trail (#13) -------------------------------------------------------------------


def test_gc_is_audited_and_a_no_op_or_dry_run_is_not(aged, run_mreg):
    store = aged[0]
    n = len(store.log())
    ok(run_mreg("gc", "--dry-run", "--grace", "0"))
    ok(run_mreg("gc", "--grace", "30d"))  # nothing that old: nothing removed
    assert len(store.log()) == n
    dead = store.root / "tmp" / ".tmp-999999-abcdef-"
    dead.write_bytes(b"x" * 10)
    _age(dead, 2 * DAY)
    ok(run_mreg("gc"))
    entry = store.log()[-1]
    assert len(store.log()) == n + 1 and entry.action == "gc" and entry.model is None
    assert entry.details == {
        "objects": 1, "bytes": 5000, "temps": 1, "temp_bytes": 10, "grace_seconds": DAY,
    }  # fmt: skip
    ok(run_mreg("gc"))  # again: nothing left to collect, nothing recorded
    assert len(store.log()) == n + 1
    table = ok(run_mreg("log")).stdout
    assert "gc" in table and "objects=1" in table
    assert store.verify().ok


def test_gc_refuses_before_removing_anything_when_it_cannot_be_audited(aged, run_mreg):
    store, _kept, old, *_ = aged
    make_writable(store.audit.path)
    with open(store.audit.path, "ab") as fh:
        fh.write(b"not json\n")  # a damaged last entry: nothing can be chained after it
    res = run_mreg("gc")
    assert res.returncode == 1 and "last entry is unreadable" in res.stderr, res
    assert store.objects.has(old)


def test_remote_gc_is_audited_here(store, tmp_path, run_mreg):
    remote = tmp_path / "remote"
    store.remotes.add("origin", str(remote))
    _register(store, tmp_path, "1.0.0", b"a" * 100)
    store.push()
    orphan = remote / "objects" / "ab" / ("ab" + "1" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"junk")
    _age(orphan, 2 * DAY)
    n = len(store.log())
    ok(run_mreg("gc", "--remote", "origin", "--dry-run"))
    assert len(store.log()) == n
    ok(run_mreg("gc", "--remote", "origin"))
    entry = store.log()[-1]
    assert entry.action == "gc" and entry.details == {
        "remote": "origin", "url": f"file://{remote}", "objects": 1, "bytes": 4, "resent": 0,
        "grace_seconds": DAY,
    }  # fmt: skip
    ok(run_mreg("gc", "--remote", "origin"))
    assert len(store.log()) == n + 1
    assert store.push().audit_entries_sent == 1  # the entry reaches the remote's trail
