"""`fetch` (the remote's metadata, beside the store) and `status --remote` (what differs).

Neither changes the store: fetch refreshes `.modelreg/remotes/NAME/snapshot/`, and status
compares the store with the remote both ways (versions, objects, refs, audit trail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelreg import yamlio
from modelreg.errors import IntegrityError
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.remote.ingest import manifest_objects, parse_manifest
from modelreg.remote.layout import AUDIT, REF_KINDS, Meta, Scope, local_metadata
from modelreg.remote.merge import LogComparison, compare_logs, compare_ref, parse_log
from modelreg.remote.session import Session, read_local

__all__ = [
    "FetchResult",
    "StatusReport",
    "alias_target",
    "fetch",
    "remote_hint",
    "status",
    "versions_of",
]


def versions_of(metas: dict[str, Meta]) -> Any:
    """A `name -> versions` lookup over classified metadata (for `Scope.resolve`)."""
    kinds = ("manifest", "tombstone")  # a deleted version can be named, to send its deletion
    return lambda name: [m.key for m in metas.values() if m.kind in kinds and m.model == name]


def remote_hint(s: Session) -> str:
    """What "no remote or model named X" adds when X was looked for on remote `s` (#13)."""
    return f"see mreg remote list; remote {s.spec.name} has no such model"


def alias_target(s: Session, name: str, alias: str) -> str | None:
    """The version a remote alias points at, or None (for `Scope.resolve` on the remote)."""
    rel = f"models/{name}/aliases/{alias}.yaml"
    data = s.get([rel]).get(rel)
    if data is None:
        return None
    doc = yamlio.load(data, f"{s.url}/{rel}", IntegrityError)
    return str(doc.get("version")) if isinstance(doc, dict) else None


@dataclass(frozen=True)
class FetchResult:
    """What a fetch downloaded, and what the remote has that this store does not."""

    remote: str
    url: str
    fetched: int
    bytes: int
    remote_versions: tuple[str, ...]
    refs_changed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg fetch`."""
        return {
            "remote": self.remote,
            "url": self.url,
            "fetched": self.fetched,
            "bytes": self.bytes,
            "remote_versions": list(self.remote_versions),
            "refs_changed": list(self.refs_changed),
        }


def fetch(store: StoreHandle, remote: str | None = None, specs: Sequence[str] = ()) -> FetchResult:
    """Download the remote's metadata (manifests, refs, audit log), never its objects."""
    s = Session.open(store, remote)
    with s.backend.errors():
        s.check_store(create=False)
        metas = s.metadata()
        hint = remote_hint(s) if remote is None else None
        scope = Scope(specs, hint).resolve(versions_of(metas), lambda n, a: alias_target(s, n, a))
        selected = {rel: m for rel, m in metas.items() if scope.selects(m)}
        rdata = s.get(selected)
        s.require_read()
        local = local_metadata(store.root)
        versions = sorted(
            f"{m.model}@{m.key}"
            for rel, m in selected.items()
            if m.kind == "manifest" and rel not in local
        )
        changed = sorted(
            rel
            for rel, m in selected.items()
            if m.kind != "manifest" and read_local(store.root, m) != rdata.get(rel)
        )
        s.finish()
    return FetchResult(
        s.spec.name, s.url, s.fetched, s.fetched_bytes, tuple(versions), tuple(changed)
    )


@dataclass(frozen=True)
class StatusReport:
    """What differs between the store and a remote, both ways."""

    remote: str
    url: str
    versions_to_push: tuple[str, ...]
    versions_to_pull: tuple[str, ...]
    version_conflicts: tuple[str, ...]
    objects_to_push: int
    bytes_to_push: int
    objects_to_pull: int
    bytes_to_pull: int
    refs: dict[str, str]
    audit: LogComparison
    guarantee: str

    @property
    def in_sync(self) -> bool:
        """True when a push and a pull would both have nothing to do."""
        return not (
            self.versions_to_push
            or self.versions_to_pull
            or self.version_conflicts
            or self.objects_to_push
            or self.objects_to_pull
            or self.refs
            or self.audit.state != "same"
        )

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg status --remote`."""
        return {
            "remote": self.remote,
            "url": self.url,
            "in_sync": self.in_sync,
            "versions_to_push": list(self.versions_to_push),
            "versions_to_pull": list(self.versions_to_pull),
            "version_conflicts": list(self.version_conflicts),
            "objects_to_push": self.objects_to_push,
            "bytes_to_push": self.bytes_to_push,
            "objects_to_pull": self.objects_to_pull,
            "bytes_to_pull": self.bytes_to_pull,
            "refs": dict(self.refs),
            "audit": self.audit.to_dict(),
            "guarantee": self.guarantee,
        }


def status(store: StoreHandle, remote: str | None = None) -> StatusReport:
    """Compare the store with a remote; an empty remote has everything to push."""
    s = Session.open(store, remote)
    with s.backend.errors():
        if not s.empty:
            s.check_store(create=False)
        metas = s.metadata()
        rdata = s.get(metas)
        s.require_read()
        local = local_metadata(store.root)
        ldata = {rel: d for rel, m in local.items() if (d := read_local(store.root, m)) is not None}
        report = _compare(s, metas, rdata, local, ldata)
        s.finish()
    return report


def _needs(data: dict[str, bytes], metas: dict[str, Meta], rels: Sequence[str]) -> dict[str, int]:
    out = {}
    for rel in rels:
        m = metas[rel]
        try:
            mv = parse_manifest(data[rel], str(m.model), str(m.key), rel)
        except IntegrityError:
            continue
        out.update({f.sha256: f.size for f in manifest_objects(mv)})
    return out


def _compare(
    s: Session,
    metas: dict[str, Meta],
    rdata: dict[str, bytes],
    local: dict[str, Meta],
    ldata: dict[str, bytes],
) -> StatusReport:
    lman = [r for r, m in local.items() if m.kind == "manifest"]
    rman = [r for r, m in metas.items() if m.kind == "manifest" and r in rdata]
    to_push = [r for r in lman if r not in metas]
    gone = {(m.model, m.key) for m in local.values() if m.kind == "tombstone"}  # deleted here
    to_pull = [r for r in rman if r not in local and (metas[r].model, metas[r].key) not in gone]
    clash = [r for r in lman if r in rdata and hash_bytes(rdata[r]) != hash_bytes(ldata[r])]
    # As push: a manifest on the remote implies its objects (they are written first), so only
    # the objects of the versions to push are looked for (one HEAD each, issue 18)
    wanted = _needs(ldata, local, to_push)
    present = s.objects(wanted)
    push_objs = {d: n for d, n in wanted.items() if present.get(d) != n}
    pull_objs = {
        d: n for d, n in _needs(rdata, metas, to_pull).items() if not s.store.objects.has(d)
    }
    deleted = gone | {(m.model, m.key) for m in metas.values() if m.kind == "tombstone"}
    refs: dict[str, str] = {}
    for rel in sorted(set(local) | set(metas)):
        m = local.get(rel) or metas[rel]
        if m.kind in ("state", "signature") and (m.model, m.key) in deleted:
            continue  # of a version deleted on one side: push drops it there, pull here
        if m.kind in REF_KINDS:
            state = compare_ref(m.kind, ldata.get(rel), rdata.get(rel), s.tracking.base.get(rel))
            if state != "same":
                refs[rel] = state
        elif m.kind in ("signature", "tombstone") and (rel in local) != (rel in metas):  # immutable
            refs[rel] = "ahead" if rel in local else "behind"
    mine = parse_log(ldata.get(AUDIT, b""), str(s.store.audit.path))
    theirs = parse_log(rdata.get(AUDIT, b""), f"{s.url}/{AUDIT}")
    audit = compare_logs(mine, theirs, s.tracking.audit_base())

    def names(rels: Sequence[str], where: dict[str, Meta]) -> tuple[str, ...]:
        return tuple(sorted(f"{where[r].model}@{where[r].key}" for r in rels))

    return StatusReport(
        s.spec.name, s.url, names(to_push, local), names(to_pull, metas), names(clash, local),
        len(push_objs), sum(push_objs.values()), len(pull_objs), sum(pull_objs.values()),
        refs, audit, s.backend.guarantee,
    )  # fmt: skip
