"""`Remote`: a read-only store over a URL, for serving code, with a local read-through cache.

Serving hosts read the registry straight from the remote, with no local store and no
`mreg pull`::

    from modelreg.remote import Remote

    remote = Remote("s3://models/registry", {"region": "eu-west-1"})
    mv = remote.resolve("fraud-detector@production")      # alias -> manifest, id checked
    rollout = remote.rollout("fraud-detector")           # releases/fraud-detector.yaml
    with remote.open_artifact("fraud-detector@production", "model.onnx") as fh:
        ...

Refs and rollout manifests are read fresh on every call (they move); objects are cached
under `cache_dir` (default `$MREG_CACHE_DIR`, else `$XDG_CACHE_HOME/mreg`, else
`~/.cache/mreg`), shared by every remote since they are named by content. An object is
re-hashed while it is downloaded and enters the cache only if it matches its name, so a
tampered remote object raises IntegrityError and is never served; once cached it is
read-only and served without network access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.hashing import check_digest, hash_bytes
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.names import Version, parse_ref
from modelreg.objects import ObjectStore
from modelreg.remote.backend import Backend
from modelreg.remote.spec import RemoteSpec, normalize_url
from modelreg.remote.transfer import Transfer, object_rel

__all__ = ["Remote", "default_cache_dir"]


def default_cache_dir() -> Path:
    """`$MREG_CACHE_DIR`, else `$XDG_CACHE_HOME/mreg`, else `~/.cache/mreg`."""
    explicit = os.environ.get("MREG_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mreg"


class Remote:
    """A remote store read directly: refs and rollouts fresh, objects through a cache."""

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.spec = RemoteSpec("remote", normalize_url(url), dict(options or {}))
        self.backend = Backend(self.spec)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = ObjectStore(root / layout.OBJECTS, root / layout.TMP)

    @classmethod
    def from_spec(
        cls, spec: RemoteSpec, *, cache_dir: str | os.PathLike[str] | None = None
    ) -> Remote:
        """Open a configured remote (`store.remotes.get(name)`)."""
        return cls(spec.url, spec.options, cache_dir=cache_dir)

    @property
    def url(self) -> str:
        """The remote's URL."""
        return self.spec.url

    def read(self, rel: str) -> bytes:
        """The bytes of a remote file (path relative to the store root); NotFound if absent."""
        with self.backend.errors():
            data = self.backend.read(rel)
        if data is None:
            raise NotFound(f"{self.url}/{rel}: no such file on the remote")
        return data

    def versions(self, name: str) -> list[str]:
        """The versions of a model on the remote, in SemVer order (one listing)."""
        prefix = layout.rel_versions(name)
        with self.backend.errors():
            found = self.backend.list(prefix)
        stems = (rel.rsplit("/", 1)[-1][:-5] for rel in found if rel.endswith(".yaml"))
        return [v.text for v in sorted(Version(s) for s in stems if Version.is_version(s))]

    def manifest(self, name: str, version: str, expect_id: str | None = None) -> ModelVersion:
        """A version's manifest; IntegrityError if it is malformed or not `expect_id`."""
        rel = layout.rel_manifest(name, Version.parse(version).text)
        data = self.read(rel)
        mv = ModelVersion.from_dict(
            yamlio.load(data, f"{self.url}/{rel}", IntegrityError), hash_bytes(data)
        )
        if (mv.name, mv.version) != (name, version) or (expect_id and mv.id != expect_id):
            raise IntegrityError(f"{self.url}/{rel}: not the manifest its alias or path names")
        return mv

    def resolve(self, spec: str) -> ModelVersion:
        """The version `NAME[@REF]` names on the remote (an alias's manifest id is checked)."""
        ref = parse_ref(spec)
        if ref.kind == "version":
            return self.manifest(ref.name, ref.ref)
        if ref.kind == "latest":
            versions = self.versions(ref.name)
            if not versions:
                raise NotFound(f"no model named {ref.name!r} on {self.url}")
            return self.manifest(ref.name, versions[-1])
        rel = layout.rel_alias(ref.name, ref.ref)
        doc = yamlio.load(self.read(rel), f"{self.url}/{rel}", IntegrityError)
        if not isinstance(doc, dict) or "version" not in doc or "id" not in doc:
            raise IntegrityError(f"{self.url}/{rel}: malformed alias")
        return self.manifest(ref.name, str(doc["version"]), str(doc["id"]))

    def rollout(self, name: str) -> dict[str, Any]:
        """The rollout manifest `releases/NAME.yaml` as a mapping (read fresh every call)."""
        rel = layout.rel_release(name)
        doc = yamlio.load(self.read(rel), f"{self.url}/{rel}", IntegrityError)
        if not isinstance(doc, dict):
            raise IntegrityError(f"{self.url}/{rel}: not a mapping")
        return doc

    def object_path(self, digest: str, size: int | None = None) -> Path:
        """The cached, verified local copy of an object, downloaded on first use."""
        check_digest(digest)
        if not self.cache.has(digest):
            with self.backend.errors():
                if size is None and self.backend.lfs is not None:  # the batch API needs it
                    raise InvalidInput(f"{self.url}: a Git LFS remote needs the object's size")
                if size is None:
                    entry = self.backend.stat(object_rel(digest))
                    if entry is None:
                        raise NotFound(f"object {digest[:12]} is not on {self.url}")
                    size = entry.size
                with Transfer(self.backend, self.cache, jobs=4) as t:
                    t.download(digest, size)
        return self.cache.path(digest)

    def open(self, digest: str) -> BinaryIO:
        """Open an object by digest (verified when it entered the cache)."""
        return open(self.object_path(digest), "rb")

    def _file(self, mv: ModelVersion, path: str | None) -> FileEntry:
        if path is None:
            if len(mv.files) != 1:
                raise NotFound(f"{mv.name}@{mv.version} has {len(mv.files)} files: name one")
            return mv.files[0]
        for f in mv.files:
            if f.path == path:
                return f
        raise NotFound(f"{mv.name}@{mv.version} has no file {path!r}")

    def artifact_path(self, spec: str, path: str | None = None) -> Path:
        """The cached local copy of one file of a version (the only one if `path` is None)."""
        f = self._file(self.resolve(spec), path)
        return self.object_path(f.sha256, f.size)

    def open_artifact(self, spec: str, path: str | None = None) -> BinaryIO:
        """Open one file of a version through the cache."""
        return open(self.artifact_path(spec, path), "rb")
