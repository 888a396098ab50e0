"""`pull`, `status --remote` and `fetch` for an OCI registry (see `ocisync`, issue 20).

Pull lists the tags of each model's repository (the catalog's repositories below the
remote's, or the models named), reads each new version's image manifest and config with
the checks of `mreg unpack` (`ocirepo.fetch_version`), receives the blobs the store lacks
through `ingest` (hashed while written to `tmp/`, at most the size the manifest gives), and
installs a version only once all its objects are in. Status and fetch compare tags and
manifest digests (a HEAD each) and change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from modelreg.errors import Conflict, IntegrityError, InvalidInput, MregError, NotFound
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.manifest import ModelVersion
from modelreg.names import parse_ref
from modelreg.oci_format import (
    MAX_DOC,
    json_object,
)
from modelreg.remote.ingest import (
    install_manifest,
    manifest_objects,
    parse_manifest,
)
from modelreg.remote.layout import Scope
from modelreg.remote.merge import LogComparison
from modelreg.remote.ocirepo import (
    GUARANTEE,
    OciRemote,
    alias_rel,
    download,
    fetch_version,
    image_of,
    local_aliases,
    local_versions,
    model_of,
    safe_fetch,
)
from modelreg.remote.pull import PullResult
from modelreg.remote.record import public_url, record
from modelreg.remote.status import FetchResult, StatusReport
from modelreg.remote.transfer import TransferProgress

__all__ = ["fetch", "pull", "status"]


def pull(
    store: StoreHandle,
    remote: str | None = None,
    specs: Sequence[str] = (),
    *,
    theirs: bool = False,
    jobs: int | None = None,
    progress: TransferProgress | None = None,
) -> PullResult:
    """Receive the registry's versions this store lacks, each verified (module docstring).

    `theirs` has nothing to resolve here: alias tags are not taken in.
    """
    from modelreg.remote.pull import check_local_trail
    from modelreg.tombstones import read_tombstone

    t0 = time.monotonic()
    check_local_trail(store)
    r = OciRemote(store, remote, jobs)
    try:
        names = sorted({parse_ref(s).name for s in specs}) if specs else r.models(())
        tags = {n: r.version_tags(n) for n in names}
        hint = f"see mreg remote list; remote {r.spec.name} has no such model"

        def alias_target(n: str, a: str) -> str | None:
            if a not in tags.get(n, ([], []))[1]:
                return None
            raw, _ = r.reg.get_manifest(r.repo(n), a, MAX_DOC)
            notes = json_object(raw, f"{r.repo(n)}:{a}").get("annotations")
            return str(notes.get("org.opencontainers.image.version")) if notes else None

        scope = Scope(specs, hint if remote is None else None)
        scope.resolve(lambda n: tags.get(n, ([], []))[0], alias_target)
        local = local_versions(store)
        conflicts: list[str] = []
        rejected: list[str] = []
        new: list[tuple[str, bytes, ModelVersion]] = []
        wanted = [
            (n, v)
            for n in names
            for v in tags[n][0]
            if scope.everything or n in scope.models or (n, v) in scope.versions
        ]
        wanted = [k for k in wanted if read_tombstone(store.root, *k) is None]

        def look(k: tuple[str, str]) -> tuple[str, Any]:
            """("new", (repo, bytes, manifest)), ("same", None), or a refusal and why."""
            n, v = k
            if k in local:  # the same manifest digest here: nothing to do
                digest = image_of(n, v, local[k], str(store.manifest_path(n, v)))[1]
                if r.reg.manifest_digest(r.repo(n), v) == digest:
                    return "same", None
            try:
                data, mv = fetch_version(r, n, v)
            except (IntegrityError, InvalidInput, NotFound) as exc:
                return "rejected", str(exc)
            if k not in local:
                return "new", (r.repo(n), data, mv)
            if hash_bytes(local[k]) != mv.id:
                return "conflict", f"{n}@{v} exists here with other content"
            return "same", None

        for kind, res in r.each(look, wanted):
            if kind == "conflict":
                conflicts.append(res)
            elif kind == "rejected":
                rejected.append(res)
            elif kind == "new":
                new.append(res)
        todo: dict[str, tuple[str, int]] = {}
        for repo, _, mv in new:
            for f in manifest_objects(mv):
                if not store.objects.has(f.sha256):
                    todo.setdefault(f.sha256, (repo, f.size))
        if progress is not None:
            progress.start(len(todo), sum(n for _, n in todo.values()))

        def get(item: tuple[str, tuple[str, int]]) -> tuple[str, int, str | None]:
            digest, (repo, size) = item
            on_bytes = None if progress is None else (lambda n: progress.advance(0, n))
            try:
                n = download(r, repo, digest, size, on_bytes)
            except MregError as exc:
                return digest, 0, str(exc)
            if progress is not None:
                progress.advance(1, 0)
            return digest, n, None

        results = r.each(get, sorted(todo.items()))
    finally:
        r.reg.close()
    bad = {d: err for d, _, err in results if err is not None}
    rejected.extend(bad.values())
    received = sum(n for _, n, _ in results)
    installed = []
    for _, data, mv in new:
        broken = [f for f in manifest_objects(mv) if f.sha256 in bad]
        if broken:
            rejected.append(
                f"{mv.name}@{mv.version} not pulled: object {broken[0].sha256[:12]} was rejected"
            )
            continue
        try:
            if install_manifest(store, data, mv):
                installed.append(f"{mv.name}@{mv.version}")
        except Conflict as exc:
            conflicts.append(str(exc))
        except IntegrityError as exc:
            rejected.append(str(exc))
    objects = len(todo) - len(bad)
    if objects or installed:
        record(
            store, "pull", remote=r.spec.name, url=public_url(r.spec.url), objects=objects,
            bytes=received, manifests=len(installed), versions=sorted(installed), refs=0,
        )  # fmt: skip
    return PullResult(
        r.spec.name, r.spec.url, objects, received, tuple(sorted(installed)), (), (), 0, 0,
        tuple(conflicts), tuple(rejected), time.monotonic() - t0,
    )  # fmt: skip


# -- status and fetch -------------------------------------------------------------------------


def _compare(r: OciRemote, deep: bool) -> dict[str, Any]:
    """What differs between the store and the registry (a HEAD per version both sides have)."""
    from modelreg.tombstones import read_tombstone

    store = r.store
    local = local_versions(store)
    names = r.models({n for n, _ in local})
    tags = {n: r.version_tags(n) for n in names}
    remote = {(n, v) for n in names for v in tags[n][0]}
    images = {k: image_of(*k, d, str(store.manifest_path(*k))) for k, d in local.items()}
    both = sorted(set(local) & remote)
    heads = r.each(lambda k: r.reg.manifest_digest(r.repo(k[0]), k[1]), both)
    clash = sorted(
        f"{n}@{v}" for (n, v), h in zip(both, heads, strict=True) if h != images[(n, v)][1]
    )
    to_push = sorted(set(local) - remote)
    to_pull = sorted(k for k in remote - set(local) if read_tombstone(store.root, *k) is None)
    refs: dict[str, str] = {}
    targets = local_aliases(store, names)
    alias_keys = sorted(set(targets) | {(n, a) for n in names for a in tags[n][1]})
    alias_heads = r.each(lambda k: r.reg.manifest_digest(r.repo(k[0]), k[1]), alias_keys)
    for (n, a), head in zip(alias_keys, alias_heads, strict=True):
        mine = images.get((n, targets[(n, a)])) if (n, a) in targets else None
        if mine is not None and head is None:
            refs[alias_rel(n, a)] = "ahead"
        elif mine is None and head is not None:
            refs[alias_rel(n, a)] = "behind"
        elif mine is not None and head != mine[1]:
            refs[alias_rel(n, a)] = "diverged"
    out: dict[str, Any] = {"push": to_push, "pull": to_pull, "clash": clash, "refs": refs}
    if deep:
        blobs: dict[tuple[str, str], int] = {}
        for n, v in to_push:
            mv = parse_manifest(local[(n, v)], n, v, str(store.manifest_path(n, v)))
            blobs.update(((r.repo(n), f.sha256), f.size) for f in manifest_objects(mv))
        sizes = r.each(lambda k: r.reg.blob_size(*k), list(blobs))
        push_objs = {k[1]: n for (k, n), s in zip(blobs.items(), sizes, strict=True) if s != n}
        pull_objs: dict[str, int] = {}
        for res in r.each(lambda k: safe_fetch(r, *k), to_pull):
            if res is not None:
                pull_objs.update(
                    (f.sha256, f.size)
                    for f in manifest_objects(res)
                    if not store.objects.has(f.sha256)
                )
        out["objects"] = (push_objs, pull_objs)
    return out


def status(store: StoreHandle, remote: str | None = None) -> StatusReport:
    """Compare the store with the registry: versions, their blobs, alias tags.

    The audit trail is not kept on a registry: `audit` is reported `same`, with no entries.
    """
    r = OciRemote(store, remote, None)
    try:
        c = _compare(r, deep=True)
    finally:
        r.reg.close()
    push_objs, pull_objs = c["objects"]

    def fmt(keys: list[tuple[str, str]]) -> tuple[str, ...]:
        return tuple(f"{n}@{v}" for n, v in keys)

    return StatusReport(
        r.spec.name, r.spec.url, fmt(c["push"]), fmt(c["pull"]), tuple(c["clash"]),
        len(push_objs), sum(push_objs.values()), len(pull_objs), sum(pull_objs.values()),
        c["refs"], LogComparison("same", 0, 0, 0), GUARANTEE,
    )  # fmt: skip


def fetch(store: StoreHandle, remote: str | None = None, specs: Sequence[str] = ()) -> FetchResult:
    """What the registry has that this store does not (nothing is downloaded: no snapshot)."""
    r = OciRemote(store, remote, None)
    try:
        c = _compare(r, deep=False)
    finally:
        r.reg.close()
    picked = {parse_ref(s).name for s in specs}
    versions = tuple(f"{n}@{v}" for n, v in c["pull"] if not picked or n in picked)
    refs = tuple(rel for rel in sorted(c["refs"]) if not picked or model_of(rel) in picked)
    return FetchResult(r.spec.name, r.spec.url, 0, 0, versions, refs)
