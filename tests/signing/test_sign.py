"""Signed versions (issue 19): OMS signatures made with the real `model-signing` package.

Signatures are made by mreg (`register --sign`, `sign --key`) and by model_signing's own
CLI (`python -m model_signing sign key`, then `mreg sign --attach`); both are verified by
mreg (`verify --signatures`) and by model_signing's CLI on `mreg get --out DIR
--signature FILE`. Keys are made by the test with `cryptography`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelreg import Store
from tests.conftest import snapshot

pytest.importorskip("model_signing")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")


def make_key(where: Path, name: str, password: bytes | None = None) -> tuple[Path, Path]:
    """An elliptic-curve key pair: (private PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    crypt = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private = where / f"{name}.pem"
    public = where / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt)
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def model_signing(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The model_signing CLI itself."""
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    where = tmp_path / "keys"
    where.mkdir()
    return {n: make_key(where, n) for n in ("ci", "reviewer", "stranger")}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "weights.bin").write_bytes(b"\x00\x01weights" * 1000)
    (d / "sub" / "config.json").write_text('{"layers": 3}')
    return d


def test_register_signs_and_every_reader_sees_who_signed(
    store: Store, run_mreg, keys, model_dir: Path, tmp_path: Path
) -> None:
    ci_key, ci_pub = keys["ci"]
    r = run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code",
                 "--sign", str(ci_key), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    digest = r.json()["signature"]
    assert len(digest) == 64
    shown = run_mreg("show", "churn@1.0.0", "--json").json()
    assert [s["digest"] for s in shown["signatures"]] == [digest]
    assert shown["signatures"][0]["files"] == 2
    assert "signed" in run_mreg("show", "churn@1.0.0").stdout
    # verified by mreg against the trusted key, by name
    r = run_mreg("verify", "--signatures", "--key", f"ci={ci_pub}", "--json")
    assert r.returncode == 0, r.stdout
    (check,) = r.json()["signatures"]
    assert (check["status"], check["signer"], check["signature"]) == ("valid", "ci", digest)
    # a key not trusted here: listed as untrusted, not a failure
    r = run_mreg("verify", "--signatures", "--key", str(keys["stranger"][1]), "--json")
    assert r.returncode == 0 and r.json()["signatures"][0]["status"] == "untrusted"
    # the audit trail says who signed what with which key
    (entry,) = [e for e in run_mreg("log", "--json").json() if e["action"] == "sign"]
    assert entry["details"]["signature"] == digest and entry["details"]["how"] == "key"
    # the files and the signature, verified by model_signing's own CLI
    out, sig = tmp_path / "out", tmp_path / "churn.sig"
    r = run_mreg("get", "churn@1.0.0", "--out", str(out), "--signature", str(sig))
    assert r.returncode == 0, r.stderr
    r = model_signing("verify", "key", "--public_key", str(ci_pub), "--signature", str(sig),
                      str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (out / "weights.bin").chmod(0o644)
    (out / "weights.bin").write_bytes(b"tampered")
    r = model_signing("verify", "key", "--public_key", str(ci_pub), "--signature", str(sig),
                      str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode != 0


def test_a_signature_made_by_model_signing_is_attached_and_a_version_has_several(
    store: Store, run_mreg, keys, model_dir: Path, tmp_path: Path
) -> None:
    assert run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code").ok
    assert run_mreg("sign", "churn@1.0.0", "--key", str(keys["ci"][0])).ok
    out = tmp_path / "out"
    assert run_mreg("get", "churn@1.0.0", "--out", str(out)).ok
    theirs = tmp_path / "reviewer.sig"
    r = model_signing("sign", "key", "--private_key", str(keys["reviewer"][0]),
                      "--signature", str(theirs), str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_mreg("sign", "churn@1.0.0", "--attach", str(theirs), "--json")
    assert r.returncode == 0 and r.json()["changed"] is True, r.stderr
    assert (
        run_mreg("sign", "churn@1.0.0", "--attach", str(theirs), "--json").json()["changed"]
        is False
    )  # the same file again: nothing changes
    trusted = ["--key", f"ci={keys['ci'][1]}", "--key", f"reviewer={keys['reviewer'][1]}"]
    r = run_mreg("verify", "--signatures", *trusted, "--json")
    assert sorted((c["signer"], c["status"]) for c in r.json()["signatures"]) == [
        ("ci", "valid"), ("reviewer", "valid"),
    ]  # fmt: skip
    # two signatures: get must be told which one
    r = run_mreg("get", "churn@1.0.0", "--out", str(tmp_path / "o2"), "--signature", "x.sig")
    assert r.returncode == 2 and "has 2 signatures" in r.stderr
    assert not (tmp_path / "o2").exists()  # refused before anything was written
    r = run_mreg("get", "churn@1.0.0", "--out", str(tmp_path / "o2"), "--signature",
                 str(tmp_path / "r.sig"), "--key", str(keys["reviewer"][1]))  # fmt: skip
    assert r.ok and (tmp_path / "r.sig").read_bytes() == theirs.read_bytes()


def test_signing_again_with_the_same_key_changes_nothing(
    store: Store, run_mreg, keys, model_dir: Path
) -> None:
    args = ("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code")
    first = run_mreg(*args, "--sign", str(keys["ci"][0]), "--json").json()["signature"]
    before = snapshot(store.root)
    again = run_mreg(*args, "--sign", str(keys["ci"][0]), "--json")  # a CI re-run
    assert again.ok and again.json()["signature"] == first
    r = run_mreg("sign", "churn@1.0.0", "--key", str(keys["ci"][0]), "--json")
    assert r.ok and r.json()["changed"] is False and r.json()["digest"] == first
    assert snapshot(store.root) == before


def test_bad_keys_and_foreign_signatures_change_nothing(
    store: Store, run_mreg, keys, model_dir: Path, tmp_path: Path
) -> None:
    assert run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code").ok
    before = snapshot(store.root)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for args in (
        ("sign", "churn@1.0.0", "--key", str(garbage)),
        ("sign", "churn@1.0.0", "--key", str(tmp_path / "missing.pem")),
        ("sign", "churn@1.0.0"),  # neither --key nor --attach
        ("sign", "churn@1.0.0", "--attach", str(garbage)),
        ("register", "churn", str(model_dir), "-V", "2.0.0", "--no-code", "--sign", str(garbage)),
        ("verify", "--signatures", "--key", str(garbage)),
    ):
        r = run_mreg(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr  # one line of ours
    assert snapshot(store.root) == before  # 2.0.0 was not registered either
    # a signature of other files (another model) is not attached
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"other weights")
    sig = tmp_path / "other.sig"
    r = model_signing("sign", "key", "--private_key", str(keys["ci"][0]), "--signature",
                      str(sig), str(other), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_mreg("sign", "churn@1.0.0", "--attach", str(sig))
    assert r.returncode == 2 and "not a signature of churn@1.0.0's files" in r.stderr
    assert snapshot(store.root) == before


def test_an_encrypted_key_takes_its_password_from_the_environment(
    store: Store, run_mreg, model_dir: Path, tmp_path: Path
) -> None:
    private, public = make_key(tmp_path, "locked", password=b"s3cret-pass")
    assert run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code").ok
    r = run_mreg("sign", "churn@1.0.0", "--key", str(private), "--password-env", "KEY_PASS")
    assert r.returncode == 2 and "KEY_PASS" in r.stderr  # unset
    r = run_mreg("sign", "churn@1.0.0", "--key", str(private), "--password-env", "KEY_PASS",
                 env={"KEY_PASS": "wrong"})  # fmt: skip
    assert r.returncode == 2
    r = run_mreg("sign", "churn@1.0.0", "--key", str(private), "--password-env", "KEY_PASS",
                 env={"KEY_PASS": "s3cret-pass"})  # fmt: skip
    assert r.ok, r.stderr
    assert b"s3cret-pass" not in b"".join(
        p.read_bytes() for p in store.root.rglob("*") if p.is_file()
    )
    r = run_mreg("verify", "--signatures", "--key", str(public), "--json")
    assert r.json()["signatures"][0]["status"] == "valid"


def forged(sig: bytes) -> bytes:
    """The same signature with one byte of its ECDSA signature changed."""
    doc = json.loads(sig)
    raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(doc).encode()


def test_a_signature_that_does_not_hold_fails_verify(
    store: Store, run_mreg, keys, model_dir: Path, tmp_path: Path
) -> None:
    assert run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code").ok
    out, sig = tmp_path / "out", tmp_path / "ci.sig"
    assert run_mreg("get", "churn@1.0.0", "--out", str(out)).ok
    r = model_signing("sign", "key", "--private_key", str(keys["ci"][0]), "--signature",
                      str(sig), str(out), cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0
    bad = tmp_path / "forged.sig"
    bad.write_bytes(forged(sig.read_bytes()))
    assert run_mreg("sign", "churn@1.0.0", "--attach", str(bad)).ok  # it covers the files
    r = run_mreg("verify", "--signatures", "--key", f"ci={keys['ci'][1]}", "--json")
    assert r.returncode == 1
    assert [c["status"] for c in r.json()["signatures"]] == ["invalid"]
    assert any("does not hold" in p for p in r.json()["problems"])


def test_fsck_checks_the_signature_files(store: Store, run_mreg, keys, model_dir: Path) -> None:
    assert run_mreg("register", "churn", str(model_dir), "-V", "1.0.0", "--no-code",
                    "--sign", str(keys["ci"][0])).ok  # fmt: skip
    assert run_mreg("fsck").ok
    (sig,) = (store.root / "models" / "churn" / "signatures" / "1.0.0").iterdir()
    data = sig.read_bytes()
    sig.chmod(0o644)
    sig.write_bytes(data[:-20])  # cut short: not a signature any more
    r = run_mreg("fsck", "--json")
    assert r.returncode == 1
    assert [f["kind"] for f in r.json()["findings"]] == ["bad-signature"]
    sig.write_bytes(data)
    stray = sig.parent.parent / "9.9.9" / sig.name
    stray.parent.mkdir()
    stray.write_bytes(data)
    r = run_mreg("fsck", "--json")
    assert [f["kind"] for f in r.json()["findings"]] == ["dangling-signature"]
