"""`mreg delete`: remove a version (or every version of a model), audited (issue 19).

Order of work, so that a crash anywhere leaves a store `mreg fsck` accepts:

1. check the arguments (a reason is required, and holds no credential), then under the
   store lock decide for every version before writing anything: an alias pointing at it
   refuses the delete unless `force` (which removes those aliases); the baseline or canary
   of a live release refuses it even with `force` (abort the release first);
2. write the tombstone (`modelreg.tombstones`: temp, fsync, rename, read-only). From here
   the version is deleted for every reader, whatever is still beside it;
3. remove the aliases the tombstone lists (those still pointing at the version), the
   signatures, the state file, then the manifest;
4. append the `delete` audit entry (version, id, reason, forced, aliases removed).

A delete cut short between 2 and 4 is finished by the next `mreg delete` of that version
or by `mreg fsck --repair` (`finish`): they remove what is left and append the entry if the
trail does not hold it yet. The objects stay until `mreg gc` finds them older than its grace
period counted from the tombstone's time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.catalog import check_model, load_version
from modelreg.credentials import check_text
from modelreg.errors import InvalidInput, MregError, TransitionRefused
from modelreg.findings import Finding
from modelreg.fsutil import fsync_dir
from modelreg.handle import StoreHandle
from modelreg.indexrows import version_names
from modelreg.lineage import default_author
from modelreg.manifest_credentials import FIXES
from modelreg.names import Version, parse_ref
from modelreg.refs import list_aliases, read_alias
from modelreg.remote.ingest import manifest_objects
from modelreg.tombstones import (
    Tombstone,
    deleted_versions,
    read_tombstone,
    read_tombstones,
    write_tombstone,
)

__all__ = ["DeleteResult", "delete", "finish", "leftovers", "scan"]


@dataclass(frozen=True)
class DeleteResult:
    """What `delete` did: the versions it deleted, and those that already were."""

    name: str
    deleted: tuple[Tombstone, ...]
    already: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when a version was deleted (or a cut-short delete finished) now."""
        return bool(self.deleted)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg delete`."""
        return {
            "name": self.name,
            "changed": self.changed,
            "deleted": [
                {
                    "version": t.version,
                    "id": t.id,
                    "reason": t.reason,
                    "actor": t.actor,
                    "time": t.time,
                    "forced": t.forced,
                    "aliases_removed": list(t.aliases),
                    "objects": len(t.objects),
                    "bytes": sum(n for _, n in t.objects),
                }
                for t in self.deleted
            ],
            "already_deleted": list(self.already),
        }


def delete(
    store: StoreHandle,
    spec: str,
    *,
    reason: str,
    force: bool = False,
    actor: str | None = None,
) -> DeleteResult:
    """Delete `NAME@VERSION`, or every version of `NAME` (see the module docstring).

    Raises:
        InvalidInput: no reason, a reason holding a credential, or an alias or `latest`
            for the version (exit 2).
        NotFound: no such model or version (exit 2).
        TransitionRefused: an alias (without `force`) or a live release points at it.
    """
    if not reason.strip():
        raise InvalidInput("delete needs --reason: the audit trail says why a version went")
    check_text(reason, "--reason", FIXES["text"])  # the reason is kept and pushed
    ref = parse_ref(spec)
    whole = "@" not in spec
    if not whole and ref.kind != "version":
        raise InvalidInput(
            f"{spec!r}: delete takes NAME@VERSION (an exact version) or NAME (every version)"
        )
    who = actor or default_author()
    with store.writing():
        gone = sorted(deleted_versions(store.root, ref.name), key=Version)
        if whole:
            versions = sorted(version_names(store.root, ref.name), key=Version)
            if not versions and not gone:
                check_model(store, ref.name)  # NotFound: no such model
        elif ref.ref in gone:
            gone, versions = [ref.ref], []
        else:
            check_model(store, ref.name)
            load_version(store, ref.name, ref.ref)  # NotFound: no such version
            gone, versions = [], [ref.ref]
        done: list[Tombstone] = []
        already: list[str] = []
        recorded = _recorded(store) if gone else set()
        for v in gone:
            t = read_tombstone(store.root, ref.name, v)
            if t is not None and (leftovers(store, t) or (t.name, t.id) not in recorded):
                finish(store, t)  # a delete cut short: finished now
                done.append(t)
            elif t is not None:
                already.append(v)
        blocked = _blockers(store, ref.name, versions, force)
        for v in versions:
            mv = load_version(store, ref.name, v)
            t = Tombstone(
                name=mv.name, version=mv.version, id=mv.id,
                objects=tuple(dict.fromkeys((f.sha256, f.size) for f in manifest_objects(mv))),
                reason=reason, actor=who, time=store.now(), forced=force,
                aliases=tuple(blocked.get(v, ())),
            )  # fmt: skip
            write_tombstone(store.root, t)
            _remove_all(store, t)
            _record(store, t)
            done.append(t)
    return DeleteResult(ref.name, tuple(done), tuple(already))


def _blockers(
    store: StoreHandle, name: str, versions: list[str], force: bool
) -> dict[str, list[str]]:
    """The aliases pointing at each version; TransitionRefused when the delete must not be."""
    from modelreg.release.manifestfile import read_rollout

    rollout = read_rollout(store, name)
    if rollout is not None and rollout.live:
        for role, side in (("baseline", rollout.baseline), ("canary", rollout.canary)):
            if side.version in versions:
                raise TransitionRefused(
                    f"{name}@{side.version} is the {role} of live release {rollout.release}; "
                    f"abort it first (mreg release abort {name}), even with --force"
                )
    out: dict[str, list[str]] = {}
    for a in list_aliases(store, name):
        if a.version in versions:
            out.setdefault(a.version, []).append(a.alias)
    if out and not force:
        v, aliases = next(iter(sorted(out.items())))
        named = ", ".join(f"{name}@{a}" for a in aliases)
        raise TransitionRefused(
            f"{name}@{v} is pointed at by {named}: promote another version first, or delete "
            "with --force to remove the alias"
        )
    return out


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def _remove_all(store: StoreHandle, t: Tombstone) -> None:
    """Step 3: the aliases the tombstone lists, signatures, state file, manifest."""
    manifest = store.manifest_path(t.name, t.version)
    if manifest.exists():
        from modelreg.hashing import hash_file

        if hash_file(manifest)[0] != t.id:  # never removes a manifest it does not name
            raise TransitionRefused(
                f"{layout.rel_manifest(t.name, t.version)} is not the manifest its tombstone "
                "names; left as it is (see mreg fsck)"
            )
    for alias in t.aliases:
        ref = read_alias(store, t.name, alias)
        if ref is not None and ref.version == t.version:
            _unlink(store.alias_path(t.name, alias))
    sigs = layout.signatures_dir(store.root, t.name, t.version)
    if sigs.exists():
        shutil.rmtree(sigs)
        fsync_dir(sigs.parent)
    _unlink(store.state_path(t.name, t.version))
    _unlink(manifest)


def _record(store: StoreHandle, t: Tombstone, **extra: Any) -> None:
    store.record(
        t.actor, "delete", t.name, version=t.version, id=t.id, reason=t.reason,
        forced=t.forced, aliases=list(t.aliases), objects=len(t.objects), **extra,
    )  # fmt: skip


def _recorded(store: StoreHandle) -> set[tuple[str, str]]:
    """(model, id) of every deletion the audit trail holds (read when resuming only)."""
    return {
        (e.model, str(e.details.get("id")))
        for e in store.audit.entries()
        if e.action == "delete" and e.model is not None
    }


def leftovers(store: StoreHandle, t: Tombstone) -> list[str]:
    """What a delete cut short left of a deleted version (store-relative paths)."""
    out = [
        layout.rel_alias(t.name, a.alias)
        for a in list_aliases(store, t.name)
        if a.version == t.version and a.alias in t.aliases
    ]
    if layout.signatures_dir(store.root, t.name, t.version).exists():
        out.append(f"{layout.MODELS}/{t.name}/{layout.SIGNATURES}/{t.version}")
    for rel in (layout.rel_state(t.name, t.version), layout.rel_manifest(t.name, t.version)):
        if (store.root / rel).exists():
            out.append(rel)
    return out


def finish(store: StoreHandle, t: Tombstone, *, record: bool = True) -> bool:
    """Finish a delete cut short: remove what is left, audit it if not yet (lock taken here).

    `record` False: the deletion's entry comes from elsewhere (a pull merges the remote's
    trail). Returns True when something was removed or recorded.
    """
    with store.writing():
        left = leftovers(store, t)
        _remove_all(store, t)
        if record and (t.name, t.id) not in _recorded(store):
            _record(store, t, finished=True)
            return True
    return bool(left)


def scan(store: StoreHandle, out: list[Finding]) -> dict[tuple[str, str], str]:
    """`mreg fsck`'s check of every tombstone; returns (name, version) -> deleted id.

    A malformed tombstone, or one beside a manifest of other content, is a `bad-tombstone`;
    a delete cut short (its manifest, state, signatures or aliases still there) is an
    `unfinished-delete` warning that `fsck --repair` finishes.
    """
    from modelreg.catalog import model_names
    from modelreg.hashing import hash_file

    deleted: dict[tuple[str, str], str] = {}
    for name in model_names(store):
        good, bad = read_tombstones(store.root, name)
        out.extend(Finding("bad-tombstone", rel, msg) for rel, msg in bad)
        for t in good:
            rel = layout.rel_tombstone(name, t.version)
            deleted[(name, t.version)] = t.id
            manifest = store.manifest_path(name, t.version)
            if manifest.exists() and hash_file(manifest)[0] != t.id:
                msg = f"{t.name}@{t.version} has a tombstone and a manifest it does not name"
                out.append(Finding("bad-tombstone", rel, msg))
                continue
            left = leftovers(store, t)
            if left:
                msg = f"{t.name}@{t.version}: a delete cut short left {', '.join(left)}"
                out.append(Finding("unfinished-delete", rel, msg))
    return deleted


def finish_at(store: StoreHandle, rel: str) -> bool:
    """`fsck --repair`: finish the delete whose tombstone is at `rel` (False: nothing to do)."""
    parts = rel.split("/")
    if parts[:1] != [layout.MODELS] or len(parts) < 4 or parts[-2] != layout.TOMBSTONES:
        return False
    name, version = "/".join(parts[1:-2]), parts[-1].removesuffix(".yaml")
    try:
        t = read_tombstone(store.root, name, version)
    except MregError:
        return False
    return t is not None and finish(store, t)
