"""Deletions travel (issue 19): push sends tombstones, pull applies them.

Push, for every local tombstone selected: a remote without it gets it (created, immutable,
like a manifest), then loses the deleted version's manifest (only when it is the one the
tombstone names), state file, signatures and the aliases that point at it. Its objects are
left to `mreg gc --remote`, which keeps them for the grace period counted from the
tombstone's time. A tombstone the remote holds with other bytes, or a remote manifest of
other content, refuses the push (Conflict, nothing written).

Pull, for every remote tombstone this store lacks: it is read bounded and checked (`parse`:
well-formed, naming its own path's model and version) before anything is written. It is
then applied as a local delete would be, except that it is not applied (a conflict is
reported, nothing changes) when a local alias or a live release points at the version, or
the local manifest is not the one it names: the store's owner decides (move the alias or
abort the release, then pull again). The remote's `delete` entry arrives with its audit
trail, so none is added here. A remote manifest, state or signature of a version deleted
here is never taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelreg import layout, yamlio
from modelreg.errors import Conflict, IntegrityError
from modelreg.fsutil import atomic_write
from modelreg.hashing import hash_bytes
from modelreg.remote.layout import Meta
from modelreg.tombstones import Tombstone, parse

if TYPE_CHECKING:
    from modelreg.remote.session import Session

__all__ = ["PushDeletions", "apply_push", "plan_push", "pull_tombstones", "skip_deleted"]


@dataclass
class PushDeletions:
    """What a push sends and removes for deleted versions."""

    create: list[str] = field(default_factory=list)
    """Tombstones the remote lacks."""
    remove: list[str] = field(default_factory=list)
    """Remote files of deleted versions: manifests, states, signatures, aliases."""
    versions: list[str] = field(default_factory=list)
    """`NAME@V` of every deletion that changes the remote."""


def _remote_version(s: Session, rel: str) -> str | None:
    data = s.get([rel]).get(rel)
    s.require_read()
    doc = yamlio.load(data or b"", f"{s.url}/{rel}", IntegrityError)
    return str(doc.get("version")) if isinstance(doc, dict) else None


def plan_push(
    s: Session, local: dict[str, Meta], ldata: dict[str, bytes], conflicts: list[str]
) -> PushDeletions:
    """Decide what the push does for the selected local tombstones (see the module docstring)."""
    plan = PushDeletions()
    for rel, m in sorted(local.items()):
        if m.kind != "tombstone" or rel not in ldata:
            continue
        t = parse(ldata[rel], str(m.model), str(m.key), str(s.store.root / rel))
        if rel in s.listing:
            if s.get([rel]).get(rel) != ldata[rel]:
                conflicts.append(f"{rel} exists on the remote with other content")
                continue
        else:
            plan.create.append(rel)
        gone = _remote_leftovers(s, t, conflicts)
        plan.remove.extend(gone)
        if gone or rel in plan.create:
            plan.versions.append(f"{t.name}@{t.version}")
    return plan


def _remote_leftovers(s: Session, t: Tombstone, conflicts: list[str]) -> list[str]:
    manifest = layout.rel_manifest(t.name, t.version)
    out = []
    if manifest in s.listing:
        data = s.get([manifest]).get(manifest)
        s.require_read()
        if data is None or hash_bytes(data) != t.id:
            conflicts.append(f"{t.name}@{t.version} is on the remote with other content")
            return []
        out.append(manifest)
    sigs = layout.rel_signatures(t.name, t.version) + "/"
    state = layout.rel_state(t.name, t.version)
    aliases = f"{layout.MODELS}/{t.name}/{layout.ALIASES}/"
    for rel in sorted(s.listing):
        if rel == state or rel.startswith(sigs):
            out.append(rel)
        elif rel.startswith(aliases) and rel.count("/") == aliases.count("/"):
            if _remote_version(s, rel) == t.version:
                out.append(rel)
    return out


def apply_push(s: Session, plan: PushDeletions) -> None:
    """Create the tombstones, then remove the deleted versions' files (manifests last)."""
    for rel in plan.create:
        data = (s.store.root / rel).read_bytes()
        token = s.backend.write_if(rel, data, None)
        if token is None and s.backend.read(rel) != data:
            raise Conflict(f"{rel} was created on the remote with other content during the push")
        s.tracking.remember(rel, token or "", data)
    manifests = [r for r in plan.remove if f"/{layout.VERSIONS}/" in r]
    for rel in [r for r in plan.remove if r not in manifests] + manifests:
        s.backend.remove(rel)
        s.listing.pop(rel, None)
        s.tracking.base.pop(rel, None)


def pull_tombstones(
    s: Session,
    selected: dict[str, Meta],
    rdata: dict[str, bytes],
    local: dict[str, Meta],
    conflicts: list[str],
    rejected: list[str],
) -> list[str]:
    """Apply the selected remote tombstones this store lacks; return those applied."""
    from modelreg.deletion import finish
    from modelreg.refs import list_aliases
    from modelreg.release.manifestfile import read_rollout

    store = s.store
    applied = []
    for rel, m in sorted(selected.items()):
        if m.kind != "tombstone" or rel not in rdata:
            continue
        source = f"{s.url}/{rel}"
        try:
            t = parse(rdata[rel], str(m.model), str(m.key), source)
        except IntegrityError as exc:
            rejected.append(str(exc))
            continue
        if rel in local:
            if (store.root / rel).read_bytes() != rdata[rel]:
                conflicts.append(f"{rel} is here with other content")
            continue
        what = f"{t.name}@{t.version} was deleted on the remote"
        with store.writing():
            manifest = store.manifest_path(t.name, t.version)
            here = [a.alias for a in list_aliases(store, t.name) if a.version == t.version]
            rollout = read_rollout(store, t.name)
            live = rollout is not None and rollout.live
            sides = (rollout.baseline.version, rollout.canary.version) if rollout else ()
            if manifest.exists() and hash_bytes(manifest.read_bytes()) != t.id:
                conflicts.append(f"{what}, but this store holds other content under it")
            elif here:
                conflicts.append(
                    f"{what}, but {', '.join(f'{t.name}@{a}' for a in here)} points at it "
                    "here: promote another version, then pull again"
                )
            elif live and t.version in sides:
                conflicts.append(f"{what}, but live release {t.name} names it here: abort it")
            else:
                atomic_write(store.root / rel, rdata[rel], mode=0o444)  # the bytes received
                finish(store, t, record=False)  # its `delete` entry comes with the trail
                applied.append(rel)
    return applied


def skip_deleted(s: Session, selected: dict[str, Meta]) -> dict[str, Meta]:
    """`selected` without the manifests, states and signatures of versions deleted here."""
    from modelreg.tombstones import deleted_versions

    gone: dict[str, set[str]] = {}
    out = {}
    for rel, m in selected.items():
        if m.kind in ("manifest", "state", "signature"):
            name = str(m.model)
            if name not in gone:
                gone[name] = deleted_versions(s.store.root, name)
            if m.key in gone[name]:
                continue
        out[rel] = m
    return out
