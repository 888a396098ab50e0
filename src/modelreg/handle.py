"""The low-level handle of a `.modelreg/` store: open, create, find, paths, lock, audit.

Storage layer (docs/architecture.md). Domain modules (catalog, register, aliases, release,
remote sync, fsck...) take a `StoreHandle` and never the facade; `modelreg.store.Store`
subclasses it with one method per CLI command. The layout itself is spelled in
`modelreg.layout`, the config in `modelreg.config`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelreg import layout, yamlio
from modelreg.config import StoreConfig
from modelreg.errors import InvalidInput, StoreNotFound
from modelreg.fsutil import atomic_write, fsync_dir

if TYPE_CHECKING:
    from modelreg.audit import AuditEntry, AuditLog
    from modelreg.locking import StoreLock
    from modelreg.objects import ObjectStore
    from modelreg.remote.config import RemoteRegistry

__all__ = ["Clock", "StoreHandle", "utc_now"]

Clock = Callable[[], datetime]
H = TypeVar("H", bound="StoreHandle")


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(timezone.utc)


class StoreHandle:
    """A store rooted at a `.modelreg/` directory: paths, config, clock, lock, audit, objects.

    The storage layer's handle (docs/architecture.md): what every domain module takes.
    `modelreg.Store` is this handle plus one method per command (the facade).
    """

    def __init__(self, root: Path, config: StoreConfig, clock: Clock = utc_now) -> None:
        self.root = root
        self.config = config
        self.clock = clock
        self._lock: StoreLock | None = None
        self._depth = 0
        """How many `locked()` blocks of this handle are open (the index syncs at 0)."""
        self.notes: Callable[[str], None] | None = None
        """Where a write's side remarks go (a webhook that failed, issue 19): the CLI prints
        them as one line on stderr; None logs them (logger `modelreg.hooks`)."""

    # Built on first use: read-only commands such as `mreg show` never import them.
    @cached_property
    def objects(self) -> ObjectStore:
        """The content-addressed objects (`objects/ab/<sha256>`)."""
        from modelreg import objects as objects_module

        return objects_module.ObjectStore(self.root / layout.OBJECTS, self.root / layout.TMP)

    @property
    def remotes(self) -> RemoteRegistry:
        """The configured remotes (`mreg remote add|list|remove`)."""
        from modelreg.remote.config import RemoteRegistry

        return RemoteRegistry(self)

    @cached_property
    def audit(self) -> AuditLog:
        """The hash-chained audit log (`audit/log.jsonl` and `audit/head.json`)."""
        from modelreg import audit as audit_module

        return audit_module.AuditLog(self.root / layout.AUDIT_LOG)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def init(cls: type[H], path: str | os.PathLike[str] = ".", *, clock: Clock = utc_now) -> H:
        """Create `PATH/.modelreg` (atomically: built aside, then renamed); idempotent."""
        parent = Path(path).absolute()
        root = parent / layout.DIRNAME
        if (root / layout.CONFIG).is_file():
            return cls.open(root, clock=clock)
        if root.exists():
            raise InvalidInput(f"{root} exists but is not an mreg store")
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f"{layout.DIRNAME}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        for sub in layout.SUBDIRS:
            (staging / sub).mkdir(parents=True)
        (staging / layout.LOCK).touch()
        # Keep the store out of the enclosing git work tree (it ignores itself, like a venv).
        (staging / ".gitignore").write_text("# created by mreg init\n*\n")
        atomic_write(staging / layout.CONFIG, yamlio.dump(StoreConfig().to_dict()))
        try:
            os.rename(staging, root)
        except OSError:  # another process created it first
            shutil.rmtree(staging, ignore_errors=True)
            if not (root / layout.CONFIG).is_file():
                raise
        fsync_dir(parent)
        return cls.open(root, clock=clock)

    @classmethod
    def open(cls: type[H], path: str | os.PathLike[str], *, clock: Clock = utc_now) -> H:
        """Open the store at `path` (the `.modelreg` directory or the directory holding it)."""
        p = Path(path).absolute()
        root = layout.store_root(p)
        if root is None:
            raise StoreNotFound(f"no mreg store at {p} (run 'mreg init' there)")
        return cls(root, StoreConfig.read(root), clock)

    @classmethod
    def discover(
        cls: type[H],
        explicit: str | os.PathLike[str] | None = None,
        start: Path | None = None,
        *,
        clock: Clock = utc_now,
    ) -> H:
        """Find the store as git does: `explicit`, else `MREG_STORE`, else walk up from `start`.

        The walk stops at the directories in `MREG_CEILING_DIRS` (colon-separated), like
        `GIT_CEILING_DIRECTORIES` (`layout.find_root`).
        """
        try:
            root = layout.find_root(start, explicit)
        except FileNotFoundError as exc:
            if exc.strerror == "named":
                raise StoreNotFound(
                    f"no mreg store at {exc.filename} (run 'mreg init' there)"
                ) from None
            raise StoreNotFound(
                f"no mreg store in {exc.filename} or any parent directory; run 'mreg init', "
                "or pass --store DIR / set MREG_STORE"
            ) from None
        return cls.open(root, clock=clock)

    # -- layout ------------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        """`models/`: one directory per model (two levels for namespaced names)."""
        return self.root / layout.MODELS

    def model_dir(self, name: str) -> Path:
        """The directory of a model; the name is validated before the join."""
        return layout.model_dir(self.root, name)

    def manifest_path(self, name: str, version: str) -> Path:
        """Where a version's manifest lives (`version` must already be validated)."""
        return layout.manifest_path(self.root, name, version)

    def alias_path(self, name: str, alias: str) -> Path:
        """Where an alias ref lives."""
        return layout.alias_path(self.root, name, alias)

    def state_path(self, name: str, version: str) -> Path:
        """Where a version's mutable state (tags, deprecation) lives."""
        return layout.state_path(self.root, name, version)

    def release_path(self, name: str) -> Path:
        """Where a model's rollout manifest lives (`releases/NAME.yaml`)."""
        return layout.release_path(self.root, name)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (re-entrant within this handle).

        The outermost block marks the derived index dirty when it starts and catches it up
        with what was written when it ends (`modelreg.index`, issue 18). When it ends without
        error and the lock is released, the store's webhooks get what is due, within a short
        budget (`modelreg.hookdelivery.after_write`, issue 19).
        """
        from modelreg import index

        with self._lock_file().hold():
            outer = self._depth == 0
            self._depth += 1
            try:
                if outer:
                    index.before_write(self)
                yield
            finally:
                self._depth -= 1
                if outer:
                    index.after_write(self)
        if outer and self.config.hooks:
            from modelreg.hookdelivery import after_write

            after_write(self, self.notes)

    @contextmanager
    def locked_nowait(self) -> Iterator[None]:
        """Hold the write lock if no one else does (else LockTimeout at once), without hooks.

        The index takes it this way to catch up when no writer is busy.
        """
        with self._lock_file().hold(timeout=0):
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    @property
    def writing_now(self) -> bool:
        """True inside a `locked()` block of this handle (a write in progress)."""
        return self._depth > 0

    def _lock_file(self) -> StoreLock:
        if self._lock is None:
            from modelreg.locking import StoreLock

            self._lock = StoreLock(self.root / layout.LOCK)
        return self._lock

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
