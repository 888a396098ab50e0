"""`mreg data export`: the sample routers captured of a version, to a file (issue 21).

One library call (`Store.data_export`); docs/monitoring.md is the guide.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelreg.cli._common import JsonOpt, SinceOpt, StoreOpt, UntilOpt, capture_window, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def export(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="The version (or alias).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file written (replaced).")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    with_outcomes: Annotated[
        bool, typer.Option("--with-outcomes", help="Join the outcomes recorded for each row.")
    ] = False,
    format: Annotated[
        str, typer.Option("--format", help="jsonl, or parquet (the parquet extra).")
    ] = "jsonl",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the requests routers sampled of a version, with its SHA-256 and row count."""
    begin, end = capture_window(since, until)
    done = open_store(store).data_export(
        ref, out, since=begin, until=end, with_outcomes=with_outcomes, format=format
    )

    def render(c: Console) -> None:
        from rich.markup import escape

        for p in done.problems:
            c.print(f"[yellow]skipped[/] {escape(p)}")
        if done.skipped > len(done.problems):
            c.print(f"[yellow]skipped[/] {done.skipped - len(done.problems)} more damaged lines")
        c.print(
            f"Exported {done.rows} rows of {done.model}@{done.version} to {escape(done.file)}"
            f"\nsha256 {done.sha256}"
        )

    Output(as_json).result(done.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add the `data` command group to the app."""
    data_app = typer.Typer(
        help="Production data: export the requests routers sampled, for the next training.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    data_app.command()(export)
    app.add_typer(data_app, name="data")
