"""The `.modelreg/` store: layout, config, discovery, and the public `Store` API.

Layout (see docs/store-format.md)::

    .modelreg/
      config.yaml                       format version, promotion gates
      objects/ab/<sha256>               artifacts, content-addressed, read-only
      models/NAME/versions/V.yaml       immutable version manifests
      models/NAME/aliases/A.yaml        alias refs: current version, generation, history
      models/NAME/state/V.yaml          mutable per-version state: tags, deprecation
      audit/log.jsonl                   hash-chained audit trail
      locks/store.lock                  the write lock
      tmp/                              staging for objects

`Store` methods are thin: each names one operation implemented in `register`, `catalog` or
`aliases`, so the CLI command `mreg X` is `store.X(...)`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import yamlio
from modelreg.errors import IntegrityError, InvalidInput, StoreNotFound
from modelreg.fsutil import atomic_write, fsync_dir
from modelreg.names import check_alias, check_name

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange, AliasEvent, Deprecation, TagChange
    from modelreg.audit import AuditEntry, AuditLog
    from modelreg.bundle import PackResult, UnpackResult
    from modelreg.catalog import Materialized, ModelSummary, VersionDiff, VersionInfo
    from modelreg.conditions import Condition
    from modelreg.locking import StoreLock
    from modelreg.manifest import ModelVersion
    from modelreg.objects import ObjectStore
    from modelreg.register import ProgressStart, RegisterResult
    from modelreg.remote.config import RemoteRegistry, RemoteSpec
    from modelreg.remote.sync import FetchResult, PullResult, PushResult, StatusReport
    from modelreg.remote.transfer import TransferProgress
    from modelreg.verify import VerifyReport

__all__ = ["DIRNAME", "FORMAT", "Store", "StoreConfig"]

DIRNAME = ".modelreg"
FORMAT = 1
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class StoreConfig:
    """The parsed `config.yaml`: format version, promotion gates per alias, remotes.

    `remotes` and `default_remote` (issue 4) are written only when set, so a store without
    remotes keeps the exact `config.yaml` of format 1. They never hold secrets (see
    `modelreg.remote.config`).
    """

    format: int = FORMAT
    gates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remotes: dict[str, RemoteSpec] = field(default_factory=dict)
    default_remote: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document written to `config.yaml`."""
        doc: dict[str, Any] = {
            "schema": "mreg/v1",
            "kind": "StoreConfig",
            "format": self.format,
            "gates": {k: list(v) for k, v in self.gates.items()},
        }
        if self.remotes:
            doc["remotes"] = {k: r.to_dict() for k, r in self.remotes.items()}
        if self.default_remote is not None:
            doc["default_remote"] = self.default_remote
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> StoreConfig:
        """Parse and check a config document; raise IntegrityError if it is unusable."""
        if not isinstance(doc, dict) or doc.get("kind") != "StoreConfig":
            raise IntegrityError(f"{source}: not an mreg store config (kind StoreConfig)")
        fmt = doc.get("format")
        if fmt != FORMAT:
            raise IntegrityError(
                f"{source}: store format {fmt!r} is not supported by this mreg (format {FORMAT})"
            )
        gates = doc.get("gates") or {}
        if not isinstance(gates, dict):
            raise IntegrityError(f"{source}: gates must map alias names to condition lists")
        parsed: dict[str, tuple[str, ...]] = {}
        if gates:
            from modelreg.conditions import Condition
        for alias, conds in gates.items():
            try:
                check_alias(str(alias))
                if not isinstance(conds, list):
                    raise InvalidInput("expected a list of conditions")
                checked = []
                for i, c in enumerate(conds):
                    try:
                        checked.append(str(Condition.parse(str(c))))
                    except InvalidInput as exc:
                        raise InvalidInput(f"[{i}]: {exc}") from None
                parsed[str(alias)] = tuple(checked)
            except InvalidInput as exc:
                sep = "" if str(exc).startswith("[") else ": "
                raise IntegrityError(f"{source}: gates.{alias}{sep}{exc}") from None
        if "remotes" not in doc and "default_remote" not in doc:
            return cls(format=FORMAT, gates=parsed)  # remote.config not imported: ~3 ms less
        from modelreg.remote.config import parse_remotes

        remotes, default = parse_remotes(doc, source)
        return cls(format=FORMAT, gates=parsed, remotes=remotes, default_remote=default)


class Store:
    """A model registry store rooted at a `.modelreg/` directory."""

    def __init__(self, root: Path, config: StoreConfig, clock: Clock = utc_now) -> None:
        self.root = root
        self.config = config
        self.clock = clock
        self._lock: StoreLock | None = None

    # Built on first use: read-only commands such as `mreg show` never import them.
    @cached_property
    def objects(self) -> ObjectStore:
        """The content-addressed objects (`objects/ab/<sha256>`)."""
        from modelreg import objects as objects_module

        return objects_module.ObjectStore(self.root / "objects", self.root / "tmp")

    @cached_property
    def audit(self) -> AuditLog:
        """The hash-chained audit log (`audit/log.jsonl` and `audit/head.json`)."""
        from modelreg import audit as audit_module

        return audit_module.AuditLog(self.root / "audit" / "log.jsonl")

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".", *, clock: Clock = utc_now) -> Store:
        """Create `PATH/.modelreg` (atomically: built aside, then renamed); idempotent."""
        parent = Path(path).absolute()
        root = parent / DIRNAME
        if (root / "config.yaml").is_file():
            return cls.open(root, clock=clock)
        if root.exists():
            raise InvalidInput(f"{root} exists but is not an mreg store")
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f"{DIRNAME}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        for sub in ("objects", "models", "audit", "locks", "tmp"):
            (staging / sub).mkdir(parents=True)
        (staging / "locks" / "store.lock").touch()
        # Keep the store out of the enclosing git work tree (it ignores itself, like a venv).
        (staging / ".gitignore").write_text("# created by mreg init\n*\n")
        atomic_write(staging / "config.yaml", yamlio.dump(StoreConfig().to_dict()))
        try:
            os.rename(staging, root)
        except OSError:  # another process created it first
            shutil.rmtree(staging, ignore_errors=True)
            if not (root / "config.yaml").is_file():
                raise
        fsync_dir(parent)
        return cls.open(root, clock=clock)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Clock = utc_now) -> Store:
        """Open the store at `path` (the `.modelreg` directory or the directory holding it)."""
        p = Path(path).absolute()
        root = p if (p / "config.yaml").is_file() and p.name == DIRNAME else p / DIRNAME
        cfg = root / "config.yaml"
        if not cfg.is_file():
            raise StoreNotFound(f"no mreg store at {p} (run 'mreg init' there)")
        config = StoreConfig.from_dict(yamlio.load_file(cfg, IntegrityError), str(cfg))
        return cls(root, config, clock)

    @classmethod
    def discover(
        cls,
        explicit: str | os.PathLike[str] | None = None,
        start: Path | None = None,
        *,
        clock: Clock = utc_now,
    ) -> Store:
        """Find the store as git does: `explicit`, else `MREG_STORE`, else walk up from `start`.

        The walk stops at the directories in `MREG_CEILING_DIRS` (colon-separated), like
        `GIT_CEILING_DIRECTORIES`.
        """
        chosen = explicit or os.environ.get("MREG_STORE")
        if chosen:
            return cls.open(chosen, clock=clock)
        here = (start or Path.cwd()).absolute()
        ceilings = {
            Path(c).absolute() for c in os.environ.get("MREG_CEILING_DIRS", "").split(":") if c
        }
        for d in (here, *here.parents):
            if (d / DIRNAME / "config.yaml").is_file():
                return cls.open(d / DIRNAME, clock=clock)
            if d in ceilings:
                break
        raise StoreNotFound(
            f"no mreg store in {here} or any parent directory; run 'mreg init', "
            "or pass --store DIR / set MREG_STORE"
        )

    # -- layout ------------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        """`models/`: one directory per model (two levels for namespaced names)."""
        return self.root / "models"

    def model_dir(self, name: str) -> Path:
        """The directory of a model; the name is validated before the join."""
        return self.models_dir.joinpath(*check_name(name).split("/"))

    def manifest_path(self, name: str, version: str) -> Path:
        """Where a version's manifest lives (`version` must already be validated)."""
        return self.model_dir(name) / "versions" / f"{version}.yaml"

    def alias_path(self, name: str, alias: str) -> Path:
        """Where an alias ref lives."""
        return self.model_dir(name) / "aliases" / f"{check_alias(alias)}.yaml"

    def state_path(self, name: str, version: str) -> Path:
        """Where a version's mutable state (tags, deprecation) lives."""
        return self.model_dir(name) / "state" / f"{version}.yaml"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (re-entrant within this Store object)."""
        if self._lock is None:
            from modelreg.locking import StoreLock

            self._lock = StoreLock(self.root / "locks" / "store.lock")
        with self._lock.hold():
            yield

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock for a change that ends with an audit entry.

        The audit trail's last entry is read first: when it is unreadable the change could not
        be recorded, so it is refused before anything is written (IntegrityError, exit 1),
        never half made (issue 15).
        """
        with self.locked():
            self.audit.last()
            yield

    def now(self) -> str:
        """The clock's time as an ISO 8601 UTC string with seconds, e.g. 2026-11-25T08:50:48Z."""
        return self.clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def record(self, actor: str, action: str, model: str | None, **details: Any) -> AuditEntry:
        """Append an audit entry (the caller holds the lock)."""
        return self.audit.append(
            time=self.now(), actor=actor, action=action, model=model, details=details
        )

    # -- the API: one method per command -----------------------------------------------------

    def register(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]],
        *,
        version: str | None = None,
        bump: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, dict[str, float]] | None = None,
        data: Sequence[str] = (),
        code: str | os.PathLike[str] | None = None,
        detect_code: bool = True,
        requirements: str | os.PathLike[str] | None = None,
        message: str = "",
        tags: Sequence[str] = (),
        author: str | None = None,
        progress: ProgressStart | None = None,
    ) -> RegisterResult:
        """Register files or directories as version `version` (or bumped) of model `name`."""
        from modelreg.register import register

        return register(
            self, name, paths, version=version, bump=bump, params=params, metrics=metrics,
            data=data, code=code, detect_code=detect_code, requirements=requirements,
            message=message, tags=tags, author=author, progress=progress,
        )  # fmt: skip

    def resolve(self, spec: str) -> ModelVersion:
        """The version named by `NAME[@REF]` (REF: version, alias or `latest`)."""
        from modelreg.catalog import resolve

        return resolve(self, spec)

    def models(self) -> list[ModelSummary]:
        """Every model with its version count, latest version and aliases."""
        from modelreg.catalog import models

        return models(self)

    def versions(
        self,
        name: str | None = None,
        *,
        tags: Sequence[str] = (),
        alias: str | None = None,
        where: Sequence[Condition | str] = (),
        sort: str = "version",
        descending: bool = False,
        include_deprecated: bool = True,
    ) -> list[VersionInfo]:
        """Versions of one model (or all), filtered and sorted as `mreg list` does."""
        from modelreg.catalog import versions

        return versions(
            self, name, tags=tags, alias=alias, where=where, sort=sort,
            descending=descending, include_deprecated=include_deprecated,
        )  # fmt: skip

    def info(self, spec: str) -> VersionInfo:
        """A version with its aliases, current tags and deprecation (what `show` displays)."""
        from modelreg.catalog import info

        return info(self, spec)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, files, data, code."""
        from modelreg.catalog import diff

        return diff(self, a, b)

    def get(self, spec: str, out: str | os.PathLike[str], *, force: bool = False) -> Materialized:
        """Materialise a version's files under `out`, verifying every byte."""
        from modelreg.catalog import get

        return get(self, spec, Path(out), force=force)

    def promote(
        self,
        spec: str,
        alias: str,
        *,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> AliasChange:
        """Point `alias` at a version, through the alias's promotion gates."""
        from modelreg.aliases import promote

        return promote(self, spec, alias, reason=reason, force=force, actor=actor)

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        to: str | None = None,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> AliasChange:
        """Move `alias` back to the version it pointed at before (or to version `to`)."""
        from modelreg.aliases import rollback

        return rollback(self, name, alias, to=to, reason=reason, force=force, actor=actor)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of a model (or of one alias), oldest first."""
        from modelreg.aliases import history

        return history(self, name, alias)

    def deprecate(self, spec: str, *, reason: str, actor: str | None = None) -> Deprecation:
        """Mark a version deprecated: its files stay, but it can no longer be promoted."""
        from modelreg.aliases import deprecate

        return deprecate(self, spec, reason=reason, actor=actor)

    def tag(
        self,
        spec: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        actor: str | None = None,
    ) -> TagChange:
        """Add or remove tags of a version (kept beside its immutable manifest, audited)."""
        from modelreg.aliases import tag

        return tag(self, spec, add, remove, actor=actor)

    def log(self, name: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest last, optionally for one model and the last `limit`."""
        entries = [e for e in self.audit.entries() if name is None or e.model == name]
        if name is not None and not entries:
            # an unknown model is invalid input everywhere, as in `history` (issue 13)
            from modelreg.catalog import require_model

            require_model(self, name)
        return entries[-limit:] if limit else entries

    def verify(self, *, objects: bool = True) -> VerifyReport:
        """Check the audit chain, every manifest and ref, and (by default) every object digest."""
        from modelreg.verify import verify

        return verify(self, objects=objects)

    # -- remotes and bundles (issue 4): thin facades over modelreg.remote and modelreg.bundle --

    @property
    def remotes(self) -> RemoteRegistry:
        """The configured remotes (`mreg remote add|list|remove`)."""
        from modelreg.remote.config import RemoteRegistry

        return RemoteRegistry(self)

    def push(
        self,
        remote: str | None = None,
        specs: Sequence[str] = (),
        *,
        jobs: int | None = None,
        progress: TransferProgress | None = None,
    ) -> PushResult:
        """Send what the remote lacks: objects, manifests, refs, audit trail (`mreg push`)."""
        from modelreg.remote.sync import push

        return push(self, remote, specs, jobs=jobs, progress=progress)

    def pull(
        self,
        remote: str | None = None,
        specs: Sequence[str] = (),
        *,
        theirs: bool = False,
        jobs: int | None = None,
        progress: TransferProgress | None = None,
    ) -> PullResult:
        """Receive what this store lacks, verifying every object (`mreg pull`)."""
        from modelreg.remote.sync import pull

        return pull(self, remote, specs, theirs=theirs, jobs=jobs, progress=progress)

    def fetch(self, remote: str | None = None, specs: Sequence[str] = ()) -> FetchResult:
        """Download the remote's metadata only, beside the store (`mreg fetch`)."""
        from modelreg.remote.sync import fetch

        return fetch(self, remote, specs)

    def remote_status(self, remote: str | None = None) -> StatusReport:
        """What differs between this store and a remote, both ways (`mreg status --remote`)."""
        from modelreg.remote.sync import status

        return status(self, remote)

    def pack(
        self, spec: str, out: str | os.PathLike[str], *, format: str = "tar", force: bool = False
    ) -> PackResult:
        """Write one version as a portable bundle or an OCI image layout (`mreg pack`)."""
        from modelreg.bundle import pack

        return pack(self, spec, Path(out), format=format, force=force)

    def unpack(self, path: str | os.PathLike[str]) -> UnpackResult:
        """Register the version in a bundle, verified and idempotent (`mreg unpack`)."""
        from modelreg.bundle import unpack

        return unpack(self, Path(path))
