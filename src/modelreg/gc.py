"""`gc`: delete objects that no manifest names, once they are older than a grace period.

Objects are written before the manifest that names them, outside the store lock (see
docs/store-format.md), so an object without a manifest may be one a `register`, `pull` or
`unpack` is about to name. The grace period protects it: an object is collected only when
its mtime is older than `grace`, and writing an object that exists already refreshes its
mtime (`ObjectStore.freshen`). Locally, gc holds the store lock and removes a candidate in
two steps, so a concurrent freshen can never be lost:

1. rename it into a private directory under `tmp/` (a writer that freshens it from now on
   finds it absent and writes it again);
2. stat it there: if a writer freshened it between gc's first look and the rename, it is
   young again and goes back; else it is deleted.

With `remote`, the same on a remote: manifests are listed and parsed (gc refuses if one
cannot be), objects are listed with their times, and unreferenced ones older than `grace`
are deleted. Objects that this store's manifests name are kept too. Afterwards the remote's
manifests are listed again: an object deleted meanwhile that a concurrent push named is
sent again from this store (see docs/maintenance.md for the limits).

The objects of a deleted version (issue 19) are kept until its tombstone is older than
`grace` (counted from the tombstone's time, here and on a remote), then collected like any
other object no manifest names.

A gc that removed something appends a `gc` entry to this store's audit trail (also for a
remote); one that removed nothing, or a dry run, records nothing. Before removing anything,
gc checks that the trail can take the entry (its last entry is readable).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsck import referenced_objects
from modelreg.fsutil import tmp_name
from modelreg.handle import StoreHandle
from modelreg.hashing import is_digest
from modelreg.repair import leftover_temps, remove_temp, writer_alive

if TYPE_CHECKING:
    from modelreg.remote.backend import Backend
    from modelreg.remote.session import Session

__all__ = ["DEFAULT_GRACE", "GcReport", "deleted_objects", "gc", "parse_duration"]

DEFAULT_GRACE = 24 * 3600.0
"""One day: far longer than any register takes between writing objects and its manifest."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `24h`, `7d`, `2w` as seconds; InvalidInput otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise InvalidInput(f"invalid duration {text!r}: e.g. 0, 90s, 30m, 24h, 7d, 2w")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class GcReport:
    """What gc removed (or, with `dry_run`, would remove) and what it kept."""

    where: str
    url: str | None
    dry_run: bool
    grace: float
    objects: int
    referenced: int
    removed: tuple[tuple[str, int], ...]
    kept_recent: int
    kept_unknown_age: int
    temps_removed: int
    temp_bytes: int
    resent: tuple[str, ...]
    seconds: float

    @property
    def bytes_freed(self) -> int:
        """Bytes of the objects removed (or that would be)."""
        return sum(size for _, size in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg gc`."""
        return {
            "where": self.where,
            "url": self.url,
            "dry_run": self.dry_run,
            "grace_seconds": self.grace,
            "objects": self.objects,
            "referenced": self.referenced,
            "removed": [{"digest": d, "size": n} for d, n in self.removed],
            "bytes_freed": self.bytes_freed,
            "kept_recent": self.kept_recent,
            "kept_unknown_age": self.kept_unknown_age,
            "temps_removed": self.temps_removed,
            "temp_bytes": self.temp_bytes,
            "resent": list(self.resent),
            "seconds": round(self.seconds, 3),
        }


def gc(
    store: StoreHandle,
    *,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    remote: str | None = None,
) -> GcReport:
    """Remove unreferenced objects older than `grace` seconds (see the module docstring)."""
    if grace < 0:
        raise InvalidInput("--grace must be 0 or more")
    if remote is not None:
        return _gc_remote(store, remote, grace, dry_run)
    t0 = time.monotonic()
    with store.locked():
        refs = referenced_objects(store)
        cutoff = time.time() - grace
        young = deleted_objects(store, cutoff)
        removed: list[tuple[str, int]] = []
        candidates: list[tuple[str, int]] = []
        seen = recent = 0
        for digest in list(store.objects.iter_digests()):
            seen += 1
            if digest in refs:
                continue
            if digest in young:  # a version deleted less than `grace` ago (issue 19)
                recent += 1
                continue
            try:
                st = store.objects.path(digest).stat()
            except FileNotFoundError:
                continue
            if st.st_mtime > cutoff:
                recent += 1
            else:
                candidates.append((digest, st.st_size))
        old_temps = [
            p
            for p, age in list(leftover_temps(store))
            if age >= grace and age >= 0 and not writer_alive(p)
        ]
        if dry_run:
            removed = candidates
            temps, temp_bytes = len(old_temps), sum(_size(p) for p in old_temps)
        else:
            if candidates or old_temps:
                store.audit.last()  # IntegrityError before anything goes if gc cannot be audited
            removed, kept = _collect_all(store, candidates, cutoff)
            recent += kept
            temps = temp_bytes = 0
            for p in old_temps:
                temps += 1
                temp_bytes += remove_temp(p)
            if removed or temps:
                from modelreg.remote.record import record

                record(
                    store, "gc", objects=len(removed), bytes=sum(n for _, n in removed),
                    temps=temps, temp_bytes=temp_bytes, grace_seconds=grace,
                )  # fmt: skip
    return GcReport(
        "local", None, dry_run, grace, seen, len(refs), tuple(removed), recent, 0, temps,
        temp_bytes, (), time.monotonic() - t0,
    )  # fmt: skip


def deleted_objects(store: StoreHandle, cutoff: float) -> set[str]:
    """The objects of versions deleted after `cutoff` (their tombstones' time): kept by gc.

    Raises:
        IntegrityError: a tombstone cannot be read, so what it keeps is unknown.
    """
    from modelreg.catalog import model_names
    from modelreg.tombstones import read_tombstones

    out: set[str] = set()
    for name in model_names(store):
        good, bad = read_tombstones(store.root, name)
        if bad:
            raise IntegrityError(f"{bad[0][0]}: {bad[0][1]}; no gc (run mreg fsck)")
        for t in good:
            if t.timestamp > cutoff:
                out.update(d for d, _ in t.objects)
    return out


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def _collect_all(
    store: StoreHandle, candidates: list[tuple[str, int]], cutoff: float
) -> tuple[list[tuple[str, int]], int]:
    """Remove the candidates in two steps each; return (removed, kept because freshened)."""
    removed: list[tuple[str, int]] = []
    kept = 0
    if not candidates:
        return removed, kept
    trash = store.root / layout.TMP / tmp_name("gc")
    try:
        for digest, size in candidates:
            if _collect(store.objects.path(digest), trash, cutoff):
                removed.append((digest, size))
            else:
                kept += 1
    finally:
        shutil.rmtree(trash, ignore_errors=True)
    return removed, kept


def _collect(path: Path, trash: Path, cutoff: float) -> bool:
    """Move the object aside, re-check its mtime there, then delete it; False if kept."""
    trash.mkdir(parents=True, exist_ok=True)
    aside = trash / path.name
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if aside.stat().st_mtime > cutoff:  # a writer freshened it just before the rename
        try:
            os.link(aside, path)  # put back, unless a writer has written it again meanwhile
        except FileExistsError:
            pass
        aside.unlink()
        return False
    aside.unlink()
    return True


# -- remote gc -------------------------------------------------------------------------------


def _remote_manifest_refs(s: Session) -> dict[str, str]:
    """Digest -> manifest path of every object the remote's manifests name.

    Raises IntegrityError when a manifest (or a file where manifests live) cannot be parsed:
    what it names is unknown, so nothing may be collected.
    """
    from modelreg.remote.ingest import manifest_objects, parse_manifest

    metadata = s.metadata()
    for rel in s.listing:
        parts = rel.split("/")
        if parts[0] == layout.MODELS and len(parts) >= 4 and parts[-2] == layout.VERSIONS:
            meta = metadata.get(rel)
            if meta is None or meta.kind != "manifest":
                raise IntegrityError(f"{s.url}/{rel}: not a manifest this mreg can read; no gc")
    manifests = {r: m for r, m in metadata.items() if m.kind == "manifest"}
    data = s.get(manifests)
    out: dict[str, str] = {}
    for rel, m in manifests.items():
        if rel not in data:
            raise IntegrityError(f"{s.url}/{rel}: vanished while gc read it; no gc")
        mv = parse_manifest(data[rel], str(m.model), str(m.key), f"{s.url}/{rel}")
        for f in manifest_objects(mv):
            out.setdefault(f.sha256, rel)
    return out


def _remote_deleted_objects(s: Session, cutoff: float) -> set[str]:
    """The objects of the remote's tombstones younger than `cutoff` (IntegrityError: unread)."""
    from modelreg.tombstones import parse

    rels = {r: m for r, m in s.metadata().items() if m.kind == "tombstone"}
    data = s.get(rels)
    out: set[str] = set()
    for rel, m in rels.items():
        if rel not in data:
            raise IntegrityError(f"{s.url}/{rel}: could not be read; no gc")
        t = parse(data[rel], str(m.model), str(m.key), f"{s.url}/{rel}")
        if t.timestamp > cutoff:
            out.update(d for d, _ in t.objects)
    return out


def _stamp(info: dict[str, Any]) -> float | None:
    for key in ("LastModified", "mtime", "last_modified", "created", "updated"):
        value: Any = info.get(key)
        if value is not None and hasattr(value, "timestamp"):  # a datetime
            return float(value.timestamp())
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _remote_objects(backend: Backend) -> dict[str, tuple[int, float | None]]:
    """Digest -> (size, mtime or None when the backend gives no time) of remote objects."""
    out: dict[str, tuple[int, float | None]] = {}
    if backend.local_root is not None:
        base = backend.local_root / layout.OBJECTS
        if not base.is_dir():
            return out
        for fan in os.scandir(base):
            if fan.is_dir() and len(fan.name) == 2:
                for e in os.scandir(fan.path):
                    if is_digest(e.name) and e.name.startswith(fan.name):
                        st = e.stat()
                        out[e.name] = (st.st_size, st.st_mtime)
        return out
    backend.fs.invalidate_cache()
    try:
        found = backend.fs.find(f"{backend.root}/objects", detail=True)
    except FileNotFoundError:
        return out
    for path, info in found.items():
        parts = str(path).rsplit("/", 2)
        if len(parts) == 3 and is_digest(parts[2]) and parts[2].startswith(parts[1]):
            out[parts[2]] = (int(info.get("size") or 0), _stamp(info))
    return out


def _gc_remote(store: StoreHandle, remote: str, grace: float, dry_run: bool) -> GcReport:
    from modelreg.remote.session import Session
    from modelreg.remote.transfer import object_rel

    t0 = time.monotonic()
    s = Session.open(store, remote)
    with s.backend.errors():
        s.check_store(create=False)
        refs = _remote_manifest_refs(s)
        cutoff = time.time() - grace
        keep = set(refs) | set(referenced_objects(store)) | deleted_objects(store, cutoff)
        keep |= _remote_deleted_objects(s, cutoff)
        found = _remote_objects(s.backend)
        removed: list[tuple[str, int]] = []
        recent = unknown = 0
        for digest, (size, stamp) in sorted(found.items()):
            if digest in keep:
                continue
            if stamp is None:
                unknown += 1
            elif stamp > cutoff:
                recent += 1
            else:
                removed.append((digest, size))
        if removed and not dry_run:
            from modelreg.remote.record import public_url, record

            store.audit.last()  # IntegrityError before anything goes if gc cannot be audited
            for digest, _ in removed:
                s.backend.remove(object_rel(digest))
            resent: tuple[str, ...] = ()
            try:
                resent = _resend(store, remote, dict(removed))
            finally:  # recorded even when a re-send fails: the objects are gone either way
                record(
                    store, "gc", remote=s.spec.name, url=public_url(s.url),
                    objects=len(removed), bytes=sum(n for _, n in removed),
                    resent=len(resent), grace_seconds=grace,
                )  # fmt: skip
        else:
            resent = ()
    return GcReport(
        s.spec.name, s.url, dry_run, grace, len(found), len(keep & set(found)), tuple(removed),
        recent, unknown, 0, 0, resent, time.monotonic() - t0,
    )  # fmt: skip


def _resend(store: StoreHandle, remote: str, removed: dict[str, int]) -> tuple[str, ...]:
    """After deleting, re-list: send back any removed object a manifest written meanwhile names.

    Raises IntegrityError when such an object is not in this store either (the remote needs
    a push from a store that has it; docs/maintenance.md).
    """
    from modelreg.remote.session import Session

    s = Session.open(store, remote)
    with s.backend.errors():
        now = _remote_manifest_refs(s)
        wanted = {d: rel for d, rel in now.items() if d in removed}
        missing = [d for d in wanted if not store.objects.has(d)]
        if missing:
            raise IntegrityError(
                f"a push named object {missing[0][:12]} ({wanted[missing[0]]}) while gc removed "
                "it, and this store does not have it: push it from a store that does"
            )
        with s.transfer(None) as t:
            for d in wanted:
                t.upload(d, removed[d])
    return tuple(sorted(wanted))
