"""An interrupted push or pull (kill -9 of a real `mreg` subprocess) resumes without re-sending."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from modelreg import Store

from .conftest import Target, blob, subprocess_env

N_FILES = 300
SIZE = 32 * 1024


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    if kind == "file":
        return Target("file", str(tmp_path / "remote"))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"kill-{uuid.uuid4().hex[:12]}"
    t = Target("s3", f"s3://{bucket}/reg", {"endpoint_url": endpoint})
    t.backend().fs.mkdir(bucket)
    return t


def _store_with_many_files(tmp_path: Path, where: str) -> Store:
    src = tmp_path / f"{where}-src"
    src.mkdir()
    for i in range(N_FILES):
        (src / f"shard-{i:03d}.bin").write_bytes(blob(SIZE, i))
    store = Store.init(tmp_path / where)
    store.register("big", [src], version="1.0.0", detect_code=False)
    return store


def _objects(entries: dict) -> dict:
    return {rel: e for rel, e in entries.items() if rel.startswith("objects/")}


def _kill_when(proc: subprocess.Popen, count, at_least: int = 20) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        n = count()
        if n >= at_least:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return n
        if proc.poll() is not None:
            pytest.fail(f"mreg finished (exit {proc.returncode}) before it could be killed")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("mreg made no progress")


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_killed_push_resumes_without_resending(kind, tmp_path, request):
    target = _target(kind, tmp_path, request)
    store = _store_with_many_files(tmp_path, "work")
    target.add(store)
    backend = target.backend()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "push", "--jobs", "1"],
        cwd=store.root.parent,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_when(proc, lambda: len(_objects(backend.list())))
    before = backend.list()
    arrived = _objects(before)
    assert 0 < len(arrived) < N_FILES
    assert not any(rel.startswith("models/") for rel in before)  # objects are written first

    result = store.push()
    # (a PUT in flight when the process died may still land: it counts as present too)
    assert result.objects_present >= len(arrived)
    assert result.objects_sent + result.objects_present == N_FILES
    assert result.bytes_sent == result.objects_sent * SIZE
    after = backend.list()
    assert all(after[rel] == entry for rel, entry in arrived.items())  # not rewritten

    fresh = Store.init(tmp_path / "fresh")
    target.add(fresh)
    assert fresh.pull().ok
    assert fresh.verify().ok


def test_killed_pull_resumes_without_refetching(tmp_path):
    target = Target("file", str(tmp_path / "remote"))
    origin = _store_with_many_files(tmp_path, "origin")
    target.add(origin)
    origin.push()
    store = Store.init(tmp_path / "work")
    target.add(store)
    objects = store.root / "objects"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "pull", "--jobs", "1"],
        cwd=store.root.parent,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_when(proc, lambda: sum(1 for p in objects.rglob("*") if p.is_file()))
    have = {p.name for p in objects.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")}
    assert 0 < len(have) < N_FILES
    assert store.models() == []  # the manifest comes after every object it needs

    result = store.pull()
    assert result.ok
    assert result.objects_received == N_FILES - len(have)
    assert result.bytes_received == (N_FILES - len(have)) * SIZE
    assert store.resolve("big@1.0.0").id == origin.resolve("big@1.0.0").id
    assert store.verify().ok


def test_killed_multipart_upload_resumes_its_parts(tmp_path, request):
    target = _target("s3", tmp_path, request)
    size = 96 << 20  # 12 parts of 8 MiB
    (tmp_path / "model.bin").write_bytes(blob(size, 7))
    store = Store.init(tmp_path / "work")
    store.register("llm", [tmp_path / "model.bin"], version="1.0.0", detect_code=False)
    target.add(store)
    backend = target.backend()
    fs = backend.fs
    bucket = backend.root.split("/")[0]

    def parts_sent() -> int:
        uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        if not uploads:
            return 0
        u = uploads[0]
        return len(
            fs.call_s3("list_parts", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get(
                "Parts", []
            )
        )

    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "push", "--jobs", "1"],
        cwd=store.root.parent,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    arrived = _kill_when(proc, parts_sent, at_least=3)
    assert not _objects(backend.list())  # nothing visible: the object is not complete

    result = store.push()
    assert result.objects_sent == 1
    assert result.bytes_sent <= size - arrived * (8 << 20)  # the parts that arrived stay
    fresh = Store.init(tmp_path / "fresh")
    target.add(fresh)
    assert fresh.pull().ok and fresh.verify().ok
    assert fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []
