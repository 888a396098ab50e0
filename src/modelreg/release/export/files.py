"""Write an export where it is applied: one YAML file, or the nginx-njs directory.

Each file is written atomically (temp file, fsync, rename) and only when its content
changed, so a config reloader or a GitOps commit sees each change once; a symbolic link in
the way is replaced, never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.errors import InvalidInput
from modelreg.fsutil import atomic_write

if TYPE_CHECKING:
    from modelreg.release.export.plan import Export

__all__ = ["write"]


def _holds(path: Path, data: bytes) -> bool:
    """True when `path` is a regular file (not a link) holding exactly `data`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link: replaced by the write, never followed
            return False
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise InvalidInput(f"{path}: not a regular file")
        return fh.read(len(data) + 1) == data


def write(result: Export, output: Path) -> bool:
    """Write the export to `output` (atomically) unless it holds it already; True if written.

    A YAML format is one file; a format written as a directory (`nginx-njs`) writes each of
    its files into `output` (created if missing), each atomically, in the export's order.
    """
    if not result.files:
        data = result.yaml()
        if _holds(output, data):
            return False
        atomic_write(output, data)
        return True
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise InvalidInput(f"{output}: not a directory (nginx-njs writes a directory)")
    output.mkdir(parents=True, exist_ok=True)
    changed = False
    for name, data in result.files:
        if not _holds(output / name, data):
            atomic_write(output / name, data)
            changed = True
    return changed
