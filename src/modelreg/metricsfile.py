"""Where and how routers' metrics files are laid out: the one spelling of their format.

Model layer (docs/architecture.md). Each serving process appends the change since its
previous flush, one JSON line per decision group, to a file of its own::

    .modelreg/metrics/NAME/<release>/<host>-<pid>-<token>-<segment>.jsonl

A segment is `SEGMENT_S` seconds of wall time; a sealed segment (its time is over) can be
compacted into one file by the analysis. `serving.metrics` writes these files,
`analysis.sources` reads and compacts them; both take their paths from here.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelreg import layout

__all__ = ["FORMAT", "SEGMENT_S", "metrics_dir", "process_name", "segment_file", "segment_of"]

FORMAT = 1
"""The `v` of every line."""
SEGMENT_S = 600
"""Seconds of wall time per file of one process (then a new file is started)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def metrics_dir(root: Path, name: str, release: int) -> Path:
    """`metrics/NAME/<release>/` under the store root `root`."""
    return layout.metrics_dir(root, name) / str(release)


def segment_of(wall: float) -> int:
    """The segment a wall-clock time (seconds since the epoch) falls in."""
    return int(wall // SEGMENT_S)


def process_name(host: str, pid: int, token: str) -> str:
    """The per-process part of a file name: the host made safe (64 characters at most)."""
    return f"{_UNSAFE.sub('_', host)[:64]}-{pid}-{token}"


def segment_file(directory: Path, process: str, segment: int) -> Path:
    """The file one process appends to during one segment."""
    return directory / f"{process}-{segment}.jsonl"
