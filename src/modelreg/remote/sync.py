"""`push`: send exactly what the remote lacks, in the store's write order, verified.

Push, after listing the remote's metadata (see session.py):

1. decide everything before writing anything: a version whose manifest differs on the
   remote, a ref changed on the remote since the last pull (see merge.py), or a remote audit
   trail with entries not pulled yet refuses the whole push (Conflict; nothing is written);
2. send the missing objects (parallel, bounded memory, hashed on the way out);
3. create the missing manifests (conditional create), then the tombstones of deleted
   versions, removing what the remote held of them (deletions.py, issue 19), then replace
   the refs that moved (compare-and-swap on the token read in step 1);
4. append the push's own `push` audit entry (when objects, manifests or refs were sent: not
   for the audit log alone), then send the audit log (compare-and-swap), so the entry
   travels with the push it records and the next push has nothing to do (#13).

Objects before manifests before refs before the log, as locally: a reader of the remote
that follows a ref always finds what it names. An interrupted push leaves only complete
objects behind (and, on S3, an incomplete multipart upload that the bucket's lifecycle
rule reaps), so running it again sends only what is still missing.

`pull` (pull.py), `fetch` and `status` (status.py) are re-exported here: `modelreg.remote.sync`
is the module the `StoreHandle` facades call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelreg.errors import Conflict, IntegrityError
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.remote.backend import Entry
from modelreg.remote.deletions import apply_push, plan_push
from modelreg.remote.ingest import manifest_objects, parse_manifest
from modelreg.remote.layout import AUDIT, REF_KINDS, Meta, Scope, local_metadata
from modelreg.remote.merge import compare_logs, compare_ref, head_bytes, parse_log
from modelreg.remote.pull import PullResult, pull
from modelreg.remote.record import public_url, record
from modelreg.remote.session import Session, read_local
from modelreg.remote.status import FetchResult, StatusReport, fetch, status, versions_of
from modelreg.remote.transfer import TransferProgress, wait_all

__all__ = [
    "FetchResult",
    "PullResult",
    "PushResult",
    "StatusReport",
    "fetch",
    "pull",
    "push",
    "status",
]


@dataclass(frozen=True)
class PushResult:
    """What a push sent."""

    remote: str
    url: str
    objects_sent: int
    bytes_sent: int
    objects_present: int
    manifests_sent: tuple[str, ...]
    refs_sent: tuple[str, ...]
    audit_entries_sent: int
    remote_ahead: tuple[str, ...]
    guarantee: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg push`."""
        return {
            "remote": self.remote,
            "url": self.url,
            "objects_sent": self.objects_sent,
            "bytes_sent": self.bytes_sent,
            "objects_present": self.objects_present,
            "manifests_sent": list(self.manifests_sent),
            "refs_sent": list(self.refs_sent),
            "audit_entries_sent": self.audit_entries_sent,
            "remote_ahead": list(self.remote_ahead),
            "guarantee": self.guarantee,
            "seconds": round(self.seconds, 3),
        }


def _local_alias_target(store: StoreHandle, name: str, alias: str) -> str | None:
    from modelreg.refs import read_alias

    ref = read_alias(store, name, alias)
    return ref.version if ref else None


# -- push ------------------------------------------------------------------------------------


def push(
    store: StoreHandle,
    remote: str | None = None,
    specs: Sequence[str] = (),
    *,
    jobs: int | None = None,
    progress: TransferProgress | None = None,
) -> PushResult:
    """Send to the remote what it lacks (see the module docstring); Conflict if refused."""
    t0 = time.monotonic()
    every = local_metadata(store.root)
    hint = None if remote is not None else "see mreg remote list and mreg list"
    scope = Scope(specs, hint).resolve(
        versions_of(every), lambda n, a: _local_alias_target(store, n, a)
    )
    s = Session.open(store, remote, jobs)
    with s.backend.errors():
        return _push(s, every, scope, progress, t0)


def _push(
    s: Session,
    every: dict[str, Meta],
    scope: Scope,
    progress: TransferProgress | None,
    t0: float,
) -> PushResult:
    store = s.store
    local = {rel: m for rel, m in every.items() if scope.selects(m)}
    ldata = {rel: b for rel, m in local.items() if (b := read_local(store.root, m)) is not None}
    rdata = s.get(rel for rel in ldata if rel in s.listing)
    s.require_read()  # an unread remote file is not an absent one: never overwritten (#15)
    conflicts: list[str] = []
    # 1. decide
    # A manifest on the remote implies its objects are there (they are written first), so
    # only the objects of the manifests to send are looked for.
    manifests = []
    needed: dict[str, int] = {}
    for rel, m in local.items():
        if m.kind != "manifest":
            continue
        if rel in s.listing:
            if rdata.get(rel) != ldata[rel]:
                conflicts.append(f"{m.model}@{m.key} exists on the remote with other content")
            continue
        mv = parse_manifest(ldata[rel], str(m.model), str(m.key), str(store.root / rel))
        needed.update((f.sha256, f.size) for f in manifest_objects(mv))
        manifests.append(rel)
    # signatures (issue 19): immutable, named by their digest, sent when the remote lacks them
    signatures = []
    for rel, m in local.items():
        if m.kind == "signature":
            if rel not in s.listing:
                signatures.append(rel)
            elif rdata.get(rel) != ldata[rel]:
                conflicts.append(f"{rel} exists on the remote with other content")
    deletions = plan_push(s, local, ldata, conflicts)  # tombstones (issue 19)
    refs, remote_ahead = [], []
    for rel, m in local.items():
        if m.kind not in REF_KINDS:
            continue
        state = compare_ref(m.kind, ldata[rel], rdata.get(rel), s.tracking.base.get(rel))
        if state == "ahead":
            refs.append(rel)
        elif state == "behind":
            remote_ahead.append(rel)
        elif state == "diverged":
            conflicts.append(f"{rel} changed on the remote since your last pull")
        else:
            s.tracking.base[rel] = hash_bytes(ldata[rel])
    send_audit = False
    if AUDIT in ldata:
        mine = parse_log(ldata[AUDIT], str(store.audit.path))
        theirs = parse_log(rdata.get(AUDIT, b""), f"{s.url}/{AUDIT}")
        cmp = compare_logs(mine, theirs, s.tracking.audit_base())
        if cmp.state == "diverged":
            conflicts.append(f"the remote audit trail has {cmp.remote_only} entries not pulled")
        elif cmp.state == "behind":
            remote_ahead.append(AUDIT)
        elif cmp.state == "ahead":
            send_audit = True
        elif mine:
            s.tracking.set_audit_base(len(mine), mine[-1].hash)
    elif AUDIT in s.listing:  # no trail here, one there: its entries are to pull
        remote_ahead.append(AUDIT)
    if conflicts:
        s.finish()
        more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise Conflict(
            f"push to {s.spec.name} refused, nothing was written: {'; '.join(conflicts[:3])}"
            f"{more}; run mreg pull, then push again"
        )
    # 2. objects
    s.check_store(create=True)
    s.settle_conditional()
    present = s.objects(needed, sending=True)
    missing = {d: n for d, n in needed.items() if present.get(d) != n}
    for d in missing:
        if not store.objects.has(d):
            raise IntegrityError(
                f"object {d[:12]} is missing from the local store; run mreg verify"
            )
    if progress is not None:
        progress.start(len(missing), sum(missing.values()))
    with s.transfer(progress) as t:
        sent, failed = wait_all({t.submit(t.upload, d, n): d for d, n in missing.items()})
        if failed:
            raise IntegrityError(f"push to {s.spec.name} stopped: {next(iter(failed.values()))}")
        # 3. manifests, then their signatures, then refs, then the audit log
        for fut in [t.submit(_create, s, rel, ldata[rel]) for rel in manifests]:
            fut.result()
        for fut in [t.submit(_create, s, rel, ldata[rel]) for rel in signatures]:
            fut.result()
    apply_push(s, deletions)  # tombstones, then what the remote held of those versions
    lost = [rel for rel in refs if not _swap(s, rel, ldata[rel])]
    versions = tuple(sorted(f"{local[r].model}@{local[r].key}" for r in manifests))
    if missing or manifests or signatures or deletions.versions or len(lost) < len(refs):
        # 4. the push's own entry, appended before the log goes up so that it travels with
        # this push: the next push finds the remote log equal to ours and has nothing to do
        details: dict[str, Any] = {
            "remote": s.spec.name, "url": public_url(s.url), "objects": len(missing),
            "bytes": sent, "manifests": len(manifests), "versions": list(versions),
            "refs": len(refs) - len(lost),
        }  # fmt: skip
        if signatures:
            details["signatures"] = len(signatures)
        if deletions.versions:
            details["deleted"] = deletions.versions
        if lost:
            details["refs_not_sent"] = sorted(lost)
        record(store, "push", **details)
        send_audit = True
    audit_sent = 0
    if send_audit and not lost:
        audit_sent = _push_audit(s, behind=AUDIT in remote_ahead)
        if audit_sent < 0:
            lost.append(AUDIT)
    s.finish()
    if lost:
        raise Conflict(
            f"the remote changed during the push ({', '.join(lost[:3])}); objects and manifests "
            "were sent, those refs were not: run mreg pull, then push again"
        )
    return PushResult(
        s.spec.name, s.url, len(missing), sent, len(needed) - len(missing), versions,
        tuple(sorted(refs)), audit_sent, tuple(sorted(remote_ahead)), s.backend.guarantee,
        time.monotonic() - t0,
    )  # fmt: skip


_AUDIT_RETRIES = 8


def _push_audit(s: Session, *, behind: bool = False) -> int:
    """Send the local audit log if it extends the remote's; return the entries sent, -1 if lost.

    `behind`: the remote log had entries this store has not pulled when the push decided;
    this push's own entry then stays here (a pull rebases it, the next push sends it).

    The log is read again here (it holds this push's own entry, and whatever was appended
    meanwhile). When the compare-and-swap loses to a write that only moved the remote log
    forward along ours (another push of this store), the swap is tried again on the new
    token; a remote log that is no longer a prefix of ours is a loss (pull, then push).
    """
    store = s.store
    data = read_local(store.root, Meta(AUDIT, "audit")) or b""
    mine = parse_log(data, str(store.audit.path))
    data_there = s.get([AUDIT]).get(AUDIT, b"")
    s.require_read()
    theirs = parse_log(data_there, f"{s.url}/{AUDIT}")
    for attempt in range(_AUDIT_RETRIES):
        cmp = compare_logs(mine, theirs, s.tracking.audit_base())
        if cmp.state == "same":  # another push of this store sent exactly this log
            s.tracking.set_audit_base(len(mine), mine[-1].hash if mine else "")
            return 0
        if cmp.state != "ahead":
            # Expected only when the remote log was ahead already (reported as remote_ahead);
            # otherwise another store's entries arrived during the push: a loss.
            return 0 if attempt == 0 and behind else -1
        if _swap(s, AUDIT, data):
            return cmp.local_only
        entry = s.backend.stat(AUDIT)  # the token first, then the bytes it may be older than
        now = s.backend.read(AUDIT)
        if entry is None or now is None:
            return -1
        s.listing[AUDIT] = entry
        theirs = parse_log(now, f"{s.url}/{AUDIT}")
    return -1


def _create(s: Session, rel: str, data: bytes) -> None:
    """Create an immutable file on the remote; one that appeared meanwhile must be identical."""
    token = s.backend.write_if(rel, data, None)
    if token is None:
        theirs = s.backend.read(rel)
        if theirs != data:
            raise Conflict(f"{rel} was created on the remote with other content during the push")
        entry = s.backend.stat(rel)
        token = entry.token if entry else ""
    s.listing[rel] = Entry(len(data), token)
    s.tracking.remember(rel, token, data)


def _swap(s: Session, rel: str, data: bytes) -> bool:
    """Replace a moving ref if the remote still holds what was read; False if it changed.

    A lost race is no conflict when the winner wrote exactly these bytes (two pushes of one
    store at once): the remote already holds what this push would write.
    """
    token = s.backend.write_if(rel, data, s.listing.get(rel))
    if token is None:
        if s.backend.read(rel) != data:
            return False
        entry = s.backend.stat(rel)
        token = entry.token if entry else ""
    s.listing[rel] = Entry(len(data), token)
    s.tracking.remember(rel, token, data)
    if rel == AUDIT:
        entries = parse_log(data, rel)
        s.tracking.set_audit_base(len(entries), entries[-1].hash if entries else "")
        s.backend.write("audit/head.json", head_bytes(entries))  # derived: the log is the truth
    else:
        s.tracking.base[rel] = hash_bytes(data)
    return True
