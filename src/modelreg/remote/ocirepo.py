"""One command's OCI registry remote, and what push, pull and status share (issue 20).

`OciRemote` opens the registry (`ocireg.Registry`) for a configured `oci://` remote and
names a model's repository (`REPOSITORY/NAME`); a version's tag is the version itself.
`fetch_version` reads a version's image manifest and config with the checks `mreg unpack`
applies to a layout (oci_format), and `download` receives a blob through `ingest`. See
`ocisync` for the design, docs/remotes.md for the mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import safe_join
from modelreg.handle import StoreHandle
from modelreg.hashing import copy_and_hash, hash_bytes
from modelreg.manifest import ModelVersion
from modelreg.names import Version, check_alias, check_name
from modelreg.oci_format import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_DOC,
    check_layers,
    described,
    identity,
    image_manifest,
    is_tag,
    json_object,
)
from modelreg.remote.ingest import (
    check_received,
    manifest_objects,
    parse_manifest,
    receive_object,
)
from modelreg.remote.layout import local_metadata
from modelreg.remote.ocireg import Registry, check_repository
from modelreg.remote.spec import RemoteSpec
from modelreg.remote.transfer import DEFAULT_JOBS

__all__ = [
    "GUARANTEE",
    "OciRemote",
    "alias_rel",
    "download",
    "fetch_version",
    "handles",
    "image_of",
    "local_aliases",
    "local_versions",
    "model_of",
    "safe_fetch",
    "tag_of",
]

GUARANTEE = "check-then-write"
PART_MIB = 64
T = TypeVar("T")
R = TypeVar("R")


def handles(store: StoreHandle, remote: str | None) -> bool:
    """True when the remote (named, default or only one) is an OCI registry."""
    return store.remotes.get(remote).protocol == "oci"


class OciRemote:
    """One command's registry: the spec, the client, a thread pool, repository names."""

    def __init__(self, store: StoreHandle, remote: str | None, jobs: int | None) -> None:
        self.store = store
        self.spec: RemoteSpec = store.remotes.get(remote)
        self.jobs = max(1, jobs or int(self.spec.mreg_option("jobs", DEFAULT_JOBS)))
        self.part = int(self.spec.mreg_option("part_size_mib", PART_MIB)) << 20
        self.reg = Registry(self.spec, self.jobs)
        self.base = self.reg.url.repository

    def repo(self, name: str) -> str:
        """The repository of model `name` (InvalidInput when it cannot be one)."""
        return check_repository(f"{self.base}/{name}", f"model {name}: repository")

    def each(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over `items` on the pool, in order; the first error is raised."""
        items = list(items)
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(min(self.jobs, len(items))) as pool:
            return list(pool.map(fn, items))

    def models(self, local: Iterable[str]) -> list[str]:
        """The models of this remote: the catalog's repositories below ours, and `local`."""
        names = set(local)
        repos = self.reg.catalog() or []  # None: not served to us; only the local models
        prefix = f"{self.base}/"
        for r in repos:
            if r.startswith(prefix):
                try:
                    names.add(check_name(r[len(prefix) :]))
                except InvalidInput:
                    continue
        return sorted(names)

    def version_tags(self, name: str) -> tuple[list[str], list[str]]:
        """(version tags, alias tags) of model `name`'s repository."""
        versions, aliases = [], []
        for tag in self.reg.tags(self.repo(name)):
            try:
                if Version.parse(tag).text == tag:
                    versions.append(tag)
                    continue
            except InvalidInput:
                pass
            try:
                aliases.append(check_alias(tag))
            except InvalidInput:
                continue
        return versions, aliases


def tag_of(name: str, version: str) -> str:
    """The tag of a version or alias: itself (an mreg version has no `+build` part)."""
    if not is_tag(version):
        raise InvalidInput(
            f"{name}@{version} cannot be an OCI tag (at most 128 characters of "
            "[A-Za-z0-9_.-]): not pushed"
        )
    return version


def local_versions(store: StoreHandle) -> dict[tuple[str, str], bytes]:
    """Every local version manifest's bytes, by (name, version)."""
    out = {}
    for rel, m in local_metadata(store.root).items():
        if m.kind == "manifest":
            out[(str(m.model), str(m.key))] = (store.root / rel).read_bytes()
    return out


def local_aliases(store: StoreHandle, names: Iterable[str]) -> dict[tuple[str, str], str]:
    """The local aliases of models `names`: (name, alias) -> version."""
    from modelreg.refs import list_aliases

    return {(n, a.alias): a.version for n in names for a in list_aliases(store, n)}


def image_of(name: str, version: str, data: bytes, where: str) -> tuple[bytes, str]:
    """The image manifest of a local version and its digest (`sha256:...`)."""
    mv = parse_manifest(data, name, version, where)
    image = image_manifest(mv, data)
    return image, f"sha256:{hash_bytes(image)}"


def alias_rel(name: str, alias: str) -> str:
    """An alias's store path, the name `status` and `push` give an alias tag."""
    return f"models/{name}/aliases/{alias}.yaml"


def model_of(rel: str) -> str:
    """The model of an `alias_rel` path."""
    return rel[len("models/") :].rsplit("/aliases/", 1)[0]


def fetch_version(r: OciRemote, name: str, version: str) -> tuple[bytes, ModelVersion]:
    """Read and check a version's image manifest and config (the checks of `mreg unpack`)."""
    repo = r.repo(name)
    where = f"{r.reg.url.host}/{repo}:{version}"
    raw, header = r.reg.get_manifest(repo, version, MAX_DOC)
    if header and header != f"sha256:{hash_bytes(raw)}":
        raise IntegrityError(
            f"{where}: the manifest does not hash to the digest the registry gives"
        )
    image = json_object(raw, where)
    if image.get("schemaVersion") != 2 or image.get("mediaType") != MANIFEST_MEDIA_TYPE:
        raise IntegrityError(f"{where}: not an OCI image manifest ({MANIFEST_MEDIA_TYPE}, 2)")
    media, config, size = described(image.get("config"), f"{where}: config")
    if media != CONFIG_MEDIA_TYPE:
        raise IntegrityError(f"{where}: its config is {media!r}, not an mreg version manifest")
    if identity(image, config, where) != (name, version):
        raise IntegrityError(f"{where}: its annotations name another version")
    if size > MAX_DOC:
        raise IntegrityError(f"{where}: its config is {size:,} bytes, over the limit")
    data = r.reg.get_blob(repo, config, size)
    check_received(hash_bytes(data), config, f"{where}: config", len(data), size)
    mv = parse_manifest(data, name, version, f"{where}: config")
    expected = manifest_objects(mv)
    for f in expected:
        safe_join(Path("/"), f.path)  # unsafe paths are refused before any blob is read
    check_layers(image.get("layers"), mv, expected, where)
    return data, mv


def download(
    r: OciRemote, repo: str, digest: str, size: int, on_bytes: Callable[[int], None] | None = None
) -> int:
    """Receive blob `digest` of `repo` into the store, verified (`ingest.receive_object`).

    Hashed while written to the temp file (`hashing.copy_and_hash`: a writer thread, dirty
    pages flushed behind), read one byte past `size` at most: a longer blob is refused.
    """
    what = f"{r.reg.url.host}/{repo}: blob"

    def write(fd: int) -> tuple[str, int]:
        with r.reg.open_blob(repo, digest, size) as fh:
            return copy_and_hash(fh, fd, on_bytes)  # type: ignore[arg-type]

    return receive_object(r.store.objects, digest, size, what, write)


def safe_fetch(r: OciRemote, name: str, version: str) -> ModelVersion | None:
    """`fetch_version`'s manifest, or None when the registry's version is refused."""
    try:
        return fetch_version(r, name, version)[1]
    except (IntegrityError, InvalidInput, NotFound):
        return None
