"""`mreg pack --format oci`: an OCI image layout that follows the image-spec, checked rule by rule.

The rules asserted here are the image-spec's (image-layout.md, manifest.md, descriptor.md,
annotations.md): `oci-layout` with `imageLayoutVersion`, `index.json` an image index, every
blob under `blobs/sha256/` named by the SHA-256 of its bytes with descriptors whose digest
and size match, an image manifest with `schemaVersion` 2 and its media type, the config and
layers as descriptors, `org.opencontainers.image.*` annotations. When `skopeo` is installed,
it reads the layout as well.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from modelreg import InvalidInput, Store
from modelreg.oci import CONFIG_MEDIA_TYPE, FILE_MEDIA_TYPE, MANIFEST_MEDIA_TYPE

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


@pytest.fixture
def layout(store: Store, tmp_path: Path) -> tuple[Store, Path]:
    src = tmp_path / "model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"\x01" * 100_000)
    (src / "tokenizer" / "vocab.json").write_bytes(b'{"a": 1}')
    (src / "empty.txt").write_bytes(b"")
    req = tmp_path / "requirements.txt"
    req.write_bytes(b"torch==2.5.0\n")
    store.register(
        "fraud", [src], version="1.2.0", requirements=req, message="weekly", detect_code=False
    )
    out = tmp_path / "oci"
    store.pack("fraud@1.2.0", out, format="oci")
    return store, out


def _blob(out: Path, desc: dict) -> bytes:
    assert _DIGEST.fullmatch(desc["digest"]), desc
    assert _MEDIA_TYPE.fullmatch(desc["mediaType"]), desc
    data = (out / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
    assert len(data) == desc["size"], desc
    assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
    return data


def test_layout_follows_the_image_spec(layout):
    store, out = layout
    assert json.loads((out / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    for blob in (out / "blobs" / "sha256").iterdir():  # every blob is named by its content
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    index = json.loads((out / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (entry,) = index["manifests"]
    assert entry["mediaType"] == MANIFEST_MEDIA_TYPE
    assert _TAG.fullmatch(entry["annotations"]["org.opencontainers.image.ref.name"])
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "1.2.0"

    manifest = json.loads(_blob(out, entry))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    mv = store.resolve("fraud@1.2.0")
    config = _blob(out, manifest["config"])
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert hashlib.sha256(config).hexdigest() == mv.id  # the config is the version manifest
    titles = {}
    for layer in manifest["layers"]:
        data = _blob(out, layer)
        titles[layer["annotations"]["org.opencontainers.image.title"]] = (layer, data)
    assert titles["model.safetensors"][1] == b"\x01" * 100_000
    assert titles["model.safetensors"][0]["mediaType"] == FILE_MEDIA_TYPE
    assert titles["tokenizer/vocab.json"][1] == b'{"a": 1}'
    assert titles["empty.txt"][1] == b""
    assert titles["requirements/requirements.txt"][1] == b"torch==2.5.0\n"
    notes = manifest["annotations"]
    assert notes["org.opencontainers.image.title"] == "fraud"
    assert notes["org.opencontainers.image.version"] == "1.2.0"
    assert notes["org.opencontainers.image.description"] == "weekly"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", notes["org.opencontainers.image.created"]
    )
    assert notes["io.mreg.id"] == mv.id
    assert all(isinstance(v, str) for v in notes.values())  # annotations are string-string


def test_more_versions_add_tags_other_models_are_refused(layout, tmp_path):
    store, out = layout
    (tmp_path / "v2.safetensors").write_bytes(b"\x02" * 10)
    store.register("fraud", [tmp_path / "v2.safetensors"], version="1.3.0", detect_code=False)
    store.pack("fraud@1.3.0", out, format="oci")
    store.pack("fraud@1.3.0", out, format="oci")  # idempotent: the tag is replaced, not doubled
    index = json.loads((out / "index.json").read_bytes())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert tags == ["1.2.0", "1.3.0"]
    store.register("other", [tmp_path / "v2.safetensors"], version="1.0.0", detect_code=False)
    with pytest.raises(InvalidInput, match="one layout per model"):
        store.pack("other@1.0.0", out, format="oci")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="neither empty nor an OCI image layout"):
        store.pack("fraud@1.2.0", tmp_path / "busy", format="oci")


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_the_layout(layout):
    _, out = layout
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{out}:1.2.0"], capture_output=True, text=True
    )
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["config"]["mediaType"] == CONFIG_MEDIA_TYPE
