"""One connection to a remote for one command: the listing, cached metadata reads, the checks.

What sync knows about the remote's metadata comes from listings, never from one request
per file: the root (one LIST), then `models/`, `releases/` and `audit/` (one LIST per 1,000
keys on S3), plus GETs of the metadata files whose token changed since they were last
fetched. Objects are never listed to find out what changed (issue 18: `objects/` holds one
key per file of every version, so a listing of it costs one request per 1,000 objects the
remote holds): only the objects of the versions about to be sent are looked for, with one
HEAD each. When more than `HEAD_MAX` are, S3's `objects/` is listed for at most one page per
`LIST_SHARE` of them (a small remote is listed whole in fewer requests than the HEADs), and
those past where the listing stopped get a HEAD each: at most 1.125 requests per object
whatever the remote's size. A remote without `objects/` in its root listing has none:
nothing is asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelreg import layout, yamlio
from modelreg.config import StoreConfig
from modelreg.errors import IntegrityError, NotFound
from modelreg.handle import StoreHandle
from modelreg.hashing import is_digest
from modelreg.layout import object_rel
from modelreg.remote.backend import Backend, Entry, human_limit
from modelreg.remote.layout import AUDIT, Meta, classify, read_limit
from modelreg.remote.spec import RemoteSpec
from modelreg.remote.tracking import Tracking
from modelreg.remote.transfer import DEFAULT_JOBS, DEFAULT_PART_MIB, Transfer, TransferProgress

__all__ = ["Session", "complete_lines", "read_local"]

HEAD_MAX = 256
"""Up to this many objects are looked for with one HEAD each, in parallel. More are looked
for on S3 in a listing of `objects/` cut after one page (1,000 keys) per `LIST_SHARE` of
them, and with one HEAD each for those past where it stopped; elsewhere, in one listing."""
LIST_SHARE = 8


def complete_lines(data: bytes) -> bytes:
    """An audit log without a torn last line (what readers consider its content)."""
    return data[: data.rfind(b"\n") + 1]


def read_local(root: Path, meta: Meta) -> bytes | None:
    """The bytes of a local metadata file (the audit log: complete lines), or None."""
    try:
        data = (root / meta.rel).read_bytes()
    except FileNotFoundError:
        return None
    return complete_lines(data) if meta.rel == AUDIT else data


def _digests(found: dict[str, Entry], want: set[str] | None) -> dict[str, int]:
    """The objects of a listing of `objects/` (digest to size), only `want` if given."""
    out = {}
    for rel, entry in found.items():
        parts = rel.split("/")
        if len(parts) == 3 and is_digest(parts[2]) and parts[2].startswith(parts[1]):
            if want is None or parts[2] in want:
                out[parts[2]] = entry.size
    return out


@dataclass
class Session:
    """A remote opened for one push, pull, fetch or status."""

    store: StoreHandle
    spec: RemoteSpec
    backend: Backend
    tracking: Tracking
    listing: dict[str, Entry] = field(default_factory=dict)
    jobs: int = DEFAULT_JOBS
    part_size: int = DEFAULT_PART_MIB << 20
    fetched: int = 0
    fetched_bytes: int = 0
    empty: bool = False
    has_objects: bool = True
    """False when the root listing showed no `objects/`: the remote holds no object yet."""
    refused: list[str] = field(default_factory=list)
    """Remote metadata files `get` did not read (issue 15): larger than their bound
    (`layout.read_limit`), or a link by the time they were opened."""

    @classmethod
    def open(cls, store: StoreHandle, remote: str | None, jobs: int | None = None) -> Session:
        """Resolve the remote (name, default or only one), connect, and list it."""
        spec = store.remotes.get(remote)
        backend = Backend(spec)
        tracking = Tracking.load(layout.remote_dir(store.root, spec.name), spec.url)
        n = jobs or int(spec.mreg_option("jobs", DEFAULT_JOBS))
        part = int(spec.mreg_option("part_size_mib", DEFAULT_PART_MIB)) << 20
        session = cls(store, spec, backend, tracking, jobs=max(1, n), part_size=part)
        with backend.errors():
            dirs, files = backend.list_top()
            session.listing = {
                k: v for k, v in files.items() if k in ("config.yaml", layout.POLICY)
            }
            for top in ("models", "releases", "audit"):
                if top in dirs:
                    session.listing.update(backend.list(top))
            session.empty = not (dirs or files)
            session.has_objects = "objects" in dirs
            if session.empty:  # an empty prefix, or no bucket at all (#13)
                backend.check_exists()
        return session

    @property
    def url(self) -> str:
        """The remote's URL."""
        return self.spec.url

    def metadata(self) -> dict[str, Meta]:
        """Every metadata file on the remote, classified (unknown paths are ignored)."""
        out = {}
        for rel in self.listing:
            meta = classify(rel)
            if meta is not None:
                out[rel] = meta
        return out

    def objects(
        self, wanted: Iterable[str] | None = None, *, sending: bool = False
    ) -> dict[str, int]:
        """Objects on the remote (digest to size, as the remote reports it; not re-hashed).

        With `wanted`, only those (see the module docstring: HEADs, or on S3 a listing cut
        short and HEADs); without it, every object (one whole listing). Nothing is asked
        when the remote's root has no `objects/`. A Git LFS remote is asked by its batch
        API, one request per 100 of `wanted` (a mapping of digest to size): with `sending`
        (about to upload them) the request is an upload request, whose answer says what the
        server lacks and where to send it; it cannot list every object.
        """
        if self.backend.lfs is not None:  # issue 20
            sizes = dict(wanted) if isinstance(wanted, dict) else {}
            with self.backend.errors():
                return self.backend.lfs.ask("upload" if sending else "download", sizes)
        want = None if wanted is None else set(wanted)
        if (want is not None and not want) or not self.has_objects:
            return {}
        out: dict[str, int] = {}
        if want is not None and (len(want) <= HEAD_MAX or self.backend.kind == "s3"):
            ask = sorted(want)
            if len(want) > HEAD_MAX:
                with self.backend.errors():
                    found, last = self.backend.list_pages("objects", len(want) // LIST_SHARE)
                out = _digests(found, want)
                ask = [d for d in ask if last is not None and object_rel(d) > last]
            with self.backend.errors(), ThreadPoolExecutor(self.jobs) as pool:
                entries = pool.map(lambda d: self.backend.stat(object_rel(d)), ask)
                out.update((d, e.size) for d, e in zip(ask, entries, strict=True) if e)
            return out
        with self.backend.errors():
            return _digests(self.backend.list("objects"), want)

    def get(self, rels: Iterable[str]) -> dict[str, bytes]:
        """The bytes of remote files, from the snapshot when unchanged, else GET in parallel."""
        out: dict[str, bytes] = {}
        todo = []
        for rel in rels:
            entry = self.listing.get(rel)
            if entry is None:
                continue
            if entry.size > read_limit(rel):  # known from the listing: not even asked for
                limit = human_limit(read_limit(rel))
                self.refused.append(f"{self.url}/{rel} is larger than {limit}: never read")
                continue
            data = self.tracking.cached(rel, entry)
            if data is None:
                todo.append(rel)
            else:
                out[rel] = data
        if todo:
            with self.backend.errors(), ThreadPoolExecutor(self.jobs) as pool:
                for rel, data in zip(todo, pool.map(self._read, todo), strict=True):
                    if data is None:  # removed since the listing, or refused
                        continue
                    self.fetched += 1
                    self.fetched_bytes += len(data)
                    self.tracking.remember(rel, self.listing[rel].token, data)
                    out[rel] = data
        return out

    def unreadable(self) -> list[str]:
        """Every remote file left unread, one message each.

        Links and non-regular files a listing skipped (only a `file://` remote has them;
        never followed), then what `get` refused.
        """
        links = [
            f"{self.url}/{rel} is a symbolic link or not a regular file: never read"
            for rel in self.backend.skipped
        ]
        return links + self.refused

    def require_read(self) -> None:
        """Raise IntegrityError when `get` left a file unread.

        A command that compares or replaces remote metadata must not take an unread file
        for an absent one (a push would overwrite it).
        """
        if self.refused:
            more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
            raise IntegrityError(f"{self.refused[0]}{more}")

    def _read(self, rel: str) -> bytes | None:
        """One file, bounded; a file that grew past its bound or became a link is refused."""
        try:
            return self.backend.read(rel)
        except IntegrityError as exc:
            self.refused.append(str(exc))
            return None

    def check_store(self, *, create: bool) -> None:
        """Check the remote's `config.yaml` (format 1); `create` writes one on an empty remote."""
        if "config.yaml" in self.listing:
            source = f"{self.url}/config.yaml"
            data = self.get(["config.yaml"]).get("config.yaml", b"")
            self.require_read()
            StoreConfig.from_dict(yamlio.load(data, source, IntegrityError), source)
        elif create:
            data = yamlio.dump(StoreConfig().to_dict())
            with self.backend.errors():
                token = self.backend.write_if("config.yaml", data, None)
            if token is not None:  # (None: another push created it meanwhile)
                self.listing["config.yaml"] = Entry(len(data), token)
                self.tracking.remember("config.yaml", token, data)
        elif not self.empty:
            raise IntegrityError(f"{self.url} holds files but no config.yaml: not an mreg remote")
        else:
            raise NotFound(f"{self.url}: no mreg store there yet (push to it first)")

    def settle_conditional(self) -> None:
        """Decide, once per remote, whether the S3 server honours conditional writes."""
        b = self.backend
        if b.kind != "s3" or self.spec.mreg_option("conditional_writes", "auto") != "auto":
            return
        if self.tracking.conditional is None:
            with b.errors():
                self.tracking.conditional = b.probe_conditional()
        b.conditional = bool(self.tracking.conditional)

    def transfer(self, progress: TransferProgress | None) -> Transfer:
        """The worker pools for this session's object transfers."""
        return Transfer(
            self.backend,
            self.store.objects,
            jobs=self.jobs,
            part_size=self.part_size,
            progress=progress,
        )

    def finish(self) -> None:
        """Forget what the remote no longer has and save the tracking state."""
        self.tracking.forget_missing(set(self.listing))
        self.tracking.save()
