"""What the web view reads: a local store or a remote, behind one read-only interface.

`LocalView` reads a `Store` through the library (`catalog`, `refs`, `release.ops`, the
audit log, the metrics files); `RemoteView` reads the same documents from a remote
(`modelreg.remote.Remote`) and parses them with the same classes. Neither ever writes to
the store: the web view is read-only by construction, because this interface has no
method that writes.

Every name and version is checked (`names.py`) before any path is built from it, and a
file is only ever located through a manifest entry's digest, so no URL can name a path.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from modelreg import yamlio
from modelreg.audit import AuditEntry, AuditLog
from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.hashing import check_digest, hash_bytes
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.names import Version, check_name
from modelreg.refs import AliasRef
from modelreg.release.rollout import Rollout

if TYPE_CHECKING:
    from modelreg.remote.cache import Remote
    from modelreg.remote.config import RemoteSpec
    from modelreg.store import Store

__all__ = ["AuditReport", "LocalView", "RemoteView", "View", "check_version", "open_remote"]

T = TypeVar("T")
MAX_CACHED = 50_000
"""Parsed files a `LocalView` keeps at most (then it starts again from an empty cache)."""


def check_version(version: str) -> str:
    """`version` if it is valid SemVer (raises InvalidInput otherwise)."""
    return Version.parse(version).text


@dataclass(frozen=True)
class AuditReport:
    """The audit trail and the result of verifying its hash chain."""

    entries: tuple[AuditEntry, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return not self.problems


class View(ABC):
    """A read-only view of a registry (local store or remote)."""

    label: str

    @abstractmethod
    def model_names(self) -> list[str]:
        """Every model, sorted."""

    @abstractmethod
    def version_names(self, name: str) -> list[str]:
        """A model's versions in SemVer order; NotFound for an unknown model."""

    @abstractmethod
    def manifest(self, name: str, version: str) -> ModelVersion:
        """A version's manifest; NotFound if there is no such version."""

    @abstractmethod
    def aliases(self, name: str) -> list[AliasRef]:
        """A model's aliases, sorted by alias name."""

    @abstractmethod
    def state(
        self, name: str, version: str
    ) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
        """A version's current tags (None: the manifest's) and deprecation."""

    @abstractmethod
    def rollout(self, name: str) -> Rollout | None:
        """The model's rollout manifest, or None if it never had a release."""

    @abstractmethod
    def audit(self) -> AuditReport:
        """The audit trail, verified."""

    @abstractmethod
    def metric_files(self, name: str, release: int) -> dict[str, list[dict[str, Any]]]:
        """The metrics lines of a release per file (files a compaction absorbed left out).

        A file's list is the same object as long as the file is unchanged (`LocalView`),
        so callers may keep what they computed from it.
        """

    @abstractmethod
    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log of a release (`release watch`), oldest first."""

    @abstractmethod
    def object_path(self, entry: FileEntry) -> Path:
        """A local, verified copy of a file's object."""

    @abstractmethod
    def release_token(self, name: str) -> str:
        """A short text that changes whenever the release page would change (for polling)."""

    def require_model(self, name: str) -> list[str]:
        """The versions of `name`, or NotFound (also for names that are not valid)."""
        try:
            check_name(name)
        except InvalidInput:
            raise NotFound(f"no model named {name!r}") from None
        versions = self.version_names(name)
        if not versions:
            raise NotFound(f"no model named {name!r}")
        return versions

    def require_version(self, name: str, version: str) -> ModelVersion:
        """The manifest of `name@version`, or NotFound."""
        versions = self.require_model(name)
        if not Version.is_version(version) or version not in versions:
            raise NotFound(f"{name}@{version}: no such version")
        return self.manifest(name, version)


def _lines(data: bytes) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a file (a torn last line and bad lines skipped)."""
    body = data[: data.rfind(b"\n") + 1]  # the part after the last newline may be torn
    if not body:
        return []
    try:  # one parse for the whole file: 2-3x faster than line by line
        docs = json.loads(b"[" + body.rstrip(b"\n").replace(b"\n", b",") + b"]")
        if isinstance(docs, list) and all(isinstance(d, dict) for d in docs):
            return docs
    except (ValueError, RecursionError):  # a line nested too deeply is skipped below
        pass
    out = []
    for raw in data.split(b"\n")[:-1]:  # the last piece is "" or a torn line
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return _lines(path.read_bytes())


def _merge_files(parsed: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A release's metrics files without those a compacted file absorbed (see `compact`)."""
    absorbed: set[str] = set()
    for name, docs in parsed.items():
        if name.startswith("compact-") and docs:
            absorbed.update(docs[0].get("compacted") or ())
    return {name: parsed[name] for name in sorted(parsed) if name not in absorbed}


def _release_rel(name: str, top: str, release: int | None, suffix: str) -> str:
    *ns, last = check_name(name).split("/")
    parts = [top, *ns, last] + ([str(int(release))] if release is not None else [])
    return "/".join(parts) + suffix


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

    def version_names(self, name: str) -> list[str]:
        """A model's versions in SemVer order (empty for an unknown model)."""
        directory = self.store.model_dir(check_name(name)) / "versions"
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

        directory = self.store.model_dir(check_name(name)) / "aliases"
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
        directory = self.store.root / _release_rel(name, "metrics", release, "")
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
        return _merge_files(files)

    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log of a release."""
        path = self.store.root / _release_rel(name, "analysis", release, ".jsonl")
        try:
            return _lines(path.read_bytes())
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
        rollout_rel = _release_rel(name, "releases", None, ".yaml")
        for rel in (rollout_rel,):
            try:
                st = os.stat(root / rel)
                parts.append(f"{st.st_size}:{st.st_mtime_ns}")
            except FileNotFoundError:
                parts.append("-")
        rollout = self.rollout(name)
        if rollout is not None:
            mdir = root / _release_rel(name, "metrics", rollout.release, "")
            try:
                with os.scandir(mdir) as it:
                    parts.append(str(sum(e.stat().st_size for e in it)))
            except FileNotFoundError:
                parts.append("-")
            try:
                st = os.stat(root / _release_rel(name, "analysis", rollout.release, ".jsonl"))
                parts.append(str(st.st_size))
            except FileNotFoundError:
                parts.append("-")
        return hash_bytes("|".join(parts).encode())[:16]


def one_line(text: str) -> str:
    """`text` on one line: runs of whitespace become one space, control characters escapes."""
    text = " ".join(text.split())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def failure_reason(exc: BaseException) -> str:
    """What went wrong, on one line: the driver's own error when mreg wrapped it."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return one_line(str(cause)) or type(cause).__name__


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
                data = backend.read("config.yaml") if "config.yaml" in files else None
        except RemoteError as exc:
            raise RemoteError(f"cannot read {self.label}: {failure_reason(exc)}") from None
        except (TypeError, ValueError) as exc:  # s3fs passes some options on only now
            raise InvalidInput(f"{self.label}: bad driver option: {one_line(str(exc))}") from None
        if data is None:
            if ".modelreg" in dirs:
                raise InvalidInput(
                    f"{self.label} is a project directory, not a remote: use --store for it, "
                    "or its .modelreg/ as the remote"
                )
            if dirs or files:
                raise IntegrityError(
                    f"{self.label} holds files but no config.yaml: not an mreg remote"
                )
            raise NotFound(f"{self.label}: no mreg store there (nothing was pushed to it)")
        source = f"{self.remote.url}/config.yaml"
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
            for rel in self._list("models")
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
        for rel in sorted(self._list(f"models/{check_name(name)}/aliases")):
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
        rel = f"models/{check_name(name)}/state/{check_version(version)}.yaml"
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
        rel = _release_rel(name, "releases", None, ".yaml")
        data = self._read(rel)
        if data is None:
            return None
        return Rollout.stored(yamlio.load(data, rel, IntegrityError), f"{self.label}/{rel}", name)

    def audit(self) -> AuditReport:
        """The remote's audit trail, verified with the same code as a local one."""
        with tempfile.TemporaryDirectory(prefix="mreg-ui-audit-") as tmp:
            for rel in ("audit/log.jsonl", "audit/head.json"):
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
        prefix = _release_rel(name, "metrics", release, "")
        files = {}
        for rel in self._list(prefix):
            base = rel.rsplit("/", 1)[-1]
            if rel == f"{prefix}/{base}" and base.endswith(".jsonl"):
                data = self._read(rel)
                if data is not None:
                    files[base] = _lines(data)
        return _merge_files(files)

    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log on the remote."""
        data = self._read(_release_rel(name, "analysis", release, ".jsonl"))
        return _lines(data) if data is not None else []

    def object_path(self, entry: FileEntry) -> Path:
        """The object downloaded into the local cache, re-hashed on the way."""
        return self.remote.object_path(check_digest(entry.sha256), entry.size)

    def release_token(self, name: str) -> str:
        """A digest of the rollout manifest and the listing of the release's files."""
        rel = _release_rel(name, "releases", None, ".yaml")
        data = self._read(rel) or b""
        parts = [hash_bytes(data)]
        rollout = self.rollout(name)
        if rollout is not None:
            for top in ("metrics", "analysis"):
                listing = self._list(_release_rel(name, top, None, ""))
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
