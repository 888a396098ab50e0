"""Bundles: one version as one portable tar file, and back into another store.

A bundle is a plain tar (gzip-compressed when the file name ends in `.gz` or `.tgz`)::

    mreg-bundle.yaml        kind Bundle: format, name, version, id
    manifest.yaml           the version manifest, byte for byte (its SHA-256 is the id)
    files/<path>            every file of the version, at its path inside the version
    requirements/<path>     the requirements file, when the version has one
    profiles/<n>.json       the profile of its n-th data file, when recorded (issue 21)
    signatures/<sha256>.sig the version's OMS signatures (issue 19), each checked on unpack
                            as `mreg sign --attach` checks one, before anything is stored

`pack` writes the two YAML documents first, so `unpack` reads the bundle in one streaming
pass (memory stays bounded whatever the size, and `.tar.gz` works as well as `.tar`): every
tar is read through `open_tar`, whose `BoundedTarInfo` refuses an entry's extended headers
(PAX, GNU long names, sparse maps) over their bound before tarfile reads them, and the
YAML documents are at most 16 MiB, checked before they are read.
Nothing in a bundle is trusted: every member name is checked before use, and a member that
is not a regular file (links, devices, FIFOs), is not named by the manifest, appears twice,
or has another size than the manifest says is refused before any byte is read; every file
is hashed as it is written to the store's `tmp/`, and the files enter `objects/` only once
every entry matched its digest: a refused bundle leaves the store as it was. Unpacking
the same bundle again is a no-op; a bundle of a version that exists
with other content is a Conflict. `--format oci` writes an OCI image layout (oci.py), and
`unpack` reads one back, as a directory or a tar of one (`DIR:TAG` picks a version), with
the same checks, the same staging and the same all-or-nothing commit (`oci.read_layout`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelreg import layout, oms, yamlio
from modelreg.errors import Conflict, IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import safe_join, tmp_name
from modelreg.handle import StoreHandle
from modelreg.hashing import check_digest, copy_and_hash, hash_bytes, hash_stream
from modelreg.lineage import default_author
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.names import Version, check_name
from modelreg.remote.ingest import (
    check_received,
    install_manifest,
    manifest_objects,
    parse_manifest,
    stage_object,
)
from modelreg.signature_files import read_signatures
from modelreg.tarsafe import (
    MAX_ENTRY_HEADERS,
    MAX_EXTENDED_HEADER,
    TarLimit,
    forget_entries,
    open_tar,
)
from modelreg.version import __version__

__all__ = [
    "HEADER",
    "MANIFEST",
    "MAX_ENTRY_HEADERS",
    "MAX_EXTENDED_HEADER",
    "PackResult",
    "TarLimit",
    "UnpackResult",
    "forget_entries",
    "open_tar",
    "pack",
    "unpack",
]

HEADER = "mreg-bundle.yaml"
MANIFEST = "manifest.yaml"
_SIGNATURES = f"{layout.SIGNATURES}/"
FORMAT = 1
_MAX_DOC = yamlio.MAX_BYTES


@dataclass(frozen=True)
class PackResult:
    """What `pack` wrote."""

    name: str
    version: str
    id: str
    out: Path
    format: str
    files: int
    size: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg pack` (`digest`: the OCI manifest's, or the tar's)."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "out": str(self.out),
            "format": self.format,
            "files": self.files,
            "size": self.size,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class UnpackResult:
    """What `unpack` registered."""

    name: str
    version: str
    id: str
    created: bool
    objects_added: int
    size: int

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg unpack`."""
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "created": self.created,
            "objects_added": self.objects_added,
            "size": self.size,
        }


def _members(mv: ModelVersion) -> dict[str, FileEntry]:
    """Tar member name -> the file it holds (paths checked before they are used)."""
    out = {}
    for f in mv.files:
        safe_join(Path("/"), f.path)
        out[f"files/{f.path}"] = f
    req = mv.dependencies.requirements if mv.dependencies else None
    if req is not None:
        safe_join(Path("/"), req.path)
        out[f"requirements/{req.path}"] = req
    for f in mv.profile_entries():  # profiles/N.json (issue 21)
        out[f.path] = f
    return out


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Hashing:
    """A reader that hashes what tarfile copies out of it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.h = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.h.update(data)
        return data


def _compression(path: Path) -> bool:
    return path.name.endswith((".gz", ".tgz"))


def pack(
    store: StoreHandle, spec: str, out: Path, *, format: str = "tar", force: bool = False
) -> PackResult:
    """Write the version `spec` names as a bundle (`format` tar) or an OCI layout (`oci`)."""
    from modelreg.catalog import resolve

    mv = resolve(store, spec)
    data = store.manifest_path(mv.name, mv.version).read_bytes()
    if hash_bytes(data) != mv.id:
        raise IntegrityError(f"{mv.name}@{mv.version}: manifest changed while packing")
    for f in manifest_objects(mv):
        if not store.objects.has(f.sha256):
            raise IntegrityError(f"object {f.sha256[:12]} ({f.path}) is missing; run mreg verify")
    if format == "oci":
        from modelreg.oci import write_layout

        digest = write_layout(store, mv, data, out)
        return PackResult(mv.name, mv.version, mv.id, out, "oci", len(mv.files), mv.size, digest)
    if format != "tar":
        raise InvalidInput(f"unknown bundle format {format!r}: use tar or oci")
    if out.exists() and not force:
        raise InvalidInput(f"{out} exists (use --force to replace it)")
    header = yamlio.dump(
        {"schema": "mreg/v1", "kind": "Bundle", "format": FORMAT, "name": mv.name,
         "version": mv.version, "id": mv.id, "mreg": __version__}
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / tmp_name(out.name)
    mtime = 0  # reproducible: the same version packs to the same bytes
    try:
        opened = (
            tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT)
            if _compression(out)
            else tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)
        )
        with opened as tar:
            for name, blob in ((HEADER, header), (MANIFEST, data)):
                tar.addfile(_info(name, len(blob), mtime), io.BytesIO(blob))
            for name, f in _members(mv).items():
                with store.objects.open(f.sha256) as fh:
                    reader = _Hashing(fh)
                    tar.addfile(_info(name, f.size, mtime), reader)
                    check_received(reader.h.hexdigest(), f.sha256, "stored object")
            for _sig, sig_path in read_signatures(store.root, mv.name, mv.version):
                blob = sig_path.read_bytes()
                tar.addfile(_info(_SIGNATURES + sig_path.name, len(blob), mtime), io.BytesIO(blob))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    from modelreg.hashing import hash_file

    digest = hash_file(out)[0]
    return PackResult(mv.name, mv.version, mv.id, out, "tar", len(mv.files), mv.size, digest)


def _read_doc(tar: tarfile.TarFile, expect: str) -> bytes:
    member = tar.next()
    if member is None or member.name != expect or not member.isreg():
        raise IntegrityError(f"not an mreg bundle: the first entries must be {HEADER}, {MANIFEST}")
    if member.size > _MAX_DOC:
        raise IntegrityError(f"bundle entry {expect} is too large")
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file always has a file object
    return fh.read()


def _header(data: bytes, source: str) -> tuple[str, str, str]:
    doc = yamlio.load(data, source, IntegrityError)
    if not isinstance(doc, dict) or doc.get("kind") != "Bundle":
        raise IntegrityError(f"{source}: not an mreg bundle header (kind Bundle)")
    if doc.get("format") != FORMAT:
        raise IntegrityError(f"{source}: bundle format {doc.get('format')!r} is not supported")
    try:
        name = check_name(str(doc["name"]))
        version = Version.parse(str(doc["version"])).text
        return name, version, check_digest(doc["id"])
    except (KeyError, InvalidInput) as exc:
        raise IntegrityError(f"{source}: malformed bundle header ({exc})") from None


def _check_member(
    member: tarfile.TarInfo, expected: dict[str, FileEntry], seen: set[str]
) -> FileEntry | None:
    """Refuse any entry that is unsafe, unknown, repeated, not a regular file or mis-sized.

    Directory entries (which tools that repack a bundle add) carry no data: None.
    """
    safe_join(Path("/"), member.name.rstrip("/"))  # absolute, '..', control chars: InvalidInput
    if member.isdir():
        return None
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        raise InvalidInput(f"bundle entry {member.name!r} is a {kind}: only regular files allowed")
    if member.name not in expected:
        raise InvalidInput(f"bundle entry {member.name!r} is not named by the manifest: refused")
    if member.name in seen:
        raise InvalidInput(f"bundle entry {member.name!r} appears twice: refused")
    f = expected[member.name]
    if member.size != f.size:
        raise IntegrityError(
            f"bundle entry {member.name!r} has {member.size} bytes, the manifest says {f.size}"
        )
    return f


def _locate(path: Path) -> tuple[Path, str | None]:
    """`DIR:TAG` (as skopeo's `oci:DIR:TAG` and oras's `DIR:TAG`) -> (DIR, TAG).

    A path that exists is taken as it is, colon or not.
    """
    base, colon, tag = str(path).rpartition(":")
    if path.exists() or not colon or not base or "/" in tag or not Path(base).exists():
        return path, None
    from modelreg.oci import is_tag

    if not is_tag(tag):
        raise InvalidInput(f"{path}: {tag!r} is not a valid OCI tag")
    return Path(base), tag


def _first_entry(path: Path) -> str | None:
    """The name of the tar's first entry; None when it cannot be read (reported later)."""
    try:
        with open_tar(path, "r|*") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, TarLimit):
        return None
    return None if first is None else first.name


def _read_signature(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    """A bundle's signature entry: bounded, and named by its digest.

    The caller checks that it is a signature of the version (`oms`).
    """
    digest = member.name[len(_SIGNATURES) : -len(layout.SIGNATURE_SUFFIX)]
    if not member.isreg() or not member.name.endswith(layout.SIGNATURE_SUFFIX):
        raise InvalidInput(f"bundle entry {member.name!r} is not a signature file: refused")
    if member.size > oms.MAX_BYTES:
        raise IntegrityError(f"bundle entry {member.name!r} is too large for a signature")
    fh = tar.extractfile(member)
    assert fh is not None
    blob = fh.read()
    if hash_bytes(blob) != digest:
        raise IntegrityError(f"{path}: bundle entry {member.name!r} is not named by its digest")
    return blob


def _read_bundle(
    store: StoreHandle, path: Path, staged: dict[str, Path], sigs: list[bytes] | None = None
) -> tuple[bytes, ModelVersion, int]:
    """Read and verify the bundle `path` in one streaming pass, staging its new objects."""
    size = 0
    try:
        tar = open_tar(path, "r|*")
    except tarfile.TarError as exc:
        raise InvalidInput(f"{path}: not a tar file ({exc})") from None
    except TarLimit as exc:
        raise IntegrityError(f"{path}: {exc}") from None
    with tar:
        try:
            name, version, expect_id = _header(_read_doc(tar, HEADER), f"{path}:{HEADER}")
            data = _read_doc(tar, MANIFEST)
            if hash_bytes(data) != expect_id:
                raise IntegrityError(f"{path}: {MANIFEST} is not the manifest {expect_id[:12]}")
            mv = parse_manifest(data, name, version, f"{path}:{MANIFEST}")
            expected, seen = _members(mv), set[str]()
            while (member := tar.next()) is not None:  # not `for`: it would restart
                forget_entries(tar)  # one at a time: nothing here needs the earlier ones
                if member.name.startswith(_SIGNATURES) and sigs is not None:
                    if member.name in seen:
                        raise InvalidInput(f"bundle entry {member.name!r} appears twice: refused")
                    seen.add(member.name)
                    sigs.append(_read_signature(tar, member, path))
                    continue
                f = _check_member(member, expected, seen)
                if f is None:
                    continue
                seen.add(member.name)
                src = tar.extractfile(member)
                assert src is not None
                what = f"bundle entry {member.name}"
                if store.objects.has(f.sha256) or f.sha256 in staged:
                    got, n = hash_stream(src)  # still read and verify the bundle's bytes
                    check_received(got, f.sha256, what, n, f.size)
                else:
                    staged[f.sha256], _ = stage_object(
                        store.objects, f.sha256, f.size, what, _copier(src)
                    )
                size += f.size
        except tarfile.TarError as exc:
            raise IntegrityError(f"{path}: damaged tar ({exc})") from None
        except TarLimit as exc:
            raise IntegrityError(f"{path}: {exc}") from None
    missing = sorted(set(expected) - seen)
    for blob in sigs or ():  # before anything is stored: the same check as `sign --attach`
        sig = oms.parse(blob, f"{path}: a signature")
        problems = oms.coverage_problems(sig, {f.path: f.sha256 for f in mv.files})
        if problems:
            raise InvalidInput(f"{path}: a signature not of {name}@{version}: {problems[0]}")
    if missing:
        raise IntegrityError(f"{path}: bundle is incomplete, missing {', '.join(missing[:3])}")
    return data, mv, size


def unpack(store: StoreHandle, path: Path, *, actor: str | None = None) -> UnpackResult:
    """Register the version in a bundle or an OCI image layout, verified; a no-op if present.

    Args:
        store: the store that receives the version.
        path: a bundle file written by `pack`; or an OCI image layout (`pack --format oci`),
            as a directory or a tar of one, optionally suffixed `:TAG` to pick one of the
            versions it holds.
        actor: who to record in the audit trail (default: the current author).

    Returns:
        What was registered (`created` False when the version was already there).

    Raises:
        NotFound: `path` does not exist, or the layout has no such tag.
        InvalidInput: an unsafe, linked or unexpected entry; not a bundle or layout.
        IntegrityError: a tampered, missing, mis-sized or oversized entry or blob.
        Conflict: the version exists here with other content, or was deleted here.
    """
    path, tag = _locate(path)
    if path.is_dir():
        oci = True
    elif path.is_file():
        oci = _first_entry(path) not in (None, HEADER)
    else:
        raise NotFound(f"{path}: no such bundle file or OCI image layout")
    if tag is not None and not oci:
        raise InvalidInput(f"{path} is an mreg bundle (one version): it takes no :{tag}")
    staged: dict[str, Path] = {}  # digest -> verified temp file, committed only at the end
    sigs: list[bytes] = []
    try:
        if oci:
            from modelreg.oci import read_layout

            data, mv, size = read_layout(store, path, staged, tag=tag)
        else:
            data, mv, size = _read_bundle(store, path, staged, sigs)
        from modelreg.tombstones import read_tombstone

        deleted = read_tombstone(store.root, mv.name, mv.version)
        if deleted is not None:  # refused before its objects enter the store (issue 19)
            raise Conflict(f"{deleted.describe()}; the bundle is not unpacked")
        added = 0
        for digest in list(staged):  # every entry verified: now the objects enter the store
            store.objects.commit(staged.pop(digest), digest)
            added += 1
    finally:
        for tmp in staged.values():  # a refused bundle leaves nothing behind
            tmp.unlink(missing_ok=True)
    with store.writing():
        created = install_manifest(store, data, mv)
        if created:
            store.record(
                actor or default_author(), "unpack", mv.name, version=mv.version, id=mv.id,
                source=path.name if tag is None else f"{path.name}:{tag}",
            )  # fmt: skip
        from modelreg.signatures import install

        for blob in sigs:  # each new one audited as a `sign` entry
            install(store, mv, blob, f"{path.name}: a signature", actor=actor, how="bundle")
    return UnpackResult(mv.name, mv.version, mv.id, created, added, size)


def _copier(src: IO[bytes]) -> Any:
    return lambda fd: copy_and_hash(src, fd)  # type: ignore[arg-type]
