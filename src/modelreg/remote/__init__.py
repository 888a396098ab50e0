"""Remotes: mirror a store to any fsspec URL, and read one straight from serving code.

- `config`: remotes kept in `config.yaml` (never secrets); `RemoteRegistry`.
- `backend`: an fsspec URL as a filesystem, conditional writes, missing-driver errors.
- `transfer`: parallel, bounded-memory, verified object transfers.
- `sync` / `status`: `push`, `pull`, `fetch`, `status` (one listing, only what is missing).
- `cache`: `Remote`, a read-only store over a URL with a local read-through cache.
- `record`: the audit entries of push, pull, gc and fsck --repair (no credential in them).

Importing this package is cheap: fsspec and the drivers load when a remote is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Remote", "RemoteSpec"]

if TYPE_CHECKING:
    from modelreg.remote.cache import Remote
    from modelreg.remote.spec import RemoteSpec


def __getattr__(name: str) -> Any:
    if name == "Remote":
        from modelreg.remote.cache import Remote

        return Remote
    if name == "RemoteSpec":
        from modelreg.remote.spec import RemoteSpec

        return RemoteSpec
    raise AttributeError(f"module 'modelreg.remote' has no attribute {name!r}")
