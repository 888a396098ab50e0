"""What `mreg fsck --repair` (and `mreg gc`) do to a store: safe, logged, never destructive.

- Leftover temp files (`tmp/*`, `.tmp-*`) are removed once older than an age and when the
  pid in their name is not a live process on this host: a running writer keeps its temp
  file fresh (every write updates its mtime), so an old one belongs to a dead writer.
- A torn last audit line (an append cut short) is cut off, as the next append would.
- A missing or corrupt object that a manifest names is downloaded from a remote into a
  staging directory, verified on receive, and only then put in place; a corrupt one is
  first moved to `lost+found/`, never deleted. A corrupt object no manifest names is moved
  to `lost+found/` too. Nothing referenced is ever deleted.
- What was changed is recorded in one `fsck-repair` audit entry (counts of temps and bytes,
  the objects restored or quarantined, the remote); a repair that changed nothing records
  nothing.

All of it runs under the store lock (see docs/maintenance.md).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg import layout
from modelreg.errors import MregError
from modelreg.fsutil import TMP_PREFIX, fsync_dir, tmp_name
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_file
from modelreg.objects import ObjectStore

if TYPE_CHECKING:
    from modelreg.findings import Finding, Repair
    from modelreg.remote.backend import Backend

__all__ = [
    "CHANGES",
    "LOST_FOUND",
    "leftover_temps",
    "quarantine",
    "remove_temp",
    "repair",
    "writer_alive",
]

LOST_FOUND = "lost+found"
CHANGES = ("removed-temp", "cut-torn-audit-line", "restored", "quarantined")
"""Repair actions that change the store, recorded in the audit trail (the others report
what could not be done: `restore-skipped`, `restore-failed`, `not-recorded`)."""


def leftover_temps(store: StoreHandle) -> Iterator[tuple[Path, float]]:
    """Temp files and directories left by interrupted writes, with their age in seconds.

    Everything in `tmp/`, and every `.tmp-*` name elsewhere in the store (`objects/` holds
    none: objects are staged in `tmp/`). A writer that is still running has such files too:
    callers decide by age (see `repair`).
    """
    now = time.time()

    def age(p: Path) -> float:
        try:
            return now - p.lstat().st_mtime
        except FileNotFoundError:
            return -1.0

    tmp = store.root / layout.TMP
    if tmp.is_dir():
        for p in sorted(tmp.iterdir()):
            yield p, age(p)
    for dirpath, dirnames, filenames in os.walk(store.root):
        here = Path(dirpath)
        if here == store.root:
            skip = (layout.OBJECTS, layout.TMP, layout.LOCKS, LOST_FOUND)
            dirnames[:] = [d for d in dirnames if d not in skip]
        for n in [*dirnames, *filenames]:
            if n.startswith(TMP_PREFIX):
                yield here / n, age(here / n)
        dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]


def writer_alive(path: Path) -> bool:
    """True when the temp name's pid (`.tmp-<pid>-...`) is a live process on this host."""
    pid_text = path.name[len(TMP_PREFIX) :].split("-", 1)[0]
    if not path.name.startswith(TMP_PREFIX) or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_temp(path: Path) -> int:
    """Delete a leftover temp file or directory; return the bytes freed."""
    try:
        if path.is_dir() and not path.is_symlink():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        else:
            size = path.lstat().st_size
            path.unlink()
    except FileNotFoundError:
        return 0
    return size


def quarantine(store: StoreHandle, path: Path) -> Path:
    """Move a damaged file into `lost+found/` (never deleted); return where it went."""
    lost = store.root / LOST_FOUND
    lost.mkdir(exist_ok=True)
    dst = lost / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{secrets.token_hex(4)}"
    os.rename(path, dst)
    fsync_dir(lost)
    fsync_dir(path.parent)
    return dst


def _cut_torn_line(path: Path) -> int:
    """Truncate the audit log after its last complete line; return the bytes cut."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        os.fsync(fh.fileno())
    return len(data) - keep


def _still_bad(objects: ObjectStore, digest: str, size: int | None) -> bool:
    """Re-check under the lock: the object is missing, of the wrong size, or corrupt."""
    path = objects.path(digest)
    try:
        if size is not None and path.stat().st_size != size:
            return True
        return hash_file(path)[0] != digest
    except FileNotFoundError:
        return True


def _restore(store: StoreHandle, backend: Backend, digest: str, size: int) -> str:
    """Fetch `digest` from the remote, verified, then put it in place; return what was done."""
    from modelreg.remote.transfer import Transfer

    staging = store.root / layout.TMP / tmp_name("restore")
    staged = ObjectStore(staging, store.root / layout.TMP)
    try:
        with backend.errors(), Transfer(backend, staged, jobs=1) as t:
            t.download(digest, size)  # IntegrityError if absent or bad there: nothing moves
        dst = store.objects.path(digest)
        aside = ""
        if dst.exists():
            aside = f"; the corrupt copy is in {quarantine(store, dst).relative_to(store.root)}"
        store.objects.commit(staged.path(digest), digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"restored from remote {backend.spec.name}{aside}"


def repair(
    store: StoreHandle,
    findings: list[Finding],
    referenced: dict[str, tuple[int, str]],
    remote: str | None,
    temp_age: float,
    repairs: list[Repair],
) -> set[Finding]:
    """Fix what is safe to fix (see the module docstring); return the findings fixed."""
    from modelreg.findings import Repair

    fixed: set[Finding] = set()
    freed_bytes = {"removed-temp": 0, "cut-torn-audit-line": 0}
    if remote is not None:
        store.remotes.get(remote)  # an unknown --remote is refused before anything changes
    with store.locked():
        now = time.time()
        for f in findings:
            path = store.root / f.path
            if f.kind == "leftover-temp":
                try:
                    age = now - path.lstat().st_mtime
                except FileNotFoundError:  # its writer finished meanwhile
                    fixed.add(f)
                    continue
                if age >= temp_age and not writer_alive(path):
                    freed = remove_temp(path)
                    freed_bytes["removed-temp"] += freed
                    repairs.append(Repair("removed-temp", f.path, f"{freed} bytes"))
                    fixed.add(f)
            elif f.kind == "index-mismatch":
                if not any(r.action == "rebuilt-index" for r in repairs):
                    from modelreg.index import rebuild

                    rebuild(store)
                    repairs.append(Repair("rebuilt-index", f.path, "from the files"))
                fixed.add(f)
            elif f.kind == "unfinished-delete":  # issue 19: the tombstone says what to do
                from modelreg.deletion import finish_at

                finish_at(store, f.path)
                repairs.append(Repair("finished-delete", f.path, f.message))
                fixed.add(f)
            elif f.kind == "audit-torn-line":
                cut = _cut_torn_line(path)
                freed_bytes["cut-torn-audit-line"] += cut
                repairs.append(Repair("cut-torn-audit-line", f.path, f"{cut} bytes"))
                fixed.add(f)
            elif f.kind == "corrupt-object" and f.digest and f.digest not in referenced:
                if _still_bad(store.objects, f.digest, None):
                    dst = quarantine(store, path)
                    repairs.append(Repair("quarantined", f.path, str(dst.relative_to(store.root))))
                fixed.update(g for g in findings if g.digest == f.digest)  # and its orphan-object
        try:
            _restore_objects(store, findings, referenced, remote, repairs, fixed)
        finally:  # what was changed is recorded even if a restore fails unexpectedly
            _record(store, remote, repairs, freed_bytes)
    return fixed


def _record(
    store: StoreHandle, remote: str | None, repairs: list[Repair], freed_bytes: dict[str, int]
) -> None:
    """Append one `fsck-repair` audit entry when something changed (#13); never fails repair.

    An audit log whose last entry is unreadable cannot be appended to: the repair is then
    reported as `not-recorded` (fsck reports the damaged log itself as an error).
    """
    from modelreg.errors import IntegrityError
    from modelreg.findings import Repair
    from modelreg.remote.record import public_url, record

    done = [r for r in repairs if r.action in CHANGES]
    if not done:
        return

    def digests(action: str) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in done if r.action == action]

    details: dict[str, object] = {
        "temps": sum(r.action == "removed-temp" for r in done),
        "temp_bytes": freed_bytes["removed-temp"],
        "torn_audit_bytes": freed_bytes["cut-torn-audit-line"],
        "restored": digests("restored"),
        "quarantined": digests("quarantined"),
    }
    if details["restored"]:
        spec = store.remotes.get(remote)
        details.update(remote=spec.name, url=public_url(spec.url))
    try:
        record(store, "fsck-repair", **details)
    except IntegrityError as exc:
        repairs.append(Repair("not-recorded", "audit/log.jsonl", str(exc)))


def _restore_objects(
    store: StoreHandle,
    findings: list[Finding],
    referenced: dict[str, tuple[int, str]],
    remote: str | None,
    repairs: list[Repair],
    fixed: set[Finding],
) -> None:
    from modelreg.findings import Repair

    todo = [
        f
        for f in findings
        if f.kind in ("missing-object", "corrupt-object") and f.digest in referenced
    ]
    if not todo:
        return
    if remote is None and not store.config.remotes:
        for f in todo:
            why = "no remote to restore from (mreg remote add, then mreg fsck --repair)"
            repairs.append(Repair("restore-skipped", f.path, why))
        return
    from modelreg.remote.backend import Backend

    backend = Backend(store.remotes.get(remote))
    try:
        with backend.errors():
            backend.check_exists()  # a missing bucket, said once in our words (#13)
    except MregError as exc:
        repairs.extend(Repair("restore-failed", f.path, str(exc)) for f in todo)
        return
    for f in todo:
        digest = str(f.digest)
        size = referenced[digest][0]
        if not _still_bad(store.objects, digest, size):
            fixed.add(f)
            continue
        try:
            done = _restore(store, backend, digest, size)
        except MregError as exc:
            repairs.append(Repair("restore-failed", f.path, str(exc)))
            continue
        repairs.append(Repair("restored", f.path, done))
        fixed.add(f)
