"""`mreg validate`, `mreg schema` and `mreg check-large-models` (issue 7).

Each is one call of `modelreg.validate` or `modelreg.schemas`; this module parses options and
prints: one line per problem on stdout (what pre-commit shows), the summary as the error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt
from modelreg.cli._output import Output, human_size, raw

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def validate(
    files: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(
            help="Files to check (manifests, aliases, states, rollouts, config.yaml), or store "
            "directories. Default: every document of the store.",
            show_default=False,
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check mreg documents (YAML syntax, schema, meaning): a line per problem, exit 1 if any."""
    from modelreg.validate import validate as run

    report = run(files or (), store=store)

    def render(c: Console) -> None:
        for p in report.problems:
            raw(f"{p}\n")
        if report.ok:
            c.print(f"ok: {len(report.files)} file(s) valid")

    Output(as_json).result(report.to_dict(), render)
    report.raise_for_problems()


def schema(
    kind: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            help="ModelVersion, Alias, VersionState, Rollout or StoreConfig (or model-version, "
            "alias...). Default: list the kinds.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the JSON Schema of a document kind (the one validate uses), or list the kinds."""
    from modelreg import schemas

    if kind is not None:
        raw(json.dumps(schemas.load(kind), indent=2, ensure_ascii=False) + "\n")
        return
    specs = list(schemas.KINDS.values())

    def render(c: Console) -> None:
        from rich.table import Table

        t = Table()
        for col in ("kind", "schema file", "where in the store"):
            t.add_column(col)
        for s in specs:
            t.add_row(s.kind, s.filename, f".modelreg/{s.where}")
        c.print(t)
        c.print("Print one with: mreg schema KIND")

    Output(as_json).result([s.to_dict() for s in specs], render)


def check_large_models(
    files: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(
            help="Files to check (pre-commit passes the staged ones).", show_default=False
        ),
    ] = None,
    max_size: Annotated[
        str, typer.Option("--max-size", help="Largest model file allowed: 500KB, 10MiB, 1048576...")
    ] = "1MiB",
    ext: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--ext",
            help="Model file extension (repeatable; replaces the default list: .onnx .pt .pth "
            ".pb .tflite .h5 .keras .safetensors .pkl .pickle .joblib .gguf .mlmodel .xgb .ubj "
            ".lgb .cbm .ckpt .bin).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Refuse model files over a size limit: register them with mreg instead of committing them."""
    from modelreg.validate import MODEL_EXTENSIONS, check_large_models, parse_size

    report = check_large_models(
        files or (), max_size=parse_size(max_size), extensions=ext or MODEL_EXTENSIONS
    )

    def render(c: Console) -> None:
        for f in report.large:
            raw(
                f"{f.file}: {human_size(f.size)} model file (limit {human_size(report.max_size)}):"
                f" register it with 'mreg register NAME {f.file}' instead of committing it\n"
            )
        if not report.large:
            c.print(f"ok: {report.checked} model file(s) within {human_size(report.max_size)}")

    Output(as_json).result(report.to_dict(), render)
    report.raise_for_problems()


def install(app: typer.Typer) -> None:
    """Add `validate`, `schema` and `check-large-models` to the app."""
    app.command()(validate)
    app.command()(schema)
    app.command("check-large-models")(check_large_models)
