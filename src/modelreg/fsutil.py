"""Filesystem primitives that keep the store valid across crashes.

Every file in the store is written by `atomic_write` (or `AtomicFile`): the bytes go to a
uniquely named temp file in the destination's directory, are fsynced, renamed over the final
name with `os.replace`, and the directory is fsynced. A reader therefore sees either the old
file or the whole new one, never a torn one; a crash leaves at most a `.tmp-*` file behind,
which `mreg fsck --repair` sweeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import InvalidInput

__all__ = [
    "TMP_PREFIX",
    "atomic_write",
    "fsync_dir",
    "open_atomic",
    "safe_join",
    "tmp_name",
]

TMP_PREFIX = ".tmp-"


def tmp_name(final_name: str = "") -> str:
    """A unique temp file name (pid + random) that `fsck --repair` recognises by its prefix."""
    return f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}-{final_name}"[:200]


def fsync_dir(path: Path) -> None:
    """Fsync a directory so that a rename or creation inside it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover (platforms that cannot open directories)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover (some filesystems refuse fsync on directories)
        pass
    finally:
        os.close(fd)


@contextmanager
def open_atomic(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temp file that replaces `path` atomically when the block exits without error.

    On an exception the temp file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / tmp_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` through temp file, fsync and rename (see module docstring)."""
    with open_atomic(path, mode) as fh:
        fh.write(data)


def safe_join(root: Path, relpath: str) -> Path:
    """Join a relative POSIX path under `root`, refusing anything that could escape it.

    Refuses absolute paths, `..` and `.` segments, empty segments, backslashes, NUL and
    control characters. The result is lexically inside `root`.
    """
    if not relpath or relpath.startswith("/") or "\\" in relpath:
        raise InvalidInput(f"unsafe path {relpath!r}: must be a relative POSIX path")
    if any(ord(c) < 32 or c == "\x7f" for c in relpath):
        raise InvalidInput(f"unsafe path {relpath!r}: control characters are not allowed")
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"unsafe path {relpath!r}: empty, '.' or '..' segment")
    return root.joinpath(*parts)
