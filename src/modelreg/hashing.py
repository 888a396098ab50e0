"""SHA-256 digests: validation, and hashing while copying in one streaming pass.

`copy_and_hash` reads the source once in 1 MiB chunks into a small ring of reusable buffers,
hashes each chunk in the calling thread and hands it to a writer thread, so reading+hashing
and writing overlap (both release the GIL) while memory stays bounded by the ring
(4 MiB by default) whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from modelreg.errors import InvalidInput

__all__ = [
    "CHUNK_SIZE",
    "Progress",
    "check_digest",
    "copy_and_hash",
    "hash_bytes",
    "hash_file",
    "hash_stream",
    "is_digest",
    "short",
]

CHUNK_SIZE = 1 << 20
RING_BUFFERS = 4
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int], None]
"""A callback told how many more bytes were processed."""


def is_digest(value: object) -> bool:
    """True when `value` is a lowercase hex SHA-256 digest (64 characters)."""
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def check_digest(value: object) -> str:
    """Return `value` if it is a valid digest, else raise InvalidInput (before any path use)."""
    if not is_digest(value):
        raise InvalidInput(f"invalid sha256 digest {value!r}")
    return value  # type: ignore[return-value]


def short(digest: str, length: int = 12) -> str:
    """The short form of a digest shown to people, like a short git commit id."""
    return digest[:length]


def hash_bytes(data: bytes) -> str:
    """SHA-256 hex digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def hash_stream(src: IO[bytes], progress: Progress | None = None) -> tuple[str, int]:
    """Hash an open binary stream to its end in one bounded-memory pass; (digest, size)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    size = 0
    while n := src.readinto(buf):  # type: ignore[attr-defined]
        h.update(view[:n])
        size += n
        if progress is not None:
            progress(n)
    return h.hexdigest(), size


def hash_file(path: Path, progress: Progress | None = None) -> tuple[str, int]:
    """Hash a file in one bounded-memory pass; return (digest, size)."""
    with open(path, "rb", buffering=0) as fh:
        return hash_stream(fh, progress)


_FLUSH_BEHIND_BYTES = 8 * CHUNK_SIZE
_sync_file_range: Callable[[int, int, int], None] | bool | None = False


def _flush_behind() -> Callable[[int, int, int], None] | None:
    """Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`: start writeback without waiting."""
    global _sync_file_range
    if _sync_file_range is False:
        _sync_file_range = None
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            except (OSError, AttributeError):  # pragma: no cover (libc without it)
                return None
            fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]

            def start_writeback(fd: int, offset: int, nbytes: int) -> None:
                fn(fd, offset, nbytes, 2)  # 2 = SYNC_FILE_RANGE_WRITE; errors are harmless

            _sync_file_range = start_writeback
    return _sync_file_range  # type: ignore[return-value]


def copy_and_hash(
    src: BinaryIO, dst_fd: int, progress: Progress | None = None, *, durable: bool = True
) -> tuple[str, int]:
    """Copy `src` to the open file descriptor `dst_fd` while hashing; return (digest, size).

    The writer runs in a second thread and at most `RING_BUFFERS` chunks are in flight.
    An error on either side stops both and is re-raised here. With `durable` (the caller
    will fsync), the writer asks the kernel to start writing back every 8 MiB as it goes,
    so the final fsync waits for the tail only instead of the whole file.
    """
    flush = _flush_behind() if durable else None
    h = hashlib.sha256()
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
    for _ in range(RING_BUFFERS):
        free.put(bytearray(CHUNK_SIZE))
    errors: list[BaseException] = []

    def writer() -> None:
        written = flushed = 0
        while (item := full.get()) is not None:
            buf, n = item
            if not errors:
                try:
                    view = memoryview(buf)[:n]
                    while view:
                        view = view[os.write(dst_fd, view) :]
                    written += n
                    if flush is not None and written - flushed >= _FLUSH_BEHIND_BYTES:
                        flush(dst_fd, flushed, written - flushed)
                        flushed = written
                except OSError as exc:
                    errors.append(exc)
            free.put(buf)

    thread = threading.Thread(target=writer, name="mreg-copy-writer", daemon=True)
    thread.start()
    size = 0
    try:
        while not errors:
            buf = free.get()
            n = src.readinto(buf)  # type: ignore[attr-defined]
            if not n:
                free.put(buf)
                break
            h.update(memoryview(buf)[:n])
            size += n
            full.put((buf, n))
            if progress is not None:
                progress(n)
    finally:
        full.put(None)
        thread.join()
    if errors:
        raise errors[0]
    return h.hexdigest(), size
