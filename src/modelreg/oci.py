"""`mreg pack --format oci`: a version as an OCI image layout, for any container registry.

The layout follows the OCI image-spec (image-layout.md, manifest.md, annotations.md) and
its "guidelines for artifact usage": the artifact has configuration metadata, so the image
manifest's `config` is that metadata under an mreg media type (no `artifactType` needed)::

    DIR/oci-layout              {"imageLayoutVersion": "1.0.0"}
    DIR/index.json              image index; one descriptor per version, tagged
                                (`org.opencontainers.image.ref.name`) with the version
    DIR/blobs/sha256/<hex>      every blob, named by the SHA-256 of its bytes

    image manifest (mediaType application/vnd.oci.image.manifest.v1+json, schemaVersion 2)
      config   application/vnd.mreg.version.v1+yaml   the version manifest, byte for byte:
                                                       its digest is the version id
      layers   application/vnd.mreg.file.v1            one per model file, titled with its
                                                       path (org.opencontainers.image.title)
               application/vnd.mreg.requirements.v1+text   the requirements file, if any
               application/vnd.mreg.data-profile.v1+json   each data file's profile (issue 21)
      annotations  org.opencontainers.image.{title,version,created,authors,description,
                   revision,source} and io.mreg.id

Standard tools copy it as is, e.g. `oras cp --from-oci-layout DIR:1.2.0 registry/repo:1.2.0`
or `skopeo copy oci:DIR:1.2.0 docker://registry/repo:1.2.0` (a copy keeps the manifest's
bytes, so its digest). One layout holds the versions of one model (a repository); packing
another version into it adds a tag.

`read_layout` is the other way (`mreg unpack DIR`, `DIR.tar`, `DIR:TAG`): the layout is a
directory or a tar of one (skopeo's `oci-archive:`, `tar -C DIR .`, `tar cf X.tar DIR`).
Nothing in it is trusted. The index, the image manifest and the config are read only after
their declared and actual sizes were compared and bounded (16 MiB), and each is hashed
against the descriptor that names it; the manifest's annotations must name the version the
config holds (as a bundle's header must); its layers must be exactly the version's files
and requirements file, in order, with their digests and sizes. A directory layout is read
with `openat` and `O_NOFOLLOW` from the directory the caller named: a symbolic link, FIFO or
device inside it is refused before it is opened for reading. A tar's entries are checked
like a bundle's (names, links, devices, repeats) before a byte is read, its headers are
bounded as a bundle's (`bundle.open_tar`), and what is kept of its entries (names, sparse
maps) is at most 16 MiB. Layer bytes are
staged in the store's `tmp/` while they are hashed; the caller commits them.

The vocabulary and the document checks live in `modelreg.oci_format`, the directory and tar
readers in `modelreg.oci_source`; their public names are importable from here too.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import lstat_beneath, open_beneath, safe_join
from modelreg.handle import StoreHandle
from modelreg.hashing import copy_and_hash, hash_bytes, hash_file, hash_stream
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.oci_format import (  # noqa: F401 (importable here as before #16)
    CONFIG_MEDIA_TYPE,
    FILE_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    LAYOUT_VERSION,
    MANIFEST_MEDIA_TYPE,
    MAX_DOC,
    MREG_ID,
    MREG_NAME,
    REF_NAME,
    REQUIREMENTS_MEDIA_TYPE,
    TITLE,
    VERSION,
    check_layers,
    described,
    descriptor,
    identity,
    image_annotations,
    image_manifest,
    is_tag,
    json_bytes,
    json_object,
    select,
)
from modelreg.oci_source import DirSource, Missing, Source, TarSource, damage
from modelreg.remote.ingest import check_received, manifest_objects, parse_manifest, stage_object

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "FILE_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "MAX_DOC",
    "REQUIREMENTS_MEDIA_TYPE",
    "is_tag",
    "read_layout",
    "write_layout",
]

_MAX_MARKER = 64 * 1024


def _blob_path(out: Path, digest: str) -> Path:
    return out / "blobs" / "sha256" / digest


def _present(out: Path, digest: str) -> bool:
    """True when the blob is a regular file (not a link) holding `digest`: no need to rewrite it.

    A link, even to the right bytes, is replaced by a regular file (the rename replaces the
    link itself, never what it points to); a linked `blobs/` or `blobs/sha256/` is refused.
    """
    st = lstat_beneath(out, f"blobs/sha256/{digest}")
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    return hash_file(_blob_path(out, digest))[0] == digest


def _put_bytes(out: Path, data: bytes) -> str:
    digest = hash_bytes(data)
    if not _present(out, digest):
        with open_beneath(out, f"blobs/sha256/{digest}") as fh:
            fh.write(data)
    return digest


def _put_object(store: StoreHandle, out: Path, digest: str) -> None:
    if _present(out, digest):
        return
    # re-hashed on the way (a corrupt object is refused), no link below `out` followed
    store.objects.copy_out(digest, _blob_path(out, digest), beneath=out)


def _check_blob_dirs(out: Path) -> None:
    """Refuse to write into `blobs/` or `blobs/sha256/` when either is a link or not a dir.

    Blobs are written through temp files renamed into place; a `blobs` link leading out of
    the layout would put them (and their temp files) wherever it points.
    """
    for d in (out / "blobs", out / "blobs" / "sha256"):
        try:
            mode = d.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
            raise InvalidInput(f"{d} is {kind}: refusing to write blobs through it")


def _existing_index(out: Path, name: str) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    if not out.is_dir():
        raise InvalidInput(f"{out} exists and is not a directory")
    if not (out / "oci-layout").is_file():
        # Only an interrupted earlier pack (blobs, maybe the index) may be there already.
        if any(p.name not in ("blobs", "index.json") for p in out.iterdir()):
            raise InvalidInput(f"{out} is neither empty nor an OCI image layout")
        return []
    bad = IntegrityError(
        f"{out}/index.json: not a readable OCI image index (a JSON object whose manifests "
        "are descriptors): nothing written"
    )
    try:  # a regular file of at most MAX_DOC bytes (a FIFO would block, a huge file exhaust)
        fd = os.open(out / "index.json", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_DOC:
                raise bad
            index = json.loads(fh.read(MAX_DOC + 1))
    except (OSError, ValueError, RecursionError):
        raise bad from None
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not all(
        isinstance(m, dict) and isinstance(m.get("annotations", {}), dict) for m in manifests
    ):
        raise bad
    others = {str(m.get("annotations", {}).get(MREG_NAME)) for m in manifests} - {name}
    if others:
        raise InvalidInput(
            f"{out} holds another model ({', '.join(sorted(map(str, others)))}): one layout "
            "per model"
        )
    return manifests


def write_layout(store: StoreHandle, mv: ModelVersion, manifest: bytes, out: Path) -> str:
    """Write (or extend) the OCI image layout `out` with `mv`; return the manifest digest."""
    previous = _existing_index(out, mv.name)
    _check_blob_dirs(out)  # a clear error before any write; open_beneath enforces it
    _put_bytes(out, manifest)  # the config: its digest is the version id
    for f in manifest_objects(mv):
        _put_object(store, out, f.sha256)
    image = image_manifest(mv, manifest)
    digest = _put_bytes(out, image)
    entry = descriptor(
        MANIFEST_MEDIA_TYPE, digest, len(image), **{REF_NAME: mv.version, MREG_NAME: mv.name}
    )
    kept = [m for m in previous if m.get("annotations", {}).get(REF_NAME) != mv.version]
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [*kept, entry]}
    # Blobs first, then the index that names them, then the marker: a reader that finds
    # `oci-layout` finds a complete layout.
    for name, doc in (
        ("index.json", index),
        ("oci-layout", {"imageLayoutVersion": LAYOUT_VERSION}),
    ):
        with open_beneath(out, name) as fh:
            fh.write(json_bytes(doc))
    return f"sha256:{digest}"


# -- reading a layout: mreg unpack ------------------------------------------------------------


def _rel(digest: str) -> str:
    return f"blobs/sha256/{digest}"


def _read_doc(src: Source, rel: str, digest: str | None, size: int | None, what: str) -> bytes:
    """Read a small document, its size compared and bounded before a byte is read."""
    limit = _MAX_MARKER if rel == "oci-layout" else MAX_DOC

    def bounded(n: int) -> None:
        if n > limit:
            raise IntegrityError(f"{what} is {n:,} bytes, over the {limit:,}-byte limit: refused")

    if size is not None:
        bounded(size)  # before the file is even opened
    fh, actual = src.open(rel)
    with fh:
        if size is not None and actual != size:
            raise IntegrityError(f"{what} has {actual} bytes, its descriptor says {size}")
        bounded(actual)
        data = fh.read(actual + 1)
    if len(data) != actual:
        raise IntegrityError(f"{what} changed while it was read")
    if digest is not None:
        check_received(hash_bytes(data), digest, what)
    return data


def _receive(store: StoreHandle, src: Source, f: FileEntry, staged: dict[str, Path]) -> None:
    """Verify one layer blob; stage it in the store's `tmp/` unless the store has it."""
    what = f"OCI layer {f.path}"
    fh, size = src.open(_rel(f.sha256))
    with fh:
        if size != f.size:
            raise IntegrityError(
                f"{src.where}: {what} has {size} bytes, the version manifest says {f.size}"
            )
        if store.objects.has(f.sha256) or f.sha256 in staged:
            got, n = hash_stream(fh)  # still read and verify the layout's bytes
            check_received(got, f.sha256, what, n, f.size)
        else:
            staged[f.sha256], _ = stage_object(
                store.objects, f.sha256, f.size, what,
                lambda fd: copy_and_hash(fh, fd),  # type: ignore[arg-type]
            )  # fmt: skip


def _read(
    store: StoreHandle, src: Source, staged: dict[str, Path], tag: str | None
) -> tuple[bytes, ModelVersion, int]:
    where = src.where
    try:
        marker_what = f"{where}/oci-layout"
        marker = json_object(_read_doc(src, "oci-layout", None, None, marker_what), marker_what)
    except Missing:
        raise InvalidInput(f"{where}: not an OCI image layout (no oci-layout file)") from None
    if marker.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise IntegrityError(f"{where}/oci-layout: imageLayoutVersion must be {LAYOUT_VERSION}")
    index = json_object(
        _read_doc(src, "index.json", None, None, f"{where}/index.json"), f"{where}/index.json"
    )
    digest, size = select(index, tag, where)
    what = f"{where}: image manifest sha256:{digest[:12]}"
    image = json_object(_read_doc(src, _rel(digest), digest, size, what), what)
    if image.get("schemaVersion") != 2 or image.get("mediaType") != MANIFEST_MEDIA_TYPE:
        raise IntegrityError(f"{what}: not an OCI image manifest ({MANIFEST_MEDIA_TYPE}, 2)")
    media, config, config_size = described(image.get("config"), f"{what}: config")
    if media != CONFIG_MEDIA_TYPE:
        raise IntegrityError(f"{what}: its config is {media!r}, not an mreg version manifest")
    name, version = identity(image, config, what)
    source = f"{where}: config sha256:{config[:12]}"
    data = _read_doc(src, _rel(config), config, config_size, source)
    mv = parse_manifest(data, name, version, source)
    expected = manifest_objects(mv)
    for f in expected:
        safe_join(Path("/"), f.path)  # unsafe paths are refused before any blob is read
    check_layers(image.get("layers"), mv, expected, what)
    unique = {f.sha256: f for f in reversed(expected)}  # one read per distinct blob
    for f in sorted(unique.values(), key=lambda f: src.position(_rel(f.sha256))):
        _receive(store, src, f, staged)
    return data, mv, sum(f.size for f in expected)


def read_layout(
    store: StoreHandle, path: Path, staged: dict[str, Path], *, tag: str | None = None
) -> tuple[bytes, ModelVersion, int]:
    """Read and verify the version held by the OCI image layout `path` (`mreg unpack`).

    Every blob the version needs is hashed while it is staged in the store's `tmp/` and put
    in `staged` (digest -> temp file), which the caller commits once this returns, or
    deletes; blobs the store already has are read and verified, not staged.

    Args:
        store: the store that receives the version.
        path: a layout directory, or a tar (plain or compressed) of one.
        staged: filled with the verified temp files.
        tag: the `org.opencontainers.image.ref.name` to read; None when the layout holds
            one image manifest.

    Returns:
        The version manifest's bytes (the config blob), the manifest, and its files' bytes.

    Raises:
        InvalidInput: not a layout; a link, device or unsafe name in it; several versions
            and no tag; a layer the version manifest does not name.
        NotFound: no such tag.
        IntegrityError: a malformed, oversized, missing or tampered document or blob.
    """
    if path.is_dir():
        src: Source = DirSource(path)
    else:
        try:
            src = TarSource(path)
        except damage() as exc:
            raise IntegrityError(f"{path}: damaged tar ({exc})") from None
    try:
        return _read(store, src, staged, tag)
    except damage() as exc:
        raise IntegrityError(f"{path}: damaged tar ({exc})") from None
    finally:
        src.close()
