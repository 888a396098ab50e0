"""`mreg unpack` of an OCI image layout (`mreg pack --format oci`): a directory or a tar of one.

Issue 13: unpack used to answer "no such bundle file" for the directory pack had just
written. A layout is verified like a bundle: every document's size is bounded before it is
read and every blob is hashed against its descriptor; links, devices, unsafe names, missing
and tampered blobs are refused and leave the store exactly as it was; a second run is a
no-op. When skopeo is installed, what it copies (`oci:`, `oci-archive:`) unpacks too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from modelreg import Conflict, IntegrityError, InvalidInput, NotFound, Store
from modelreg.oci import CONFIG_MEDIA_TYPE, MAX_DOC

from .cli.helpers import assert_one_line_error, ok
from .conftest import snapshot

WEIGHTS = bytes(range(256)) * 400
VOCAB = b'{"a": 1}'
REQS = b"torch==2.5.0\n"


@pytest.fixture
def layout(store: Store, tmp_path: Path) -> tuple[Store, Path]:
    """A version with nested files, an empty file, two files with the same bytes, requirements."""
    src = tmp_path / "model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(WEIGHTS)
    (src / "tokenizer" / "vocab.json").write_bytes(VOCAB)
    (src / "tokenizer" / "copy.json").write_bytes(VOCAB)  # one blob, two layers
    (src / "empty.txt").write_bytes(b"")
    req = tmp_path / "requirements.txt"
    req.write_bytes(REQS)
    store.register("fraud", [src], version="1.2.0", requirements=req, detect_code=False)
    out = tmp_path / "oci"
    store.pack("fraud@1.2.0", out, format="oci")
    return store, out


def _fresh(tmp_path: Path, name: str = "other") -> Store:
    return Store.init(tmp_path / name)


def _image(out: Path) -> tuple[dict, dict]:
    """(the index, the image manifest of its only entry)."""
    index = json.loads((out / "index.json").read_bytes())
    digest = index["manifests"][0]["digest"].split(":")[1]
    return index, json.loads((out / "blobs" / "sha256" / digest).read_bytes())


def _blob(out: Path, desc: dict) -> Path:
    return out / "blobs" / "sha256" / desc["digest"].split(":")[1]


def _layer(out: Path, title: str) -> Path:
    _, image = _image(out)
    (desc,) = [
        d for d in image["layers"] if d["annotations"]["org.opencontainers.image.title"] == title
    ]
    return _blob(out, desc)


def _rewrite(out: Path, image: dict) -> None:
    """Store a forged image manifest and point the index at it (digest and size consistent)."""
    data = json.dumps(image).encode()
    digest = hashlib.sha256(data).hexdigest()
    (out / "blobs" / "sha256" / digest).write_bytes(data)
    index, _ = _image(out)
    index["manifests"][0].update(digest=f"sha256:{digest}", size=len(data))
    (out / "index.json").write_text(json.dumps(index))


def _tar_of(out: Path, dest: Path, prefix: str = "", mode: str = "w") -> Path:
    """A tar of the layout, every entry named `prefix + path`, blobs first (any order works)."""
    with tarfile.open(dest, mode) as tar:
        files = sorted(p for p in out.rglob("*") if p.is_file())
        for p in sorted(files, key=lambda p: "blobs" not in p.parts):
            tar.add(p, prefix + p.relative_to(out).as_posix())
    return dest


def refused(store: Store, call, error: type[Exception], match: str) -> str:
    """`call` raises `error` and not one file of the store changed."""
    before = snapshot(store.root)
    with pytest.raises(error, match=match) as info:
        call()
    assert snapshot(store.root) == before
    return str(info.value)


# -- round trips ------------------------------------------------------------------------------


def test_directory_round_trip_is_verified_and_idempotent(layout, tmp_path):
    store, out = layout
    other = _fresh(tmp_path)
    result = other.unpack(out)
    assert result.created and result.objects_added == 4  # weights, vocab, empty, requirements
    assert result.size == len(WEIGHTS) + 2 * len(VOCAB) + len(REQS)
    mv = other.resolve("fraud@1.2.0")
    assert mv.id == store.resolve("fraud@1.2.0").id  # the same manifest bytes
    assert mv.dependencies and mv.dependencies.packages == ("torch==2.5.0",)
    other.get("fraud@1.2.0", tmp_path / "got")
    assert (tmp_path / "got" / "tokenizer" / "copy.json").read_bytes() == VOCAB
    assert (tmp_path / "got" / "model.safetensors").read_bytes() == WEIGHTS
    assert other.verify().ok
    assert [e.action for e in other.audit.entries()] == ["unpack"]
    before = snapshot(other.root)
    again = other.unpack(out)
    assert not again.created and again.objects_added == 0
    assert snapshot(other.root) == before
    assert not store.unpack(out).created  # the packing store already has it


@pytest.mark.parametrize(
    ("prefix", "mode", "suffix"),
    [("", "w", ".tar"), ("./", "w", ".tar"), ("oci/", "w", ".tar"), ("", "w:gz", ".tar.gz")],
    ids=["root", "dot-slash", "top-directory", "gzip"],
)
def test_tar_of_a_layout_round_trips(layout, tmp_path, prefix, mode, suffix):
    store, out = layout
    tar = _tar_of(out, tmp_path / f"layout{suffix}", prefix, mode)
    other = _fresh(tmp_path)
    result = other.unpack(tar)
    assert result.created and result.id == store.resolve("fraud@1.2.0").id
    assert other.verify().ok
    before = snapshot(other.root)
    assert not other.unpack(tar).created
    assert snapshot(other.root) == before


def test_cli_pack_oci_then_unpack_the_directory_and_its_tar(layout, run_mreg, tmp_path):
    # The reproduction: unpack said "no such bundle file" (exit 2) here.
    cli_out = tmp_path / "cli-oci"
    packed = ok(run_mreg("pack", "fraud@1.2.0", "--format", "oci", "-o", str(cli_out), "--json"))
    assert packed.json()["format"] == "oci"
    other = tmp_path / "other"
    ok(run_mreg("init", cwd=other))
    first = ok(run_mreg("unpack", str(cli_out), "--json", cwd=other))
    assert first.json()["created"] is True and first.json()["objects_added"] == 4
    again = ok(run_mreg("unpack", str(cli_out), cwd=other))
    assert "already in the store" in again.stdout
    tar = _tar_of(cli_out, tmp_path / "cli-oci.tar")
    third = ok(run_mreg("unpack", str(tar), "--json", cwd=other))
    assert third.json()["created"] is False


def test_a_layout_with_several_versions_needs_a_tag(layout, run_mreg, tmp_path):
    store, out = layout
    (tmp_path / "v2.safetensors").write_bytes(b"\x02" * 10)
    store.register("fraud", [tmp_path / "v2.safetensors"], version="1.3.0", detect_code=False)
    store.pack("fraud@1.3.0", out, format="oci")
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), InvalidInput, r"name one as .*:TAG")
    refused(other, lambda: other.unpack(f"{out}:9.9.9"), NotFound, "no tag '9.9.9'")
    assert other.unpack(f"{out}:1.3.0").version == "1.3.0"
    tar = _tar_of(out, tmp_path / "two.tar")
    assert other.unpack(f"{tar}:1.2.0").version == "1.2.0"
    assert [v.version.version for v in other.versions("fraud")] == ["1.2.0", "1.3.0"]
    res = run_mreg("unpack", str(out), cwd=tmp_path / "other")
    assert "1.2.0, 1.3.0" in assert_one_line_error(res, 2)
    bundle = store.pack("fraud@1.2.0", tmp_path / "b.tar").out
    refused(other, lambda: other.unpack(f"{bundle}:1.2.0"), InvalidInput, "takes no :1.2.0")


def test_same_version_other_content_is_a_conflict(layout, tmp_path):
    _, out = layout
    other = _fresh(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"other weights")
    other.register("fraud", [tmp_path / "m.onnx"], version="1.2.0", detect_code=False)
    before = snapshot(other.root / "models")
    with pytest.raises(Conflict, match="immutable"):
        other.unpack(out)
    assert snapshot(other.root / "models") == before


# -- tampered, missing, oversized -------------------------------------------------------------


def test_a_tampered_blob_is_refused_and_the_store_is_unchanged(layout, run_mreg, tmp_path):
    _, out = layout
    blob = _layer(out, "model.safetensors")
    blob.write_bytes(b"\xff" + WEIGHTS[1:])  # one byte changed, same size
    other = _fresh(tmp_path)
    msg = refused(other, lambda: other.unpack(out), IntegrityError, "corrupt")
    assert "model.safetensors" in msg
    assert list((other.root / "tmp").iterdir()) == []  # the good blobs staged first are gone
    tar = _tar_of(out, tmp_path / "tampered.tar")
    refused(other, lambda: other.unpack(tar), IntegrityError, "corrupt")
    # Exit 1, as for a tampered bundle entry: an integrity failure, not a usage error.
    before = snapshot(other.root)
    res = run_mreg("unpack", str(out), cwd=tmp_path / "other")
    assert "corrupt" in assert_one_line_error(res, 1)
    assert snapshot(other.root) == before


def test_a_tampered_config_is_refused(layout, tmp_path):
    _, out = layout
    _, image = _image(out)
    config = _blob(out, image["config"])
    data = config.read_bytes()
    config.write_bytes(data.replace(b"fraud", b"fravd"))  # same size, other bytes
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), IntegrityError, "corrupt")


def test_an_index_that_points_at_a_missing_blob_is_refused(layout, run_mreg, tmp_path):
    _, out = layout
    index, _ = _image(out)
    index["manifests"][0]["digest"] = "sha256:" + "ab" * 32
    (out / "index.json").write_text(json.dumps(index))
    other = _fresh(tmp_path)
    refused(
        other, lambda: other.unpack(out), IntegrityError, "missing: the OCI layout is incomplete"
    )
    before = snapshot(other.root)
    res = run_mreg("unpack", str(out), cwd=tmp_path / "other")
    assert "incomplete" in assert_one_line_error(res, 1)
    assert snapshot(other.root) == before


def test_a_missing_layer_blob_is_refused_after_nothing_was_committed(layout, tmp_path):
    _, out = layout
    _layer(out, "requirements/requirements.txt").unlink()  # the last layer read
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), IntegrityError, "incomplete")
    assert list((other.root / "tmp").iterdir()) == []
    tar = _tar_of(out, tmp_path / "short.tar")
    refused(other, lambda: other.unpack(tar), IntegrityError, "incomplete")


def test_an_oversized_config_is_refused_before_it_is_read(layout, run_mreg, tmp_path):
    _, out = layout
    _, image = _image(out)
    real = _blob(out, image["config"])
    # 1. The descriptor claims 64 GiB (a sparse file of that size is there): refused unread.
    huge = out / "blobs" / "sha256" / ("cd" * 32)
    with open(huge, "wb") as fh:
        fh.truncate(1 << 36)
    config = {**image["config"], "digest": f"sha256:{huge.name}", "size": 1 << 36}
    notes = {**image["annotations"], "io.mreg.id": huge.name}
    _rewrite(out, {**image, "config": config, "annotations": notes})
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), IntegrityError, "over the .*-byte limit")
    # 2. Just over the limit.
    _rewrite(out, {**image, "config": {**image["config"], "size": MAX_DOC + 1}})
    refused(other, lambda: other.unpack(out), IntegrityError, "over the .*-byte limit")
    # 3. The descriptor says the right size, but the file on disk is 64 GiB.
    _rewrite(out, image)
    real.unlink()
    with open(real, "wb") as fh:
        fh.truncate(1 << 36)
    refused(other, lambda: other.unpack(out), IntegrityError, "its descriptor says")
    huge.unlink()
    real.unlink()
    res = run_mreg("unpack", str(out), cwd=tmp_path / "other")
    assert "incomplete" in assert_one_line_error(res, 1)


def test_an_oversized_index_is_refused(layout, tmp_path):
    _, out = layout
    with open(out / "index.json", "r+b") as fh:
        fh.truncate(MAX_DOC + 1)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), IntegrityError, "over the .*-byte limit")


# -- links, devices, unsafe names -------------------------------------------------------------


def test_a_symlinked_blob_leading_out_is_refused(layout, run_mreg, tmp_path):
    _, out = layout
    blob = _layer(out, "model.safetensors")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(WEIGHTS)  # even the right bytes: a link is never followed
    blob.unlink()
    blob.symlink_to(outside)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), InvalidInput, "is a symbolic link")
    before = snapshot(other.root)
    res = run_mreg("unpack", str(out), cwd=tmp_path / "other")
    assert "symbolic link" in assert_one_line_error(res, 2)
    assert snapshot(other.root) == before
    assert outside.read_bytes() == WEIGHTS


def test_a_symlinked_blobs_directory_is_refused(layout, tmp_path):
    _, out = layout
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "blobs", elsewhere)
    (out / "blobs").symlink_to(elsewhere)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), InvalidInput, "blobs is a symbolic link")


@pytest.mark.parametrize("which", ["index.json", "oci-layout"])
def test_symlinked_layout_documents_are_refused(layout, tmp_path, which):
    _, out = layout
    (tmp_path / which).write_bytes((out / which).read_bytes())
    (out / which).unlink()
    (out / which).symlink_to(tmp_path / which)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), InvalidInput, "symbolic link")


def test_a_fifo_blob_is_refused_without_blocking(layout, tmp_path):
    _, out = layout
    blob = _layer(out, "tokenizer/vocab.json")
    blob.unlink()
    os.mkfifo(blob)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(out), InvalidInput, "device or special file")


def test_a_layout_named_through_a_symlink_is_followed(layout, tmp_path):
    _, out = layout  # the user named it, as for register
    (tmp_path / "link").symlink_to(out)
    assert _fresh(tmp_path).unpack(tmp_path / "link").created


def _evil_tar(out: Path, dest: Path, extra: tarfile.TarInfo, data: bytes | None = None) -> Path:
    with tarfile.open(dest, "w") as tar:
        for p in sorted(p for p in out.rglob("*") if p.is_file()):
            tar.add(p, p.relative_to(out).as_posix())
        tar.addfile(extra, io.BytesIO(data) if data is not None else None)
    return dest


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../escape.bin", "reg"),
        ("/etc/passwd", "reg"),
        ("blobs/sha256/../../../x", "reg"),
        ("blobs/\x01", "reg"),
        ("blobs/sha256/link", "symlink"),
        ("blobs/sha256/hard", "hardlink"),
        ("blobs/sha256/dev", "device"),
        ("index.json", "reg"),  # a second index.json
    ],
)
def test_tar_entries_that_are_unsafe_links_devices_or_repeated(layout, tmp_path, name, kind):
    _, out = layout
    info = tarfile.TarInfo(name)
    data: bytes | None = None
    if kind == "reg":
        data = b"{}"
        info.size = len(data)
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "index.json"
    else:
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    evil = _evil_tar(out, tmp_path / "evil.tar", info, data)
    other = _fresh(tmp_path)
    refused(other, lambda: other.unpack(evil), InvalidInput, "unsafe path|only regular|twice")
    assert not (tmp_path / "escape.bin").exists()


def test_a_tar_cut_short_is_refused(layout, tmp_path):
    _, out = layout
    whole = _tar_of(out, tmp_path / "whole.tar")
    data = whole.read_bytes()
    with tarfile.open(whole) as tar:
        members = tar.getmembers()
    other = _fresh(tmp_path)
    # in the first entry's bytes, in the middle, one byte short of the last entry's end
    first, last = members[0], members[-1]
    for cut in (first.offset_data + 10, len(data) // 2, last.offset_data + last.size - 1):
        short = tmp_path / f"short-{cut}.tar"
        short.write_bytes(data[:cut])
        refused(other, lambda short=short: other.unpack(short), IntegrityError, "damaged tar")
    assert other.models() == []


# -- a layout that is not this version's ------------------------------------------------------


def test_layers_must_be_the_version_files(layout, tmp_path):
    _, out = layout
    _, image = _image(out)
    other = _fresh(tmp_path)
    extra = {**image, "layers": [*image["layers"], image["layers"][0]]}
    _rewrite(out, extra)
    refused(other, lambda: other.unpack(out), InvalidInput, "not named by the version manifest")
    swapped = {**image, "layers": [image["layers"][1], image["layers"][0], *image["layers"][2:]]}
    _rewrite(out, swapped)
    refused(other, lambda: other.unpack(out), IntegrityError, "the version manifest says")
    _rewrite(out, {**image, "layers": image["layers"][:-1]})
    refused(other, lambda: other.unpack(out), IntegrityError, "no layer for requirements")


def test_annotations_must_name_the_config_version(layout, tmp_path):
    _, out = layout
    _, image = _image(out)
    other = _fresh(tmp_path)
    notes = image["annotations"]
    _rewrite(out, {**image, "annotations": {**notes, "org.opencontainers.image.version": "9.9.9"}})
    refused(other, lambda: other.unpack(out), IntegrityError, "not fraud@9.9.9")
    _rewrite(out, {**image, "annotations": {**notes, "org.opencontainers.image.title": "../x"}})
    refused(other, lambda: other.unpack(out), IntegrityError, "do not name an mreg version")
    _rewrite(out, {**image, "annotations": {**notes, "io.mreg.id": "0" * 64}})
    refused(other, lambda: other.unpack(out), IntegrityError, "not its config's digest")
    _rewrite(out, {**image, "config": {**image["config"], "mediaType": "application/json"}})
    refused(other, lambda: other.unpack(out), IntegrityError, "not an mreg version manifest")


def test_what_is_not_a_layout_is_refused(layout, run_mreg, tmp_path):
    _, out = layout
    other = _fresh(tmp_path)
    (tmp_path / "plain").mkdir()
    refused(other, lambda: other.unpack(tmp_path / "plain"), InvalidInput, "not an OCI image")
    (out / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    refused(other, lambda: other.unpack(out), IntegrityError, "imageLayoutVersion")
    with tarfile.open(tmp_path / "random.tar", "w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    refused(
        other, lambda: other.unpack(tmp_path / "random.tar"), IntegrityError, "nor an OCI image"
    )
    res = run_mreg("unpack", str(tmp_path / "plain"), cwd=tmp_path / "other")
    assert "not an OCI image layout" in assert_one_line_error(res, 2)


# -- pack does not write through links either ---------------------------------------------------


def test_pack_refuses_a_blobs_directory_linked_out_of_the_layout(layout, tmp_path):
    store, out = layout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "blobs")
    (out / "blobs").symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match="symbolic link"):
        store.pack("fraud@1.2.0", out, format="oci")
    assert list(elsewhere.iterdir()) == []


def test_pack_replaces_a_linked_blob_instead_of_keeping_it(layout, tmp_path):
    store, out = layout
    blob = _layer(out, "model.safetensors")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(WEIGHTS)
    blob.unlink()
    blob.symlink_to(outside)
    store.pack("fraud@1.2.0", out, format="oci")
    assert not blob.is_symlink() and blob.read_bytes() == WEIGHTS
    assert _fresh(tmp_path).unpack(out).created


# -- skopeo -------------------------------------------------------------------------------------

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


def _skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    # --insecure-policy: only local files are involved, no signature policy is needed.
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


@skopeo
def test_skopeo_reads_the_manifest_and_the_config(layout):
    store, out = layout
    index, _ = _image(out)
    raw = _skopeo("inspect", "--raw", f"oci:{out}:1.2.0").stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index["manifests"][0]["digest"]
    assert json.loads(raw)["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    config = _skopeo("inspect", "--config", "--raw", f"oci:{out}:1.2.0").stdout
    assert hashlib.sha256(config).hexdigest() == store.resolve("fraud@1.2.0").id


@skopeo
def test_skopeo_copies_round_trip_through_unpack(layout, tmp_path):
    store, out = layout
    copied = tmp_path / "copied"
    _skopeo("copy", f"oci:{out}:1.2.0", f"oci:{copied}:1.2.0")
    archive = tmp_path / "archive.tar"
    _skopeo("copy", f"oci:{out}:1.2.0", f"oci-archive:{archive}:1.2.0")
    mv = store.resolve("fraud@1.2.0")
    for source in (copied, archive):
        other = _fresh(tmp_path, f"from-{source.name}")
        result = other.unpack(source)
        assert result.created and result.id == mv.id
        assert other.verify().ok
    # A copy of the copy still holds the very manifest mreg wrote (its digest is kept).
    again = tmp_path / "again"
    _skopeo("copy", f"oci:{copied}:1.2.0", f"oci:{again}:1.2.0")
    assert _image(again)[1] == _image(out)[1]
