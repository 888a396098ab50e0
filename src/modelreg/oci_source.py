"""Where `mreg unpack` reads an OCI image layout from: a directory, or a tar of one.

Nothing in it is trusted (see `modelreg.oci`). A directory is read with `openat` and
`O_NOFOLLOW` from the directory the caller named: a link, FIFO or device inside it is refused
before it is opened. A tar's entries are checked as a bundle's are (names, links, devices,
repeats) before a byte is read, its headers are bounded (`tarsafe.open_tar`), and what is
kept of its entries (names, sparse maps) is at most 16 MiB. Base layer
(docs/architecture.md): it reads the files it is named and knows nothing of a store.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import IO, NoReturn

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import safe_join
from modelreg.tarsafe import TarLimit, forget_entries, open_tar
from modelreg.yamlio import MAX_BYTES

__all__ = ["DirSource", "Missing", "Source", "TarSource", "damage"]

MAX_KEPT = MAX_BYTES
"""The most a tar's kept entries (names, sparse maps) may take (16 MiB, as `oci.MAX_DOC`)."""
_MAX_TAR_ENTRIES = 100_000
_SPARSE_REGION = 128  # bytes of memory one region of a kept entry's sparse map takes


class Missing(IntegrityError):
    """A file the layout must hold is not there (the layout is incomplete)."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "directory" if stat.S_ISDIR(mode) else "device or special file"


class Source:
    """Where a layout's files are read from: a directory, or a tar of one."""

    where: str

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open the layout's regular file `rel`: (stream, size); Missing when it is absent."""
        raise NotImplementedError

    def position(self, rel: str) -> int:
        """Where `rel`'s bytes start in the source, to read a tar front to back."""
        return 0

    def close(self) -> None:
        """Release what the source holds open."""


class DirSource(Source):
    """A layout directory, read with `openat` and `O_NOFOLLOW` from the directory named.

    The directory the caller named is followed if it is a link (the user named it, as for
    `register`); inside it, `blobs/`, `blobs/sha256/` and every file read must be a real
    directory or regular file: a link, FIFO or device is refused before it is opened.
    """

    def __init__(self, root: Path) -> None:
        self.where = str(root)
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidInput(f"{root}: cannot read ({exc.strerror})") from None
        self._dirs = {"": fd}

    def _refuse(self, rel: str, mode: int, *, directory: bool) -> NoReturn:
        want = "directory" if directory else "regular file"
        raise InvalidInput(
            f"{self.where}/{rel} is a {_kind(mode)}, not a {want}: refused (nothing in an OCI "
            "layout is followed)"
        )

    def _open_at(self, dir_fd: int, name: str, rel: str, *, directory: bool) -> int:
        wanted = stat.S_ISDIR if directory else stat.S_ISREG
        try:
            mode = os.lstat(name, dir_fd=dir_fd).st_mode
        except FileNotFoundError:
            raise Missing(f"{self.where}/{rel} is missing: the OCI layout is incomplete") from None
        except OSError as exc:
            raise InvalidInput(f"{self.where}/{rel}: cannot read ({exc.strerror})") from None
        if not wanted(mode):
            self._refuse(rel, mode, directory=directory)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags | (os.O_DIRECTORY if directory else 0), dir_fd=dir_fd)
        except OSError as exc:  # replaced since the lstat: a link now, or gone
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                self._refuse(rel, stat.S_IFLNK, directory=directory)
            raise InvalidInput(f"{self.where}/{rel}: cannot read ({exc.strerror})") from None
        mode = os.fstat(fd).st_mode
        if not wanted(mode):
            os.close(fd)
            self._refuse(rel, mode, directory=directory)
        return fd

    def _dir(self, rel: str) -> int:
        if rel not in self._dirs:
            parent, _, name = rel.rpartition("/")
            self._dirs[rel] = self._open_at(self._dir(parent), name, rel, directory=True)
        return self._dirs[rel]

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open `rel` without following links; refuse anything but a regular file."""
        parent, _, name = rel.rpartition("/")
        fd = self._open_at(self._dir(parent), name, rel, directory=False)
        return os.fdopen(fd, "rb"), os.fstat(fd).st_size

    def close(self) -> None:
        """Close the directories opened."""
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()


def _tar_name(name: str) -> str:
    """A tar entry's name without `./` prefixes or a trailing `/` ('' for the root)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


class TarSource(Source):
    """A tar (plain or compressed) of a layout, at its root or in one top directory.

    Every entry is checked before any byte is read, as a bundle's are: a name that is
    absolute, holds `..` or control characters, a link, a device, a FIFO, or a name that
    appears twice is refused. Entries outside the layout are never read.
    """

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            self._tar = open_tar(path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(f"{path}: not a tar file ({exc})") from None
        try:
            self._entries = self._scan()
        except BaseException:
            self._tar.close()
            raise

    def _scan(self) -> dict[str, tarfile.TarInfo]:
        found: dict[str, tarfile.TarInfo] = {}
        count = kept = 0
        while (member := self._next()) is not None:
            count += 1
            if count > _MAX_TAR_ENTRIES:
                raise InvalidInput(f"{self.where}: more than {_MAX_TAR_ENTRIES:,} entries: refused")
            forget_entries(self._tar)  # only `found` is kept
            name = _tar_name(member.name)
            if not name:
                continue
            safe_join(Path("/"), name)  # absolute, '..', control characters: InvalidInput
            if member.isdir():
                continue
            if not member.isreg():
                kind = "link" if member.issym() or member.islnk() else "device or special file"
                raise InvalidInput(
                    f"{self.where}: entry {member.name!r} is a {kind}: only regular files allowed"
                )
            if name in found:
                raise InvalidInput(f"{self.where}: entry {member.name!r} appears twice: refused")
            kept += len(member.name) + _SPARSE_REGION * len(member.sparse or ())
            if kept > MAX_KEPT:
                raise IntegrityError(
                    f"{self.where}: its entries' names and sparse maps are over "
                    f"{MAX_KEPT // (1024 * 1024)} MiB: refused"
                )
            found[name] = member
        roots = sorted(
            n[: -len("oci-layout")]
            for n in found
            if n.count("/") <= 1 and n.rpartition("/")[2] == "oci-layout"
        )
        if not roots:
            raise IntegrityError(
                f"{self.where}: neither an mreg bundle (its first entries would be "
                "mreg-bundle.yaml, manifest.yaml) nor an OCI image layout (no oci-layout entry)"
            )
        if len(roots) > 1:
            raise InvalidInput(f"{self.where}: holds {len(roots)} OCI layouts: one per tar")
        prefix = roots[0]
        return {n[len(prefix) :]: m for n, m in found.items() if n.startswith(prefix)}

    def _next(self) -> tarfile.TarInfo | None:
        try:
            return self._tar.next()
        except TarLimit as exc:
            raise IntegrityError(f"{self.where}: {exc}") from None

    def open(self, rel: str) -> tuple[IO[bytes], int]:
        """Open the entry `rel` of the layout."""
        member = self._entries.get(rel)
        if member is None:
            raise Missing(f"{self.where}: {rel} is missing: the OCI layout is incomplete")
        fh = self._tar.extractfile(member)
        assert fh is not None  # a regular file always has a file object
        return fh, member.size

    def position(self, rel: str) -> int:
        """The offset of the entry's data in the tar."""
        member = self._entries.get(rel)
        return 0 if member is None else member.offset_data

    def close(self) -> None:
        """Close the tar."""
        self._tar.close()


def damage() -> tuple[type[BaseException], ...]:
    """What reading a damaged tar raises (tarfile, and the decompressors under it)."""
    import gzip
    import zlib

    errors: list[type[BaseException]] = [tarfile.TarError, EOFError, zlib.error]
    errors.append(gzip.BadGzipFile)
    try:
        import lzma

        errors.append(lzma.LZMAError)
    except ImportError:  # pragma: no cover (Python built without lzma)
        pass
    return tuple(errors)
