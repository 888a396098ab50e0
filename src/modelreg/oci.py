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
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tarfile
from pathlib import Path
from typing import IO, Any, NoReturn

from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import lstat_beneath, open_beneath, safe_join
from modelreg.handle import StoreHandle
from modelreg.hashing import copy_and_hash, hash_bytes, hash_file, hash_stream, is_digest
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.names import Version, check_name
from modelreg.remote.ingest import check_received, manifest_objects, parse_manifest, stage_object
from modelreg.tarsafe import TarLimit, forget_entries, open_tar
from modelreg.yamlio import MAX_BYTES

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

LAYOUT_VERSION = "1.0.0"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.mreg.version.v1+yaml"
FILE_MEDIA_TYPE = "application/vnd.mreg.file.v1"
REQUIREMENTS_MEDIA_TYPE = "application/vnd.mreg.requirements.v1+text"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
MREG_NAME = "io.mreg.name"
MREG_ID = "io.mreg.id"
VERSION = "org.opencontainers.image.version"
MAX_DOC = MAX_BYTES
"""The largest index.json, image manifest or config read (16 MiB, like a bundle's YAML)."""
_MAX_MARKER = 64 * 1024
_MAX_TAR_ENTRIES = 100_000
_SPARSE_REGION = 128  # bytes of memory one region of a kept entry's sparse map takes
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # distribution-spec's tag grammar


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}
    if annotations:
        desc["annotations"] = annotations
    return desc


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


def _annotations(mv: ModelVersion) -> dict[str, str]:
    notes = {
        "org.opencontainers.image.title": mv.name,
        "org.opencontainers.image.version": mv.version,
        "org.opencontainers.image.created": mv.created,
        "org.opencontainers.image.authors": mv.author,
        MREG_ID: mv.id,
    }
    if mv.message:
        notes["org.opencontainers.image.description"] = mv.message
    if mv.code is not None:
        notes["org.opencontainers.image.revision"] = mv.code.commit
        if mv.code.repo:
            notes["org.opencontainers.image.source"] = mv.code.repo
    return notes


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
    config = _put_bytes(out, manifest)
    layers = []
    for f in mv.files:
        _put_object(store, out, f.sha256)
        extra = {"io.mreg.format": f.format} if f.format else {}
        layers.append(_descriptor(FILE_MEDIA_TYPE, f.sha256, f.size, **{TITLE: f.path}, **extra))
    req = mv.dependencies.requirements if mv.dependencies else None
    if req is not None:
        _put_object(store, out, req.sha256)
        title = f"requirements/{req.path}"
        notes = {} if any(f.path == title for f in mv.files) else {TITLE: title}
        layers.append(_descriptor(REQUIREMENTS_MEDIA_TYPE, req.sha256, req.size, **notes))
    image = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config, len(manifest)),
            "layers": layers,
            "annotations": _annotations(mv),
        }
    )
    digest = _put_bytes(out, image)
    entry = _descriptor(
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
            fh.write(_json(doc))
    return f"sha256:{digest}"


# -- reading a layout: mreg unpack ------------------------------------------------------------


class _Missing(IntegrityError):
    """A file the layout must hold is not there (the layout is incomplete)."""


def _rel(digest: str) -> str:
    return f"blobs/sha256/{digest}"


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "directory" if stat.S_ISDIR(mode) else "device or special file"


class _Source:
    """Where a layout's files are read from: a directory, or a tar of one."""

    where: str

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open the layout's regular file `rel`: (stream, size); _Missing when it is absent."""
        raise NotImplementedError

    def position(self, rel: str) -> int:
        """Where `rel`'s bytes start in the source, to read a tar front to back."""
        return 0

    def close(self) -> None:
        """Release what the source holds open."""


class _DirSource(_Source):
    """A layout directory, read with `openat` and `O_NOFOLLOW` from the directory named.

    The directory the caller named is followed if it is a link (the user named it, as for
    `register`); inside it, `blobs/`, `blobs/sha256/` and every file read must be a real
    directory or regular file: a link, FIFO or device is refused before it is opened.
    """

    def __init__(self, root: Path) -> None:
        self.where = str(root)
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidInput(f"{root}: cannot read ({exc.strerror})") from None
        self._dirs = {"": fd}

    def _refuse(self, rel: str, mode: int, *, directory: bool) -> NoReturn:
        want = "directory" if directory else "regular file"
        raise InvalidInput(
            f"{self.where}/{rel} is a {_kind(mode)}, not a {want}: refused (nothing in an OCI "
            "layout is followed)"
        )

    def _open_at(self, dir_fd: int, name: str, rel: str, *, directory: bool) -> int:
        wanted = stat.S_ISDIR if directory else stat.S_ISREG
        try:
            mode = os.lstat(name, dir_fd=dir_fd).st_mode
        except FileNotFoundError:
            raise _Missing(f"{self.where}/{rel} is missing: the OCI layout is incomplete") from None
        except OSError as exc:
            raise InvalidInput(f"{self.where}/{rel}: cannot read ({exc.strerror})") from None
        if not wanted(mode):
            self._refuse(rel, mode, directory=directory)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags | (os.O_DIRECTORY if directory else 0), dir_fd=dir_fd)
        except OSError as exc:  # replaced since the lstat: a link now, or gone
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                self._refuse(rel, stat.S_IFLNK, directory=directory)
            raise InvalidInput(f"{self.where}/{rel}: cannot read ({exc.strerror})") from None
        mode = os.fstat(fd).st_mode
        if not wanted(mode):
            os.close(fd)
            self._refuse(rel, mode, directory=directory)
        return fd

    def _dir(self, rel: str) -> int:
        if rel not in self._dirs:
            parent, _, name = rel.rpartition("/")
            self._dirs[rel] = self._open_at(self._dir(parent), name, rel, directory=True)
        return self._dirs[rel]

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open `rel` without following links; refuse anything but a regular file."""
        parent, _, name = rel.rpartition("/")
        fd = self._open_at(self._dir(parent), name, rel, directory=False)
        return os.fdopen(fd, "rb"), os.fstat(fd).st_size

    def close(self) -> None:
        """Close the directories opened."""
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()


def _tar_name(name: str) -> str:
    """A tar entry's name without `./` prefixes or a trailing `/` ('' for the root)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


class _TarSource(_Source):
    """A tar (plain or compressed) of a layout, at its root or in one top directory.

    Every entry is checked before any byte is read, as a bundle's are: a name that is
    absolute, holds `..` or control characters, a link, a device, a FIFO, or a name that
    appears twice is refused. Entries outside the layout are never read.
    """

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            self._tar = open_tar(path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(f"{path}: not a tar file ({exc})") from None
        try:
            self._entries = self._scan()
        except BaseException:
            self._tar.close()
            raise

    def _scan(self) -> dict[str, tarfile.TarInfo]:
        found: dict[str, tarfile.TarInfo] = {}
        count = kept = 0
        while (member := self._next()) is not None:
            count += 1
            if count > _MAX_TAR_ENTRIES:
                raise InvalidInput(f"{self.where}: more than {_MAX_TAR_ENTRIES:,} entries: refused")
            forget_entries(self._tar)  # only `found` is kept
            name = _tar_name(member.name)
            if not name:
                continue
            safe_join(Path("/"), name)  # absolute, '..', control characters: InvalidInput
            if member.isdir():
                continue
            if not member.isreg():
                kind = "link" if member.issym() or member.islnk() else "device or special file"
                raise InvalidInput(
                    f"{self.where}: entry {member.name!r} is a {kind}: only regular files allowed"
                )
            if name in found:
                raise InvalidInput(f"{self.where}: entry {member.name!r} appears twice: refused")
            kept += len(member.name) + _SPARSE_REGION * len(member.sparse or ())
            if kept > MAX_DOC:
                raise IntegrityError(
                    f"{self.where}: its entries' names and sparse maps are over "
                    f"{MAX_DOC // (1024 * 1024)} MiB: refused"
                )
            found[name] = member
        roots = sorted(
            n[: -len("oci-layout")]
            for n in found
            if n.count("/") <= 1 and n.rpartition("/")[2] == "oci-layout"
        )
        if not roots:
            raise IntegrityError(
                f"{self.where}: neither an mreg bundle (its first entries would be "
                "mreg-bundle.yaml, manifest.yaml) nor an OCI image layout (no oci-layout entry)"
            )
        if len(roots) > 1:
            raise InvalidInput(f"{self.where}: holds {len(roots)} OCI layouts: one per tar")
        prefix = roots[0]
        return {n[len(prefix) :]: m for n, m in found.items() if n.startswith(prefix)}

    def _next(self) -> tarfile.TarInfo | None:
        try:
            return self._tar.next()
        except TarLimit as exc:
            raise IntegrityError(f"{self.where}: {exc}") from None

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open the entry `rel` of the layout."""
        member = self._entries.get(rel)
        if member is None:
            raise _Missing(f"{self.where}: {rel} is missing: the OCI layout is incomplete")
        fh = self._tar.extractfile(member)
        assert fh is not None  # a regular file always has a file object
        return fh, member.size

    def position(self, rel: str) -> int:
        """The offset of the entry's data in the tar."""
        member = self._entries.get(rel)
        return 0 if member is None else member.offset_data

    def close(self) -> None:
        """Close the tar."""
        self._tar.close()


def _damage() -> tuple[type[BaseException], ...]:
    """What reading a damaged tar raises (tarfile, and the decompressors under it)."""
    import gzip
    import zlib

    errors: list[type[BaseException]] = [tarfile.TarError, EOFError, zlib.error]
    errors.append(gzip.BadGzipFile)
    try:
        import lzma

        errors.append(lzma.LZMAError)
    except ImportError:  # pragma: no cover (Python built without lzma)
        pass
    return tuple(errors)


def _read_doc(src: _Source, rel: str, digest: str | None, size: int | None, what: str) -> bytes:
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


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:  # json's C scanner stops deep nesting with RecursionError
        raise IntegrityError(f"{what}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what}: not a JSON object")
    return doc


def _described(desc: Any, what: str) -> tuple[str, str, int]:
    """(mediaType, hex digest, size) of a descriptor; IntegrityError if it is malformed."""
    if not isinstance(desc, dict):
        raise IntegrityError(f"{what}: not a descriptor")
    media, digest, size = desc.get("mediaType"), desc.get("digest"), desc.get("size")
    if not isinstance(media, str):
        raise IntegrityError(f"{what}: no mediaType")
    if not (isinstance(digest, str) and digest.startswith("sha256:") and is_digest(digest[7:])):
        raise IntegrityError(f"{what}: digest {digest!r} is not sha256:<64 hex digits>")
    if type(size) is not int or size < 0:
        raise IntegrityError(f"{what}: size {size!r} is not a byte count")
    return media, digest[7:], size


def _select(index: dict[str, Any], tag: str | None, where: str) -> tuple[str, int]:
    """The image manifest of the index to unpack: (digest, size)."""
    manifests = index.get("manifests")
    if index.get("schemaVersion") != 2 or not isinstance(manifests, list):
        raise IntegrityError(f"{where}/index.json: not an OCI image index (schemaVersion 2)")
    images: list[tuple[str | None, str, int]] = []
    for i, m in enumerate(manifests):
        if not isinstance(m, dict) or m.get("mediaType") != MANIFEST_MEDIA_TYPE:
            continue  # nested indexes and other kinds hold no mreg version
        _, digest, size = _described(m, f"{where}/index.json: manifests[{i}]")
        notes = m.get("annotations")
        ref = notes.get(REF_NAME) if isinstance(notes, dict) else None
        images.append((ref if isinstance(ref, str) else None, digest, size))
    tags = ", ".join(sorted(str(t) for t, _, _ in images if t is not None)) or "none"
    chosen = images if tag is None else [x for x in images if x[0] == tag]
    if not chosen:
        if tag is not None:
            raise NotFound(f"{where} has no tag {tag!r} (tags: {tags})")
        raise IntegrityError(f"{where}/index.json names no image manifest: nothing to unpack")
    if len(chosen) > 1:
        raise InvalidInput(
            f"{where} holds {len(chosen)} manifests (tags: {tags}): name one as {where}:TAG"
        )
    return chosen[0][1], chosen[0][2]


def _identity(image: dict[str, Any], config: str, what: str) -> tuple[str, str]:
    """The name and version the image manifest's annotations give, as a bundle header does."""
    notes = image.get("annotations")
    notes = notes if isinstance(notes, dict) else {}
    try:
        name = check_name(str(notes[TITLE]))
        version = Version.parse(str(notes[VERSION])).text
    except (KeyError, InvalidInput) as exc:
        raise IntegrityError(
            f"{what}: its annotations {TITLE} and {VERSION} do not name an mreg version ({exc})"
        ) from None
    if notes.get(MREG_ID) != config:
        raise IntegrityError(f"{what}: annotation {MREG_ID} is not its config's digest")
    return name, version


def _check_layers(layers: Any, mv: ModelVersion, expected: list[FileEntry], what: str) -> None:
    """The layers must be the version's files then its requirements file, as pack wrote them."""
    if not isinstance(layers, list):
        raise IntegrityError(f"{what}: no layers list")
    req = mv.dependencies.requirements if mv.dependencies else None
    media_types = [FILE_MEDIA_TYPE] * len(mv.files) + [REQUIREMENTS_MEDIA_TYPE] * (req is not None)
    for i, layer in enumerate(layers):
        media, digest, size = _described(layer, f"{what}: layers[{i}]")
        if i >= len(expected):
            raise InvalidInput(
                f"{what}: layers[{i}] (sha256:{digest[:12]}) is not named by the version "
                "manifest: refused"
            )
        f, want = expected[i], media_types[i]
        if (media, digest, size) != (want, f.sha256, f.size):
            raise IntegrityError(
                f"{what}: layers[{i}] is {media} sha256:{digest[:12]} ({size} bytes), the "
                f"version manifest says {want} sha256:{f.sha256[:12]} ({f.size} bytes) for "
                f"{f.path}"
            )
    if len(layers) < len(expected):
        raise IntegrityError(f"{what}: incomplete, no layer for {expected[len(layers)].path}")


def _receive(store: StoreHandle, src: _Source, f: FileEntry, staged: dict[str, Path]) -> None:
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
    store: StoreHandle, src: _Source, staged: dict[str, Path], tag: str | None
) -> tuple[bytes, ModelVersion, int]:
    where = src.where
    try:
        marker_what = f"{where}/oci-layout"
        marker = _json_object(_read_doc(src, "oci-layout", None, None, marker_what), marker_what)
    except _Missing:
        raise InvalidInput(f"{where}: not an OCI image layout (no oci-layout file)") from None
    if marker.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise IntegrityError(f"{where}/oci-layout: imageLayoutVersion must be {LAYOUT_VERSION}")
    index = _json_object(
        _read_doc(src, "index.json", None, None, f"{where}/index.json"), f"{where}/index.json"
    )
    digest, size = _select(index, tag, where)
    what = f"{where}: image manifest sha256:{digest[:12]}"
    image = _json_object(_read_doc(src, _rel(digest), digest, size, what), what)
    if image.get("schemaVersion") != 2 or image.get("mediaType") != MANIFEST_MEDIA_TYPE:
        raise IntegrityError(f"{what}: not an OCI image manifest ({MANIFEST_MEDIA_TYPE}, 2)")
    media, config, config_size = _described(image.get("config"), f"{what}: config")
    if media != CONFIG_MEDIA_TYPE:
        raise IntegrityError(f"{what}: its config is {media!r}, not an mreg version manifest")
    name, version = _identity(image, config, what)
    source = f"{where}: config sha256:{config[:12]}"
    data = _read_doc(src, _rel(config), config, config_size, source)
    mv = parse_manifest(data, name, version, source)
    expected = manifest_objects(mv)
    for f in expected:
        safe_join(Path("/"), f.path)  # unsafe paths are refused before any blob is read
    _check_layers(image.get("layers"), mv, expected, what)
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
        src: _Source = _DirSource(path)
    else:
        try:
            src = _TarSource(path)
        except _damage() as exc:
            raise IntegrityError(f"{path}: damaged tar ({exc})") from None
    try:
        return _read(store, src, staged, tag)
    except _damage() as exc:
        raise IntegrityError(f"{path}: damaged tar ({exc})") from None
    finally:
        src.close()


def is_tag(text: str) -> bool:
    """True when `text` is a valid OCI tag (the distribution-spec's grammar)."""
    return _TAG.fullmatch(text) is not None
