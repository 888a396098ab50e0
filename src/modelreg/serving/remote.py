"""A router following a rollout on a remote store (s3://, file://...) through a local cache.

`Router.open(name, store="s3://bucket/registry", options={...})` watches the model's rollout
manifest and production alias on the remote: a check is two metadata requests (HEAD on S3,
`stat` on `file://`), and the files are read only when their token (ETag, inode+size+mtime)
changed. Each routed version's manifest is read once and must hash to the id the rollout
recorded; its objects go through `modelreg.remote.Remote`'s cache, hashed as they are
downloaded and kept only if they match, then are materialised as from a local store.

When the remote is unreachable, or serves a missing, damaged or unverifiable file, the check
fails like a bad local file (issue 8): the last good configuration stays in force, served
from the cache with no network access, the failure is logged once and counted in
`stats()` and Prometheus, and the next check retries. Opening a router needs the remote
(there is no configuration to fall back on yet).

Imported only when `Router.open` is given a URL: it loads fsspec and the remote's driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.names import check_name
from modelreg.serving.reload import (
    PRODUCTION,
    FileSpec,
    Signature,
    Source,
    materialize,
    parse_version_files,
    version_rel,
)

__all__ = ["RemoteSource"]


class RemoteSource(Source):
    """The two files a router watches, on a remote; objects through a local cache."""

    def __init__(
        self,
        url: str,
        name: str,
        options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from modelreg.remote.cache import Remote, default_cache_dir

        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.remote = Remote(url, dict(options or {}), cache_dir=root)
        self.name = check_name(name)
        self.root = root  # local: objects/ and tmp/ (the Remote cache), versions/, metrics/
        self._rollout_rel = layout.rel_release(name)
        self._alias_rel = layout.rel_alias(name, PRODUCTION)

    @property
    def rollout_where(self) -> str:
        """The rollout manifest's URL, for messages."""
        return f"{self.remote.url}/{self._rollout_rel}"

    @property
    def alias_where(self) -> str:
        """The production alias's URL, for messages."""
        return f"{self.remote.url}/{self._alias_rel}"

    @property
    def cache_dir(self) -> Path:
        """Versions are materialised in `<cache>/versions/<manifest id>/`."""
        return self.root / "versions"

    def _get(self, rel: str) -> bytes | None:
        backend = self.remote.backend
        with backend.errors():
            return backend.read(rel)

    def signature(self) -> Signature:
        """The tokens of both files (two metadata requests); RemoteError when unreachable."""
        backend = self.remote.backend
        with backend.errors():
            entries = (backend.stat(self._rollout_rel), backend.stat(self._alias_rel))
        return tuple(None if e is None else (e.size, e.token) for e in entries)

    def read(self) -> tuple[bytes | None, bytes | None]:
        """The bytes of the rollout manifest and of the production alias (None: missing)."""
        return self._get(self._rollout_rel), self._get(self._alias_rel)

    def read_production(self) -> bytes | None:
        """The bytes of the production alias alone (None: missing)."""
        return self._get(self._alias_rel)

    def has_rollout(self) -> bool:
        """True when the remote has a rollout manifest for the model."""
        backend = self.remote.backend
        with backend.errors():
            return backend.stat(self._rollout_rel) is not None

    def files(self, name: str, version: str, digest: str) -> tuple[FileSpec, ...]:
        """The files of a version, from its remote manifest, which must hash to `digest`."""
        rel = version_rel(name, version)
        return parse_version_files(
            self._get(rel), f"{self.remote.url}/{rel}", name, version, digest
        )

    def signatures(self, name: str, version: str) -> list[bytes]:
        """The bytes of the version's OMS signature files on the remote (each bounded)."""
        from modelreg import oms

        backend = self.remote.backend
        where = layout.rel_signatures(name, version)
        with backend.errors():
            rels = [r for r in backend.list(where) if r.endswith(layout.SIGNATURE_SUFFIX)]
            found = [backend.read(r, limit=oms.MAX_BYTES) for r in sorted(rels)]
        return [b for b in found if b is not None]

    def prepare(self, cache_dir: Path, digest: str, files: tuple[FileSpec, ...]) -> Path:
        """Download the objects into the cache (verified), then materialise the version."""
        for f in files:
            self.remote.object_path(f.sha256, f.size)
        return materialize(self.root, cache_dir, digest, files)
