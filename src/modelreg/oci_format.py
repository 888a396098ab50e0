"""The OCI image layout's vocabulary and document checks, for `modelreg.oci` (pure).

Media types and annotation keys mreg writes (see `modelreg.oci` for the layout), the JSON
form of its documents and descriptors, and the checks a read document must pass: a
descriptor's shape, the image manifest an index names, the version its annotations name,
and layers that are exactly the version's files. Model layer (docs/architecture.md): given
parsed documents, these return data or raise; they read and write nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.hashing import hash_bytes, is_digest
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.names import Version, check_name
from modelreg.yamlio import MAX_BYTES

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "FILE_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "LAYOUT_VERSION",
    "MANIFEST_MEDIA_TYPE",
    "MAX_DOC",
    "MREG_ID",
    "MREG_NAME",
    "PROFILE_MEDIA_TYPE",
    "REF_NAME",
    "REQUIREMENTS_MEDIA_TYPE",
    "TITLE",
    "VERSION",
    "check_layers",
    "described",
    "descriptor",
    "identity",
    "image_annotations",
    "image_manifest",
    "is_tag",
    "json_bytes",
    "json_object",
    "select",
]

LAYOUT_VERSION = "1.0.0"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.mreg.version.v1+yaml"
FILE_MEDIA_TYPE = "application/vnd.mreg.file.v1"
REQUIREMENTS_MEDIA_TYPE = "application/vnd.mreg.requirements.v1+text"
PROFILE_MEDIA_TYPE = "application/vnd.mreg.data-profile.v1+json"
"""A data file's profile (issue 21), after the files and requirements file."""
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
MREG_NAME = "io.mreg.name"
MREG_ID = "io.mreg.id"
VERSION = "org.opencontainers.image.version"
MAX_DOC = MAX_BYTES
"""The largest index.json, image manifest or config read (16 MiB, like a bundle's YAML)."""
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # distribution-spec's tag grammar


def json_bytes(doc: Any) -> bytes:
    """The canonical JSON of a layout document (sorted keys, no spaces, UTF-8)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    """An OCI content descriptor of a blob (`digest` is the hex SHA-256)."""
    desc: dict[str, Any] = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}
    if annotations:
        desc["annotations"] = annotations
    return desc


def image_annotations(mv: ModelVersion) -> dict[str, str]:
    """The image manifest's annotations for `mv` (OCI's pre-defined keys and io.mreg.id)."""
    notes = {
        "org.opencontainers.image.title": mv.name,
        "org.opencontainers.image.version": mv.version,
        "org.opencontainers.image.created": mv.created,
        "org.opencontainers.image.authors": mv.author,
        MREG_ID: mv.id,
    }
    if mv.message:
        notes["org.opencontainers.image.description"] = mv.message
    if mv.code is not None:
        notes["org.opencontainers.image.revision"] = mv.code.commit
        if mv.code.repo:
            notes["org.opencontainers.image.source"] = mv.code.repo
    return notes


def image_manifest(mv: ModelVersion, manifest: bytes) -> bytes:
    """The image manifest of `mv` (its config is `manifest`, the version manifest's bytes).

    One function for the OCI layout (`mreg pack --format oci`) and the registry remote, so
    both give a version the same manifest, hence the same digest.
    """
    layers = []
    for f in mv.files:
        extra = {"io.mreg.format": f.format} if f.format else {}
        layers.append(descriptor(FILE_MEDIA_TYPE, f.sha256, f.size, **{TITLE: f.path}, **extra))
    req = mv.dependencies.requirements if mv.dependencies else None
    if req is not None:
        title = f"requirements/{req.path}"
        notes = {} if any(f.path == title for f in mv.files) else {TITLE: title}
        layers.append(descriptor(REQUIREMENTS_MEDIA_TYPE, req.sha256, req.size, **notes))
    for f in mv.profile_entries():  # issue 21
        layers.append(descriptor(PROFILE_MEDIA_TYPE, f.sha256, f.size, **{TITLE: f.path}))
    return json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, hash_bytes(manifest), len(manifest)),
            "layers": layers,
            "annotations": image_annotations(mv),
        }
    )


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """`data` parsed as a JSON object; IntegrityError naming `what` otherwise."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:  # json's C scanner stops deep nesting with RecursionError
        raise IntegrityError(f"{what}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what}: not a JSON object")
    return doc


def described(desc: Any, what: str) -> tuple[str, str, int]:
    """(mediaType, hex digest, size) of a descriptor; IntegrityError if it is malformed."""
    if not isinstance(desc, dict):
        raise IntegrityError(f"{what}: not a descriptor")
    media, digest, size = desc.get("mediaType"), desc.get("digest"), desc.get("size")
    if not isinstance(media, str):
        raise IntegrityError(f"{what}: no mediaType")
    if not (isinstance(digest, str) and digest.startswith("sha256:") and is_digest(digest[7:])):
        raise IntegrityError(f"{what}: digest {digest!r} is not sha256:<64 hex digits>")
    if type(size) is not int or size < 0:
        raise IntegrityError(f"{what}: size {size!r} is not a byte count")
    return media, digest[7:], size


def select(index: dict[str, Any], tag: str | None, where: str) -> tuple[str, int]:
    """The image manifest of the index to unpack: (digest, size)."""
    manifests = index.get("manifests")
    if index.get("schemaVersion") != 2 or not isinstance(manifests, list):
        raise IntegrityError(f"{where}/index.json: not an OCI image index (schemaVersion 2)")
    images: list[tuple[str | None, str, int]] = []
    for i, m in enumerate(manifests):
        if not isinstance(m, dict) or m.get("mediaType") != MANIFEST_MEDIA_TYPE:
            continue  # nested indexes and other kinds hold no mreg version
        _, digest, size = described(m, f"{where}/index.json: manifests[{i}]")
        notes = m.get("annotations")
        ref = notes.get(REF_NAME) if isinstance(notes, dict) else None
        images.append((ref if isinstance(ref, str) else None, digest, size))
    tags = ", ".join(sorted(str(t) for t, _, _ in images if t is not None)) or "none"
    chosen = images if tag is None else [x for x in images if x[0] == tag]
    if not chosen:
        if tag is not None:
            raise NotFound(f"{where} has no tag {tag!r} (tags: {tags})")
        raise IntegrityError(f"{where}/index.json names no image manifest: nothing to unpack")
    if len(chosen) > 1:
        raise InvalidInput(
            f"{where} holds {len(chosen)} manifests (tags: {tags}): name one as {where}:TAG"
        )
    return chosen[0][1], chosen[0][2]


def identity(image: dict[str, Any], config: str, what: str) -> tuple[str, str]:
    """The name and version the image manifest's annotations give, as a bundle header does."""
    notes = image.get("annotations")
    notes = notes if isinstance(notes, dict) else {}
    try:
        name = check_name(str(notes[TITLE]))
        version = Version.parse(str(notes[VERSION])).text
    except (KeyError, InvalidInput) as exc:
        raise IntegrityError(
            f"{what}: its annotations {TITLE} and {VERSION} do not name an mreg version ({exc})"
        ) from None
    if notes.get(MREG_ID) != config:
        raise IntegrityError(f"{what}: annotation {MREG_ID} is not its config's digest")
    return name, version


def check_layers(layers: Any, mv: ModelVersion, expected: list[FileEntry], what: str) -> None:
    """The layers: the version's files, its requirements file, its profiles, as pack wrote them."""
    if not isinstance(layers, list):
        raise IntegrityError(f"{what}: no layers list")
    req = mv.dependencies.requirements if mv.dependencies else None
    media_types = [FILE_MEDIA_TYPE] * len(mv.files) + [REQUIREMENTS_MEDIA_TYPE] * (req is not None)
    media_types += [PROFILE_MEDIA_TYPE] * len(mv.profile_entries())
    for i, layer in enumerate(layers):
        media, digest, size = described(layer, f"{what}: layers[{i}]")
        if i >= len(expected):
            raise InvalidInput(
                f"{what}: layers[{i}] (sha256:{digest[:12]}) is not named by the version "
                "manifest: refused"
            )
        f, want = expected[i], media_types[i]
        if (media, digest, size) != (want, f.sha256, f.size):
            raise IntegrityError(
                f"{what}: layers[{i}] is {media} sha256:{digest[:12]} ({size} bytes), the "
                f"version manifest says {want} sha256:{f.sha256[:12]} ({f.size} bytes) for "
                f"{f.path}"
            )
    if len(layers) < len(expected):
        raise IntegrityError(f"{what}: incomplete, no layer for {expected[len(layers)].path}")


def is_tag(text: str) -> bool:
    """True when `text` is a valid OCI tag (the distribution-spec's grammar)."""
    return _TAG.fullmatch(text) is not None
