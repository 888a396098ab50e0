"""OpenSSF Model Signing (OMS) signatures, read without trusting them (issue 19). Pure.

An OMS signature is a Sigstore bundle (`application/vnd.dev.sigstore.bundle...+json`) whose
DSSE envelope carries an in-toto statement: its predicate lists every file of the model
with its SHA-256, which for a version of mreg is the object id of each file. `parse` reads
one (bounded, before anything else is done with it) into what mreg shows and checks: the
files and digests it covers, the key it names (`publicKey.hint`, the SHA-256 of the public
key's PEM, as `model_signing` writes it) or the certificate it carries. Whether the
signature is *valid* is the cryptographer's question, answered by the `model-signing`
package (`modelreg.signatures`); whether it *covers a version* is answered here, by
comparing its files with the manifest's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg.errors import InvalidInput

__all__ = ["MAX_BYTES", "Signature", "coverage_problems", "key_id", "parse"]

MAX_BYTES = 8 * 1024 * 1024
"""The largest signature read: a statement lists every file (100,000 files fit)."""
_BUNDLE = "application/vnd.dev.sigstore.bundle"
_PAYLOAD = "application/vnd.in-toto+json"
_STATEMENT = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True)
class Signature:
    """What an OMS signature says (not yet whether it holds)."""

    digest: str
    """SHA-256 of the signature file's bytes: its name in the store."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Each signed file's path (POSIX, relative) and SHA-256."""
    key: str | None = None
    """The public key's id (`publicKey.hint`), for a signature made with a key."""
    certificate: str | None = None
    """The leaf certificate's subject, for a signature made with a certificate."""
    predicate_type: str = ""

    @property
    def signer(self) -> str:
        """Who signed, as far as the signature itself says: `key:<id12>` or the subject."""
        if self.certificate:
            return self.certificate
        return f"key:{self.key[:12]}" if self.key else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (`--json`)."""
        return {
            "digest": self.digest,
            "key": self.key,
            "certificate": self.certificate,
            "signer": self.signer,
            "files": len(self.files),
        }


def key_id(public_key_pem: bytes) -> str:
    """The id `model_signing` gives a public key: SHA-256 of its SubjectPublicKeyInfo PEM."""
    return hashlib.sha256(public_key_pem).hexdigest()


def _fail(source: str, why: str) -> InvalidInput:
    return InvalidInput(f"{source}: not an OMS signature ({why})")


def parse(data: bytes, source: str) -> Signature:
    """Read a signature file's bytes (InvalidInput, naming `source`, when it is not one)."""
    if len(data) > MAX_BYTES:
        raise _fail(source, f"larger than {MAX_BYTES} bytes")
    try:
        bundle = json.loads(data)
    except (ValueError, RecursionError):
        raise _fail(source, "not JSON") from None
    if not isinstance(bundle, dict) or not str(bundle.get("mediaType", "")).startswith(_BUNDLE):
        raise _fail(source, "not a Sigstore bundle")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict) or envelope.get("payloadType") != _PAYLOAD:
        raise _fail(source, "no in-toto DSSE envelope")
    if not isinstance(envelope.get("signatures"), list) or not envelope["signatures"]:
        raise _fail(source, "the envelope holds no signature")
    try:
        statement = json.loads(base64.b64decode(str(envelope.get("payload", "")), validate=True))
    except (ValueError, binascii.Error, RecursionError):
        raise _fail(source, "an unreadable payload") from None
    if not isinstance(statement, dict) or statement.get("_type") != _STATEMENT:
        raise _fail(source, "the payload is not an in-toto statement")
    predicate = statement.get("predicate")
    resources = predicate.get("resources") if isinstance(predicate, dict) else None
    if not isinstance(resources, list):
        raise _fail(source, "the statement lists no files")
    files: dict[str, str] = {}
    for r in resources:
        if not isinstance(r, dict) or r.get("algorithm") != "sha256":
            raise _fail(source, "a file not signed by its SHA-256")
        name, digest = r.get("name"), r.get("digest")
        if not isinstance(name, str) or not isinstance(digest, str) or name in files:
            raise _fail(source, "a malformed or repeated file entry")
        files[name] = digest.lower()
    material = bundle.get("verificationMaterial")
    material = material if isinstance(material, dict) else {}
    key = (
        material.get("publicKey", {}).get("hint")
        if isinstance(material.get("publicKey"), dict)
        else None
    )
    return Signature(
        digest=hashlib.sha256(data).hexdigest(),
        files=files,
        key=str(key) if key else None,
        certificate=_subject(material),
        predicate_type=str(statement.get("predicateType", "")),
    )


def _subject(material: dict[str, Any]) -> str | None:
    """The leaf certificate's subject, when the bundle carries a certificate (chain)."""
    chain = material.get("x509CertificateChain")
    certs = chain.get("certificates") if isinstance(chain, dict) else None
    leaf = certs[0] if isinstance(certs, list) and certs else material.get("certificate")
    raw = leaf.get("rawBytes") if isinstance(leaf, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    except (ValueError, binascii.Error, ImportError):
        return "a certificate mreg cannot read"
    return cert.subject.rfc4514_string()


def coverage_problems(sig: Signature, files: Mapping[str, str]) -> list[str]:
    """How the signed files differ from a version's (path -> SHA-256); [] when identical."""
    out = []
    for path in sorted(files.keys() - sig.files.keys()):
        out.append(f"{path} is not signed")
    for path in sorted(sig.files.keys() - files.keys()):
        out.append(f"{path} is signed but is not a file of the version")
    for path in sorted(files.keys() & sig.files.keys()):
        if files[path] != sig.files[path]:
            out.append(f"{path} is signed with another digest")
    return out
