"""The oci:// remote against a real registry (CNCF distribution) on 127.0.0.1, and skopeo.

Two registries are started once for the module by `docker-registry serve` (Debian's
package): one open, one with htpasswd (bcrypt) authentication. skopeo (Debian) checks what
mreg wrote: the tags, the layers (their digests are the files' SHA-256), the manifest digest
of a layout `mreg pack --format oci` made, copied by skopeo.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Store

from ..conftest import snapshot
from .conftest import blob

REGISTRY = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(
    not (Path(REGISTRY).exists() and shutil.which("skopeo")),
    reason="needs Debian's docker-registry and skopeo (.ci/run installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    def __init__(self, root: Path, htpasswd: Path | None = None) -> None:
        self.root = root
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = ""
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
        config = root / "config.yml"
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self.log = (root / "log").open("wb")
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:  # 401: up, with auth
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((root / "log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()

    def blob_file(self, digest: str) -> Path:
        return self.root / f"data/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory) -> Iterator[Registry]:
    bcrypt = pytest.importorskip("bcrypt", reason="the htpasswd file needs a bcrypt hash")
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = root / "htpasswd"
    htpasswd.write_bytes(b"alice:" + bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(5)) + b"\n")
    reg = Registry(root, htpasswd)
    yield reg
    reg.stop()


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def _setup(tmp_path: Path, run_mreg, url: str, files: dict[str, bytes]) -> Path:
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    for name, data in files.items():
        (inputs / name).write_bytes(data)
    assert run_mreg("init").returncode == 0
    assert run_mreg("remote", "add", "origin", url).returncode == 0
    return inputs


def test_push_pull_roundtrip_with_skopeo(run_mreg, tmp_path, registry):
    files = {"model.onnx": blob(300_000, 1), "config.json": b'{"layers": 2}'}
    inputs = _setup(tmp_path, run_mreg, f"oci://{registry.host}/mreg", files)
    paths = [str(inputs / n) for n in files]
    assert run_mreg("register", "fraud", *paths, "--version", "1.0.0", "--no-code").ok
    assert run_mreg("promote", "fraud@1.0.0", "--to", "production").ok
    # a part size of 1 MiB is above these files: one PUT each (PATCH parts: the 2 MiB test)
    pushed = run_mreg("push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    out = pushed.json()
    assert out["objects_sent"] == 2 and out["manifests_sent"] == ["fraud@1.0.0"]
    assert out["refs_sent"] == ["models/fraud/aliases/production.yaml"]
    assert out["guarantee"] == "check-then-write"
    ref = f"docker://{registry.host}/mreg/fraud"
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", ref).stdout)["Tags"]
    assert sorted(tags) == ["1.0.0", "production"]
    out_dir = tmp_path / "skopeo-dir"
    skopeo("copy", "--src-tls-verify=false", f"{ref}:1.0.0", f"dir:{out_dir}")
    for data in files.values():  # each layer is a file, named by its SHA-256
        digest = hashlib.sha256(data).hexdigest()
        assert (out_dir / digest).read_bytes() == data
    # a second push uploads nothing
    again = run_mreg("push", "--json").json()
    assert again["objects_sent"] == 0 and again["manifests_sent"] == []
    assert again["refs_sent"] == []
    assert run_mreg("status", "--remote", "--json").json()["in_sync"] is True
    # the registry's manifest is the layout's: skopeo's copy of `mreg pack --format oci`
    # gets the digest mreg's push got
    layout = tmp_path / "layout"
    assert run_mreg("pack", "fraud@1.0.0", "--out", str(layout), "--format", "oci").ok
    skopeo(
        "copy", "--dest-tls-verify=false", "--preserve-digests",
        f"oci:{layout}:1.0.0", f"docker://{registry.host}/copied:1.0.0",
    )  # fmt: skip
    mine = skopeo("inspect", "--raw", "--tls-verify=false", f"{ref}:1.0.0").stdout
    theirs = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/copied:1.0.0"
    ).stdout
    assert mine == theirs
    # pull into a fresh store: the same version ids, the push and pull in the audit trail
    fresh = tmp_path / "fresh"
    assert run_mreg("init", cwd=fresh).ok
    assert run_mreg("remote", "add", "origin", f"oci://{registry.host}/mreg", cwd=fresh).ok
    pulled = run_mreg("pull", "--json", cwd=fresh)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.json()["manifests_received"] == ["fraud@1.0.0"]
    a, b = Store.open(tmp_path / "work"), Store.open(fresh)
    assert a.resolve("fraud@1.0.0").id == b.resolve("fraud@1.0.0").id
    assert [e.action for e in b.log()][-1] == "pull"
    assert "push" in [e.action for e in a.log()]
    assert run_mreg("pull", "--json", cwd=fresh).json()["objects_received"] == 0


def test_alias_tags_move_on_promote_and_push(run_mreg, tmp_path, registry):
    inputs = _setup(tmp_path, run_mreg, f"oci://{registry.host}/moves", {"m.bin": b"one"})
    assert run_mreg("register", "churn", str(inputs / "m.bin"), "--version", "1.0.0").ok
    assert run_mreg("promote", "churn@1.0.0", "--to", "production").ok
    assert run_mreg("push").ok
    (inputs / "m.bin").write_bytes(blob(2_500_000, 7))  # over a 1 MiB part: PATCHed in 3
    assert run_mreg("remote", "remove", "origin").ok
    url = f"oci://{registry.host}/moves"
    assert run_mreg("remote", "add", "origin", url, "-o", "mreg.part_size_mib=1").ok
    assert run_mreg("register", "churn", str(inputs / "m.bin"), "--version", "1.1.0").ok
    assert run_mreg("promote", "churn@1.1.0", "--to", "production").ok
    st = run_mreg("status", "--remote", "--json").json()
    assert st["versions_to_push"] == ["churn@1.1.0"] and st["objects_to_push"] == 1
    assert st["refs"] == {"models/churn/aliases/production.yaml": "diverged"}
    assert run_mreg("push").ok
    ref = f"docker://{registry.host}/moves/churn"

    def digest(tag: str) -> str:
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{ref}:{tag}").stdout
        return hashlib.sha256(raw.encode()).hexdigest()

    assert digest("production") == digest("1.1.0") != digest("1.0.0")
    out = tmp_path / "big"
    skopeo("copy", "--src-tls-verify=false", f"{ref}:1.1.0", f"dir:{out}")
    big = (inputs / "m.bin").read_bytes()
    assert (out / hashlib.sha256(big).hexdigest()).read_bytes() == big


def test_tampered_blob_is_rejected_and_store_unchanged(run_mreg, tmp_path, registry):
    data = blob(40_000, 3)
    inputs = _setup(tmp_path, run_mreg, f"oci://{registry.host}/tamper", {"w.bin": data})
    assert run_mreg("register", "spam", str(inputs / "w.bin"), "--version", "2.0.0").ok
    assert run_mreg("push").ok
    digest = hashlib.sha256(data).hexdigest()
    stored = registry.blob_file(digest)
    stored.write_bytes(b"X" + stored.read_bytes()[1:])  # same size, other bytes
    fresh = tmp_path / "fresh"
    assert run_mreg("init", cwd=fresh).ok
    assert run_mreg("remote", "add", "origin", f"oci://{registry.host}/tamper", cwd=fresh).ok
    before = snapshot(fresh / ".modelreg")
    pulled = run_mreg("pull", "--json", cwd=fresh)
    assert pulled.returncode == 1
    assert pulled.json()["manifests_received"] == []
    assert any(digest[:12] in r for r in pulled.json()["rejected"])
    assert snapshot(fresh / ".modelreg") == before


def test_other_content_under_a_pushed_version_is_refused(run_mreg, tmp_path, registry):
    inputs = _setup(tmp_path, run_mreg, f"oci://{registry.host}/clash", {"a.bin": b"first"})
    assert run_mreg("register", "ham", str(inputs / "a.bin"), "--version", "1.0.0").ok
    assert run_mreg("push").ok
    other = tmp_path / "other"
    (inputs / "b.bin").write_bytes(b"second")
    assert run_mreg("init", cwd=other).ok
    assert run_mreg("remote", "add", "origin", f"oci://{registry.host}/clash", cwd=other).ok
    assert run_mreg("register", "ham", str(inputs / "b.bin"), "--version", "1.0.0", cwd=other).ok
    refused = run_mreg("push", cwd=other)
    assert refused.returncode == 1 and "ham@1.0.0 exists on the remote" in refused.stderr
    st = run_mreg("status", "--remote", "--json", cwd=other).json()
    assert st["version_conflicts"] == ["ham@1.0.0"]


def test_names_a_registry_cannot_hold_exit_2(run_mreg, tmp_path, registry):
    inputs = _setup(tmp_path, run_mreg, f"oci://{registry.host}/names", {"a.bin": b"x"})
    upper = run_mreg("remote", "add", "up", f"oci://{registry.host}/Names")
    assert upper.returncode == 2 and "not a valid OCI repository name" in upper.stderr
    assert run_mreg("register", "a..b", str(inputs / "a.bin"), "--version", "1.0.0").ok
    before = snapshot(tmp_path / "work" / ".modelreg")
    refused = run_mreg("push")
    assert refused.returncode == 2 and "not a valid OCI repository name" in refused.stderr
    assert snapshot(tmp_path / "work" / ".modelreg") == before


def test_credentials_from_the_docker_config(run_mreg, tmp_path, auth_registry):
    url = f"oci://{auth_registry.host}/private"
    inputs = _setup(tmp_path, run_mreg, url, {"a.bin": blob(10_000, 5)})
    assert run_mreg("register", "eggs", str(inputs / "a.bin"), "--version", "1.0.0").ok
    denied = run_mreg("push")
    assert denied.returncode == 1 and "refused access" in denied.stderr
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"alice:s3cret-pw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(config)}
    pushed = run_mreg("push", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.json()["manifests_sent"] == ["eggs@1.0.0"]
    assert run_mreg("status", "--remote", "--json", env=env).json()["in_sync"] is True
    for path in (tmp_path / "work" / ".modelreg").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"s3cret-pw" not in content and auth.encode() not in content
