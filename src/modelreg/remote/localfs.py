"""A `file://` remote's operations: plain POSIX calls, no link below its directory followed.

Part of `modelreg.remote.backend` (the `local` kind): a listing leaves links and other
non-regular files out and names them in `skipped`; reads and writes open every directory on
the way with `O_NOFOLLOW` (`fsutil.open_read_beneath`, `open_beneath`), so a link swapped in
after the listing is refused too (issue 15); writes go through a temp file, fsync and
rename; compare-and-swap holds a `filelock` lock on `locks/remote.lock` inside the remote
directory. A remote mirrors the store's layout (`modelreg.layout`): its `locks/` and `tmp/`
hold no data. Storage layer (docs/architecture.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from modelreg import layout
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import TMP_PREFIX, lstat_beneath, open_beneath, open_read_beneath
from modelreg.remote.driver import Entry

__all__ = [
    "IGNORED_TOP",
    "LOCKS",
    "cas_lock",
    "list_files",
    "list_top",
    "open_file",
    "stat_entry",
    "stat_file",
    "write_file",
]

LOCKS = PurePosixPath(layout.LOCK).parent.as_posix()
"""The store's (and so a remote's) lock directory, `locks`."""
IGNORED_TOP = (f"{LOCKS}/", f"{layout.TMP}/")
"""A remote's top directories that hold no data: never listed."""


def stat_entry(st: os.stat_result) -> Entry:
    """The entry of a local file: its size, and a token from its inode, size and mtime."""
    # The inode changes on every rename-over, size and mtime on most rewrites.
    return Entry(st.st_size, f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}")


def list_files(root: Path, prefix: str, skipped: list[str]) -> dict[str, Entry]:
    """Regular files only: links (to files or directories) and FIFOs go to `skipped`."""
    out: dict[str, Entry] = {}
    base = str(root)
    top = os.path.join(base, prefix) if prefix else base
    if prefix:  # the prefix's own directories are below the root: not followed either
        try:
            st = lstat_beneath(root, prefix)
        except InvalidInput:  # a directory on the way is a link
            skipped.append(prefix)
            return out
        if st is None:
            return out
        if not stat.S_ISDIR(st.st_mode):  # the prefix itself is a link or a file
            skipped.append(prefix)
            return out
    for dirpath, dirnames, filenames in os.walk(top):  # never descends into a link
        if dirpath == base:
            dirnames[:] = [d for d in dirnames if d + "/" not in IGNORED_TOP]
        at = dirpath[len(base) + 1 :]
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            if name.startswith(TMP_PREFIX):
                continue
            rel = f"{at}/{name}" if at else name
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # replaced or removed while listing
                continue
            if stat.S_ISREG(st.st_mode):
                out[rel] = stat_entry(st)
            else:
                skipped.append(rel)
    return out


def list_top(root: Path, skipped: list[str]) -> tuple[set[str], dict[str, Entry]]:
    """The root's subdirectories and regular files; its links go to `skipped`."""
    try:
        with os.scandir(root) as it:
            entries = list(it)
    except FileNotFoundError:
        return set(), {}
    dirs = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    skipped += [e.name for e in entries if e.is_symlink()]
    files = {
        e.name: stat_entry(e.stat(follow_symlinks=False))
        for e in entries
        if e.is_file(follow_symlinks=False)
    }
    return dirs, {k: v for k, v in files.items() if not k.startswith(TMP_PREFIX)}


def stat_file(root: Path, rel: str) -> Entry | None:
    """The entry of one regular file, or None (absent, a link, or below a link)."""
    try:
        st = lstat_beneath(root, rel)
    except InvalidInput:  # a directory on the way is a link (or not a directory)
        return None
    return stat_entry(st) if st is not None and stat.S_ISREG(st.st_mode) else None


def open_file(root: Path, rel: str) -> BinaryIO:
    """A file opened for reading, no link below the root followed."""
    return open_read_beneath(root, rel, IntegrityError)


def write_file(root: Path, rel: str, data: bytes, mode: int) -> str:
    """Write a whole file (temp file, fsync, rename; never through a link); its new token."""
    with open_beneath(root, rel, mode) as fh:
        fh.write(data)
    st = lstat_beneath(root, rel)
    assert st is not None
    return stat_entry(st).token


@contextmanager
def cas_lock(root: Path) -> Iterator[None]:
    """Hold the remote's compare-and-swap lock, `locks/remote.lock` in its directory."""
    from modelreg.locking import hold

    lockdir = root / LOCKS
    lockdir.mkdir(parents=True, exist_ok=True)
    with hold(lockdir / "remote.lock"):
        yield
