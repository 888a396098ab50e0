"""`mreg pack --format oci`: a version as an OCI image layout, for any container registry.

The layout follows the OCI image-spec (image-layout.md, manifest.md, annotations.md) and
its "guidelines for artifact usage": the artifact has configuration metadata, so the image
manifest's `config` is that metadata under an mreg media type (no `artifactType` needed)::

    DIR/oci-layout              {"imageLayoutVersion": "1.0.0"}
    DIR/index.json              image index; one descriptor per version, tagged
                                (`org.opencontainers.image.ref.name`) with the version
    DIR/blobs/sha256/<hex>      every blob, named by the SHA-256 of its bytes

    image manifest (mediaType application/vnd.oci.image.manifest.v1+json, schemaVersion 2)
      config   application/vnd.mreg.version.v1+yaml   the version manifest, byte for byte:
                                                       its digest is the version id
      layers   application/vnd.mreg.file.v1            one per model file, titled with its
                                                       path (org.opencontainers.image.title)
               application/vnd.mreg.requirements.v1+text   the requirements file, if any
      annotations  org.opencontainers.image.{title,version,created,authors,description,
                   revision,source} and io.mreg.id

Standard tools copy it as is, e.g. `oras cp --from-oci-layout DIR:1.2.0 registry/repo:1.2.0`
or `skopeo copy oci:DIR:1.2.0 docker://registry/repo:1.2.0`. One layout holds the versions
of one model (a repository); packing another version into it adds a tag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import atomic_write
from modelreg.hashing import hash_bytes, hash_file
from modelreg.manifest import ModelVersion
from modelreg.store import Store

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "FILE_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "REQUIREMENTS_MEDIA_TYPE",
    "write_layout",
]

LAYOUT_VERSION = "1.0.0"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.mreg.version.v1+yaml"
FILE_MEDIA_TYPE = "application/vnd.mreg.file.v1"
REQUIREMENTS_MEDIA_TYPE = "application/vnd.mreg.requirements.v1+text"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
MREG_NAME = "io.mreg.name"


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}
    if annotations:
        desc["annotations"] = annotations
    return desc


def _blob_path(out: Path, digest: str) -> Path:
    return out / "blobs" / "sha256" / digest


def _put_bytes(out: Path, data: bytes) -> str:
    digest = hash_bytes(data)
    path = _blob_path(out, digest)
    if not (path.is_file() and hash_file(path)[0] == digest):
        atomic_write(path, data)
    return digest


def _put_object(store: Store, out: Path, digest: str) -> None:
    path = _blob_path(out, digest)
    if path.is_file() and hash_file(path)[0] == digest:
        return
    store.objects.copy_out(digest, path)  # re-hashed on the way: a corrupt object is refused


def _annotations(mv: ModelVersion) -> dict[str, str]:
    notes = {
        "org.opencontainers.image.title": mv.name,
        "org.opencontainers.image.version": mv.version,
        "org.opencontainers.image.created": mv.created,
        "org.opencontainers.image.authors": mv.author,
        "io.mreg.id": mv.id,
    }
    if mv.message:
        notes["org.opencontainers.image.description"] = mv.message
    if mv.code is not None:
        notes["org.opencontainers.image.revision"] = mv.code.commit
        if mv.code.repo:
            notes["org.opencontainers.image.source"] = mv.code.repo
    return notes


def _existing_index(out: Path, name: str) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    if not out.is_dir():
        raise InvalidInput(f"{out} exists and is not a directory")
    if not (out / "oci-layout").is_file():
        # Only an interrupted earlier pack (blobs, maybe the index) may be there already.
        if any(p.name not in ("blobs", "index.json") for p in out.iterdir()):
            raise InvalidInput(f"{out} is neither empty nor an OCI image layout")
        return []
    try:
        index = json.loads((out / "index.json").read_bytes())
        manifests = list(index["manifests"])
    except (OSError, ValueError, KeyError, TypeError):
        raise IntegrityError(f"{out}/index.json: not a readable OCI image index") from None
    others = {m.get("annotations", {}).get(MREG_NAME) for m in manifests} - {name}
    if others:
        raise InvalidInput(
            f"{out} holds another model ({', '.join(sorted(map(str, others)))}): one layout "
            "per model"
        )
    return manifests


def write_layout(store: Store, mv: ModelVersion, manifest: bytes, out: Path) -> str:
    """Write (or extend) the OCI image layout `out` with `mv`; return the manifest digest."""
    previous = _existing_index(out, mv.name)
    (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    config = _put_bytes(out, manifest)
    layers = []
    for f in mv.files:
        _put_object(store, out, f.sha256)
        extra = {"io.mreg.format": f.format} if f.format else {}
        layers.append(_descriptor(FILE_MEDIA_TYPE, f.sha256, f.size, **{TITLE: f.path}, **extra))
    req = mv.dependencies.requirements if mv.dependencies else None
    if req is not None:
        _put_object(store, out, req.sha256)
        title = f"requirements/{req.path}"
        notes = {} if any(f.path == title for f in mv.files) else {TITLE: title}
        layers.append(_descriptor(REQUIREMENTS_MEDIA_TYPE, req.sha256, req.size, **notes))
    image = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config, len(manifest)),
            "layers": layers,
            "annotations": _annotations(mv),
        }
    )
    digest = _put_bytes(out, image)
    entry = _descriptor(
        MANIFEST_MEDIA_TYPE, digest, len(image), **{REF_NAME: mv.version, MREG_NAME: mv.name}
    )
    kept = [m for m in previous if m.get("annotations", {}).get(REF_NAME) != mv.version]
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [*kept, entry]}
    # Blobs first, then the index that names them, then the marker: a reader that finds
    # `oci-layout` finds a complete layout.
    atomic_write(out / "index.json", _json(index))
    atomic_write(out / "oci-layout", _json({"imageLayoutVersion": LAYOUT_VERSION}))
    return f"sha256:{digest}"
