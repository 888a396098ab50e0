"""What the router reads from the store, and the cheap check that notices a change.

The router watches two files of its model: the rollout manifest (`releases/NAME.yaml`) and
the `production` alias (`models/NAME/aliases/production.yaml`). `Source.signature()` stats
both (inode, size, mtime, ctime): that is the whole cost of a check when nothing changed.
When the signature changes, both files are read and parsed, the versions they name are
located (each version manifest's SHA-256 must equal the id the rollout or alias recorded)
and, unless disabled, materialised once into a content-addressed cache directory.

A file rewritten in place within the filesystem's timestamp granularity could keep its
signature, so a file modified less than `RACY_NS` before a check is re-read at the next
check as well (git's "racy clean" rule); identical bytes are not parsed again.

Nothing here imports typer, rich, git, s3fs, filelock or semver.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError, InvalidInput, StoreNotFound
from modelreg.fsutil import fsync_dir, read_regular, safe_join, tmp_name
from modelreg.hashing import copy_and_hash, hash_bytes, hash_file, is_digest
from modelreg.names import Version, check_name
from modelreg.release.rollout import Rollout

__all__ = [
    "RACY_NS",
    "FileSpec",
    "ProductionRef",
    "Source",
    "materialize",
    "parse_production",
    "parse_rollout",
    "parse_version_files",
    "store_root",
    "version_files",
    "version_rel",
]

RACY_NS = 2_000_000_000
"""Files modified less than this many nanoseconds before a check are re-read next time."""
PRODUCTION = "production"

Signature = tuple[Any, ...]


def store_root(store: str | os.PathLike[str]) -> Path:
    """The `.modelreg` directory for `store` (that directory, or the one holding it)."""
    text = os.fspath(store)
    if "://" in text:  # pragma: no cover (Router.open sends URLs to serving.remote)
        raise InvalidInput(f"{text}: a remote store is opened by modelreg.serving.remote")
    p = Path(text).absolute()
    root = layout.store_root(p)
    if root is None:
        raise StoreNotFound(f"no mreg store at {p}")
    return root


@dataclass(frozen=True)
class ProductionRef:
    """The `production` alias as the router needs it."""

    version: str
    id: str
    generation: int


@dataclass(frozen=True)
class FileSpec:
    """One file of a version: relative path, object digest, size."""

    path: str
    sha256: str
    size: int


def _stat(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return (-1, exc.errno or 0)
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read(path: Path) -> bytes | None:
    """The bytes of a watched file, None when it is missing.

    Raises IntegrityError when it cannot be read (permissions, I/O error) or is not a regular
    file: opened without blocking, so a FIFO put in its place cannot hang the router (issue 8).
    """
    return read_regular(path, yamlio.MAX_BYTES, IntegrityError)


class Source:
    """The two files the router watches for one model."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.rollout_path = layout.release_path(root, name)
        self.alias_path = layout.alias_path(root, name, PRODUCTION)

    def signature(self) -> Signature:
        """Stat both files: the cheap check."""
        return (_stat(self.rollout_path), _stat(self.alias_path))

    @staticmethod
    def is_racy(sig: Signature) -> bool:
        """True when a file was modified too recently for its signature to be trusted."""
        now = time.time_ns()
        return any(s is not None and len(s) == 5 and now - s[3] < RACY_NS for s in sig)

    def read(self) -> tuple[bytes | None, bytes | None]:
        """The bytes of the rollout manifest and of the production alias (None: missing).

        Raises IntegrityError if either exists but cannot be read.
        """
        return _read(self.rollout_path), _read(self.alias_path)

    def read_production(self) -> bytes | None:
        """The bytes of the production alias alone (None: missing)."""
        return _read(self.alias_path)

    @property
    def rollout_where(self) -> str:
        """The rollout manifest's location, for messages."""
        return str(self.rollout_path)

    @property
    def alias_where(self) -> str:
        """The production alias's location, for messages."""
        return str(self.alias_path)

    @property
    def cache_dir(self) -> Path:
        """Where versions are materialised unless the router is given another directory."""
        return layout.version_cache(self.root)

    def has_rollout(self) -> bool:
        """True when something (readable or not) is at the rollout manifest's path."""
        return os.path.lexists(self.rollout_path)

    def files(self, name: str, version: str, digest: str) -> tuple[FileSpec, ...]:
        """The files of a version whose manifest must hash to `digest`."""
        return version_files(self.root, name, version, digest)

    def prepare(self, cache_dir: Path, digest: str, files: tuple[FileSpec, ...]) -> Path:
        """The directory holding the version's files, materialised once (see `materialize`)."""
        return materialize(self.root, cache_dir, digest, files)

    def signatures(self, name: str, version: str) -> list[bytes]:
        """The bytes of the version's OMS signature files (issue 19)."""
        from modelreg.signature_files import read_signatures

        return [p.read_bytes() for _, p in read_signatures(self.root, name, version)]


def parse_rollout(data: bytes, source: str, name: str) -> Rollout:
    """Parse and validate rollout manifest bytes (raise IntegrityError saying why)."""
    return Rollout.stored(yamlio.load(data, source, IntegrityError), source, name)


def parse_production(data: bytes, source: str) -> ProductionRef:
    """Parse the production alias file (raise IntegrityError saying why)."""
    doc = yamlio.load(data, source, IntegrityError)
    try:
        if not isinstance(doc, dict) or doc.get("kind") != "Alias":
            raise ValueError("not an Alias document")
        digest = doc["id"]
        if not is_digest(digest):
            raise ValueError(f"bad id {digest!r}")
        return ProductionRef(
            Version.parse(str(doc["version"])).text, digest, int(doc["generation"])
        )
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError(f"{source}: malformed alias file ({exc})") from None


def version_rel(name: str, version: str) -> str:
    """A version manifest's path relative to the store root (name and version checked first)."""
    return layout.rel_manifest(check_name(name), Version.parse(version).text)


def version_files(root: Path, name: str, version: str, digest: str) -> tuple[FileSpec, ...]:
    """The files of a version, from its manifest, whose SHA-256 must be `digest`."""
    path = root.joinpath(*version_rel(name, version).split("/"))
    return parse_version_files(_read(path), str(path), name, version, digest)


def parse_version_files(
    data: bytes | None, path: str, name: str, version: str, digest: str
) -> tuple[FileSpec, ...]:
    """The files listed by version manifest bytes (None: missing) that must hash to `digest`."""
    if data is None:
        raise IntegrityError(f"{name}@{version}: no such version ({path})")
    if hash_bytes(data) != digest:
        raise IntegrityError(
            f"{path}: manifest is not {digest[:12]} as recorded (it was changed or replaced)"
        )
    doc = yamlio.load(data, path, IntegrityError)
    try:
        out = []
        for f in doc["files"]:
            sha, size, rel = f["sha256"], f["size"], str(f["path"])
            if not is_digest(sha):
                raise ValueError(f"bad digest for {rel!r}")
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"bad size for {rel!r}")
            safe_join(Path("/"), rel)
            out.append(FileSpec(rel, sha, size))
        return tuple(out)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError(f"{path}: malformed manifest ({exc})") from None


def _object(root: Path, digest: str) -> Path:
    if not is_digest(digest):  # pragma: no cover (checked by version_files)
        raise IntegrityError(f"bad digest {digest!r}")
    return root.joinpath(*layout.object_rel(digest).split("/"))


def _copy_verified(src: Path, dst: Path, spec: FileSpec) -> None:
    with open(src, "rb", buffering=0) as fin, open(dst, "wb") as fout:
        got, _ = copy_and_hash(fin, fout.fileno())
        os.fsync(fout.fileno())
    _check(got, spec)
    os.chmod(dst, 0o444)


def _verify(path: Path, spec: FileSpec) -> None:
    _check(hash_file(path)[0], spec)


def _check(got: str, spec: FileSpec) -> None:
    if got != spec.sha256:
        raise IntegrityError(f"object {spec.sha256[:12]} ({spec.path}) does not match its digest")


def materialize(root: Path, cache_dir: Path, digest: str, files: tuple[FileSpec, ...]) -> Path:
    """The directory `cache_dir/<manifest id>/` holding the version's files, built once.

    Files are hard links to the read-only objects (or copies where linking is not possible),
    each re-hashed once while the directory is built: an object damaged on disk is refused,
    never served. The directory is built aside and renamed into place, so it is complete or
    absent; concurrent builders (several serving processes) race harmlessly. An existing
    directory is only checked for its files' sizes.
    """
    final = cache_dir / digest
    if final.is_dir():
        for spec in files:
            try:
                if os.stat(final / spec.path).st_size != spec.size:
                    raise IntegrityError(f"{final / spec.path}: wrong size (damaged cache)")
            except FileNotFoundError:
                raise IntegrityError(f"{final / spec.path}: missing (damaged cache)") from None
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / tmp_name(digest)
    try:
        for spec in files:
            src = _object(root, spec.sha256)
            dst = safe_join(staging, spec.path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                if os.stat(src).st_size != spec.size:
                    raise IntegrityError(
                        f"object {spec.sha256[:12]} ({spec.path}) has the wrong size"
                    )
            except FileNotFoundError:
                raise IntegrityError(
                    f"object {spec.sha256[:12]} ({spec.path}) is missing"
                ) from None
            try:
                os.link(src, dst)
            except OSError:  # another filesystem, or links not allowed: copy and verify
                _copy_verified(src, dst, spec)
            else:
                _verify(dst, spec)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
        fsync_dir(cache_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
