"""Bundle commands: `mreg pack` and `mreg unpack`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, human_size

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def pack(
    ref: Annotated[str, typer.Argument(help="NAME@REF of the version to pack.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Bundle file (tar; .tar.gz compresses) or OCI dir.")
    ],
    format: Annotated[
        str,
        typer.Option("--format", help="tar (one portable file) or oci (an OCI image layout)."),
    ] = "tar",
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing bundle file.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version (manifest, files, requirements) as one bundle or an OCI layout."""
    r = open_store(store).pack(ref, out, format=format, force=force)

    def render(c: Console) -> None:
        c.print(
            f"Packed {r.name}@{r.version} ({r.files} files, {human_size(r.size)}) into "
            f"{r.out} ({r.format}, {r.digest})"
        )

    Output(as_json).result(r.to_dict(), render)


def unpack(
    path: Annotated[
        Path,
        typer.Argument(
            help="Bundle file, or OCI image layout (directory or tar; DIR:TAG picks a "
            "version), written by mreg pack."
        ),
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register the version in a bundle, verifying every file (a no-op if already there)."""
    r = open_store(store).unpack(path)

    def render(c: Console) -> None:
        if r.created:
            c.print(
                f"Registered {r.name}@{r.version} id [cyan]{r.id[:12]}[/] from {path} "
                f"({r.objects_added} new objects, {human_size(r.size)}, verified)"
            )
        else:
            c.print(f"{r.name}@{r.version} is already in the store (id {r.id[:12]}); nothing to do")

    Output(as_json).result(r.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(pack)
    app.command()(unpack)
