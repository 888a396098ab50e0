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
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Store
from tests.ociregistry import REGISTRY, Registry
from tests.tools import free_port

from ..conftest import snapshot
from .conftest import blob

pytestmark = pytest.mark.skipif(
    not (Path(REGISTRY).exists() and shutil.which("skopeo")),
    reason="docker-registry or skopeo is not installed (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory) -> Iterator[Registry]:
    bcrypt = pytest.importorskip(
        "bcrypt", reason="bcrypt is not installed (the htpasswd file needs a bcrypt hash)"
    )
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = root / "htpasswd"
    htpasswd.write_bytes(b"alice:" + bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(5)) + b"\n")
    reg = Registry(root, htpasswd)
    yield reg
    reg.stop()


class TokenServer:
    """The distribution token flow's auth server: Basic alice:s3cret-pw in, a signed JWT out.

    The JWT carries its self-signed certificate (`x5c`), which the registry trusts through
    `rootcertbundle`; it grants whatever scope is asked of an authenticated client.
    """

    def __init__(self, root: Path) -> None:
        import datetime
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mreg test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        self.bundle = root / "token-cert.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        good = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
        self.issued = 0

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != good:
                    self.send_response(401)
                    self.end_headers()
                    return
                query = parse_qs(urlsplit(self.path).query)
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    target, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": target, "actions": actions.split(",")})
                t = int(time.time())
                claims = {
                    "iss": "mreg-test-issuer", "sub": "alice", "aud": "mreg-test",
                    "exp": t + 300, "nbf": t - 10, "iat": t, "jti": str(t), "access": access,
                }  # fmt: skip
                header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
                signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
                sig = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
                body = json.dumps({"token": f"{signed}.{b64(sig)}"}).encode()
                server.issued += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory) -> Iterator[Registry]:
    pytest.importorskip("cryptography", reason="the token server signs its JWTs")
    root = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(root)
    auth = (
        f"auth:\n  token:\n    realm: {tokens.realm}\n    service: mreg-test\n"
        f"    issuer: mreg-test-issuer\n    rootcertbundle: {tokens.bundle}\n"
    )
    reg = Registry(root, auth=auth)
    reg.tokens = tokens  # type: ignore[attr-defined]
    yield reg
    reg.stop()
    tokens.stop()


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def _setup(tmp_path: Path, url: str, files: dict[str, bytes], where: str = "work") -> Store:
    """A store in tmp_path/WHERE with remote `origin`, and the files in tmp_path/inputs."""
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    for name, data in files.items():
        (inputs / name).write_bytes(data)
    store = Store.init(tmp_path / where)
    store.remotes.add("origin", url)
    return store


def _register(store: Store, name: str, version: str, *paths: Path) -> None:
    store.register(name, list(paths), version=version, detect_code=False)


def test_push_pull_roundtrip_with_skopeo(run_mreg, tmp_path, registry):
    files = {"model.onnx": blob(300_000, 1), "config.json": b'{"layers": 2}'}
    store = _setup(tmp_path, f"oci://{registry.host}/mreg", files)
    _register(store, "fraud", "1.0.0", *(tmp_path / "inputs" / n for n in files))
    store.promote("fraud@1.0.0", "production")
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
        assert (out_dir / hashlib.sha256(data).hexdigest()).read_bytes() == data
    # a second push uploads nothing; status is in sync
    again = run_mreg("push", "--json").json()
    assert again["objects_sent"] == 0 and again["manifests_sent"] == []
    assert again["refs_sent"] == [] and again["objects_present"] == 0
    assert run_mreg("status", "--remote", "--json").json()["in_sync"] is True
    # the registry's manifest is the layout's: skopeo's copy of `mreg pack --format oci`
    # has the manifest mreg's push wrote, byte for byte
    layout = tmp_path / "layout"
    store.pack("fraud@1.0.0", layout, format="oci")
    skopeo(
        "copy", "--dest-tls-verify=false", "--preserve-digests",
        f"oci:{layout}:1.0.0", f"docker://{registry.host}/copied:1.0.0",
    )  # fmt: skip
    mine = skopeo("inspect", "--raw", "--tls-verify=false", f"{ref}:1.0.0").stdout
    theirs = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/copied:1.0.0"
    ).stdout
    assert mine == theirs
    # pull into a fresh store: the same version id, the pull in its audit trail
    fresh = _setup(tmp_path, f"oci://{registry.host}/mreg", {}, "fresh")
    fetched = fresh.fetch()  # what is there, nothing downloaded
    assert fetched.remote_versions == ("fraud@1.0.0",)
    assert fetched.refs_changed == ("models/fraud/aliases/production.yaml",)
    pulled = run_mreg("pull", "--json", cwd=tmp_path / "fresh")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.json()["manifests_received"] == ["fraud@1.0.0"]
    assert pulled.json()["objects_received"] == 2
    assert store.resolve("fraud@1.0.0").id == fresh.resolve("fraud@1.0.0").id
    assert fresh.log()[-1].action == "pull" and "push" in [e.action for e in store.log()]
    assert fresh.pull().objects_received == 0
    # and a layout skopeo copied from the registry unpacks to the same version
    skopeo("copy", "--src-tls-verify=false", f"{ref}:1.0.0", f"oci:{tmp_path / 'back'}:1.0.0")
    third = Store.init(tmp_path / "third")
    third.unpack(tmp_path / "back")
    assert third.resolve("fraud@1.0.0").id == store.resolve("fraud@1.0.0").id


def test_alias_tags_move_on_promote_and_push(run_mreg, tmp_path, registry):
    url = f"oci://{registry.host}/moves"
    store = _setup(tmp_path, url, {"m.bin": b"one", "big.bin": blob(2_500_000, 7)})
    inputs = tmp_path / "inputs"
    _register(store, "churn", "1.0.0", inputs / "m.bin")
    store.promote("churn@1.0.0", "production")
    assert store.push().refs_sent == ("models/churn/aliases/production.yaml",)
    store.remotes.remove("origin")
    store.remotes.add("origin", url, {"mreg.part_size_mib": 1})  # 2.5 MB: PATCHed in 3 parts
    _register(store, "churn", "1.1.0", inputs / "big.bin")
    store.promote("churn@1.1.0", "production")
    st = run_mreg("status", "--remote", "--json").json()
    assert st["versions_to_push"] == ["churn@1.1.0"] and st["objects_to_push"] == 1
    assert st["refs"] == {"models/churn/aliases/production.yaml": "diverged"}
    pushed = run_mreg("push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.json()["refs_sent"] == ["models/churn/aliases/production.yaml"]
    ref = f"docker://{registry.host}/moves/churn"

    def digest(tag: str) -> str:
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{ref}:{tag}").stdout
        return hashlib.sha256(raw.encode()).hexdigest()

    assert digest("production") == digest("1.1.0") != digest("1.0.0")
    out = tmp_path / "big"
    skopeo("copy", "--src-tls-verify=false", f"{ref}:1.1.0", f"dir:{out}")
    big = (inputs / "big.bin").read_bytes()
    assert (out / hashlib.sha256(big).hexdigest()).read_bytes() == big
    # a new version of files the registry has: each blob is looked for (HEAD), none sent
    _register(store, "churn", "1.2.0", inputs / "m.bin", inputs / "big.bin")
    reused = store.push(specs=["churn@1.2.0"])
    assert (reused.objects_sent, reused.objects_present) == (0, 2)
    assert reused.manifests_sent == ("churn@1.2.0",)
    # an alias names its version on pull too
    fresh = _setup(tmp_path, url, {}, "fresh")
    assert fresh.pull(specs=["churn@production"]).manifests_received == ("churn@1.1.0",)
    # what a registry cannot do is refused by name, exit 2
    gc = run_mreg("gc", "--remote", "origin")
    assert gc.returncode == 2 and "is an OCI registry" in gc.stderr


def test_tampered_blob_is_rejected_and_store_unchanged(run_mreg, tmp_path, registry):
    data = blob(40_000, 3)
    store = _setup(tmp_path, f"oci://{registry.host}/tamper", {"w.bin": data})
    _register(store, "spam", "2.0.0", tmp_path / "inputs" / "w.bin")
    store.push()
    digest = hashlib.sha256(data).hexdigest()
    stored = registry.blob_file(digest)
    stored.write_bytes(b"X" + stored.read_bytes()[1:])  # same size, other bytes
    _setup(tmp_path, f"oci://{registry.host}/tamper", {}, "fresh")
    before = snapshot(tmp_path / "fresh" / ".modelreg")
    pulled = run_mreg("pull", "--json", cwd=tmp_path / "fresh")
    assert pulled.returncode == 1
    assert pulled.json()["manifests_received"] == []
    assert any(digest[:12] in r for r in pulled.json()["rejected"])
    assert snapshot(tmp_path / "fresh" / ".modelreg") == before


def test_other_content_under_a_pushed_version_is_refused(run_mreg, tmp_path, registry):
    url = f"oci://{registry.host}/clash"
    store = _setup(tmp_path, url, {"a.bin": b"first", "b.bin": b"second"})
    _register(store, "ham", "1.0.0", tmp_path / "inputs" / "a.bin")
    store.push()
    other = _setup(tmp_path, url, {}, "other")
    _register(other, "ham", "1.0.0", tmp_path / "inputs" / "b.bin")
    before = snapshot(tmp_path / "other" / ".modelreg")
    refused = run_mreg("push", cwd=tmp_path / "other")
    assert refused.returncode == 1 and "ham@1.0.0 exists on the remote" in refused.stderr
    assert snapshot(tmp_path / "other" / ".modelreg") == before
    assert other.remote_status().version_conflicts == ("ham@1.0.0",)
    # a damaged local object: the registry re-hashes the upload, nothing is tagged
    _register(other, "ham", "1.0.1", tmp_path / "inputs" / "b.bin")
    obj = other.objects.path(hashlib.sha256(b"second").hexdigest())
    obj.chmod(0o644)
    obj.write_bytes(b"secund")
    damaged = run_mreg("push", "ham@1.0.1", cwd=tmp_path / "other")
    assert damaged.returncode == 1 and "run mreg verify" in damaged.stderr
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/clash/ham")
    assert json.loads(tags.stdout)["Tags"] == ["1.0.0"]


def test_names_a_registry_cannot_hold_exit_2(run_mreg, tmp_path, registry):
    store = _setup(tmp_path, f"oci://{registry.host}/names", {"a.bin": b"x"})
    upper = run_mreg("remote", "add", "up", f"oci://{registry.host}/Names")
    assert upper.returncode == 2 and "not a valid OCI repository name" in upper.stderr
    _register(store, "a..b", "1.0.0", tmp_path / "inputs" / "a.bin")
    before = snapshot(tmp_path / "work" / ".modelreg")
    refused = run_mreg("push")
    assert refused.returncode == 2 and "not a valid OCI repository name" in refused.stderr
    assert snapshot(tmp_path / "work" / ".modelreg") == before


def test_credentials_from_the_docker_config(run_mreg, tmp_path, auth_registry, monkeypatch):
    store = _setup(tmp_path, f"oci://{auth_registry.host}/private", {"a.bin": blob(10_000, 5)})
    _register(store, "eggs", "1.0.0", tmp_path / "inputs" / "a.bin")
    denied = run_mreg("push")
    assert denied.returncode == 1 and "refused access" in denied.stderr
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"alice:s3cret-pw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    pushed = run_mreg("push", "--json", env={"DOCKER_CONFIG": str(config)})
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.json()["manifests_sent"] == ["eggs@1.0.0"]
    # a credential helper (the docker-credential-* protocol), as `credHelpers` names it
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-mregtest"
    answer = json.dumps(
        {"ServerURL": auth_registry.host, "Username": "alice", "Secret": "s3cret-pw"}
    )
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{answer}'\n")
    helper.chmod(0o755)
    (config / "config.json").write_text(
        json.dumps({"credHelpers": {auth_registry.host: "mregtest"}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    assert store.remote_status().in_sync
    for path in (tmp_path / "work" / ".modelreg").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"s3cret-pw" not in content and auth.encode() not in content


def test_bearer_token_flow(tmp_path, token_registry, monkeypatch):
    from modelreg.remote.driver import RemoteError

    url = f"oci://{token_registry.host}/tok"
    store = _setup(tmp_path, url, {"a.bin": blob(5_000, 9)})
    _register(store, "bacon", "1.0.0", tmp_path / "inputs" / "a.bin")
    config = tmp_path / "docker"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with pytest.raises(RemoteError, match="refused access"):  # anonymous: no token
        store.push()
    auth = base64.b64encode(b"alice:s3cret-pw").decode()
    (config / "config.json").write_text(
        json.dumps({"auths": {token_registry.host: {"auth": auth}}})
    )
    assert store.push().manifests_sent == ("bacon@1.0.0",)
    assert token_registry.tokens.issued >= 1
    fresh = _setup(tmp_path, url, {}, "fresh")
    assert fresh.pull().manifests_received == ("bacon@1.0.0",)  # the catalog's scope too


def test_urls_options_and_docker_config_forms(tmp_path):
    from modelreg.errors import InvalidInput
    from modelreg.remote.ocicreds import CredentialError, find_credentials
    from modelreg.remote.ocireg import RegistryURL
    from modelreg.remote.spec import RemoteSpec

    def parse(url: str, **options: object) -> tuple[str, str, str]:
        u = RegistryURL.parse(RemoteSpec("r", url, dict(options)))
        return u.scheme, u.host, u.repository

    assert parse("oci://127.0.0.1:5000/ml/team") == ("http", "127.0.0.1:5000", "ml/team")
    assert parse("oci://localhost/ml") == ("http", "localhost", "ml")
    assert parse("oci://reg.example.com/ml") == ("https", "reg.example.com", "ml")
    assert parse("oci://lab:5000/ml", insecure=True)[0] == "http"
    for bad, options in [
        ("oci://reg.example.com/ml", {"insecure": "yes"}),
        ("oci://reg.example.com", {}),
        ("oci://reg.example.com/ML", {}),
        ("oci://user@reg.example.com/ml", {}),
    ]:
        with pytest.raises(InvalidInput):
            parse(bad, **options)
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"bob:pw:with:colons").decode()
    config.write_text(json.dumps({"auths": {"https://reg.example.com/v1/": {"auth": auth}}}))
    assert find_credentials("reg.example.com", config) == ("bob", "pw:with:colons")
    assert find_credentials("other.example.com", config) is None
    assert find_credentials("x", tmp_path / "absent.json") is None
    config.write_text(json.dumps({"auths": {"reg.example.com": {"auth": "not base64!"}}}))
    with pytest.raises(CredentialError):
        find_credentials("reg.example.com", config)
    config.write_text(json.dumps({"credsStore": "surely-not-installed"}))
    with pytest.raises(CredentialError, match="not installed"):
        find_credentials("reg.example.com", config)


def test_an_unreachable_registry_is_an_error_not_an_empty_one(tmp_path):
    from modelreg.remote.driver import RemoteError

    store = _setup(tmp_path, f"oci://127.0.0.1:{free_port()}/ml", {})
    with pytest.raises(RemoteError, match="cannot reach the registry"):
        store.pull()
    with pytest.raises(RemoteError, match="cannot reach the registry"):
        store.remote_status()
