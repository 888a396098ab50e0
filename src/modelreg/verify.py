"""`verify`: check the audit chain, every manifest and ref, and every object's digest.

Since issue 8 the checks are `modelreg.fsck`'s (one checker, not two): `verify` keeps its
one-line-per-problem report and `--json` shape, and lists fsck's errors (plus a torn audit
line, which verify has always reported), not its warnings (orphans, leftover temp files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.signatures import SignatureCheck

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """What was checked and every problem found (one line each)."""

    problems: tuple[str, ...]
    versions: int
    objects: int
    audit_entries: int
    signatures: tuple[SignatureCheck, ...] | None = None
    """With `--signatures`: every signature of every version, and whether it holds."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg verify`."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "versions": self.versions,
            "objects": self.objects,
            "audit_entries": self.audit_entries,
            **(
                {"signatures": [c.to_dict() for c in self.signatures]}
                if self.signatures is not None
                else {}
            ),
        }


def verify(
    store: StoreHandle,
    *,
    objects: bool = True,
    signatures: bool = False,
    keys: Sequence[str] = (),
) -> VerifyReport:
    """Check everything the store holds; never modifies it (`objects=False`: no re-hashing).

    `signatures`: also check every signature of every version with `model_signing`, trusting
    the public keys `keys` (`NAME=PEM` or `PEM`) and the policy's keys; one that does not
    hold is a problem, one made with a key not trusted is reported as `untrusted`.
    """
    from modelreg.fsck import fsck

    trusted = None
    if signatures:
        from modelreg.signatures import trusted_keys

        trusted = trusted_keys(keys)  # a bad key file is refused before anything is read
        trusted += _policy_keys(store, {k.name for k in trusted})
    report = fsck(store, quick=not objects)
    problems = [
        f.message for f in report.findings if f.severity == "error" or f.kind == "audit-torn-line"
    ]
    checks = None
    if trusted is not None:
        checks = tuple(_signature_checks(store, trusted))
        problems += [
            f"{c.name}@{c.version}: signature {c.signature.digest[:12]} by {c.signer} does "
            f"not hold: {c.detail}"
            for c in checks
            if c.status == "invalid"
        ]
    return VerifyReport(
        tuple(problems), report.versions, report.hashed, report.audit_entries, checks
    )


def _policy_keys(store: StoreHandle, given: set[str]) -> list[Any]:
    """The policy's trusted keys (issue 19), those not given by name with --key."""
    from modelreg.policy import read_policy, trusted_keys

    return [k for k in trusted_keys(read_policy(store)) if k.name not in given]


def _signature_checks(store: StoreHandle, trusted: Sequence[Any]) -> list[SignatureCheck]:
    from modelreg.catalog import load_version, model_names, version_list
    from modelreg.errors import MregError
    from modelreg.signatures import check

    out: list[SignatureCheck] = []
    for name in model_names(store):
        for v in sorted(version_list(store, name)):
            try:
                out.extend(check(store, load_version(store, name, v.text), trusted))
            except MregError:  # a damaged manifest or signature: fsck's findings say so
                continue
    return out
