"""Receiving a version manifest from outside (a remote, a bundle) into a local store.

The manifest's bytes are kept exactly as received, so its id (their SHA-256) is the same on
every store. It is installed only after every object it names is in the store, under the
store lock, with the same rules as `register`: identical content is a no-op, other content
under the same version is a Conflict, and a name cannot be both a model and a namespace.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from modelreg import yamlio
from modelreg.errors import Conflict, IntegrityError
from modelreg.fsutil import atomic_write, tmp_name
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.objects import ObjectStore

__all__ = [
    "check_received",
    "install_manifest",
    "manifest_objects",
    "parse_manifest",
    "receive_object",
    "stage_object",
]


def check_received(
    got: str, digest: str, what: str, n: int | None = None, size: int | None = None
) -> None:
    """Raise IntegrityError unless bytes that hash to `got` may be stored as `digest`.

    When `n` (bytes received) and `size` (what the manifest says) are given they must be
    equal too: the right bytes under a manifest that lies about their size are refused
    (issue 15), so a manifest's sizes always describe its objects.
    """
    if got == digest:
        if n is not None and size is not None and n != size:
            raise IntegrityError(
                f"{what} {digest[:12]} has {n} bytes, but the manifest says {size}; rejected"
            )
        return
    short = ""
    if n is not None and size is not None and n < size:
        short = f" ({n} of {size} bytes: truncated)"
    elif n is not None and size is not None and n > size:
        short = f" ({n} bytes where {size} were expected)"
    raise IntegrityError(
        f"{what} {digest[:12]} is corrupt: its content hashes to {got[:12]}{short}; rejected"
    )


def receive_object(
    objects: ObjectStore, digest: str, size: int, what: str, write: Callable[[int], tuple[str, int]]
) -> int:
    """Receive an object from outside, verified: it enters `objects` only if it hashes to `digest`.

    `write(fd)` writes the bytes to an open temp file in the store's `tmp/` and returns what
    it hashed (digest, size). On a mismatch the temp file is deleted and IntegrityError
    names `what` and says whether the bytes were short (truncated) or other (tampered).
    """
    tmp, n = stage_object(objects, digest, size, what, write)
    try:
        objects.commit(tmp, digest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def stage_object(
    objects: ObjectStore, digest: str, size: int, what: str, write: Callable[[int], tuple[str, int]]
) -> tuple[Path, int]:
    """Like `receive_object`, but leave the verified bytes in `tmp/`: (temp path, size).

    The caller commits it (`objects.commit`) or deletes it; a bundle commits its objects only
    once every entry is verified, so a refused bundle adds nothing to the store (issue 8).
    """
    objects.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = objects.tmp_dir / tmp_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            got, n = write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        check_received(got, digest, what, n, size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, n


def parse_manifest(data: bytes, name: str, version: str, source: str) -> ModelVersion:
    """Parse received manifest bytes that must describe `name@version`; IntegrityError if not."""
    try:  # paths and structure are checked by ModelVersion itself (issue 15)
        mv = ModelVersion.from_dict(yamlio.load(data, source, IntegrityError), hash_bytes(data))
    except IntegrityError as exc:
        msg = str(exc)
        raise IntegrityError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    if mv.name != name or mv.version != version:
        raise IntegrityError(
            f"{source}: manifest names {mv.name}@{mv.version}, not {name}@{version}"
        )
    return mv


def manifest_objects(mv: ModelVersion) -> list[FileEntry]:
    """Every object a version needs: its files, its requirements file, its data profiles."""
    files = list(mv.files)
    if mv.dependencies and mv.dependencies.requirements:
        files.append(mv.dependencies.requirements)
    return files + mv.profile_entries()


def install_manifest(store: StoreHandle, data: bytes, mv: ModelVersion) -> bool:
    """Write a parsed manifest's exact bytes into the store; return True if it was new.

    Raises IntegrityError if an object it names is missing or has another size than the
    manifest says, Conflict if the version exists with other content (nothing is
    overwritten), the version was deleted here (its tombstone), or the name clashes with
    a namespace.
    """
    from modelreg.catalog import check_namespace

    for f in manifest_objects(mv):
        try:
            size = store.objects.size(f.sha256)
        except FileNotFoundError:
            raise IntegrityError(
                f"{mv.name}@{mv.version}: object {f.sha256[:12]} ({f.path}) is not in the store"
            ) from None
        if size != f.size:  # the object is named by its content: the manifest lies (#15)
            raise IntegrityError(
                f"{mv.name}@{mv.version}: {f.path} is {size} bytes (object {f.sha256[:12]}), "
                f"but the manifest says {f.size}; rejected"
            )
    from modelreg.tombstones import read_tombstone

    path = store.manifest_path(mv.name, mv.version)
    with store.locked():
        deleted = read_tombstone(store.root, mv.name, mv.version)
        if deleted is not None:  # never brought back (issue 19)
            raise Conflict(f"{deleted.describe()}; it is not installed again")
        if path.exists():
            if hash_bytes(path.read_bytes()) == mv.id:
                return False
            raise Conflict(
                f"{mv.name}@{mv.version} exists here with other content; a version manifest "
                "is immutable, so it is not overwritten (register a new version instead)"
            )
        check_namespace(store, mv.name)
        atomic_write(path, data, mode=0o444)
    return True
