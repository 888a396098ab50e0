"""A version's signature files (issue 19): where they are and what they say. Storage layer.

`models/NAME/signatures/V/<sha256>.sig` (`modelreg.layout`), each an OMS signature read by
`modelreg.oms`, named by the SHA-256 of its bytes and never changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelreg import layout, oms
from modelreg.errors import IntegrityError, InvalidInput

__all__ = ["read_signature", "read_signatures"]


def read_signatures(root: Path, name: str, version: str) -> list[tuple[oms.Signature, Path]]:
    """A version's signatures, parsed, by name (IntegrityError for a file that is not one)."""
    where = layout.signatures_dir(root, name, version)
    try:
        names = sorted(n for n in os.listdir(where) if n.endswith(layout.SIGNATURE_SUFFIX))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [(read_signature(where / n, str(where / n)), where / n) for n in names]


def read_signature(path: Path, source: str) -> oms.Signature:
    """One signature file, parsed (IntegrityError naming `source` when it is not one).

    A regular file (never a link), at most `oms.MAX_BYTES`, named by its own digest.
    """
    if path.is_symlink() or not path.is_file():
        raise IntegrityError(f"{source}: not a regular file")
    with open(path, "rb") as fh:
        data = fh.read(oms.MAX_BYTES + 1)
    try:
        sig = oms.parse(data, source)
    except InvalidInput as exc:
        raise IntegrityError(str(exc)) from None
    if sig.digest + layout.SIGNATURE_SUFFIX != path.name:
        raise IntegrityError(f"{source}: its content is not its name (damaged)")
    return sig
