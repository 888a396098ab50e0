"""`mreg monitor`: drift of a version's production inputs against its training profile.

One library call (`Store.monitor`, `modelreg.monitoring.drift_report`); docs/monitoring.md
is the guide. Exit 0 when every limit holds, 1 when one is crossed, 3 inconclusive, 2
invalid input: for cron and CI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, SinceOpt, StoreOpt, UntilOpt, capture_window, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.monitoring import DriftReport

__all__ = ["install"]

_STYLE = {
    "ok": "green",
    "crossed": "red",
    "inconclusive": "yellow",
    "not captured": "dim",
    "unchecked": "dim",
}


def _render(c: Console, report: DriftReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.features:
        table = Table(box=None, pad_edge=False)
        for col in ("feature", "type", "n", "psi", "auto limit", "distance", "status"):
            table.add_column(col, justify="right" if col in ("n", "psi", "auto limit") else "left")
        for f in report.features:
            style = _STYLE.get(f.status, "")
            table.add_row(
                escape(f.feature), f.type, f"{f.n_production:,}", f"{f.psi:.4f}",
                f"{f.psi_limit:.4f}", f"{f.method} {f.distance:.4f}",
                f"[{style}]{f.status}[/]",
            )  # fmt: skip
        c.print(table)
    for p in report.problems:
        c.print(f"[yellow]skipped[/] {escape(p)}")
    for line in report.crossed:
        c.print(f"[red]crossed[/] {escape(line)}")
    c.print(escape(report.summary()))


def monitor(
    ref: Annotated[str, typer.Argument(metavar="NAME@REF", help="The version or alias.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    window: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--window", help="The last 24h, 30m, 7d (before --until, or now)."),
    ] = None,
    check: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--check",
            help="A limit, repeatable: 'drift.features.psi <= 0.2', "
            "'drift.feature.age.ks <= 0.1'. Default: 'drift.features.psi <= auto'.",
        ),
    ] = None,
    data: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--data", help="The --data entry whose profile is the reference."),
    ] = None,
    min_rows: Annotated[
        int, typer.Option("--min-rows", help="Fewer values of a feature: inconclusive (exit 3).")
    ] = 100,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a version's captured inputs for drift. Exit 0 ok, 1 crossed, 3 inconclusive."""
    from modelreg.analysis.checks import parse_window

    begin, end = capture_window(since, until)
    span = None if window is None else parse_window(window)
    report = open_store(store).monitor(
        ref,
        since=begin,
        until=end,
        window=span,
        limits=check or None,
        data=data,
        min_rows=min_rows,
    )
    Output(as_json).result(report.to_dict(), lambda c: _render(c, report))
    if report.verdict == "crossed":
        raise typer.Exit(1)
    if report.verdict == "inconclusive":
        raise typer.Exit(3)  # a result, not an error: the summary says why


def install(app: typer.Typer) -> None:
    """Add `monitor` to the app."""
    app.command()(monitor)
