"""Signatures made with a key and its certificate chain, trusted through a root (issue 19)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelreg import Store
from tests.signing.test_sign import model_signing

pytest.importorskip("model_signing")
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_chain(where: Path, tag: str) -> dict[str, Path]:
    """A root CA and a leaf signing certificate with its key: PEM files."""
    now = dt.datetime.now(dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(_name(f"{tag} root")).issuer_name(_name(f"{tag} root"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                       decipher_only=False), critical=True)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(_name(f"{tag} ci")).issuer_name(root.subject)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=False, crl_sign=False, encipher_only=False,
                       decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    out = {
        "root": where / f"{tag}-root.crt",
        "leaf": where / f"{tag}-leaf.crt",
        "key": where / f"{tag}-leaf.pem",
    }
    out["root"].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    out["leaf"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


def test_a_certificate_signature_is_valid_through_its_root_only(
    store: Store, run_mreg, tmp_path: Path
) -> None:
    ours, theirs = make_chain(tmp_path, "acme"), make_chain(tmp_path, "evil")
    src = tmp_path / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"w" * 100)
    assert run_mreg("register", "churn", str(src), "-V", "1.0.0", "--no-code").ok
    r = run_mreg("sign", "churn@1.0.0", "--key", str(ours["key"]), "--certificate",
                 str(ours["leaf"]), "--chain", str(ours["root"]), "--json")  # fmt: skip
    assert r.ok, r.stderr
    assert r.json()["certificate"] == "CN=acme ci"
    assert "CN=acme ci" in run_mreg("show", "churn@1.0.0").stdout
    r = run_mreg("verify", "--signatures", "--key", f"acme={ours['root']}", "--json")
    assert r.ok, r.stdout
    assert [(c["status"], c["signer"]) for c in r.json()["signatures"]] == [
        ("valid", "acme: CN=acme ci")
    ]
    r = run_mreg("verify", "--signatures", "--key", f"evil={theirs['root']}", "--json")
    assert r.returncode == 1 and r.json()["signatures"][0]["status"] == "invalid"
    r = run_mreg("verify", "--signatures", "--json")
    assert r.ok and r.json()["signatures"][0]["status"] == "untrusted"
    # model_signing's own CLI agrees on the files mreg writes
    out, sig = tmp_path / "out", tmp_path / "churn.sig"
    assert run_mreg("get", "churn@1.0.0", "--out", str(out), "--signature", str(sig)).ok
    r = model_signing("verify", "certificate", "--signature", str(sig), "--certificate_chain",
                      str(ours["root"]), str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # a certificate that is not the key's is refused before anything is written
    r = run_mreg("sign", "churn@1.0.0", "--key", str(ours["key"]), "--certificate",
                 str(theirs["leaf"]), "--chain", str(theirs["root"]))  # fmt: skip
    assert r.returncode == 2
