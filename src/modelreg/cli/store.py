"""`mreg init`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelreg.cli._common import JsonOpt
from modelreg.cli._output import Output

__all__ = ["install"]


def init(
    directory: Annotated[
        Path, typer.Argument(help="Directory to create .modelreg/ in.", show_default=".")
    ] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Create a store (.modelreg/) in DIRECTORY; running it again is a no-op."""
    from modelreg.store import DIRNAME, Store

    existed = (directory / DIRNAME / "config.yaml").is_file()
    s = Store.init(directory)
    data = {"store": str(s.root), "created": not existed, "format": s.config.format}
    Output(as_json).result(
        data,
        lambda c: c.print(
            f"{'Reinitialized existing' if existed else 'Initialized empty'} mreg store in {s.root}"
        ),
    )


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(init)
