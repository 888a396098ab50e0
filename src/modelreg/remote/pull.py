"""`pull`: receive what the store lacks, verified, in the store's write order.

Objects of the new versions are downloaded and re-hashed before they enter the store (a
tampered or truncated one is rejected and reported, and so is every manifest that needs
it), then manifests, refs and the audit trail are installed under the store lock. What
cannot be merged is reported as a conflict and left as it is locally (see merge.py). A pull
that received objects, manifests or refs then appends a `pull` audit entry (record.py), a
local entry that the next push sends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelreg import layout, yamlio
from modelreg.errors import Conflict, IntegrityError, MregError
from modelreg.fsutil import atomic_write, safe_join
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.lineage import default_author
from modelreg.manifest import ModelVersion
from modelreg.remote.deletions import pull_tombstones, skip_deleted
from modelreg.remote.ingest import install_manifest, manifest_objects, parse_manifest
from modelreg.remote.layout import AUDIT, REF_KINDS, Meta, Scope, local_metadata
from modelreg.remote.merge import (
    compare_logs,
    compare_ref,
    head_bytes,
    log_bytes,
    parse_log,
    rebase,
)
from modelreg.remote.record import public_url, record
from modelreg.remote.session import Session, complete_lines, read_local
from modelreg.remote.status import alias_target, remote_hint, versions_of
from modelreg.remote.transfer import TransferProgress, wait_all

__all__ = ["PullResult", "check_local_trail", "pull"]


@dataclass(frozen=True)
class PullResult:
    """What a pull received, and what it could not take (conflicts, rejected objects)."""

    remote: str
    url: str
    objects_received: int
    bytes_received: int
    manifests_received: tuple[str, ...]
    refs_updated: tuple[str, ...]
    refs_kept: tuple[str, ...]
    audit_received: int
    audit_rebased: int
    conflicts: tuple[str, ...]
    rejected: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when everything selected was received and merged."""
        return not self.conflicts and not self.rejected

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg pull`."""
        return {
            "remote": self.remote,
            "url": self.url,
            "ok": self.ok,
            "objects_received": self.objects_received,
            "bytes_received": self.bytes_received,
            "manifests_received": list(self.manifests_received),
            "refs_updated": list(self.refs_updated),
            "refs_kept": list(self.refs_kept),
            "audit_received": self.audit_received,
            "audit_rebased": self.audit_rebased,
            "conflicts": list(self.conflicts),
            "rejected": list(self.rejected),
            "seconds": round(self.seconds, 3),
        }


def pull(
    store: StoreHandle,
    remote: str | None = None,
    specs: Sequence[str] = (),
    *,
    theirs: bool = False,
    jobs: int | None = None,
    progress: TransferProgress | None = None,
) -> PullResult:
    """Receive what this store lacks (see the module docstring).

    `theirs` resolves diverged refs by taking the remote's version (the local-only moves stay
    recorded in the audit trail, which is rebased, so they are not lost).
    """
    t0 = time.monotonic()
    check_local_trail(store)
    s = Session.open(store, remote, jobs)
    with s.backend.errors():
        s.check_store(create=False)
        scope = Scope(specs, remote_hint(s) if remote is None else None)
        return _pull(s, scope, theirs, progress, t0)


def check_local_trail(store: StoreHandle) -> None:
    """Refuse a pull the local audit trail could not merge, before anything is received.

    A pull ends by merging the remote's trail into the local one and appending its own
    entry; with a damaged local trail it would install versions and refs and then fail
    (issue 15: a command that reports failure must not have made its change).
    """
    raw = read_local(store.root, Meta(AUDIT, "audit")) or b""
    try:
        parse_log(raw, str(store.audit.path))
    except IntegrityError as exc:
        raise IntegrityError(f"{exc}; nothing was pulled (see mreg fsck)") from None


def _pull(
    s: Session,
    scope: Scope,
    theirs: bool,
    progress: TransferProgress | None,
    t0: float,
) -> PullResult:
    store = s.store
    remote = s.metadata()
    scope.resolve(versions_of(remote), lambda n, a: alias_target(s, n, a))
    selected = {rel: m for rel, m in remote.items() if scope.selects(m)}
    rdata = s.get(selected)
    local = local_metadata(store.root)
    conflicts: list[str] = []
    rejected: list[str] = []
    deleted = pull_tombstones(s, selected, rdata, local, conflicts, rejected)  # issue 19
    selected = skip_deleted(s, selected)
    new: list[tuple[ModelVersion, bytes]] = []
    for rel, m in selected.items():
        if m.kind != "manifest" or rel not in rdata:
            continue
        if rel in local and (store.root / rel).read_bytes() == rdata[rel]:
            continue  # the same manifest here: validated when it entered the store (#18)
        try:
            mv = parse_manifest(rdata[rel], str(m.model), str(m.key), f"{s.url}/{rel}")
        except IntegrityError as exc:
            rejected.append(str(exc))
            continue
        if rel not in local:
            new.append((mv, rdata[rel]))
        elif hash_bytes((store.root / rel).read_bytes()) != mv.id:
            conflicts.append(f"{mv.name}@{mv.version} exists here with other content")
    # objects of the new versions, verified on receive (no listing: a missing or short
    # object shows when it is read)
    todo = {
        f.sha256: f.size
        for mv, _ in new
        for f in manifest_objects(mv)
        if not store.objects.has(f.sha256)
    }
    if progress is not None:
        progress.start(len(todo), sum(todo.values()))
    with s.transfer(progress) as t:
        t.prepare("download", todo)  # an LFS remote: one batch request per 100 (issue 20)
        received, bad = wait_all({t.submit(t.download, d, n): d for d, n in todo.items()})
    rejected.extend(bad.values())
    installed = []
    for mv, data in new:
        broken = [f for f in manifest_objects(mv) if f.sha256 in bad]
        if broken:
            what = f"object {broken[0].sha256[:12]} was rejected"
            rejected.append(f"{mv.name}@{mv.version} not pulled: {what}")
            continue
        try:
            if install_manifest(store, data, mv):
                installed.append(f"{mv.name}@{mv.version}")
        except Conflict as exc:
            conflicts.append(str(exc))
        except IntegrityError as exc:  # a file's size is not its object's (#15)
            rejected.append(str(exc))
    updated_signatures = _pull_signatures(s, selected, rdata, local, rejected)
    if scope.everything:  # refs the remote does not have (any more): keep ours, push creates
        for rel in [r for r in s.tracking.base if r != AUDIT and r not in s.listing]:
            del s.tracking.base[rel]
    updated, kept = _pull_refs(s, selected, rdata, theirs, conflicts, rejected)
    updated += updated_signatures + deleted
    audit_in, rebased = _pull_audit(s, rdata, rejected)
    rejected.extend(s.unreadable())  # links, oversized files: never read (#15)
    objects = len(todo) - len(bad)
    if objects or installed or updated:  # after the merge: a local entry, pushed next time
        try:
            record(
                store, "pull", remote=s.spec.name, url=public_url(s.url), objects=objects,
                bytes=received, manifests=len(installed), versions=sorted(installed),
                refs=len(updated),
            )  # fmt: skip
        except IntegrityError as exc:  # the local log's last entry is unreadable
            rejected.append(f"the pull is not in the audit trail: {exc}")
    s.finish()
    return PullResult(
        s.spec.name, s.url, objects, received, tuple(sorted(installed)), tuple(updated),
        tuple(kept), audit_in, rebased, tuple(conflicts), tuple(rejected),
        time.monotonic() - t0,
    )  # fmt: skip


def _pull_signatures(
    s: Session,
    selected: dict[str, Meta],
    rdata: dict[str, bytes],
    local: dict[str, Meta],
    rejected: list[str],
) -> list[str]:
    """Install the remote's signatures this store lacks (issue 19).

    Each is checked as `mreg sign --attach` checks one: an OMS signature, named by its
    digest, of a version here, covering exactly its files. The `sign` entries travel in the
    audit trail, so none is added.
    """
    from modelreg.catalog import load_version
    from modelreg.signatures import install

    out = []
    for rel, m in sorted(selected.items()):
        if m.kind != "signature" or rel in local or rel not in rdata:
            continue
        source = f"{s.url}/{rel}"
        try:
            if hash_bytes(rdata[rel]) + layout.SIGNATURE_SUFFIX != rel.rsplit("/", 1)[-1]:
                raise IntegrityError(f"{source}: its content is not its name")
            mv = load_version(s.store, str(m.model), str(m.key))
            install(s.store, mv, rdata[rel], source, record=False)
        except MregError as exc:  # a version not pulled, a foreign or damaged signature
            rejected.append(str(exc))
            continue
        out.append(rel)
    return out


def _check_ref(store: StoreHandle, m: Meta, data: bytes, source: str) -> None:
    """Refuse a received ref that is malformed or names a version this store does not have.

    Each kind passes the parser its local reader uses, so a ref taken in is one `fsck`
    accepts: an alias or version state, and a rollout manifest (issue 15: its weight,
    rules, states and history, for this model, naming a baseline and a canary this store
    holds with the very manifests it names).
    """
    from modelreg.refs import AliasRef
    from modelreg.release.rollout import Rollout

    if m.kind == "policy":
        from modelreg.policy_format import Policy

        Policy.parse(data, source, IntegrityError)
        return
    if m.kind == "release":
        rollout = Rollout.parse(data, source, str(m.model))
        for role, side in (("baseline", rollout.baseline), ("canary", rollout.canary)):
            _check_version(store, m, side.version, side.id, source, f"its {role} ")
        return
    doc = yamlio.load(data, source, IntegrityError)
    if not isinstance(doc, dict):
        raise IntegrityError(f"{source}: not a mapping")
    version = str(m.key)
    if m.kind == "alias":
        try:
            ref = AliasRef.from_dict(doc)
        except (KeyError, TypeError, ValueError, MregError) as exc:
            raise IntegrityError(f"{source}: malformed alias ({exc})") from None
        if ref.model != m.model or ref.alias != m.key:
            raise IntegrityError(f"{source}: names {ref.model}@{ref.alias}, not its own path")
        version = ref.version
    elif doc.get("kind") != "VersionState":
        raise IntegrityError(f"{source}: not a VersionState document")
    _check_version(store, m, version, doc.get("id") if m.kind == "alias" else None, source)


def _check_move(store: StoreHandle, m: Meta, data: bytes, source: str) -> None:
    """Refuse a pulled alias move the store's policy forbids (issue 19).

    The version it points at must pass the alias's gates, and the actor of its last move
    must be one the policy allows to move it.
    """
    from modelreg.catalog import load_version
    from modelreg.policy import incoming_move_problems, read_policy
    from modelreg.refs import AliasRef

    ref = AliasRef.from_dict(yamlio.load(data, source, IntegrityError))
    actor = ref.history[-1].actor if ref.history else ""
    try:
        target = load_version(store, str(m.model), ref.version)
    except MregError as exc:  # deleted here, or damaged: not a version to move an alias to
        raise IntegrityError(f"{source}: not taken: {exc}") from None
    problems = incoming_move_problems(store, ref.alias, target, actor, read_policy(store))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"{source}: not taken: {m.model}@{ref.alias} -> {ref.version} breaks this store's "
            f"policy: {problems[0]}{more}"
        )


def _check_version(
    store: StoreHandle, m: Meta, version: str, expect_id: object, source: str, what: str = ""
) -> None:
    """Refuse a ref to a version this store lacks, or whose manifest is not `expect_id`."""
    path = store.manifest_path(str(m.model), version)
    if not path.exists():
        raise IntegrityError(
            f"{source}: {what}names {m.model}@{version}, which this store does not have"
        )
    if expect_id is not None and hash_bytes(path.read_bytes()) != expect_id:
        raise IntegrityError(f"{source}: expects another manifest for {m.model}@{version}")


def _pull_refs(
    s: Session,
    selected: dict[str, Meta],
    rdata: dict[str, bytes],
    theirs: bool,
    conflicts: list[str],
    rejected: list[str],
) -> tuple[list[str], list[str]]:
    store = s.store
    updated, kept = [], []
    # the policy first: a pull that brings a newer policy enforces it on the moves it brings
    for rel, m in sorted(selected.items(), key=lambda kv: (kv[1].kind != "policy", kv[0])):
        remote = rdata.get(rel)
        if m.kind not in REF_KINDS or remote is None:
            continue
        mine = read_local(store.root, m)
        state = compare_ref(m.kind, mine, remote, s.tracking.base.get(rel))
        if state == "ahead":
            kept.append(rel)
        elif state == "behind" or (state == "diverged" and theirs):
            try:
                _check_ref(store, m, remote, f"{s.url}/{rel}")
                if m.kind == "alias":
                    _check_move(store, m, remote, f"{s.url}/{rel}")
            except IntegrityError as exc:
                rejected.append(str(exc))
                continue
            with store.locked():
                if read_local(store.root, m) != mine:
                    conflicts.append(f"{rel} changed here during the pull")
                    continue
                atomic_write(safe_join(store.root, rel), remote)
                if state == "diverged":  # the trail says why the local move was undone
                    store.record(
                        default_author(), "pull-theirs", m.model, ref=rel, remote=s.spec.name,
                        replaced=hash_bytes(mine or b""), taken=hash_bytes(remote),
                    )  # fmt: skip
            updated.append(rel)
        elif state == "diverged":
            conflicts.append(
                f"{rel} changed both here and on the remote (mreg pull --theirs takes the remote's)"
            )
            continue
        s.tracking.base[rel] = hash_bytes(remote)
    return updated, kept


def _pull_audit(s: Session, rdata: dict[str, bytes], rejected: list[str]) -> tuple[int, int]:
    """Fast-forward the local audit log, or rebase its local-only entries onto the remote's."""
    if AUDIT not in rdata:
        return 0, 0
    store = s.store
    try:
        theirs = parse_log(rdata[AUDIT], f"{s.url}/{AUDIT}")
        with store.locked():
            try:
                raw = store.audit.path.read_bytes()
            except FileNotFoundError:
                raw = b""
            mine = parse_log(complete_lines(raw), str(store.audit.path))
            cmp = compare_logs(mine, theirs, s.tracking.audit_base())
            if cmp.state in ("behind", "diverged"):
                merged = rebase(mine, theirs, cmp.common)
                if cmp.state == "diverged":  # the head must name an entry both logs hold,
                    atomic_write(store.audit.head_path, head_bytes(mine[: cmp.common]))  # (#8)
                atomic_write(store.audit.path, log_bytes(merged))
                atomic_write(store.audit.head_path, head_bytes(merged))
    except IntegrityError as exc:
        rejected.append(str(exc))
        return 0, 0
    if theirs:
        s.tracking.set_audit_base(len(theirs), theirs[-1].hash)
    return cmp.remote_only, cmp.local_only if cmp.state == "diverged" else 0
