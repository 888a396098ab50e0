"""The content-addressed object store: `objects/ab/<64-hex sha256>`, write once, read-only.

An object's name is the SHA-256 of its bytes (so `sha256sum objects/ab/abcd…` prints the file
name). Objects are written to `tmp/` first, fsynced, made read-only (0444) and renamed into
place, so a reader never sees a partial object. Putting an object that exists already is a
no-op that refreshes its mtime, which `gc`'s grace period relies on.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import IntegrityError, NotFound
from modelreg.fsutil import fsync_dir, open_atomic, open_beneath, tmp_name
from modelreg.hashing import Progress, check_digest, copy_and_hash, hash_bytes, hash_file, is_digest

__all__ = ["ObjectStore"]

_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (btrfs, XFS, bcachefs...)
_NO_CLONE_ERRNOS = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF}


class ObjectStore:
    """Objects under `root`, staged in `tmp_dir` (which must be on the same filesystem)."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self.tmp_dir = tmp_dir

    def path(self, digest: str) -> Path:
        """Where the object `digest` lives; the digest is validated before any join."""
        check_digest(digest)
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        """True when the object is present (its content is not re-hashed)."""
        return self.path(digest).is_file()

    def put_file(self, src: Path, progress: Progress | None = None) -> tuple[str, int]:
        """Store a file's content; return (digest, size).

        Where the filesystem can clone (copy-on-write), the file is cloned and the clone is
        hashed, so what is stored is exactly what was hashed. Elsewhere it is copied and
        hashed in one streaming pass.
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / tmp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(src, "rb", buffering=0) as fh:
                if _try_clone(fh.fileno(), fd):
                    os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    digest, size = hash_file(tmp, progress)
                else:
                    _advise_sequential(fh.fileno())
                    digest, size = copy_and_hash(fh, fd, progress)
            if fd >= 0:
                os.fsync(fd)
                os.close(fd)
                fd = -1
            self.commit(tmp, digest)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return digest, size

    def put_bytes(self, data: bytes) -> str:
        """Store small in-memory content; return its digest."""
        digest = hash_bytes(data)
        if self.freshen(digest):
            return digest
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / tmp_name()
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self.commit(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def commit(self, tmp: Path, digest: str) -> None:
        """Move a fsynced temp file (in `tmp_dir`) whose content is `digest` into place.

        The caller has verified the digest. If the object exists already, the temp file is
        dropped and the object's mtime refreshed.
        """
        dst = self.path(digest)
        if self.freshen(digest):
            tmp.unlink()
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dst)
        fsync_dir(dst.parent)

    def freshen(self, digest: str) -> bool:
        """Refresh the object's mtime; True if it exists (then it need not be written).

        The mtime is set *before* the caller relies on the object, in one call that fails if
        the object is gone: `gc` moves a candidate aside and re-checks its mtime before it
        deletes it, so an object freshened here is either kept by gc or, if gc moved it
        first, reported absent here and written again by the caller (issue 8).
        """
        try:
            os.utime(self.path(digest))
        except FileNotFoundError:
            return False
        except PermissionError:  # pragma: no cover (read-only mounts: mtime stays)
            return self.has(digest)
        return True

    def open(self, digest: str) -> BinaryIO:
        """Open an object for reading (not verified; use `copy_out` or `verify`)."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"object {digest[:12]} is missing from the store") from None

    def size(self, digest: str) -> int:
        """Size in bytes of a stored object."""
        return self.path(digest).stat().st_size

    def verify(self, digest: str) -> bool:
        """Re-hash the object; True when its content matches its name."""
        try:
            return hash_file(self.path(digest))[0] == digest
        except FileNotFoundError:
            return False

    def copy_out(
        self,
        digest: str,
        dst: Path,
        progress: Progress | None = None,
        *,
        beneath: Path | None = None,
    ) -> int:
        """Write the object to `dst` atomically, re-hashing it on the way; return its size.

        With `beneath` (a directory `dst` lies under), no link between the two is followed
        (`fsutil.open_beneath`): InvalidInput instead of a write through a link.
        Raises IntegrityError (and leaves `dst` untouched) if the bytes do not match.
        """
        target = (
            open_atomic(dst)
            if beneath is None
            else open_beneath(beneath, dst.relative_to(beneath).as_posix())
        )
        with self.open(digest) as src, target as out:
            got, size = copy_and_hash(src, out.fileno(), progress)
            if got != digest:
                raise IntegrityError(
                    f"object {digest[:12]} is corrupt (content hashes to {got[:12]})"
                )
        return size

    def iter_digests(self) -> Iterator[str]:
        """Every object name present (unverified), in no particular order."""
        if not self.root.is_dir():
            return
        for fan in os.scandir(self.root):
            if fan.is_dir() and len(fan.name) == 2:
                for entry in os.scandir(fan.path):
                    if is_digest(entry.name) and entry.name.startswith(fan.name):
                        yield entry.name


def _try_clone(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in _NO_CLONE_ERRNOS:
            return False
        raise
    return True


def _advise_sequential(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:  # pragma: no cover (advice only)
            pass
