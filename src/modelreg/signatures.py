"""Signed versions (issue 19): OMS signatures made, attached, listed and verified.

A signature is an OpenSSF Model Signing (OMS) bundle made by the `model-signing` package
(the `sign` extra), offline, with an elliptic-curve key or a certificate chain. It is stored
beside the version, content-addressed (`models/NAME/signatures/V/<sha256>.sig`, see
`modelreg.layout`), immutable, and travels with the version (push, pull, pack, unpack). A
version can have several (CI's, then a reviewer's).

- `sign`: signs the version's files as the store holds them: a directory of hard links to
  the objects (copies where links are not possible) is what `model_signing` hashes, so the
  signature is the one `model_signing verify` accepts on `mreg get --out DIR`.
- `attach`: takes a signature made elsewhere (the `model_signing` CLI on the files).
- Both refuse a signature whose files are not exactly the version's (path and SHA-256),
  before anything is written, and record a `sign` audit entry; the same signature twice is
  a no-op.
- `check`: whether each signature holds, for the trusted keys given: the signature is
  verified by `model_signing` against the version's files in the store (re-hashed).

Domain layer (docs/architecture.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import layout, oms, signature_files
from modelreg.catalog import resolve
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import atomic_write, safe_join, tmp_name
from modelreg.handle import StoreHandle
from modelreg.lineage import default_author
from modelreg.manifest import ModelVersion

__all__ = [
    "SignResult",
    "SignatureCheck",
    "Signer",
    "TrustedKey",
    "attach",
    "check",
    "choose_signature",
    "holds",
    "install",
    "judge",
    "read_signatures",
    "sign",
    "signer",
    "trusted_key",
    "trusted_keys",
]


@dataclass(frozen=True)
class SignResult:
    """A signature added to a version (`changed` False: it was there already)."""

    name: str
    version: str
    signature: oms.Signature
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg sign`."""
        return {
            "name": self.name,
            "version": self.version,
            "changed": self.changed,
            **self.signature.to_dict(),
        }


@dataclass(frozen=True)
class Signer:
    """A loaded private key, ready to sign (`signer`)."""

    config: Any
    """The `model_signing.signing.Config`."""
    key: str
    """The private key's file, as given (for messages; never its content)."""
    how: str
    """`key` or `certificate`."""
    key_id: str | None = None
    """The id of the public key (`oms.key_id`) of a plain key: a version it signed already
    is not signed again (ECDSA signatures differ each time: a re-run must not add one)."""


@dataclass(frozen=True)
class TrustedKey:
    """A public key, or a root certificate, trusted to sign: by name (`ci`) and file."""

    name: str
    pem: bytes
    id: str
    """The key's id (`oms.key_id`); for a root certificate, `ca:` and its PEM's SHA-256."""

    @property
    def is_ca(self) -> bool:
        """True for a root certificate: it trusts signatures whose chain leads to it."""
        return self.id.startswith("ca:")


@dataclass(frozen=True)
class SignatureCheck:
    """Whether one signature of a version holds: `valid`, `invalid` or `untrusted`."""

    name: str
    version: str
    signature: oms.Signature
    status: str
    signer: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (`mreg verify --signatures --json`)."""
        return {
            "name": self.name,
            "version": self.version,
            "signature": self.signature.digest,
            "status": self.status,
            "signer": self.signer,
            "detail": self.detail,
        }


def _model_signing() -> Any:
    try:
        import model_signing
    except ImportError:
        raise InvalidInput(
            "signing needs the model-signing package: pip install 'modelreg[sign]'"
        ) from None
    return model_signing


def _files(mv: ModelVersion) -> dict[str, str]:
    return {f.path: f.sha256 for f in mv.files}


@contextmanager
def _tree(store: StoreHandle, mv: ModelVersion) -> Iterator[Path]:
    """The version's files as a directory (hard links to the objects, or copies), removed after."""
    base = store.root / layout.TMP / tmp_name("sign")
    tree = base / mv.name.replace("/", "-")
    try:
        for f in mv.files:
            src = store.objects.path(f.sha256)
            if not src.is_file():
                raise IntegrityError(f"object {f.sha256[:12]} of {f.path} is missing")
            dst = safe_join(tree, f.path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        tree.mkdir(parents=True, exist_ok=True)
        yield tree
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _hashing(ms: Any) -> Any:
    """Every file of the version is signed: no path is ignored (not even `.gitignore`)."""
    return ms.hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)


def signer(
    key: Path,
    *,
    password: str | None = None,
    certificate: Path | None = None,
    chain: Sequence[Path] = (),
) -> Signer:
    """A `model_signing` signing configuration for a private key (and its certificate chain).

    Loads the key at once, so that a bad key or password is refused (InvalidInput) before
    anything is registered or signed.
    """
    ms = _model_signing()
    for p in (key, certificate, *chain):
        if p is not None and not Path(p).is_file():
            raise InvalidInput(f"{p}: no such file")
    config = ms.signing.Config().set_hashing_config(_hashing(ms))
    try:
        if certificate is not None:
            config.use_certificate_signer(
                private_key=key, signing_certificate=certificate, certificate_chain=chain
            )
        else:
            # model_signing hands the password to cryptography, which takes bytes
            secret = password.encode() if password is not None else None
            config.use_elliptic_key_signer(private_key=key, password=secret)
    except (ValueError, TypeError, OSError) as exc:
        raise InvalidInput(f"cannot sign with {key}: {_first_line(exc)}") from None
    if certificate is not None:
        return Signer(config, str(key), "certificate")
    return Signer(config, str(key), "key", _private_key_id(key, password))


def sign(store: StoreHandle, spec: str, with_: Signer, *, actor: str | None = None) -> SignResult:
    """Sign a version's files with a `signer`; store and audit the signature.

    A version this key signed already keeps its signature (`changed` False): re-runs in CI
    are no-ops.
    """
    mv = resolve(store, spec)
    for sig, _ in read_signatures(store, mv):
        if with_.key_id is not None and sig.key == with_.key_id:
            return SignResult(mv.name, mv.version, sig, False)
    with _tree(store, mv) as tree:
        out = tree.parent / "signature.sig"
        try:
            with_.config.sign(tree, out)
        except (ValueError, TypeError, OSError) as exc:
            raise InvalidInput(f"cannot sign with {with_.key}: {_first_line(exc)}") from None
        data = out.read_bytes()
    return install(store, mv, data, with_.key, actor=actor, how=with_.how)


def attach(store: StoreHandle, spec: str, path: Path, *, actor: str | None = None) -> SignResult:
    """Attach a signature made elsewhere (`model_signing sign` on the version's files)."""
    mv = resolve(store, spec)
    try:
        with open(path, "rb") as fh:
            data = fh.read(oms.MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
    return install(store, mv, data, str(path), actor=actor, how="attached")


def install(
    store: StoreHandle,
    mv: ModelVersion,
    data: bytes,
    source: str,
    *,
    actor: str | None = None,
    how: str = "attached",
    record: bool = True,
) -> SignResult:
    """Store a signature of `mv` after checking it is one and covers exactly its files."""
    sig = oms.parse(data, source)
    problems = oms.coverage_problems(sig, _files(mv))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(
            f"{source}: not a signature of {mv.name}@{mv.version}'s files: {problems[0]}{more}"
        )
    rel = layout.rel_signature(mv.name, mv.version, sig.digest)
    path = store.root.joinpath(*rel.split("/"))
    with store.writing():
        if path.is_file():
            return SignResult(mv.name, mv.version, sig, False)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o444)
        if record:
            store.record(
                actor or default_author(), "sign", mv.name, version=mv.version, id=mv.id,
                signature=sig.digest, key=sig.key, certificate=sig.certificate, how=how,
            )  # fmt: skip
    return SignResult(mv.name, mv.version, sig, True)


def read_signatures(store: StoreHandle, mv: ModelVersion) -> list[tuple[oms.Signature, Path]]:
    """A version's signatures, parsed (a file that is not one is an IntegrityError)."""
    return signature_files.read_signatures(store.root, mv.name, mv.version)


def trusted_keys(specs: Sequence[str]) -> list[TrustedKey]:
    """Trusted public keys or root certificates (PEM), from `NAME=PATH` or `PATH` specs."""
    out = []
    for spec in specs:
        name, sep, file = spec.partition("=")
        path = Path(file if sep else spec)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"--key {spec}: cannot read ({exc.strerror})") from None
        out.append(trusted_key(name if sep else path.stem, pem, f"--key {spec}"))
    return out


def trusted_key(name: str, pem: bytes, source: str) -> TrustedKey:
    """A trusted public key or root certificate from its PEM (InvalidInput naming `source`)."""
    import hashlib

    if b"-----BEGIN CERTIFICATE-----" in pem:
        _check_certificate(pem, source)
        return TrustedKey(name, pem, "ca:" + hashlib.sha256(pem).hexdigest())
    return TrustedKey(name, pem, _key_id(pem, source))


def _check_certificate(pem: bytes, spec: str) -> None:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidInput(f"{spec}: not a PEM certificate") from None


def _private_key_id(key: Path, password: str | None) -> str:
    """The public key id of a PEM private key (the file was loaded by model_signing already)."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(
        key.read_bytes(), password.encode() if password else None
    )
    spki = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return oms.key_id(spki)


def _key_id(pem: bytes, spec: str) -> str:
    """The key id of a PEM public key, re-serialized as `model_signing` hashes it."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise InvalidInput(f"{spec}: not a PEM public key") from None
    spki = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return oms.key_id(spki)


def check(store: StoreHandle, mv: ModelVersion, keys: Sequence[TrustedKey]) -> list[SignatureCheck]:
    """Whether each signature of `mv` holds.

    `valid`: made with a trusted key, over the files in the store (re-hashed); `invalid`:
    it does not hold; `untrusted`: made with a key not given.
    """
    sigs = read_signatures(store, mv)
    if not sigs:
        return []
    with _tree(store, mv) as tree:
        return [
            SignatureCheck(mv.name, mv.version, sig, *judge(tree, sig, path, keys))
            for sig, path in sigs
        ]


def judge(
    tree: Path, sig: oms.Signature, path: Path, keys: Sequence[TrustedKey]
) -> tuple[str, str, str]:
    """(status, signer, detail) of one signature (file `path`) over the files in `tree`.

    A signature made with a key is judged by the trusted key of that id; one made with a
    certificate chain by each trusted root until one accepts it. `valid`, `invalid`, or
    `untrusted` when no trusted key or root could have made it.
    """
    if sig.certificate:  # a chain: valid when it leads to a trusted root and holds
        roots = [k for k in keys if k.is_ca]
        if not roots:
            why = "signed with a certificate; no root certificate is trusted here"
            return "untrusted", sig.signer, why
        problems = []
        for root in roots:
            problem = holds(tree, path, root)
            if problem is None:
                return "valid", f"{root.name}: {sig.signer}", ""
            problems.append(problem)
        return "invalid", sig.signer, problems[0]
    key = next((k for k in keys if k.id == sig.key), None)
    if key is None:
        return "untrusted", sig.signer, "made with a key that is not trusted here"
    problem = holds(tree, path, key)
    return ("valid", key.name, "") if problem is None else ("invalid", key.name, problem)


def holds(tree: Path, signature: Path, key: TrustedKey) -> str | None:
    """Why an OMS signature made with `key` does not hold for the files in `tree` (None: it does).

    `model_signing` verifies the envelope with the key and re-hashes every file.
    """
    import tempfile

    ms = _model_signing()
    config = ms.verifying.Config().set_hashing_config(_hashing(ms))
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:  # model_signing reads a file
        pem.write(key.pem)
        pem.flush()
        try:
            if key.is_ca:
                config.use_certificate_verifier(certificate_chain=[pem.name])
            else:
                config.use_elliptic_key_verifier(public_key=pem.name)
            config.verify(tree, signature)
        except Exception as exc:  # model_signing raises ValueError, KeyError and others
            return _first_line(exc)
    return None


def choose_signature(store: StoreHandle, spec: str, keys: Sequence[TrustedKey] = ()) -> Path:
    """The file of a version's one signature (the one made with `keys`' key when several)."""
    mv = resolve(store, spec)
    sigs = read_signatures(store, mv)
    if keys:
        ids = {k.id for k in keys}
        sigs = [(s, p) for s, p in sigs if s.key in ids]
    if not sigs:
        by = " by that key" if keys else ""
        raise InvalidInput(f"{mv.name}@{mv.version} has no signature{by}")
    if len(sigs) > 1:
        raise InvalidInput(
            f"{mv.name}@{mv.version} has {len(sigs)} signatures: choose one with --key PUBLIC_KEY"
        )
    return sigs[0][1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
