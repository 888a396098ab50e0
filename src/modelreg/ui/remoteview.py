"""The web view of a remote store (any fsspec URL): `RemoteView` and `open_remote`.

`RemoteView` reads the same documents as `ui.views.LocalView` from a remote
(`modelreg.remote.Remote`) and parses them with the same classes; it reads fresh on every
request and fetches objects through the local cache. Read-only, like every `View`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout, yamlio
from modelreg.audit import AuditLog
from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.hashing import check_digest, hash_bytes
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.metricsfile import decode_lines, rel_metrics_dir
from modelreg.names import check_name
from modelreg.refs import AliasRef
from modelreg.release.rollout import Rollout
from modelreg.ui.viewbase import (
    AuditReport,
    View,
    analysis_rel,
    check_version,
    failure_reason,
    merge_files,
    one_line,
)

if TYPE_CHECKING:
    from modelreg.remote.cache import Remote
    from modelreg.remote.config import RemoteSpec

__all__ = ["RemoteView", "open_remote"]


class RemoteView(View):
    """A remote store (any fsspec URL), read fresh on every request; objects via the cache."""

    def __init__(self, remote: Remote, label: str | None = None) -> None:
        self.remote = remote
        self.label = label or remote.url

    def check(self) -> None:
        """Read the remote's `config.yaml` once: raise unless it is a readable mreg remote.

        `mreg ui` calls this before it says that it is serving.

        Raises:
            InvalidInput: the driver refused an option.
            RemoteError: the remote could not be read (network, endpoint, permissions).
            IntegrityError: it holds files but is no mreg remote, or its config is unusable.
            NotFound: there is nothing at its URL (nothing was ever pushed there).
        """
        from modelreg.remote.backend import RemoteError
        from modelreg.store import StoreConfig

        backend = self.remote.backend
        try:
            with backend.errors():
                dirs, files = backend.list_top()
                data = backend.read(layout.CONFIG) if layout.CONFIG in files else None
        except RemoteError as exc:
            raise RemoteError(f"cannot read {self.label}: {failure_reason(exc)}") from None
        except (TypeError, ValueError) as exc:  # s3fs passes some options on only now
            raise InvalidInput(f"{self.label}: bad driver option: {one_line(str(exc))}") from None
        if data is None:
            if layout.DIRNAME in dirs:
                raise InvalidInput(
                    f"{self.label} is a project directory, not a remote: use --store for it, "
                    "or its .modelreg/ as the remote"
                )
            if dirs or files:
                raise IntegrityError(
                    f"{self.label} holds files but no config.yaml: not an mreg remote"
                )
            raise NotFound(f"{self.label}: no mreg store there (nothing was pushed to it)")
        source = f"{self.remote.url}/{layout.CONFIG}"
        StoreConfig.from_dict(yamlio.load(data, source, IntegrityError), source)

    def _read(self, rel: str) -> bytes | None:
        with self.remote.backend.errors():
            return self.remote.backend.read(rel)

    def _list(self, prefix: str) -> dict[str, Any]:
        with self.remote.backend.errors():
            return dict(self.remote.backend.list(prefix))

    def model_names(self) -> list[str]:
        """Models that have at least one manifest on the remote."""
        from modelreg.remote.layout import classify

        names = {
            m.model
            for rel in self._list(layout.MODELS)
            if (m := classify(rel)) is not None and m.kind == "manifest" and m.model
        }
        return sorted(names)

    def version_names(self, name: str) -> list[str]:
        """A model's versions on the remote."""
        return self.remote.versions(check_name(name))

    def manifest(self, name: str, version: str) -> ModelVersion:
        """A manifest read from the remote (hashed: its id is the digest of its bytes)."""
        return self.remote.manifest(check_name(name), check_version(version))

    def aliases(self, name: str) -> list[AliasRef]:
        """A model's aliases on the remote."""
        from modelreg.remote.layout import classify

        out = []
        for rel in sorted(self._list(layout.aliases_dir(Path(), check_name(name)).as_posix())):
            meta = classify(rel)
            if meta is None or meta.kind != "alias" or meta.model != name:
                continue
            data = self._read(rel)
            if data is None:
                continue
            try:
                out.append(AliasRef.from_dict(yamlio.load(data, rel, IntegrityError)))
            except (KeyError, TypeError, ValueError, InvalidInput) as exc:
                raise IntegrityError(f"{self.label}/{rel}: malformed alias file ({exc})") from None
        return out

    def state(
        self, name: str, version: str
    ) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
        """Current tags and deprecation from the remote's state file."""
        rel = layout.rel_state(check_name(name), check_version(version))
        data = self._read(rel)
        if data is None:
            return None, None
        doc = yamlio.load(data, rel, IntegrityError)
        if not isinstance(doc, dict):
            raise IntegrityError(f"{self.label}/{rel}: not a mapping")
        tags = doc.get("tags")
        return (tuple(str(t) for t in tags) if tags is not None else None), doc.get("deprecated")

    def rollout(self, name: str) -> Rollout | None:
        """The remote's rollout manifest."""
        rel = layout.rel_release(name)
        data = self._read(rel)
        if data is None:
            return None
        return Rollout.stored(yamlio.load(data, rel, IntegrityError), f"{self.label}/{rel}", name)

    def audit(self) -> AuditReport:
        """The remote's audit trail, verified with the same code as a local one."""
        with tempfile.TemporaryDirectory(prefix="mreg-ui-audit-") as tmp:
            for rel in (layout.AUDIT_LOG, layout.AUDIT_HEAD):
                data = self._read(rel)
                if data is not None:
                    (Path(tmp) / rel.split("/")[1]).write_bytes(data)
            log = AuditLog(Path(tmp) / "log.jsonl")
            problems = tuple(log.verify())
            try:
                entries = tuple(log.entries())
            except MregError:
                entries = ()
        return AuditReport(entries, problems)

    def metric_files(self, name: str, release: int) -> dict[str, list[dict[str, Any]]]:
        """Metrics files on the remote (present when serving hosts write to it directly)."""
        prefix = rel_metrics_dir(name, release)
        files = {}
        for rel in self._list(prefix):
            base = rel.rsplit("/", 1)[-1]
            if rel == f"{prefix}/{base}" and base.endswith(".jsonl"):
                data = self._read(rel)
                if data is not None:
                    files[base] = decode_lines(data)
        return merge_files(files)

    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log on the remote."""
        data = self._read(analysis_rel(name, release))
        return decode_lines(data) if data is not None else []

    def object_path(self, entry: FileEntry) -> Path:
        """The object downloaded into the local cache, re-hashed on the way."""
        return self.remote.object_path(check_digest(entry.sha256), entry.size)

    def release_token(self, name: str) -> str:
        """A digest of the rollout manifest and the listing of the release's files."""
        data = self._read(layout.rel_release(name)) or b""
        parts = [hash_bytes(data)]
        rollout = self.rollout(name)
        if rollout is not None:
            for prefix in (rel_metrics_dir(name), analysis_rel(name)):
                listing = self._list(prefix)
                parts.append(repr(sorted((k, v.size) for k, v in listing.items())))
        return hash_bytes("|".join(parts).encode())[:16]


def _configured(name: str, store: Path | None) -> RemoteSpec | None:
    """The remote `name` configured in the store; None if `name` is a local directory."""
    from modelreg.errors import StoreNotFound
    from modelreg.store import Store

    try:
        found: Store | None = Store.discover(store)
    except StoreNotFound:
        if store is not None:
            raise
        found = None
    if found is not None and name in found.config.remotes:
        return found.config.remotes[name]
    if Path(name).is_dir():
        return None
    where = "see mreg remote list" if found is not None else "no mreg store here configures one"
    raise NotFound(f"no remote named {name!r} ({where}; a local directory is ./{name})")


def open_remote(
    remote: str,
    options: dict[str, Any] | None = None,
    *,
    store: Path | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RemoteView:
    """The view of a remote, checked to be a readable mreg remote (`RemoteView.check`).

    Args:
        remote: the name of a remote configured in the store (as `mreg push NAME` takes it;
            its options apply), else a URL or a path (`s3://bucket/registry`, `file:///x`).
            A bare word is a name unless no remote has it and it is a local directory.
        options: driver options (`endpoint_url`, `region`...), as `mreg remote add --option`
            takes them; for a configured remote they override its own.
        store: where to look the name up (default: the store found from the current
            directory, as every command finds it). Not needed for a URL.
        cache_dir: the object cache (default: `modelreg.remote.cache.default_cache_dir()`).

    Raises:
        NotFound: an unknown remote name, or nothing at the URL (exit 2).
        InvalidInput: a bad URL or option, or a missing driver (exit 2).
        RemoteError: the remote could not be read (exit 1).
        IntegrityError: the URL holds no mreg remote, or a damaged `config.yaml` (exit 1).
    """
    from modelreg.remote.cache import Remote
    from modelreg.remote.config import check_options

    extra = check_options(dict(options or {}))
    spec = None
    if "://" not in remote and "/" not in remote and not remote.startswith((".", "~")):
        spec = _configured(remote, store)
    if spec is not None:
        url, opts, label = spec.url, {**spec.options, **extra}, f"{spec.name} ({spec.url})"
    else:
        url, opts, label = remote, extra, None
    view = RemoteView(Remote(url, opts, cache_dir=cache_dir), label)
    view.check()
    return view
