"""Serving only signed versions (issue 19): `Router.open(..., trusted_keys=[...])`.

When a router is given trusted public keys, a version is served only if one of its OMS
signatures made with one of them holds for the files the router materialised (verified by
`model_signing`, once per version, when the version is first routed to). A version that
fails raises IntegrityError in the reload, so the router keeps its last good configuration,
as for any unusable file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from modelreg.signatures import TrustedKey

__all__ = ["load_trusted", "require_signature"]


def load_trusted(specs: Sequence[str], materialize: bool) -> list[TrustedKey]:
    """The trusted keys (`NAME=PEM` or `PEM`), loaded at once; [] when none are given."""
    if not specs:
        return []
    if not materialize:
        raise InvalidInput("trusted_keys needs the files: materialize must be True")
    from modelreg.signatures import trusted_keys

    return trusted_keys(specs)


def require_signature(
    source: Any, trusted: Sequence[TrustedKey], name: str, version: str, path: Path
) -> None:
    """Refuse (IntegrityError) a version without a trusted signature that holds for `path`."""
    from modelreg import oms
    from modelreg.signatures import judge

    why = "it has no signature by a trusted key"
    for blob in source.signatures(name, version):
        try:
            sig = oms.parse(blob, "signature")
        except InvalidInput:
            continue
        with tempfile.NamedTemporaryFile(suffix=".sig") as fh:
            fh.write(blob)
            fh.flush()
            status, signer, detail = judge(path, sig, Path(fh.name), trusted)
        if status == "valid":
            return
        if status == "invalid":
            why = f"its signature by {signer} does not hold ({detail})"
    raise IntegrityError(f"{name}@{version} is not served: {why}")
