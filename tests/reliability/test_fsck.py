"""`mreg fsck`: every kind of damage is found and named; `--repair` fixes only what is safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from modelreg import Store
from modelreg.fsck import fsck
from modelreg.release import ops
from tests.cli.helpers import make_writable, ok

SIZE = 300_000


def _blob(seed: int, n: int = SIZE) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def _populate(store: Store, tmp_path) -> None:
    """Two versions, an alias, a deprecation, and a live release."""
    for i, v in enumerate(("1.0.0", "1.1.0")):
        src = tmp_path / f"src-{v}"
        src.mkdir()
        (src / "model.bin").write_bytes(_blob(i))
        (src / "config.json").write_bytes(b'{"v": "%s"}' % v.encode())
        store.register("fraud", [src], version=v, detect_code=False)
    store.promote("fraud@1.0.0", "production")
    store.tag("fraud@1.0.0", ["stable"])
    ops.start(store, "fraud", "1.1.0", weight=10)


@pytest.fixture
def full(store, tmp_path) -> Store:
    _populate(store, tmp_path)
    return store


def _kinds(report) -> list[str]:
    return sorted(f.kind for f in report.findings)


def _object_of(store: Store, version: str, path: str = "model.bin") -> str:
    mv = store.resolve(f"fraud@{version}")
    return next(f.sha256 for f in mv.files if f.path == path)


def _damage(path, data: bytes) -> None:
    make_writable(path)
    path.write_bytes(data)


def test_a_healthy_store_is_clean_and_fsck_changes_nothing(full, run_mreg):
    from tests.conftest import snapshot

    before = snapshot(full.root)
    res = ok(run_mreg("fsck", "--json"))
    doc = res.json()
    assert doc["ok"] is True and doc["errors"] == 0 and doc["warnings"] == 0
    assert doc["findings"] == [] and doc["repairs"] == [] and doc["repaired"] is False
    assert doc["versions"] == 2
    assert doc["objects"] == doc["hashed"] == 4  # 2 model files + 2 configs
    assert doc["bytes_hashed"] == 2 * SIZE + len(b'{"v": "1.0.0"}') * 2
    assert doc["audit_entries"] == len(full.log())
    human = ok(run_mreg("fsck"))
    assert human.stdout.startswith("ok: 2 version(s), 4 object(s)")
    assert snapshot(full.root) == before


def test_missing_and_corrupt_objects_are_errors(full, run_mreg):
    gone = full.objects.path(_object_of(full, "1.0.0"))
    make_writable(gone)
    gone.unlink()
    bad = full.objects.path(_object_of(full, "1.1.0"))
    _damage(bad, _blob(99))  # same size, other bytes: only a re-hash sees it
    res = run_mreg("fsck", "--json")
    assert res.returncode == 1, res
    doc = res.json()
    assert doc["ok"] is False
    kinds = {f["kind"]: f for f in doc["findings"]}
    assert set(kinds) == {"missing-object", "corrupt-object"}
    assert kinds["missing-object"]["path"] == gone.relative_to(full.root).as_posix()
    assert "fraud@1.0.0:model.bin" in kinds["missing-object"]["message"]
    assert kinds["corrupt-object"]["digest"] == bad.name
    assert all(f["severity"] == "error" for f in doc["findings"])
    err = json.loads(res.stderr)["error"]  # --json: the error is one JSON object on stderr
    assert err["message"] == "2 error(s) in the store: corrupt-object, missing-object"
    assert err["exit_code"] == 1
    plain = run_mreg("fsck")
    assert plain.stderr.strip() == (
        "mreg: error: 2 error(s) in the store: corrupt-object, missing-object"
    )
    # --quick does not re-hash: the same-size corruption is not seen, a wrong size is
    quick = run_mreg("fsck", "--quick", "--json").json()
    assert [f["kind"] for f in quick["findings"]] == ["missing-object"]
    assert quick["hashed"] == 0
    _damage(bad, b"short")
    quick = run_mreg("fsck", "--quick", "--json").json()
    assert sorted(f["kind"] for f in quick["findings"]) == ["corrupt-object", "missing-object"]


def test_damaged_manifests_refs_rollouts_and_audit_are_named(full):
    manifest = full.manifest_path("fraud", "1.1.0")
    _damage(manifest, manifest.read_bytes().replace(b"version: 1.1.0", b"version: 1.1.1"))
    alias = full.alias_path("fraud", "staging")
    alias.write_bytes(full.alias_path("fraud", "production").read_bytes().replace(
        b"alias: production", b"alias: staging").replace(b"version: 1.0.0", b"version: 9.9.9"))  # fmt: skip
    full.state_path("fraud", "7.0.0").write_bytes(b"kind: VersionState\nschema: mreg/v1\n")
    (full.model_dir("fraud") / "aliases" / "qa.yaml").write_bytes(b"{not: [valid")
    log = full.audit.path
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"Test Author", b"Mallory")
    log.write_bytes(b"".join(lines))
    report = fsck(full)
    assert not report.ok
    by_kind = {}
    for f in report.findings:
        by_kind.setdefault(f.kind, []).append(f)
    assert set(by_kind) == {
        "bad-manifest",
        "dangling-alias",
        "dangling-state",
        "bad-ref",
        "dangling-rollout-ref",
        "audit-chain-broken",
        "orphan-object",  # 1.1.0 is unreadable, so its objects look unreferenced
    }
    assert by_kind["bad-manifest"][0].path == "models/fraud/versions/1.1.0.yaml"
    assert "9.9.9" in by_kind["dangling-alias"][0].message
    assert by_kind["dangling-state"][0].path == "models/fraud/state/7.0.0.yaml"
    assert by_kind["bad-ref"][0].path == "models/fraud/aliases/qa.yaml"
    assert "canary 1.1.0" in by_kind["dangling-rollout-ref"][0].message
    assert "edited" in by_kind["audit-chain-broken"][0].message
    assert all(f.severity == "warning" for f in by_kind["orphan-object"])


def test_an_alias_whose_manifest_changed_is_dangling(full):
    manifest = full.manifest_path("fraud", "1.0.0")
    _damage(manifest, manifest.read_bytes() + b"# appended\n")
    report = fsck(full)
    assert "dangling-alias" in _kinds(report)
    assert "was changed" in next(f.message for f in report.findings if f.kind == "dangling-alias")
    assert "dangling-rollout-ref" in _kinds(report)  # the release's baseline is 1.0.0 too


def test_orphans_temps_and_a_torn_audit_line_are_warnings_only(full, run_mreg):
    orphan = full.objects.put_bytes(b"written by a register that never finished")
    (full.root / "tmp" / ".tmp-999999-abcdef-").write_bytes(b"partial object")
    alias_tmp = full.model_dir("fraud") / "aliases" / ".tmp-999999-abcdef-production.yaml"
    alias_tmp.write_bytes(b"half an alias")
    with open(full.audit.path, "ab") as fh:
        fh.write(b'{"seq": 99, "torn')
    res = ok(run_mreg("fsck", "--json"))  # warnings: exit 0
    doc = res.json()
    assert doc["ok"] is True and doc["errors"] == 0 and doc["warnings"] == 4
    kinds = sorted(f["kind"] for f in doc["findings"])
    assert kinds == ["audit-torn-line", "leftover-temp", "leftover-temp", "orphan-object"]
    assert next(f for f in doc["findings"] if f["kind"] == "orphan-object")["digest"] == orphan
    # readers are not disturbed by any of it (a temp alias file is not an alias)
    assert ok(run_mreg("show", "fraud@production", "--json")).json()["version"] == "1.0.0"


def test_repair_sweeps_old_dead_temps_and_the_torn_line_but_keeps_live_ones(full, run_mreg):
    dead = full.root / "tmp" / ".tmp-999999-abcdef-"
    dead.write_bytes(b"x" * 100)
    staged = full.root / "tmp" / ".tmp-999998-abcdef-restore"
    staged.mkdir()
    (staged / "part").write_bytes(b"y" * 10)
    mine = full.model_dir("fraud") / "state" / f".tmp-{os.getpid()}-abcdef-1.0.0.yaml"
    mine.write_bytes(b"a live writer's temp file")
    young = full.root / "audit" / ".tmp-999997-abcdef-head.json"
    young.write_bytes(b"{}")
    old = time.time() - 7200
    for p in (dead, staged, mine):
        os.utime(p, (old, old))
    with open(full.audit.path, "ab") as fh:
        fh.write(b'{"torn')
    entries = len(full.log())
    doc = ok(run_mreg("fsck", "--repair", "--json")).json()  # default --temp-age 1h
    done = {(r["action"], r["path"]) for r in doc["repairs"]}
    assert done == {
        ("removed-temp", "tmp/.tmp-999999-abcdef-"),
        ("removed-temp", "tmp/.tmp-999998-abcdef-restore"),
        ("cut-torn-audit-line", "audit/log.jsonl"),
    }
    assert not dead.exists() and not staged.exists()
    assert mine.exists()  # its pid is alive (this test process): a writer at work
    assert young.exists()  # younger than --temp-age
    assert sorted(f["kind"] for f in doc["findings"]) == ["leftover-temp", "leftover-temp"]
    assert full.audit.path.read_bytes().endswith(b"\n") and len(full.log()) == entries + 1
    entry = full.log()[-1]  # the repair, in the audit trail (#13)
    assert entry.action == "fsck-repair" and entry.model is None
    assert entry.details == {
        "temps": 2, "temp_bytes": 110, "torn_audit_bytes": len(b'{"torn'), "restored": [],
        "quarantined": [],
    }  # fmt: skip
    assert full.verify().ok
    doc = ok(run_mreg("fsck", "--repair", "--temp-age", "0", "--json")).json()
    assert [r["path"] for r in doc["repairs"]] == [young.relative_to(full.root).as_posix()]


def test_repair_without_a_remote_never_deletes_a_referenced_object(full, run_mreg):
    digest = _object_of(full, "1.0.0")
    path = full.objects.path(digest)
    _damage(path, _blob(5))
    res = run_mreg("fsck", "--repair", "--temp-age", "0", "--json")
    assert res.returncode == 1, res
    doc = res.json()
    assert [r["action"] for r in doc["repairs"]] == ["restore-skipped"]
    assert "no remote" in doc["repairs"][0]["detail"]
    assert [f["kind"] for f in doc["findings"]] == ["corrupt-object"]
    assert path.read_bytes() == _blob(5)  # left where it was, for the operator


def test_repair_quarantines_a_corrupt_orphan(full):
    orphan = full.objects.put_bytes(b"garbage that rotted")
    path = full.objects.path(orphan)
    _damage(path, b"rotted garbage")
    report = fsck(full, repair=True)
    assert report.ok and not report.findings
    assert [r.action for r in report.repairs] == ["quarantined"]
    assert not path.exists()
    kept = list((full.root / "lost+found").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == b"rotted garbage"


def _remote(kind: str, tmp_path, request) -> tuple[str, dict]:
    if kind == "file":
        return str(tmp_path / "remote"), {}
    endpoint = request.getfixturevalue("s3_endpoint")
    from modelreg.remote.backend import Backend
    from modelreg.remote.config import RemoteSpec

    bucket = f"fsck-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/reg"
    Backend(RemoteSpec("t", url, {"endpoint_url": endpoint})).fs.mkdir(bucket)
    return url, {"endpoint_url": endpoint}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_repair_restores_missing_and_corrupt_objects_from_a_remote(
    kind, full, tmp_path, request, run_mreg
):
    url, options = _remote(kind, tmp_path, request)
    full.remotes.add("origin", url, options)
    full.push()
    missing = full.objects.path(_object_of(full, "1.0.0"))
    make_writable(missing)
    missing.unlink()
    corrupt = full.objects.path(_object_of(full, "1.1.0"))
    _damage(corrupt, _blob(7))
    from tests.remote.conftest import AWS_ENV

    res = ok(run_mreg("fsck", "--repair", "--remote", "origin", "--json", env=AWS_ENV))
    doc = res.json()
    assert doc["ok"] is True and doc["findings"] == []
    actions = {r["path"]: r for r in doc["repairs"]}
    assert actions[missing.relative_to(full.root).as_posix()]["action"] == "restored"
    assert "lost+found/" in actions[corrupt.relative_to(full.root).as_posix()]["detail"]
    assert full.objects.verify(missing.name) and full.objects.verify(corrupt.name)
    assert oct(corrupt.stat().st_mode & 0o777) == "0o444"
    assert [p.read_bytes() for p in (full.root / "lost+found").iterdir()] == [_blob(7)]
    assert list((full.root / "tmp").iterdir()) == []  # the staging directory is gone
    ok(run_mreg("get", "fraud@1.1.0", "-o", str(tmp_path / "out")))
    assert (tmp_path / "out" / "model.bin").read_bytes() == _blob(1)
    assert ok(run_mreg("fsck", "--json")).json()["findings"] == []
    entry = full.log()[-1]  # what was restored, and from where (#13)
    assert entry.action == "fsck-repair"
    assert sorted(entry.details["restored"]) == sorted([missing.name, corrupt.name])
    assert entry.details["remote"] == "origin"
    assert entry.details["url"] == full.remotes.get("origin").url  # no credentials in either
    n = len(full.log())
    ok(run_mreg("fsck", "--repair", "--remote", "origin", env=AWS_ENV))  # nothing left to do
    assert len(full.log()) == n


def test_repair_keeps_the_local_copy_when_the_remote_one_is_bad_too(full, tmp_path, run_mreg):
    full.remotes.add("origin", str(tmp_path / "remote"))
    full.push()
    digest = _object_of(full, "1.0.0")
    remote_copy = tmp_path / "remote" / "objects" / digest[:2] / digest
    _damage(remote_copy, _blob(8))
    local = full.objects.path(digest)
    _damage(local, _blob(9))
    res = run_mreg("fsck", "--repair", "--json")  # the default remote
    assert res.returncode == 1, res
    doc = res.json()
    assert [r["action"] for r in doc["repairs"]] == ["restore-failed"]
    assert "corrupt" in doc["repairs"][0]["detail"]
    assert local.read_bytes() == _blob(9)  # nothing moved: no good copy arrived
    assert not (full.root / "lost+found").exists()
    assert list((full.root / "tmp").iterdir()) == []


def test_fsck_of_a_big_store_is_streaming_and_parallel(store, tmp_path):
    """Hashing is bounded in memory: a 64 MiB object does not grow the process by 64 MiB."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for i in range(64):
            fh.write(_blob(i, 1 << 20))
    store.register("big", [big], version="1.0.0", detect_code=False)
    code = (
        "import resource, sys\n"
        "from modelreg import Store\n"
        "from modelreg.fsck import fsck\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = fsck(Store.open(sys.argv[1]))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(r.ok, r.bytes_hashed, (after - before) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "True" and int(out[1]) == 64 << 20
    assert int(out[2]) < 32, f"fsck grew by {out[2]} MiB while hashing 64 MiB"


def test_verify_is_unchanged_and_agrees_with_fsck(full):
    assert full.verify().ok and fsck(full).ok
    path = full.objects.path(_object_of(full, "1.0.0"))
    _damage(path, _blob(3))
    assert not full.verify().ok and not fsck(full).ok
    assert json.dumps(fsck(full).to_dict())  # plain data


# -- the audit trail (#13) -------------------------------------------------------------------


def test_a_repair_with_nothing_to_do_changes_nothing(full, run_mreg):
    from tests.conftest import snapshot

    before = snapshot(full.root)
    doc = ok(run_mreg("fsck", "--repair", "--temp-age", "0", "--json")).json()
    assert doc["repairs"] == []
    assert snapshot(full.root) == before  # no audit entry either


def test_a_quarantine_is_recorded(full):
    orphan = full.objects.put_bytes(b"garbage that rotted")
    _damage(full.objects.path(orphan), b"rotted garbage")
    fsck(full, repair=True)
    entry = full.log()[-1]
    assert entry.action == "fsck-repair" and entry.details["quarantined"] == [orphan]


def test_a_repair_that_cannot_be_audited_says_so(full, run_mreg):
    dead = full.root / "tmp" / ".tmp-999999-abcdef-"
    dead.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(dead, (old, old))
    with open(full.audit.path, "ab") as fh:
        fh.write(b"not json\n")  # a damaged last entry: nothing can be chained after it
    res = run_mreg("fsck", "--repair", "--json")
    assert res.returncode == 1, res  # the damaged trail is an error
    doc = res.json()
    assert [r["action"] for r in doc["repairs"]] == ["removed-temp", "not-recorded"]
    assert "unreadable" in doc["repairs"][1]["detail"] and not dead.exists()


def test_repair_from_a_missing_bucket_or_an_unknown_remote(full, tmp_path, run_mreg, request):
    from tests.conftest import snapshot
    from tests.remote.conftest import AWS_ENV

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"nosuch-{uuid.uuid4().hex[:12]}"
    full.remotes.add("origin", f"s3://{bucket}/reg", {"endpoint_url": endpoint})
    dead = full.root / "tmp" / ".tmp-999999-abcdef-"
    dead.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(dead, (old, old))
    before = snapshot(full.root)
    res = run_mreg("fsck", "--repair", "--remote", "nosuch")
    assert res.returncode == 2 and "no remote named 'nosuch'" in res.stderr, res
    assert snapshot(full.root) == before  # refused before anything changed
    gone = full.objects.path(_object_of(full, "1.0.0"))
    make_writable(gone)
    gone.unlink()
    res = run_mreg("fsck", "--repair", "--json", env=AWS_ENV)
    assert res.returncode == 1, res
    doc = res.json()
    assert [r["action"] for r in doc["repairs"]] == ["removed-temp", "restore-failed"]
    assert f"bucket '{bucket}' does not exist" in doc["repairs"][1]["detail"]
    assert full.log()[-1].action == "fsck-repair" and "remote" not in full.log()[-1].details
