import hashlib
import os
import stat
import subprocess

import pytest

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.hashing import CHUNK_SIZE, copy_and_hash, hash_file
from modelreg.objects import ObjectStore


@pytest.fixture
def objects(tmp_path):
    return ObjectStore(tmp_path / "objects", tmp_path / "tmp")


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_put_file_names_object_by_sha256(objects, tmp_path, size):
    src = tmp_path / "src.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    digest, got_size = objects.put_file(src)
    assert digest == hashlib.sha256(data).hexdigest() and got_size == size
    path = objects.path(digest)
    assert path.parent.name == digest[:2] and path.name == digest
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list(objects.iter_digests()) == [digest]
    assert not list((tmp_path / "tmp").iterdir())  # no temp left behind


def test_sha256sum_agrees(objects, tmp_path):
    src = tmp_path / "a"
    src.write_bytes(os.urandom(100_000))
    digest, _ = objects.put_file(src)
    out = subprocess.run(["sha256sum", str(objects.path(digest))], capture_output=True, text=True)
    assert out.stdout.split()[0] == digest


def test_put_twice_stores_once_and_refreshes_mtime(objects, tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"same")
    d1, _ = objects.put_file(src)
    os.utime(objects.path(d1), (1, 1))
    d2 = objects.put_bytes(b"same")
    assert d1 == d2
    assert objects.path(d1).stat().st_mtime > 1
    assert len(list(objects.iter_digests())) == 1


def test_copy_out_verifies(objects, tmp_path):
    digest = objects.put_bytes(b"hello model")
    out = tmp_path / "out" / "m.bin"
    objects.copy_out(digest, out)
    assert out.read_bytes() == b"hello model"
    p = objects.path(digest)
    p.chmod(0o644)
    p.write_bytes(b"tampered!!!")
    dst = tmp_path / "out" / "again.bin"
    with pytest.raises(IntegrityError, match="corrupt"):
        objects.copy_out(digest, dst)
    assert not dst.exists()
    assert not [x for x in dst.parent.iterdir() if x.name.startswith(".tmp-")]
    assert not objects.verify(digest)


def test_digest_validated_before_path(objects):
    for bad in ["../../etc/passwd", "ab", "A" * 64, "g" * 64]:
        with pytest.raises(InvalidInput):
            objects.path(bad)


def test_copy_and_hash_propagates_write_errors(tmp_path):
    src = tmp_path / "s"
    src.write_bytes(os.urandom(3 * CHUNK_SIZE))
    r, w = os.pipe()
    os.close(r)  # writing now fails with EPIPE
    with open(src, "rb", buffering=0) as fh, pytest.raises(OSError):
        copy_and_hash(fh, w)
    os.close(w)


def test_hash_file_matches_hashlib(tmp_path):
    src = tmp_path / "s"
    data = os.urandom(2 * CHUNK_SIZE + 5)
    src.write_bytes(data)
    seen = []
    assert hash_file(src, seen.append) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sum(seen) == len(data)
