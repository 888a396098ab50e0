"""`mreg demo`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def demo(
    directory: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--dir", help="Run in this directory and keep it (default: a temp dir)."),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary store.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the embedded demo: train, register two versions, promote, roll back (no server)."""
    from modelreg.demo import run_demo
    from modelreg.store import Store

    report = run_demo(directory, keep=keep)

    def render(c: Console) -> None:
        from rich.markup import escape

        from modelreg.cli._cards import render_card

        for i, s in enumerate(report.steps, 1):
            c.print(f"[bold]{i:>2}.[/] [dim]$ {escape(s.command)}[/]")
            c.print(f"    {escape(s.summary)}")
        if report.kept:
            render_card(c, Store.open(report.store).info("churn-classifier@production"))
            c.print(f"store kept at {report.store}")

    Output(as_json).result(report.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(demo)
