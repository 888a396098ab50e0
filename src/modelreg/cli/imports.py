"""`mreg import mlflow|gto` (issue 20): one call each of `Store.import_mlflow`, `import_gto`.

docs/import.md is the guide: what is copied, how names map, what is not imported and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.importing.common import ImportReport

__all__ = ["install"]

ModelOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 (Typer needs Optional on Python 3.10)
    typer.Option(
        "--model",
        "-m",
        help="Import only this model, by its name there (repeatable). Default: all.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="List what would be imported; change nothing.")
]


def mlflow(
    tracking_uri: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--tracking-uri",
            help="The MLflow tracking server, http(s)://HOST:PORT. Default: MLFLOW_TRACKING_URI. "
            "Credentials come from MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    dry_run: DryRunOpt = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each answer of the server.")
    ] = 30.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy registered models from an MLflow tracking server: versions, files, runs, aliases."""
    report = open_store(store).import_mlflow(
        tracking_uri, model or (), dry_run=dry_run, timeout=timeout
    )
    _show(report, as_json)


def gto(
    repo: Annotated[
        Path, typer.Argument(help="The git repository holding GTO's tags (default: here).")
    ] = Path("."),
    model: ModelOpt = None,
    dry_run: DryRunOpt = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the artifacts GTO registered in a git repository: versions, stages, deprecations."""
    report = open_store(store).import_gto(str(repo), model or (), dry_run=dry_run)
    _show(report, as_json)


def _show(report: ImportReport, as_json: bool) -> None:
    def render(c: Console) -> None:
        from rich.markup import escape

        colour = {"imported": "green", "failed": "red", "skipped": "yellow", "planned": "cyan"}
        for i in report.items:
            what = f"{i.name}@{i.alias or i.version}" if i.alias or i.version else i.name
            if i.kind == "alias":
                what += f" -> {i.version}"
            elif i.kind == "deprecation":
                what += " deprecated"
            status = f"[{colour.get(i.status, 'default')}]{i.status}[/]"
            reason = f": {escape(i.reason)}" if i.reason else ""
            c.print(f"{status} {escape(what)} (from {escape(i.source)}){reason}")
        counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
        dry = " (dry run: nothing was changed)" if report.dry_run else ""
        c.print(f"{report.source} at {escape(report.location)}: {counts or 'nothing'}{dry}")

    Output(as_json).result(report.to_dict(), render)
    if report.failed:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    """Add the `import` command group to the app."""
    import_app = typer.Typer(
        help="Import models from MLflow or GTO, with their history (docs/import.md).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    import_app.command()(mlflow)
    import_app.command()(gto)
    app.add_typer(import_app, name="import")
