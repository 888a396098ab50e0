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

__all__ = ["DEFAULT_TIMEOUT", "StoreLock", "hold"]

DEFAULT_TIMEOUT = 60.0


def _timeout() -> float:
    try:
        return float(os.environ.get("MREG_LOCK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


class StoreLock:
    """A re-entrant exclusive lock on one file: nested `hold()`s in one process nest freely.

    One object per store and path: two separate flock()s on the same file from one process
    would deadlock, so operations that call each other (a release promote calling the alias
    promote) must share this object.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: object | None = None

    @contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock for the block; raise LockTimeout after `timeout` seconds."""
        import filelock  # lazy: ~20 ms of imports that read-only commands never need

        if self._lock is None:
            self._lock = filelock.FileLock(str(self.path))
        lock: filelock.BaseFileLock = self._lock  # type: ignore[assignment]
        wait = _timeout() if timeout is None else timeout
        try:
            lock.acquire(timeout=wait)
        except filelock.Timeout:
            raise LockTimeout(
                f"another mreg process has held {self.path} for more than {wait:g}s; retry, "
                "or raise MREG_LOCK_TIMEOUT"
            ) from None
        try:
            yield
        finally:
            lock.release()


@contextmanager
def hold(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock at `path` for the block (a one-off `StoreLock`)."""
    with StoreLock(path).hold(timeout):
        yield
