"""The trust commands of the `Store` facade (issue 19): `mreg sign` and `mreg policy CMD`.

Facade layer (docs/architecture.md): each method is a lazy import of the domain function
(`signatures`, `policy`) and one call; `Store` inherits them (as `ReleaseCommands`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.errors import InvalidInput
from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.policy_format import Policy
    from modelreg.signatures import SignResult

__all__ = ["TrustCommands"]


class TrustCommands(StoreHandle):
    """`sign`, `policy show|gate|trust|allow`."""

    # -- the policy that travels (issue 19) --

    def policy_show(self) -> Policy:
        """The store's policy: gates, trusted keys, movers, history (`mreg policy show`)."""
        from modelreg.policy import read_policy

        return read_policy(self)

    def policy_gate(
        self,
        alias: str,
        conditions: Sequence[str] = (),
        *,
        remove: Sequence[str] = (),
        clear: bool = False,
        actor: str | None = None,
    ) -> Policy:
        """Add (remove, clear) the gates of an alias: conditions or `signed-by: KEY`."""
        from modelreg.policy import gate

        return gate(self, alias, conditions, remove=remove, clear=clear, actor=actor)

    def policy_trust(
        self,
        name: str,
        key: str | os.PathLike[str] | None = None,
        *,
        remove: bool = False,
        actor: str | None = None,
    ) -> Policy:
        """Trust a signing key or root certificate as `name` (or stop trusting it)."""
        from modelreg.policy import trust

        return trust(self, name, Path(key) if key else None, remove=remove, actor=actor)

    def policy_allow(
        self,
        alias: str,
        actors: Sequence[str] = (),
        *,
        clear: bool = False,
        actor: str | None = None,
    ) -> Policy:
        """Say who may move an alias (`clear`: anyone may)."""
        from modelreg.policy import allow

        return allow(self, alias, actors, clear=clear, actor=actor)

    def sign(
        self,
        spec: str,
        *,
        key: str | os.PathLike[str] | None = None,
        password: str | None = None,
        certificate: str | os.PathLike[str] | None = None,
        chain: Sequence[str | os.PathLike[str]] = (),
        attach: str | os.PathLike[str] | None = None,
        actor: str | None = None,
    ) -> SignResult:
        """Sign a version (OMS, `model-signing`) with a private key, or attach a signature.

        `attach`: a signature made elsewhere (a file `model_signing sign` wrote).
        """
        from modelreg import signatures

        if (key is None) == (attach is None):
            raise InvalidInput("give either --key PRIVATE_KEY or --attach SIGNATURE")
        if attach is not None:
            return signatures.attach(self, spec, Path(attach), actor=actor)
        assert key is not None
        signer = signatures.signer(
            Path(key), password=password,
            certificate=Path(certificate) if certificate else None,
            chain=[Path(c) for c in chain],
        )  # fmt: skip
        return signatures.sign(self, spec, signer, actor=actor)
