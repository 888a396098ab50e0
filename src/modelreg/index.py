"""The derived index: `index.sqlite`, so that reads stay flat as versions grow (issue 18).

The manifests, alias files, state files and the audit trail stay the only source of truth.
The index is derived from them, never pushed, and deleting it loses nothing: the next read
builds it again. It holds, per version, what listings filter and sort on (the sortable
version key, creation time, author, deprecation, current tags, every metric and parameter
leaf), the aliases, and the audit trail's entries.

**Kept current by every write.** The store's write lock (`StoreHandle.locked`) marks the
index dirty when it is taken and, when it is released, catches the index up with the audit
trail: each new entry names what changed (a registered version, a moved alias, tags), and
only that is read again; an entry that does not say (a pull, an unpack) rescans the models'
directories. A write killed half-way leaves the mark: the next reader that can take the
lock rescans every model and clears it.

**Detected as stale.** A read compares the audit log's size with the size the index has
consumed (one `stat`). When the log grew (a writer that did not update the index, another
mreg), the reader catches up under the lock; while a writer holds the lock, the reader
answers from the index as of the last completed write. A missing, unreadable, corrupt or
older-format index is rebuilt from the files; `mreg fsck` compares it with the manifests and
`mreg fsck --repair` rebuilds it. A store the index cannot be written in (read-only) is read
from its files, as before.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.errors import IntegrityError, InvalidInput, LockTimeout, MregError
from modelreg.indexrows import (
    SCHEMA,
    fields_of,
    load_manifest,
    model_names,
    version_key,
    version_names,
)
from modelreg.manifest import ModelVersion

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "FORMAT",
    "Index",
    "after_write",
    "before_write",
    "connect",
    "open_index",
    "path_of",
    "rebuild",
    "usable",
]

FORMAT = "5"
"""The index's format: an index of another format is rebuilt."""

NAME = layout.INDEX
MARK = layout.INDEX_MARK
_QUIET_ACTIONS = ("push", "fetch", "gc", "fsck", "remote.", "release.", "sign", "policy.")
"""Audit actions that change nothing the index holds."""
_NEW_VERSION = ("register", "unpack")
_VERSION_STATE = ("tag", "deprecate", "undeprecate")
_ALIAS_MOVE = ("promote", "rollback")


def path_of(root: Path) -> Path:
    """Where a store's index lives."""
    return root / NAME


# -- the index ------------------------------------------------------------------------------


class Index:
    """An open index of one store: `sync` it, then query `conn` (see the module docstring)."""

    def __init__(self, store: StoreHandle, conn: sqlite3.Connection) -> None:
        self.store = store
        self.root = store.root
        self.conn = conn

    # -- meta --

    def _meta(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set(self, **values: str) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items())
        )

    @property
    def dirty(self) -> bool:
        """True while a write is in progress, or after one was cut short."""
        return _mark(self.root).exists()

    def _audit_size(self) -> int:
        try:
            return self.store.audit.path.stat().st_size
        except FileNotFoundError:
            return 0

    def current(self) -> bool:
        """True when the index holds every completed write (one stat, one query)."""
        return not self.dirty and int(self._meta("audit_size", "-1")) == self._audit_size()

    # -- building and catching up --

    def rebuild(self) -> None:
        """Derive everything again from the files (a new index, or a damaged one)."""
        with self.conn:
            for table in ("versions", "fields", "tags", "aliases", "moves", "audit"):
                self.conn.execute(f"DELETE FROM {table}")
            self._set(format=FORMAT, audit_size="0", audit_hash="")
            for name in model_names(self.root):
                self._rescan(name)
        self._catch_up_audit(apply=False)
        _unmark(self.root)

    def sync(self) -> None:
        """Bring the index up to date with the files (the caller holds the store lock).

        After a write cut short (the dirty mark), every model is rescanned; else only what
        the new audit entries name is read again.
        """
        if self.dirty:
            with self.conn:
                for name in model_names(self.root):
                    self._rescan(name)
                self._drop_gone_models()
            self._catch_up_audit(apply=False)
        else:
            self._catch_up_audit(apply=True)
        _unmark(self.root)

    def _catch_up_audit(self, *, apply: bool) -> None:
        """Index the audit entries appended since the last sync; apply what they changed."""
        from modelreg.audit import AuditEntry

        size = self._audit_size()
        done = int(self._meta("audit_size", "0"))
        if size < done:  # the log was cut or replaced: derive everything again
            self.rebuild()
            return
        if size == done:
            return
        with open(self.store.audit.path, "rb") as fh:
            fh.seek(done)
            data = fh.read(size - done)
        end = data.rfind(b"\n") + 1  # complete lines only (a torn tail is a write in progress)
        try:
            entries = [AuditEntry.parse(line) for line in data[:end].splitlines()]
        except (ValueError, RecursionError):
            raise IntegrityError(f"{self.store.audit.path}: an unreadable entry") from None
        last_hash = self._meta("audit_hash")
        if entries and last_hash and entries[0].prev != last_hash:
            self.rebuild()  # not the continuation of what was indexed
            return
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO audit(seq, time, actor, action, model, line) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(e.seq, e.time, e.actor, e.action, e.model, json.dumps(e.to_dict()))
                 for e in entries],
            )  # fmt: skip
            if entries:
                self._set(audit_hash=entries[-1].hash)
            self._set(audit_size=str(done + end))
            if apply:
                self._apply(entries)

    def _apply(self, entries: Iterable[Any]) -> None:
        """What the entries changed, read again from the files (inside a transaction)."""
        new: dict[str, set[str]] = {}
        state: dict[str, set[str]] = {}
        moved: set[str] = set()
        rescan: set[str] = set()
        everything = False
        for e in entries:
            version = e.details.get("version")
            if e.action.startswith(_QUIET_ACTIONS):
                continue
            if e.model is None:
                everything = True  # a pull, or an action this mreg does not know
            elif e.action in _NEW_VERSION and isinstance(version, str):
                new.setdefault(e.model, set()).add(version)
            elif e.action in _VERSION_STATE and isinstance(version, str):
                state.setdefault(e.model, set()).add(version)
            elif e.action in _ALIAS_MOVE:
                moved.add(e.model)
            else:
                rescan.add(e.model)
        if everything:
            rescan = set(model_names(self.root)) | set(new) | set(state) | moved
            self._drop_gone_models()
        for name in rescan:
            self._rescan(name)
        for name, versions in new.items():
            if name not in rescan:
                self._add(name, versions)
        for name, versions in state.items():
            if name not in rescan:
                self._state(name, versions)
        for name in moved - rescan:
            self._aliases(name)

    def _drop_gone_models(self) -> None:
        present = set(model_names(self.root))
        for (name,) in self.conn.execute("SELECT DISTINCT model FROM versions").fetchall():
            if name not in present:
                for table in ("versions", "fields", "tags", "aliases", "moves"):
                    self.conn.execute(f"DELETE FROM {table} WHERE model = ?", (name,))

    def _rescan(self, name: str) -> None:
        """Make one model's rows equal its files: versions added or gone, aliases, state."""
        on_disk = version_names(self.root, name)
        indexed = {
            r[0] for r in self.conn.execute("SELECT version FROM versions WHERE model = ?", (name,))
        }
        for version in indexed - on_disk:
            self._delete_version(name, version)
        self._add(name, on_disk - indexed)
        state_dir = layout.state_dir(self.root, name)
        try:
            with os.scandir(state_dir) as it:
                stated = {e.name[:-5] for e in it if e.name.endswith(".yaml")}
        except (FileNotFoundError, NotADirectoryError):
            stated = set()
        self._state(name, stated & on_disk)
        self._aliases(name)

    def _add(self, name: str, versions: Iterable[str]) -> None:
        for version in versions:
            mv = load_manifest(self.root, name, version)
            if mv is None:
                self._delete_version(name, version)
            else:
                self._put_version(mv)
                self._state(name, [version], mv)

    def _state(self, name: str, versions: Iterable[str], mv: ModelVersion | None = None) -> None:
        """A version's current tags and deprecation (its state file over its manifest)."""
        from modelreg.refs import read_state

        for version in versions:
            if not layout.state_path(self.root, name, version).exists():
                continue
            st = read_state(self.store, name, version)
            if st.tags is not None:
                self._put_tags(name, version, st.tags)
            elif mv is None:
                manifest = load_manifest(self.root, name, version)
                self._put_tags(name, version, manifest.tags if manifest else ())
            self.conn.execute(
                "UPDATE versions SET deprecated = ? WHERE model = ? AND version = ?",
                (1 if st.deprecated else 0, name, version),
            )

    def _aliases(self, name: str) -> None:
        """A model's aliases, each with its last move, and every move (`mreg history`)."""
        from modelreg.refs import list_aliases

        refs = list_aliases(self.store, name)
        for table in ("aliases", "moves"):
            self.conn.execute(f"DELETE FROM {table} WHERE model = ?", (name,))
        self.conn.executemany(
            "INSERT INTO aliases(model, alias, version, id, generation, move) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(name, a.alias, a.version, a.id, a.generation,
              json.dumps(a.history[-1].to_dict()) if a.history else None) for a in refs],
        )  # fmt: skip
        self.conn.executemany(
            "INSERT OR REPLACE INTO moves(model, alias, generation, time, move) "
            "VALUES (?, ?, ?, ?, ?)",
            [(name, e.alias, e.generation, e.time, json.dumps(e.to_dict()))
             for a in refs for e in a.history],
        )  # fmt: skip

    def _put_version(self, mv: ModelVersion) -> None:
        key = (mv.name, mv.version)
        self._delete_version(*key)
        self.conn.execute(
            "INSERT INTO versions(model, version, vkey, id, created, author, deprecated) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            (*key, version_key(mv.version), mv.id, mv.created, mv.author),
        )
        self.conn.executemany(
            "INSERT INTO fields(model, version, key, num, text) VALUES (?, ?, ?, ?, ?)",
            [(*key, k, n, t) for k, n, t in fields_of(mv)],
        )
        self._put_tags(*key, mv.tags)

    def _put_tags(self, name: str, version: str, tags: Iterable[str]) -> None:
        self.conn.execute("DELETE FROM tags WHERE model = ? AND version = ?", (name, version))
        self.conn.executemany(
            "INSERT INTO tags(model, version, tag) VALUES (?, ?, ?)",
            [(name, version, t) for t in dict.fromkeys(tags)],
        )

    def _delete_version(self, name: str, version: str) -> None:
        for table in ("versions", "fields", "tags"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE model = ? AND version = ?",
                (name, version),
            )


def connect(path: Path) -> sqlite3.Connection:
    """A connection to an index file (WAL, case-sensitive LIKE, explicit transactions)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA case_sensitive_like = ON")
    # `with conn:` opens no transaction in autocommit mode: make it BEGIN/COMMIT
    conn.isolation_level = "DEFERRED"
    return conn


def usable(conn: sqlite3.Connection) -> bool:
    """True when the database is an index of this format."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError:
        return False
    return row is not None and row[0] == FORMAT


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _create(path: Path) -> sqlite3.Connection:
    """A new, empty index at `path` (anything there before is removed)."""
    _remove(path)
    conn = connect(path)
    conn.executescript(SCHEMA)
    return conn


@contextmanager
def open_index(store: StoreHandle, *, sync: bool = True) -> Iterator[Index | None]:
    """The store's index, up to date (None: it cannot be used here, read the files).

    Creates and builds the index when it is missing, unusable or of another format. With
    `sync`, catches it up when it is behind and no writer holds the lock. An index that
    cannot be opened, created or written (a read-only store, a full disk) gives None.
    """
    if store.writing_now:  # inside a write: the index catches up when it ends; read the files
        yield None
        return
    try:
        conn = _ready(store, sync)
    except (sqlite3.Error, OSError, MregError):
        # cannot build or catch up (a read-only store, a damaged file the index needs):
        # read the files, which report damage as they always did
        conn = None
    if conn is None:
        yield None
        return
    try:
        yield Index(store, conn)
    except sqlite3.Error as exc:
        raise IntegrityError(
            f"{path_of(store.root)}: the index is unusable ({exc}); run mreg fsck --repair"
        ) from None
    finally:
        conn.close()


def _ready(store: StoreHandle, sync: bool) -> sqlite3.Connection | None:
    """A connection to an up-to-date index, or None (no index yet and a writer is busy)."""
    path = path_of(store.root)
    conn: sqlite3.Connection | None = None
    try:
        try:
            conn = connect(path) if path.exists() else None
        except sqlite3.DatabaseError:  # not a database at all: built again
            conn = None
        fresh = conn is None or not usable(conn)
        if not fresh and not (sync and not Index(store, conn).current()):  # type: ignore[arg-type]
            return conn
        with store.locked_nowait():
            if fresh:
                if conn is not None:
                    conn.close()
                store.__dict__.pop("_index_conn", None)
                conn = _create(path)
                try:
                    Index(store, conn).rebuild()
                except BaseException:  # no half-built index is left behind
                    conn.close()
                    conn = None
                    _remove(path)
                    raise
            else:
                assert conn is not None
                Index(store, conn).sync()
        return conn
    except LockTimeout:  # a writer is busy: the index as of its last completed write
        if conn is not None and usable(conn):
            return conn
        if conn is not None:
            conn.close()
        return None
    except BaseException:
        if conn is not None:
            conn.close()
        raise


def _mark(root: Path) -> Path:
    return root / MARK


def _unmark(root: Path) -> None:
    try:
        os.unlink(_mark(root))
    except FileNotFoundError:
        pass


def before_write(store: StoreHandle) -> None:
    """Mark the index dirty before a write (the store lock is held). Never fails the write.

    The mark is a file, `index.dirty`: creating it costs far less than a database commit,
    and a process killed during the write leaves it behind.
    """
    if not path_of(store.root).exists():
        return
    mark = _mark(store.root)
    store.__dict__["_index_cut_short"] = mark.exists()  # a write before this one was killed
    try:
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError:
        pass  # a store the index cannot be written in: reads use the files


def after_write(store: StoreHandle) -> None:
    """Catch the index up with the write that just ended (the store lock is still held)."""
    path = path_of(store.root)
    if not path.exists():
        return
    try:
        conn = _cached(store, path)
        if conn is None:
            return
        index = Index(store, conn)
        if store.__dict__.pop("_index_cut_short", False):
            index.sync()  # the mark is still there: every model is rescanned
        elif int(index._meta("audit_size", "-1")) != index._audit_size():
            index._catch_up_audit(apply=True)
        _unmark(store.root)
    except (sqlite3.Error, OSError, MregError, InvalidInput):
        return  # the mark stays: the next reader that can take the lock rescans


def _cached(store: StoreHandle, path: Path) -> sqlite3.Connection | None:
    """The handle's own connection to its index, opened once (writers reuse it)."""
    conn: sqlite3.Connection | None = store.__dict__.get("_index_conn")
    if conn is None:
        conn = connect(path)
        if not usable(conn):
            conn.close()
            return None
        store.__dict__["_index_conn"] = conn
    return conn


def rebuild(store: StoreHandle) -> None:
    """Build the index again from the files (`mreg fsck --repair`; the lock is held)."""
    path = path_of(store.root)
    store.__dict__.pop("_index_conn", None)
    conn = _create(path)
    try:
        Index(store, conn).rebuild()
    finally:
        conn.close()
