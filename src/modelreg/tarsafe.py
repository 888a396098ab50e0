"""Reading untrusted tar files in bounded memory (storage layer; bundles and OCI layouts).

tarfile reads a PAX header ('x', 'g', Solaris 'X') or a GNU long name/link ('L', 'K')
wholly into memory, and a GNU sparse map block by block, before it yields the entry: a
1 MiB `.tar.gz` whose first header declared 1 GiB used 2.1 GB (issue 15). `open_tar` opens a
tar with `BoundedTarInfo`, which checks each header's declared size before tarfile reads it.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, Literal

from modelreg.errors import IntegrityError

__all__ = [
    "MAX_ENTRY_HEADERS",
    "MAX_EXTENDED_HEADER",
    "BoundedTarInfo",
    "TarLimit",
    "forget_entries",
    "open_tar",
]

MAX_EXTENDED_HEADER = 1024 * 1024
"""The largest PAX header or GNU long name/link a tar entry may have (1 MiB).

tarfile reads one whole before it yields the entry: its size is checked first. A
bundle's PAX headers are a few hundred bytes; a path is at most 4096 (names.check_path).
"""
MAX_ENTRY_HEADERS = 2 * MAX_EXTENDED_HEADER
"""All the header bytes of one tar entry together (2 MiB): its 512-byte header blocks, a
chain of extended headers, a GNU sparse map's extension blocks or a PAX sparse map."""
_MAX_FIELD = 8192  # a name, link target, user or group name kept (twice the longest path)
_MAX_GLOBAL_RECORDS = 64  # PAX global records in force at once


class TarLimit(IntegrityError):
    """A tar entry's headers are over a bound: refused before tarfile reads them."""


_EXTENDED = {
    tarfile.XHDTYPE: "PAX extended header",
    tarfile.SOLARIS_XHDTYPE: "PAX extended header",
    tarfile.XGLTYPE: "PAX global header",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
}


class _Budget:
    """The tar's file object while one entry's headers are read: at most `left` bytes.

    tarfile reads a header's payload (and a sparse map's blocks) in one `read(n)` call per
    piece: `n` is checked before the read allocates anything.
    """

    def __init__(self, fileobj: Any, offset: int) -> None:
        self.fileobj, self.offset, self.left = fileobj, offset, MAX_ENTRY_HEADERS

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.left:
            raise TarLimit(
                f"tar entry at byte {self.offset:,}: its headers take more than the "
                f"{MAX_ENTRY_HEADERS // (1024 * 1024)} MiB limit"
            )
        self.left -= n
        data: bytes = self.fileobj.read(n)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fileobj, name)


class BoundedTarInfo(tarfile.TarInfo):
    """A `TarInfo` that bounds what tarfile reads into memory for an entry's headers.

    tarfile reads a PAX header ('x', 'g', Solaris 'X') or a GNU long name/link ('L', 'K')
    wholly into memory, and a GNU sparse map block by block, before it yields the entry: a
    1 MiB `.tar.gz` whose first header declared 1 GiB used 2.1 GB. Here each such header's
    declared size is checked against `MAX_EXTENDED_HEADER` as soon as its 512-byte block is
    parsed, and every read made for one entry's headers against `MAX_ENTRY_HEADERS`. What
    the entry keeps is bounded too: names of at most 8192 characters, at most 64 global PAX
    records in force, and no copy of the PAX records (mreg reads none).
    """

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> BoundedTarInfo:
        """Parse one 512-byte header; refuse an extended header over the limit."""
        obj = super().frombuf(buf, encoding, errors)
        what = _EXTENDED.get(obj.type)
        if what is not None and obj.size > MAX_EXTENDED_HEADER:
            raise TarLimit(
                f"tar entry {obj.name!r}: {what} of {obj.size:,} bytes, more than the "
                f"{MAX_EXTENDED_HEADER // (1024 * 1024)} MiB limit"
            )
        return obj

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> BoundedTarInfo:
        """Read the next entry with its headers' reads bounded."""
        fileobj = tar.fileobj
        if isinstance(fileobj, _Budget):  # the entry after an extended header
            return super().fromtarfile(tar)
        tar.fileobj = _Budget(fileobj, tar.offset)
        try:
            obj = super().fromtarfile(tar)
        except (ValueError, IndexError, RecursionError) as exc:
            # tarfile's sparse-map and PAX parsers let these through on malformed input
            raise tarfile.ReadError(f"malformed header ({type(exc).__name__})") from None
        finally:
            tar.fileobj = fileobj
        for field in ("name", "linkname", "uname", "gname"):
            if len(getattr(obj, field)) > _MAX_FIELD:
                raise TarLimit(
                    f"tar entry at byte {obj.offset:,}: its {field} is over {_MAX_FIELD:,} "
                    "characters"
                )
        records = tar.pax_headers  # global records stay in force for the entries after
        if records and (
            len(records) > _MAX_GLOBAL_RECORDS
            or sum(len(k) + len(v) for k, v in records.items()) > MAX_EXTENDED_HEADER
        ):
            raise TarLimit(
                f"tar entry at byte {obj.offset:,}: PAX global records in force are more "
                f"than {_MAX_GLOBAL_RECORDS} or more than 1 MiB"
            )
        obj.pax_headers = {}  # applied already; kept, they would add up entry after entry
        return obj


def open_tar(path: Path, mode: Literal["r|*", "r:*"]) -> tarfile.TarFile:
    """`tarfile.open` for reading untrusted tars: entries' headers are bounded."""
    return tarfile.open(path, mode, tarinfo=BoundedTarInfo)


def forget_entries(tar: tarfile.TarFile) -> None:
    """Drop the entries tarfile keeps in `members` (each entry read is appended there)."""
    tar.members.clear()  # type: ignore[attr-defined]  # undocumented, present since 2.x
