"""`mreg pack` / `mreg unpack`: one portable tar per version, verified, idempotent, escape-proof."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from modelreg import Conflict, IntegrityError, InvalidInput, Store
from modelreg.bundle import HEADER, MANIFEST

from .conftest import snapshot

WEIGHTS = bytes(range(256)) * 4000
REQS = b"numpy==2.1.0\nscikit-learn==1.5.2\n"


@pytest.fixture
def packed(store: Store, tmp_path: Path) -> tuple[Store, Path]:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.onnx").write_bytes(WEIGHTS)
    (src / "sub" / "vocab.txt").write_bytes(b"a b c\n")
    req = tmp_path / "requirements.txt"
    req.write_bytes(REQS)
    store.register("fraud", [src], version="1.0.0", requirements=req, detect_code=False)
    store.promote("fraud@1.0.0", "production")
    out = tmp_path / "fraud.tar"
    store.pack("fraud@production", out)
    return store, out


def _docs(bundle: Path) -> tuple[bytes, bytes]:
    with tarfile.open(bundle) as tar:
        return tuple(tar.extractfile(n).read() for n in (HEADER, MANIFEST))  # type: ignore[union-attr,return-value]


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data) if info.size == 0 else info.size
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _reg(name: str, data: bytes, size: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    return info, data


def test_round_trip_is_verified_and_idempotent(packed, tmp_path):
    store, bundle = packed
    other = Store.init(tmp_path / "other")
    result = other.unpack(bundle)
    assert result.created and result.objects_added == 3
    mv = other.resolve("fraud@1.0.0")
    assert mv.id == store.resolve("fraud@1.0.0").id
    assert mv.dependencies and mv.dependencies.packages == ("numpy==2.1.0", "scikit-learn==1.5.2")
    other.get("fraud@1.0.0", tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "vocab.txt").read_bytes() == b"a b c\n"
    assert other.verify().ok
    assert [e.action for e in other.audit.entries()] == ["unpack"]
    before = snapshot(other.root)
    again = other.unpack(bundle)
    assert not again.created and again.objects_added == 0
    assert snapshot(other.root) == before
    assert not store.unpack(bundle).created  # the packing store already has it


def test_pack_is_reproducible_and_gzip_works(packed, tmp_path):
    store, bundle = packed
    again = store.pack("fraud@1.0.0", tmp_path / "again.tar")
    assert again.digest == hashlib.sha256(bundle.read_bytes()).hexdigest()
    with pytest.raises(InvalidInput, match="exists"):
        store.pack("fraud@1.0.0", bundle)
    gz = store.pack("fraud@1.0.0", tmp_path / "fraud.tar.gz").out
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    other = Store.init(tmp_path / "other")
    assert other.unpack(gz).created


def test_same_version_other_content_is_a_conflict(packed, tmp_path):
    _, bundle = packed
    other = Store.init(tmp_path / "other")
    (tmp_path / "m.onnx").write_bytes(b"other weights")
    other.register("fraud", [tmp_path / "m.onnx"], version="1.0.0", detect_code=False)
    before = snapshot(other.root / "models")
    with pytest.raises(Conflict, match="immutable"):
        other.unpack(bundle)
    assert snapshot(other.root / "models") == before


@pytest.mark.parametrize(
    "name",
    ["../escape.bin", "/etc/passwd", "files/../../x", "files/model.onnx/../../../y", "files/\x01"],
)
def test_entries_that_would_escape_are_refused(packed, tmp_path, name):
    _, bundle = packed
    header, manifest = _docs(bundle)
    evil = _tar(
        tmp_path / "evil.tar",
        [_reg(HEADER, header), _reg(MANIFEST, manifest), _reg(name, b"pwned")],
    )
    other = Store.init(tmp_path / "other")
    before = snapshot(other.root)
    with pytest.raises(InvalidInput):
        other.unpack(evil)
    assert snapshot(other.root) == before
    assert not (tmp_path / "escape.bin").exists()


def _special(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo("files/model.onnx")
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "manifest.yaml"
    elif kind == "device":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    else:
        info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo"])
def test_links_and_devices_are_refused(packed, tmp_path, kind):
    _, bundle = packed
    header, manifest = _docs(bundle)
    evil = _tar(
        tmp_path / "evil.tar",
        [_reg(HEADER, header), _reg(MANIFEST, manifest), (_special(kind), None)],
    )
    other = Store.init(tmp_path / "other")
    with pytest.raises(InvalidInput, match="only regular files"):
        other.unpack(evil)
    assert other.models() == []


def test_unknown_duplicate_missing_and_missized_entries(packed, tmp_path):
    _, bundle = packed
    header, manifest = _docs(bundle)
    other = Store.init(tmp_path / "other")
    base = [_reg(HEADER, header), _reg(MANIFEST, manifest)]
    cases = {
        "unknown": ([_reg("files/extra.bin", b"x")], InvalidInput, "not named by the manifest"),
        "duplicate": (
            [_reg("files/sub/vocab.txt", b"a b c\n"), _reg("files/sub/vocab.txt", b"a b c\n")],
            InvalidInput,
            "twice",
        ),
        "size": (
            [_reg("files/sub/vocab.txt", b"a b c d e f\n")],
            IntegrityError,
            "manifest says 6",
        ),
        "missing": ([_reg("files/sub/vocab.txt", b"a b c\n")], IntegrityError, "incomplete"),
    }
    for case, (members, error, message) in cases.items():
        path = _tar(tmp_path / f"{case}.tar", base + members)
        with pytest.raises(error, match=message):
            other.unpack(path)
    assert other.models() == []


def test_tampered_file_is_rejected(packed, tmp_path):
    store, bundle = packed
    header, manifest = _docs(bundle)
    members = [_reg(HEADER, header), _reg(MANIFEST, manifest)]
    with tarfile.open(bundle) as tar:
        for m in tar.getmembers()[2:]:
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "files/model.onnx":
                data = b"\xff" + data[1:]  # one byte changed, same size
            members.append(_reg(m.name, data))
    evil = _tar(tmp_path / "tampered.tar", members)
    other = Store.init(tmp_path / "other")
    with pytest.raises(IntegrityError, match="corrupt"):
        other.unpack(evil)
    weights = next(f for f in store.resolve("fraud@1.0.0").files if f.path == "model.onnx")
    assert not other.objects.has(weights.sha256)
    assert other.models() == [] and list((other.root / "tmp").iterdir()) == []


def test_a_manifest_that_is_not_the_header_id_is_refused(packed, tmp_path):
    _, bundle = packed
    header, manifest = _docs(bundle)
    evil = _tar(tmp_path / "swap.tar", [_reg(HEADER, header), _reg(MANIFEST, manifest + b"\n")])
    with pytest.raises(IntegrityError, match="is not the manifest"):
        Store.init(tmp_path / "other").unpack(evil)


def test_cli_pack_unpack(packed, run_mreg, tmp_path):
    out = run_mreg("pack", "fraud@1.0.0", "-o", str(tmp_path / "cli.tar"), "--json")
    assert out.returncode == 0, out
    assert out.json()["format"] == "tar" and out.json()["files"] == 2
    other = tmp_path / "other"
    run_mreg("init", cwd=other)
    first = run_mreg("unpack", str(tmp_path / "cli.tar"), cwd=other)
    assert first.returncode == 0 and "Registered fraud@1.0.0" in first.stdout
    again = run_mreg("unpack", str(tmp_path / "cli.tar"), "--json", cwd=other)
    assert again.returncode == 0 and again.json()["created"] is False
    bad = run_mreg("unpack", str(tmp_path / "nope.tar"), cwd=other)
    assert bad.returncode == 2
