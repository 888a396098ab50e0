"""Inter-process locks over the `filelock` package (released by the OS if a process dies).

One store-wide write lock serializes every read-modify-write of manifests, refs, state and
the audit log. Readers take no lock: files are replaced atomically and objects never change.
Copying artifacts into `objects/` happens outside the lock, since objects are immutable and
named by their content.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelreg.errors import LockTimeout

__all__ = ["DEFAULT_TIMEOUT", "hold"]

DEFAULT_TIMEOUT = 60.0


def _timeout() -> float:
    try:
        return float(os.environ.get("MREG_LOCK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


@contextmanager
def hold(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock at `path` for the block; raise LockTimeout after `timeout` s."""
    import filelock  # lazy: ~20 ms of imports that read-only commands never need

    wait = _timeout() if timeout is None else timeout
    lock = filelock.FileLock(str(path), timeout=wait)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockTimeout(
            f"another mreg process has held {path} for more than {wait:g}s; retry, or raise "
            "MREG_LOCK_TIMEOUT"
        ) from None
    try:
        yield
    finally:
        lock.release()
