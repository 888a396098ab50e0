"""What a serving process does for its recorders: flush at exit, reset in a forked worker.

Serving layer (docs/architecture.md). Every live recorder (`serving.metrics.Metrics`) is
registered here: at interpreter exit each is closed (its last counts flushed), and in a
child forked by a pre-forking server (gunicorn --preload, uWSGI) each forgets the counts
its parent will flush. `append` writes to a file that belongs to this process alone.
"""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Protocol

__all__ = ["Live", "append", "register", "unregister"]


class Live(Protocol):
    """A recorder as this module handles it."""

    def close(self) -> None:
        """Flush what is left and stop."""

    def _forked(self) -> None:
        """In a forked child: count from zero (the parent flushes what it recorded)."""


_LIVE: weakref.WeakSet[Live] = weakref.WeakSet()


def register(recorder: Live) -> None:
    """Close `recorder` at interpreter exit, reset it in a forked child (weakly held)."""
    _LIVE.add(recorder)


def unregister(recorder: Live) -> None:
    """Forget `recorder` (it was closed)."""
    _LIVE.discard(recorder)


@atexit.register
def _flush_all() -> None:  # pragma: no cover (runs at interpreter exit; tested in a subprocess)
    for m in list(_LIVE):
        m.close()


def _after_fork_in_child() -> None:
    for m in list(_LIVE):
        m._forked()


# A pre-forking server (gunicorn --preload, uWSGI) forks workers from a process that may have
# recorded requests: each worker must not flush the parent's unflushed counts a second time.
os.register_at_fork(after_in_child=_after_fork_in_child)


def append(path: Path, text: str) -> None:
    """Append to this process's own file (O_APPEND; one write per flush)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = text.encode()
        while data:
            n = os.write(fd, data)
            data = data[n:]
    finally:
        os.close(fd)
