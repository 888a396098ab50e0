"""Filesystem primitives that keep the store valid across crashes.

Every file in the store is written by `atomic_write` (or `AtomicFile`): the bytes go to a
uniquely named temp file in the destination's directory, are fsynced, renamed over the final
name with `os.replace`, and the directory is fsynced. A reader therefore sees either the old
file or the whole new one, never a torn one; a crash leaves at most a `.tmp-*` file behind,
which `mreg fsck --repair` sweeps.

Files written *outside* the store, under a directory the user named (`mreg get -o DIR`,
`mreg pack --format oci DIR`), go through `open_beneath` (issue 15): the directory named is
followed if it is a link (the user named it), but below it every directory is opened with
`openat` and `O_NOFOLLOW`, so a link inside it that leads elsewhere (`out/sub -> /etc`) is
refused instead of written through, even if it appears while the files are written.
Files read from below a directory that someone else controls (a `file://` remote) go through
`open_read_beneath`, which follows no link below that directory either.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import InvalidInput, MregError
from modelreg.names import check_path

__all__ = [
    "TMP_PREFIX",
    "atomic_write",
    "fsync_dir",
    "lstat_beneath",
    "open_atomic",
    "open_beneath",
    "open_read_beneath",
    "read_bounded",
    "read_regular",
    "safe_join",
    "tmp_name",
]

TMP_PREFIX = ".tmp-"


def read_bounded(path: Path, limit: int, label: str = "") -> bytes:
    """A user's input file, at most `limit` + 1 bytes of it (the caller judges the size).

    A missing file raises NotFound, a directory or an unreadable file InvalidInput; each
    message starts with `label` (e.g. `--requirements `) and the path.
    """
    from modelreg.errors import NotFound

    try:
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{label}{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{label}{path}: is a directory") from None
    except OSError as exc:
        raise InvalidInput(f"{label}{path}: cannot read ({exc.strerror})") from None


def read_regular(
    path: Path, limit: int, error: type[MregError], *, directory: str = ""
) -> bytes | None:
    """At most `limit` + 1 bytes of a regular file mreg reads repeatedly (None: missing).

    Opened without blocking, so a FIFO put in its place cannot hang the reader; anything
    but a regular file, and any read error, raises `error` naming the path. `directory`
    words the refusal of a directory (`a directory, not DIRECTORY`), else "not a regular
    file". A dangling link is missing, as `open` sees it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if directory and stat.S_ISDIR(mode):
            raise error(f"{path}: a directory, not {directory}")
        if not stat.S_ISREG(mode):
            raise error(f"{path}: not a regular file")
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)


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

    The path is checked by `names.check_path` (the one path validator): absolute paths,
    `..` and `.` segments, empty segments, backslashes, NUL and control characters, invalid
    UTF-8 and over-long names are refused. The result is lexically inside `root`; that no
    link below `root` leads elsewhere is `open_beneath`'s job.
    """
    check_path(relpath, reserved=())
    return root.joinpath(*relpath.split("/"))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _not_followed(
    where: Path, dir_fd: int, name: str, exc: OSError, error: type[MregError] = InvalidInput
) -> MregError:
    """The error for a component that could not be opened as a directory without following."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        verb = "write" if error is InvalidInput else "read"
        return error(
            f"{where} is a symbolic link: refusing to {verb} through it (links below the "
            "directory mreg works in are never followed)"
        )
    if mode and not stat.S_ISDIR(mode):
        return error(f"{where} exists and is not a directory")
    return error(f"{where}: cannot open ({exc.strerror})")


def _open_dirs(
    root: Path, parts: list[str], *, create: bool, error: type[MregError] = InvalidInput
) -> int | None:
    """A descriptor of `root/parts...`, no component below `root` followed; None if absent.

    `root` itself is followed (the user named it) and created when `create`; so are missing
    directories below it. A component that is a link or not a directory: `error`.
    """
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file, or a dangling link, in its place
            raise InvalidInput(f"{root}: cannot create the directory ({exc.strerror})") from None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:  # pragma: no cover (removed just after it was made)
            raise InvalidInput(f"{root}: vanished while it was written") from None
        return None
    except OSError as exc:
        raise InvalidInput(f"{root}: cannot open as a directory ({exc.strerror})") from None
    where = root
    try:
        for name in parts:
            where = where / name
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:  # made meanwhile: opened (and checked) below
                    pass
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _not_followed(where, fd, name, exc, error) from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.EPERM):
                    raise _not_followed(where, fd, name, exc, error) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_beneath(root: Path, relpath: str) -> os.stat_result | None:
    """`lstat` of `root/relpath` without following any link below `root`; None when absent.

    Raises:
        InvalidInput: `relpath` is unsafe (see `safe_join`), or a directory on the way is a
            symbolic link or not a directory.
    """
    parts = safe_join(Path("."), relpath).parts
    fd = _open_dirs(root, list(parts[:-1]), create=False)
    if fd is None:
        return None
    try:
        return os.lstat(parts[-1], dir_fd=fd)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


@contextmanager
def open_beneath(root: Path, relpath: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """`open_atomic` for `root/relpath`, never following a link below `root` (issue 15).

    Missing directories are created; a directory on the way that is a symbolic link (to
    anywhere) or not a directory is refused with InvalidInput before anything is written.
    The temp file is made in the real directory and renamed over the last component, so a
    link in its place is replaced by the file, never written through.
    """
    parts = safe_join(Path("."), relpath).parts
    dir_fd = _open_dirs(root, list(parts[:-1]), create=True)
    assert dir_fd is not None  # created
    try:
        tmp = tmp_name(parts[-1])
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
                os.fchmod(fh.fileno(), mode)
            os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover (some filesystems refuse fsync on directories)
            pass
    finally:
        os.close(dir_fd)


def open_read_beneath(root: Path, relpath: str, error: type[MregError] = InvalidInput) -> BinaryIO:
    """Open `root/relpath` for reading, never following a link below `root` (issue 15).

    For trees someone else writes (a `file://` remote): a directory on the way or the file
    itself that is a symbolic link, a file that is not a regular file (a FIFO would block
    forever, a device could be anything), or an unsafe `relpath` raise `error`; a missing
    file raises FileNotFoundError, as `open` does.
    """
    try:
        parts = safe_join(Path("."), relpath).parts
    except InvalidInput as exc:
        raise error(str(exc)) from None
    dir_fd = _open_dirs(root, list(parts[:-1]), create=False, error=error)
    if dir_fd is None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(root / relpath))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        try:
            fd = os.open(parts[-1], flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise error(
                    f"{root / relpath} is a symbolic link: refusing to read through it (links "
                    "below the directory mreg works in are never followed)"
                ) from None
            raise
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{root / relpath} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
