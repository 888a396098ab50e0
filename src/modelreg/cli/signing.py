"""`mreg sign`: sign a version (OMS, `model-signing`), or attach a signature (issue 19)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output
from modelreg.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PasswordEnvOpt", "install", "key_password"]

PasswordEnvOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--password-env",
        metavar="VAR",
        help="The environment variable holding the private key's password (never an argument).",
    ),
]


def key_password(var: str | None) -> str | None:
    """The password in environment variable `var` (None without one; exit 2 if unset)."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise InvalidInput(f"--password-env {var}: the variable is not set")
    return value


def sign(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or alias) to sign.")],
    key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--key", "-k", metavar="PRIVATE_KEY", help="PEM private key to sign with."),
    ] = None,
    certificate: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--certificate", help="The key's signing certificate (PEM)."),
    ] = None,
    chain: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--chain", help="A certificate of the chain up to the root (repeatable)."),
    ] = None,
    attach: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--attach", metavar="SIGNATURE", help="Attach a signature made by model_signing."
        ),
    ] = None,
    password_env: PasswordEnvOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a version's files (OpenSSF Model Signing), or attach a signature made elsewhere.

    The signature is stored with the version, travels with it (push, pull, pack), and is
    checked by `mreg verify --signatures --key PUBLIC_KEY`. Signing the same files with the
    same key again changes nothing.
    """
    result = open_store(store).sign(
        ref, key=key, password=key_password(password_env), certificate=certificate,
        chain=chain or [], attach=attach,
    )  # fmt: skip

    def render(c: Console) -> None:
        what = "signed" if result.changed else "already signed by this key (nothing changed)"
        sig = result.signature
        c.print(
            f"{result.name}@{result.version} {what}: signature [cyan]{sig.digest[:12]}[/] "
            f"by {sig.signer}, {len(sig.files)} file(s)"
        )

    Output(as_json).result(result.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(sign)
