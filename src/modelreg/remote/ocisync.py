"""`push`, `pull`, `status --remote` and `fetch` for an OCI registry (`oci://`, issue 20).

A registry holds content-addressed blobs and tagged manifests, not files: this remote is
its own path, chosen by the URL's scheme (`handles`), with the results and exit codes of
the others (`PushResult`, `PullResult`, `StatusReport`, `FetchResult`).

- Model `NAME` is the repository `REPOSITORY/NAME`; version `V` is the tag `V`, holding the
  image manifest `mreg pack --format oci` writes (`oci_format.image_manifest`: config = the
  version manifest byte for byte, one layer per file): the same bytes, so the same digest.
- An alias is a tag too, on the manifest of the version it points at; it moves when a
  promote is pushed. Alias tags are not taken in by `pull` (a tag has no history, actor or
  gates to check): `status` shows those that differ.
- The audit trail, releases and policy are not kept on a registry; the push and pull
  entries are recorded here as for any remote.
- A registry has no conditional tag write: push checks each version tag just before it
  writes it (check-then-write), and refuses a version whose tag holds another manifest.

Blobs are looked for with a HEAD each before any upload, sent in parallel (streamed, in
parts for large ones; the registry re-hashes them), and pulled through `ingest` (hashed
while written to `tmp/`, bounded by the size the version manifest gives).
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from modelreg.errors import Conflict, IntegrityError
from modelreg.handle import StoreHandle
from modelreg.oci_format import (
    MANIFEST_MEDIA_TYPE,
)
from modelreg.remote.ingest import (
    manifest_objects,
    parse_manifest,
)
from modelreg.remote.layout import Scope, local_metadata
from modelreg.remote.ocipull import fetch, pull, status
from modelreg.remote.ocirepo import (
    GUARANTEE,
    OciRemote,
    alias_rel,
    handles,
    image_of,
    local_aliases,
    tag_of,
)
from modelreg.remote.record import public_url, record
from modelreg.remote.transfer import TransferProgress

if TYPE_CHECKING:
    from modelreg.remote.sync import PushResult

__all__ = ["fetch", "handles", "pull", "push", "status"]

# -- push ------------------------------------------------------------------------------------


def push(
    store: StoreHandle,
    remote: str | None = None,
    specs: Sequence[str] = (),
    *,
    jobs: int | None = None,
    progress: TransferProgress | None = None,
) -> PushResult:
    """Send the selected versions and aliases the registry lacks (see the module docstring).

    Raises Conflict, before anything is written, when a
    version's tag holds another manifest.
    """
    from modelreg.refs import read_alias
    from modelreg.remote.status import versions_of

    t0 = time.monotonic()
    every = local_metadata(store.root)
    hint = None if remote is not None else "see mreg remote list and mreg list"

    def target(n: str, a: str) -> str | None:
        ref = read_alias(store, n, a)
        return ref.version if ref else None

    scope = Scope(specs, hint).resolve(versions_of(every), target)
    r = OciRemote(store, remote, jobs)
    try:
        return _push(r, every, scope, progress, t0)
    finally:
        r.reg.close()


def _push(
    r: OciRemote, every: dict[str, Any], scope: Scope, progress: Any, t0: float
) -> PushResult:
    from modelreg.remote.sync import PushResult  # not at the top: sync is the generic path

    store = r.store
    versions = {
        (str(m.model), str(m.key)): (store.root / rel).read_bytes()
        for rel, m in every.items()
        if m.kind == "manifest" and scope.selects(m)
    }
    aliases = {
        (str(m.model), str(m.key)) for m in every.values() if m.kind == "alias" and scope.selects(m)
    }
    targets = local_aliases(store, {n for n, _ in aliases})
    images = {
        k: image_of(*k, data, str(store.manifest_path(*k))) for k, data in sorted(versions.items())
    }
    for n, v in versions:  # names that cannot be a repository or a tag: refused (exit 2)
        r.repo(n)
        tag_of(n, v)
    # 1. decide: what each tag holds now (a HEAD each)
    wanted = [(n, v) for n, v in sorted(versions)]
    alias_keys = sorted(k for k in aliases if k in targets and (k[0], targets[k]) in images)
    heads = r.each(lambda k: r.reg.manifest_digest(r.repo(k[0]), k[1]), wanted + alias_keys)
    there = dict(zip(wanted + alias_keys, heads, strict=True))
    conflicts = [
        f"{n}@{v} exists on the remote with other content"
        for (n, v) in wanted
        if there[(n, v)] not in (None, images[(n, v)][1])
    ]
    if conflicts:
        more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise Conflict(
            f"push to {r.spec.name} refused, nothing was written: {'; '.join(conflicts[:3])}"
            f"{more}; a version is immutable: register a new one"
        )
    send = [k for k in wanted if there[k] is None]
    moved = [k for k in alias_keys if there[k] != images[(k[0], targets[k])][1]]
    # 2. blobs: config and layers of the versions to send, looked for with one HEAD each
    blobs: dict[tuple[str, str], tuple[int, bytes | None]] = {}
    for n, v in send:
        mv = parse_manifest(versions[(n, v)], n, v, str(store.manifest_path(n, v)))
        blobs[(r.repo(n), mv.id)] = (len(versions[(n, v)]), versions[(n, v)])
        for f in manifest_objects(mv):
            blobs.setdefault((r.repo(n), f.sha256), (f.size, None))
    sizes = r.each(lambda k: r.reg.blob_size(*k), list(blobs))
    missing = {k: blobs[k] for k, size in zip(blobs, sizes, strict=True) if size != blobs[k][0]}
    for (_, d), (_, inline) in missing.items():
        if inline is None and not store.objects.has(d):
            raise IntegrityError(
                f"object {d[:12]} is missing from the local store; run mreg verify"
            )
    files = {k: v for k, v in missing.items() if v[1] is None}
    if progress is not None:
        progress.start(len(files), sum(n for n, _ in files.values()))

    def upload(item: tuple[tuple[str, str], tuple[int, bytes | None]]) -> int:
        (repo, digest), (size, inline) = item

        def opener() -> IO[bytes]:
            return io.BytesIO(inline) if inline is not None else store.objects.open(digest)

        r.reg.upload_blob(repo, digest, size, opener, r.part)
        if progress is not None and inline is None:
            progress.advance(1, size)
        return size if inline is None else 0

    sent = sum(r.each(upload, sorted(missing.items())))
    # 3. manifests under their version tags (checked again just before), then alias tags
    for n, v in send:
        image, digest = images[(n, v)]
        now = r.reg.manifest_digest(r.repo(n), v)
        if now not in (None, digest):
            raise Conflict(
                f"{n}@{v} was pushed to {r.spec.name} with other content during this push"
            )
        _put(r, n, v, image, digest)
    for n, a in moved:
        _put(r, n, a, *images[(n, targets[(n, a)])])
    pushed = tuple(f"{n}@{v}" for n, v in send)
    refs = tuple(sorted(alias_rel(n, a) for n, a in moved))
    if send or moved or files:
        record(
            store, "push", remote=r.spec.name, url=public_url(r.spec.url), objects=len(files),
            bytes=sent, manifests=len(send), versions=list(pushed), refs=len(refs),
        )  # fmt: skip
    present = sum(1 for k, v in blobs.items() if v[1] is None and k not in missing)
    return PushResult(
        r.spec.name, r.spec.url, len(files), sent, present, pushed, refs, 0, (), GUARANTEE,
        time.monotonic() - t0,
    )  # fmt: skip


def _put(r: OciRemote, name: str, tag: str, image: bytes, digest: str) -> None:
    got = r.reg.put_manifest(r.repo(name), tag, image, MANIFEST_MEDIA_TYPE)
    if got and got != digest:
        raise IntegrityError(
            f"the registry stored {name}:{tag} as {got[:19]}, not {digest[:19]}: "
            "it changed the manifest"
        )
