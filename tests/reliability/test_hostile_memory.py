"""Bounded memory on hostile sizes (issue 15, item 5: bundles and OCI layouts).

Every input `mreg unpack` reads into memory has a bound that holds *before* the memory is
spent. Each case runs the real CLI as a subprocess and reads its peak resident set size
from the kernel (`memory.run_measured`: wait4's rusage, through a small launcher): it must refuse with exit 1 and one
error line, leave the store byte-identical, and stay within `memory.PEAK_BOUND_MIB`.

The inputs are built cheaply: a plain tar's huge payload is a hole in a sparse file
(`os.truncate`), a `.tar.gz`'s is one compressed MiB of zeros repeated (deflate blocks
ending in a full flush are independent). Before the fix a 1 GiB PAX header cost 2.1 GB; the
figures are in docs/reliability.md (`pytest -s` prints them).
"""

from __future__ import annotations

import json
import struct
import tarfile
import zlib
from functools import cache
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.bundle import HEADER, MANIFEST

from ..cli.helpers import assert_one_line_error
from ..conftest import snapshot
from .memory import PEAK_BOUND_MIB, run_measured

GIB = 1 << 30
MIB = 1 << 20
BLOCK = tarfile.BLOCKSIZE


# -- building hostile tars without writing their size -----------------------------------------


def _header(name: str, size: int, type: bytes = tarfile.REGTYPE) -> bytes:
    """One 512-byte tar header declaring `size` bytes of data."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, type, 0o644, 0
    return info.tobuf(tarfile.GNU_FORMAT)


def _entry(name: str, data: bytes, type: bytes = tarfile.REGTYPE) -> bytes:
    """A header and its data, padded to whole blocks."""
    return _header(name, len(data), type) + data + bytes(-len(data) % BLOCK)


def _pad(n: int) -> int:
    return n + (-n % BLOCK)


def _sparse_tar(path: Path, before: bytes, header: bytes, size: int) -> Path:
    """`before`, then `header` followed by `size` bytes of zeros that take no disk space."""
    with open(path, "wb") as fh:
        fh.write(before + header)
    end = len(before) + len(header) + _pad(size)
    with open(path, "r+b") as fh:
        fh.truncate(end + 2 * BLOCK)  # the hole, then the end-of-archive blocks
    return path


@cache
def _deflated_zeros_mib() -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)


def _gzip(path: Path, before: bytes, zero_mib: int, after: bytes = b"") -> Path:
    """A gzip file of `before`, `zero_mib` MiB of zeros and `after`, written in ~1 KB per MiB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = zlib.crc32(before)
    zeros = bytes(MIB)
    for _ in range(zero_mib):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(after, crc)
    total = len(before) + zero_mib * MIB + len(after)
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        fh.write(c.compress(before) + c.flush(zlib.Z_FULL_FLUSH))
        fh.write(_deflated_zeros_mib() * zero_mib)
        fh.write(c.compress(after) + c.flush())
        fh.write(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return path


def _record(key: str, value: str) -> bytes:
    """One PAX record, `LEN key=value\\n`, LEN counting itself."""
    body = f" {key}={value}\n".encode()
    n = len(body) + len(str(len(body)))
    n += len(str(n)) - len(str(len(body)))
    return str(n).encode() + body


def _checksummed(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def _octal12(n: int) -> bytes:
    return b"%011o\0" % n


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def source(store: Store, tmp_path: Path) -> Store:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(bytes(range(256)) * 16)
    store.register("fraud", [model], version="1.0.0", detect_code=False)
    return store


@pytest.fixture
def docs(source: Store, tmp_path: Path) -> tuple[bytes, bytes]:
    """A real bundle's header and manifest entries (to put a hostile entry after them)."""
    good = source.pack("fraud@1.0.0", tmp_path / "good.tar").out
    with tarfile.open(good) as tar:
        return tuple(  # type: ignore[return-value]
            _entry(name, tar.extractfile(name).read())  # type: ignore[union-attr]
            for name in (HEADER, MANIFEST)
        )


@pytest.fixture
def target(tmp_path: Path) -> Store:
    return Store.init(tmp_path / "other")


def refused(target: Store, path: Path, label: str, needle: str, code: int = 1) -> None:
    """`mreg unpack PATH`: exit `code`, one line naming `needle`, store unchanged, memory
    within the bound."""
    before = snapshot(target.root)
    res = run_measured("unpack", str(path), cwd=target.root.parent, label=label)
    line = assert_one_line_error(res, code)
    assert needle in line, line
    assert snapshot(target.root) == before
    assert res.peak_mib <= PEAK_BOUND_MIB, f"{label}: peak {res.peak_mib:.0f} MiB"


# -- bundles: tar headers read whole by tarfile ------------------------------------------------

EXTENDED = {
    "pax": (tarfile.XHDTYPE, "PAX extended header"),
    "pax global": (tarfile.XGLTYPE, "PAX global header"),
    "solaris": (tarfile.SOLARIS_XHDTYPE, "PAX extended header"),
    "gnu long name": (tarfile.GNUTYPE_LONGNAME, "GNU long name"),
    "gnu long link": (tarfile.GNUTYPE_LONGLINK, "GNU long link"),
}


def test_a_gzipped_bundle_whose_first_entry_is_a_1_gib_pax_header(target, tmp_path):
    # The input: 1 MB on disk, 1 GiB of PAX header once decompressed.
    bomb = _gzip(tmp_path / "pax.tar.gz", _header("././@PaxHeader", GIB, tarfile.XHDTYPE), 1024)
    assert bomb.stat().st_size < 2 * MIB
    refused(target, bomb, "bundle .tar.gz, PAX header 1 GiB", "more than the 1 MiB limit")


@pytest.mark.parametrize("kind", EXTENDED)
def test_a_bundle_whose_first_entry_is_a_1_gib_extended_header(target, tmp_path, kind):
    type, what = EXTENDED[kind]
    evil = _sparse_tar(tmp_path / "x.tar", b"", _header("././@LongLink", GIB, type), GIB)
    refused(target, evil, f"bundle .tar, {kind} 1 GiB", f"{what} of 1,073,741,824 bytes")


def test_a_pax_header_of_1_gib_after_valid_entries(target, tmp_path, docs):
    evil = _sparse_tar(
        tmp_path / "mid.tar", docs[0] + docs[1], _header("x", GIB, tarfile.XHDTYPE), GIB
    )
    refused(target, evil, "bundle .tar, PAX header 1 GiB mid-way", "more than the 1 MiB limit")


def test_a_chain_of_300_pax_headers_of_1_mib_each(target, tmp_path):
    # Each header is within the 1 MiB limit; together they are one entry's 300 MiB, held
    # at once (tarfile reads the next header before it lets go of the previous one).
    path = tmp_path / "chain.tar"
    with open(path, "wb") as fh:
        for i in range(300):
            fh.seek(i * (BLOCK + MIB))
            fh.write(_header("x", MIB, tarfile.XHDTYPE))
        fh.truncate(300 * (BLOCK + MIB) + 2 * BLOCK)
    refused(target, path, "bundle .tar, 300 PAX headers of 1 MiB", "more than the 2 MiB limit")


def test_a_gnu_sparse_entry_with_64_mib_of_extension_blocks(target, tmp_path):
    # Every 512-byte extension block adds 21 (offset, size) pairs to a list: ~5x its size.
    head = bytearray(_header("files/model.onnx", 0, tarfile.GNUTYPE_SPARSE))
    head[386:410] = _octal12(1 << 20) + _octal12(4096)
    head[482] = 1  # extended
    head[483:495] = _octal12(1 << 30)
    ext = bytearray(BLOCK)
    for i in range(21):
        ext[i * 24 : i * 24 + 24] = _octal12(0o7777777 + i) + _octal12(0o7777)
    ext[504] = 1
    evil = tmp_path / "sparse.tar"
    with open(evil, "wb") as fh:
        fh.write(_checksummed(head))
        for _ in range(64):
            fh.write(bytes(ext) * (MIB // BLOCK))
        fh.write(bytes(3 * BLOCK))
    try:
        refused(target, evil, "bundle .tar, GNU sparse map 64 MiB", "more than the 2 MiB limit")
    finally:
        evil.unlink()


def test_a_global_pax_header_of_1000_records_then_12000_directory_entries(target, tmp_path, docs):
    # Global records stay in force, and tarfile gave every later entry its own copy of them
    # and kept every entry it read (directory entries are skipped, never refused):
    # 12,000 copies of 1,000 records were ~330 MiB held, from a 6 MB tar.
    records = b"".join(_record(f"k{i:04}", "v") for i in range(1000))
    evil = tmp_path / "global.tar"
    evil.write_bytes(
        docs[0] + docs[1] + _entry("././@GlobalHead", records, tarfile.XGLTYPE)
        + _header("files/", 0, tarfile.DIRTYPE) * 12_000
        + _entry("files/other.bin", b"x") + bytes(2 * BLOCK)
    )  # fmt: skip
    refused(target, evil, "bundle .tar, 1,000 global PAX records, 12,000 dirs", "more than 64")


def test_a_manifest_entry_declaring_1_gib(target, tmp_path, docs):
    evil = _sparse_tar(tmp_path / "m.tar", docs[0], _header(MANIFEST, GIB), GIB)
    refused(target, evil, "bundle .tar, manifest entry 1 GiB", "too large")


def test_a_gzip_bomb_as_the_bundle_header(target, tmp_path):
    bomb = _gzip(tmp_path / "bomb.tar.gz", _header(HEADER, GIB), 1024)
    assert bomb.stat().st_size < 2 * MIB
    refused(target, bomb, "bundle .tar.gz, header entry 1 GiB of zeros", "too large")


# -- OCI image layouts -------------------------------------------------------------------------


@pytest.fixture
def layout(source: Store, tmp_path: Path) -> Path:
    return source.pack("fraud@1.0.0", tmp_path / "lay", format="oci").out


def _index(lay: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((lay / "index.json").read_bytes())


def _manifest_blob(lay: Path) -> Path:
    return lay / "blobs" / "sha256" / _index(lay)["manifests"][0]["digest"][7:]


def _config_blob(lay: Path) -> Path:
    image = json.loads(_manifest_blob(lay).read_bytes())
    return lay / "blobs" / "sha256" / image["config"]["digest"][7:]


def _grow(path: Path, size: int) -> None:
    path.chmod(0o644)
    with open(path, "r+b") as fh:
        fh.truncate(size)


def test_an_oci_index_of_1_gib(target, layout):
    _grow(layout / "index.json", GIB)
    refused(target, layout, "OCI dir, index.json 1 GiB", "over the 16,777,216-byte limit")


def test_an_oci_manifest_blob_of_1_gib_declared_small(target, layout):
    _grow(_manifest_blob(layout), GIB)
    refused(target, layout, "OCI dir, image manifest 1 GiB", "its descriptor says")


def test_an_oci_manifest_declared_1_gib_in_the_index(target, layout):
    index = _index(layout)
    index["manifests"][0]["size"] = GIB
    (layout / "index.json").write_text(json.dumps(index))
    _grow(_manifest_blob(layout), GIB)
    refused(target, layout, "OCI dir, image manifest declared 1 GiB", "over the 16,777,216")


def test_an_oci_config_blob_of_1_gib_declared_small(target, layout):
    _grow(_config_blob(layout), GIB)
    refused(target, layout, "OCI dir, config 1 GiB", "its descriptor says")


def _layout_tar(lay: Path, big: Path, out: Path) -> Path:
    """The layout as a tar, with `big`'s entry declaring 1 GiB (a hole) at the end."""
    small = b"".join(
        _entry(str(p.relative_to(lay)), p.read_bytes())
        for p in sorted(lay.rglob("*"))
        if p.is_file() and p != big
    )
    return _sparse_tar(out, small, _header(str(big.relative_to(lay)), GIB), GIB)


def test_an_oci_tar_whose_manifest_blob_is_1_gib(target, layout, tmp_path):
    evil = _layout_tar(layout, _manifest_blob(layout), tmp_path / "lay.tar")
    refused(target, evil, "OCI .tar, image manifest 1 GiB", "its descriptor says")


def test_an_oci_tar_whose_index_is_1_gib(target, layout, tmp_path):
    evil = _layout_tar(layout, layout / "index.json", tmp_path / "lay.tar")
    refused(target, evil, "OCI .tar, index.json 1 GiB", "over the 16,777,216-byte limit")


def test_an_oci_tar_with_a_1_gib_pax_header_after_its_marker(target, layout, tmp_path):
    marker = _entry("oci-layout", (layout / "oci-layout").read_bytes())
    evil = _sparse_tar(tmp_path / "lay.tar", marker, _header("x", GIB, tarfile.XHDTYPE), GIB)
    refused(target, evil, "OCI .tar, PAX header 1 GiB", "more than the 1 MiB limit")


def test_an_oci_tar_gz_whose_index_is_a_gzip_bomb(target, layout, tmp_path):
    before = _entry("oci-layout", (layout / "oci-layout").read_bytes())
    before += _header("index.json", GIB)
    bomb = _gzip(tmp_path / "lay.tar.gz", before, 1024, bytes(2 * BLOCK))
    assert bomb.stat().st_size < 2 * MIB
    refused(target, bomb, "OCI .tar.gz, index.json 1 GiB of zeros", "over the 16,777,216")


# -- what the bounds must not refuse, and malformed headers ------------------------------------


def test_a_bundle_with_a_4000_byte_path_and_pax_records_still_unpacks(store, tmp_path, run_mreg):
    deep = tmp_path / "model" / Path(*(["s" * 199] * 19))
    deep.mkdir(parents=True)
    (deep / ("f" * 190)).write_bytes(b"weights")
    store.register("deep", [tmp_path / "model"], version="1.0.0", detect_code=False)
    [f] = store.resolve("deep@1.0.0").files
    assert len(f.path) > 3900
    bundle = store.pack("deep@1.0.0", tmp_path / "deep.tar.gz").out
    target = Store.init(tmp_path / "other")
    res = run_measured("unpack", str(bundle), cwd=target.root.parent, label="legit: deep path")
    assert res.returncode == 0, res
    assert target.resolve("deep@1.0.0").id == store.resolve("deep@1.0.0").id


def _pax(records: bytes) -> bytes:
    return _entry("././@PaxHeader", records, tarfile.XHDTYPE)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        # tarfile's PAX sparse parser let ValueError through: exit 70, "this is a bug"
        ("sparse size not a number", _pax(b"23 GNU.sparse.size=abc\n")),
        # its GNU sparse parser indexed past the end of a cut header: IndexError, exit 70
        ("sparse map cut short", None),
    ],
)
def test_malformed_sparse_headers_are_a_damaged_tar_not_a_crash(target, tmp_path, case, data, docs):
    if data is None:
        head = bytearray(_header("files/model.onnx", 0, tarfile.GNUTYPE_SPARSE))
        head[482] = 1  # an extension block follows: it does not
        data = _checksummed(head)
    else:
        data += _entry("files/model.onnx", b"") + bytes(2 * BLOCK)
    evil = tmp_path / "bad.tar"
    evil.write_bytes(docs[0] + docs[1] + data)
    refused(target, evil, "", "damaged tar (malformed header")
