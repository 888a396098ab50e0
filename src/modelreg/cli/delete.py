"""`mreg delete` (issue 19): one call of `Store.delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, human_size

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def delete(
    ref: Annotated[
        str, typer.Argument(help="NAME@VERSION to delete, or NAME to delete every version.")
    ],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (required; kept in the tombstone and log).")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also remove the aliases pointing at it (a live release still refuses).",
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a version, audited: a tombstone replaces its manifest; gc reclaims its files."""
    result = open_store(store).delete(ref, reason=reason, force=force)

    def render(c: Console) -> None:
        from rich.markup import escape

        for t in result.deleted:
            size = human_size(sum(n for _, n in t.objects))
            c.print(
                f"Deleted {escape(t.name)}@{t.version} id [cyan]{t.id[:12]}[/] "
                f"({len(t.objects)} objects, {size}, reclaimed by mreg gc after its grace period)"
            )
            if t.aliases:
                c.print(f"[yellow]removed aliases:[/] {', '.join(t.aliases)}")
        for v in result.already:
            c.print(f"{escape(result.name)}@{v} was already deleted; nothing to do")

    Output(as_json).result(result.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(delete)
