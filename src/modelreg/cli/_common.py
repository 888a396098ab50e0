"""Options shared by the commands, and opening the store at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from modelreg.store import Store

__all__ = ["JsonOpt", "SinceOpt", "StoreOpt", "UntilOpt", "capture_window", "open_store"]

StoreOpt = Annotated[
    Optional[Path],  # noqa: UP045 (Typer needs Optional on Python 3.10)
    typer.Option(
        "--store",
        help="Store to use (a directory holding .modelreg/). Default: MREG_STORE, else the "
        "nearest .modelreg/ in this directory or a parent.",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (a documented, stable shape).")
]

# The window of captured rows (`mreg data export`, `mreg monitor`; issue 21)
SinceOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--since", help="Rows captured at or after this ISO-8601 time (UTC)."),
]
UntilOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--until", help="Rows captured before this ISO-8601 time (UTC)."),
]


def capture_window(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """`--since` and `--until` as epoch seconds (None when not given); exit 2 on a bad time."""
    from modelreg.exportrecords import parse_time

    begin = None if since is None else parse_time(since, "--since")
    end = None if until is None else parse_time(until, "--until")
    return begin, end


def open_store(path: Path | None) -> Store:
    """Resolve the store once, here at the edge; its side remarks go to stderr, a line each.

    (A webhook that failed after a write is such a remark: the command's result and exit
    code stay those of the write, issue 19.)
    """
    from modelreg.cli._output import stderr_line
    from modelreg.store import Store

    store = Store.discover(path)
    store.notes = stderr_line
    return store
