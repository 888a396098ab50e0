"""What the web view reads: a local store or a remote, behind one read-only interface.

`LocalView` reads a `Store` through the library (`catalog`, `refs`, `release.ops`, the
audit log, the metrics files); `RemoteView` (`ui.remoteview`) reads the same documents from
a remote (`modelreg.remote.Remote`) and parses them with the same classes. Neither ever
writes to the store: the web view is read-only by construction, because their interface,
`View` (`ui.viewbase`), has no method that writes.

Every name and version is checked (`names.py`) before any path is built from it, and a
file is only ever located through a manifest entry's digest, so no URL can name a path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from modelreg import layout
from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.hashing import check_digest, hash_bytes
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.metricsfile import decode_lines, metrics_dir
from modelreg.names import Version, check_name
from modelreg.refs import AliasRef
from modelreg.release.rollout import Rollout
from modelreg.ui.remoteview import RemoteView, open_remote
from modelreg.ui.viewbase import (
    AuditReport,
    View,
    check_version,
    failure_reason,
    merge_files,
    one_line,
)

if TYPE_CHECKING:
    from modelreg.listing import VersionPage
    from modelreg.store import Store

__all__ = ["AuditReport", "LocalView", "RemoteView", "View", "check_version", "open_remote"]
__all__ += ["failure_reason", "one_line"]  # used by ui.app; importable from here as before

T = TypeVar("T")
MAX_CACHED = 50_000
"""Parsed files a `LocalView` keeps at most (then it starts again from an empty cache)."""
_lines = decode_lines  # the name this module had for it before #16
_merge_files = merge_files


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return decode_lines(path.read_bytes())


class LocalView(View):
    """A local store, read through the library."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.label = str(store.root)
        # Parsed documents keyed by path, kept while the file's (inode, size, mtime) holds:
        # writers replace files by rename, so a changed file always has a new signature.
        self._docs: dict[Path, tuple[tuple[int, int, int], Any]] = {}
        self._sorted: dict[str, tuple[tuple[str, ...], list[str]]] = {}

    def _cached(self, path: Path, load: Callable[[], T]) -> T | None:
        """`load()`'s result for the file at `path`, parsed again only when it changed."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._docs.get(path)
        if hit is not None and hit[0] == sig:
            return cast(T, hit[1])
        value = load()
        if len(self._docs) >= MAX_CACHED:  # a long-running server: stay bounded
            self._docs.clear()
        self._docs[path] = (sig, value)
        return value

    def model_names(self) -> list[str]:
        """Every model, sorted."""
        from modelreg.catalog import model_names

        return model_names(self.store)

    def local_store(self) -> Store:
        """The store (the drift page reads its samples through `monitoring`)."""
        return self.store

    def has_samples(self, name: str, version: str) -> bool:
        """Whether `samples/NAME/VERSION/` holds a file (one directory entry is enough)."""
        directory = layout.samples_dir(self.store.root, check_name(name), check_version(version))
        try:
            with os.scandir(directory) as it:
                return any(True for _ in it)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def version_names(self, name: str) -> list[str]:
        """A model's versions in SemVer order (empty for an unknown model)."""
        directory = layout.versions_dir(self.store.root, check_name(name))
        try:
            names = tuple(sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".yaml")))
        except FileNotFoundError:
            return []
        hit = self._sorted.get(name)
        if hit is not None and hit[0] == names:
            return hit[1]
        ordered = [v.text for v in sorted(Version(n) for n in names if Version.is_version(n))]
        self._sorted[name] = (names, ordered)
        return ordered

    def check_model(self, name: str) -> None:
        """NotFound unless `name` is a model: one directory entry is enough, not a listing."""
        from modelreg.catalog import check_model

        try:
            check_name(name)
        except InvalidInput:
            raise NotFound(f"no model named {name!r}") from None
        check_model(self.store, name)

    def latest(self, name: str) -> str:
        """The highest version, from the index (`catalog.latest_version`)."""
        from modelreg.catalog import latest_version

        self.check_model(name)
        return latest_version(self.store, name)

    def require_version(self, name: str, version: str) -> ModelVersion:
        """The manifest of `name@version`, or NotFound: reads that one manifest only."""
        self.check_model(name)
        if not Version.is_version(version):
            raise NotFound(f"{name}@{version}: no such version")
        return self.manifest(name, version)

    def newest(self, name: str, limit: int) -> list[str]:
        """The `limit` highest versions, newest first: a page of `version_page`."""
        return [i.version.version for i in self.version_page(name, limit=limit)]

    def version_page(self, name: str, *, offset: int = 0, limit: int = 100) -> VersionPage:
        """One page of versions, newest first, from the index (`listing.versions`)."""
        from modelreg.listing import versions

        if offset < 0 or limit < 1:
            raise InvalidInput("a page needs an offset of 0 or more and a limit of 1 or more")
        self.check_model(name)
        return versions(self.store, name, sort="version", descending=True, limit=limit,
                        offset=offset)  # fmt: skip

    def manifest(self, name: str, version: str) -> ModelVersion:
        """A manifest, parsed once per file (manifests are immutable: keyed by inode and size)."""
        from modelreg.catalog import load_version

        path = self.store.manifest_path(check_name(name), check_version(version))
        mv = self._cached(path, lambda: load_version(self.store, name, version))
        if mv is None:
            raise NotFound(f"{name}@{version}: no such version")
        return mv

    def aliases(self, name: str) -> list[AliasRef]:
        """A model's aliases."""
        from modelreg.names import check_alias
        from modelreg.refs import read_alias

        directory = layout.aliases_dir(self.store.root, check_name(name))
        try:
            names = sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".yaml"))
        except FileNotFoundError:
            return []
        out = []
        for alias in names:
            try:
                check_alias(alias)
            except InvalidInput:
                continue
            ref = self._cached(
                directory / f"{alias}.yaml", partial(read_alias, self.store, name, alias)
            )
            if ref is not None:
                out.append(ref)
        return out

    def state(
        self, name: str, version: str
    ) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
        """Current tags and deprecation."""
        from modelreg.refs import read_state

        path = self.store.state_path(check_name(name), check_version(version))
        st = self._cached(path, lambda: read_state(self.store, name, version))
        return (st.tags, st.deprecated) if st is not None else (None, None)

    def rollout(self, name: str) -> Rollout | None:
        """The rollout manifest."""
        from modelreg.release.ops import read_rollout, release_path

        path = release_path(self.store, name)
        return self._cached(path, lambda: read_rollout(self.store, name))

    def audit(self) -> AuditReport:
        """The audit trail and its verification."""
        problems = tuple(self.store.audit.verify())
        try:
            entries = tuple(self.store.audit.entries())
        except MregError:
            entries = ()
        return AuditReport(entries, problems)

    def metric_files(self, name: str, release: int) -> dict[str, list[dict[str, Any]]]:
        """The metrics lines of a release, per file."""
        directory = metrics_dir(self.store.root, name, int(release))
        files: dict[str, list[dict[str, Any]]] = {}
        try:
            names = [n for n in os.listdir(directory) if n.endswith(".jsonl")]
        except FileNotFoundError:
            return {}
        for n in names:
            path = directory / n
            try:  # append-only files: parsed again only when they grew
                docs = self._cached(path, partial(_read_lines, path))
            except FileNotFoundError:  # absorbed by a compaction while we listed
                continue
            if docs is not None:
                files[n] = docs
        return merge_files(files)

    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log of a release."""
        path = layout.analysis_log(self.store.root, name, int(release))
        try:
            return decode_lines(path.read_bytes())
        except FileNotFoundError:
            return []

    def object_path(self, entry: FileEntry) -> Path:
        """The object file of an entry (objects are verified by `mreg verify`)."""
        path = self.store.objects.path(check_digest(entry.sha256))
        if not path.is_file():
            raise NotFound(f"object {entry.sha256[:12]} ({entry.path}) is missing from the store")
        return path

    def release_token(self, name: str) -> str:
        """Stat signatures of the rollout manifest, the metrics directory and the judgments."""
        root = self.store.root
        parts = []
        for path in (layout.release_path(root, name),):
            try:
                st = os.stat(path)
                parts.append(f"{st.st_size}:{st.st_mtime_ns}")
            except FileNotFoundError:
                parts.append("-")
        rollout = self.rollout(name)
        if rollout is not None:
            mdir = metrics_dir(root, name, rollout.release)
            try:
                with os.scandir(mdir) as it:
                    parts.append(str(sum(e.stat().st_size for e in it)))
            except FileNotFoundError:
                parts.append("-")
            try:
                st = os.stat(layout.analysis_log(root, name, rollout.release))
                parts.append(str(st.st_size))
            except FileNotFoundError:
                parts.append("-")
        return hash_bytes("|".join(parts).encode())[:16]
