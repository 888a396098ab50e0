"""The only module that prints: rich for people, JSON for machines, one-line errors.

Every other module of `modelreg.cli` writes through these functions (tests/cli/
test_output_only.py checks it): `Output` for a command's result and remarks, `raw` for text
printed as is (YAML, a JSON Schema, a line per problem), `stderr_line` for a line on stderr,
`error` for failures and `progress` for a progress bar.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn

__all__ = ["Output", "error", "human_size", "progress", "raw", "stderr_line"]


def human_size(n: int, *, grouped: bool = False) -> str:
    """Bytes as people read them: 512 B, 1.5 KiB, 3.2 GiB (`grouped`: 1,010.0 KiB)."""
    size = float(n)
    sep = "," if grouped else ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:{sep}.0f} {unit}" if unit == "B" else f"{size:{sep}.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover (unreachable)


def _console(stderr: bool = False) -> Console:
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, files) gets room for whole tables instead of rich's 80 columns.
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def raw(text: str) -> None:
    """Write `text` on stdout as is, and flush (documents, lines other programs read)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def stderr_line(text: str) -> None:
    """Write one line on stderr, as `mreg: TEXT` (losses, notes, interruptions)."""
    sys.stderr.write(f"mreg: {text}\n")


def progress(*columns: str | ProgressColumn) -> Progress | None:
    """A transient rich progress bar on stderr, or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import Progress

    return Progress(*columns, console=_console(stderr=True), transient=True)


class Output:
    """Where a command's result goes: `--json` prints the data, otherwise `render` draws it."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The stdout rich console (created on first use)."""
        if self._console is None:
            self._console = _console()
        return self._console

    def result(self, data: Any, render: Callable[[Console], None]) -> None:
        """Print a command's result: JSON of `data`, or `render(console)`."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        else:
            render(self.console)

    def note(self, text: str) -> None:
        """A human-only remark on stderr (suppressed with --json)."""
        if not self.as_json:
            _console(stderr=True).print(text)


def error(
    message: str,
    hint: str | None = None,
    *,
    as_json: bool = False,
    kind: str = "Error",
    exit_code: int = 1,
) -> None:
    """Print one error line (and an optional hint line) on stderr, no traceback.

    With `as_json`, the error is one JSON object on one line of stderr instead:
    `{"error": {"message", "type", "exit_code", "hint"}}` (docs/cli.md).
    """
    line = message.splitlines()[0] if message else "unknown error"
    if as_json:
        doc = {"error": {"message": line, "type": kind, "exit_code": exit_code, "hint": hint}}
        sys.stderr.write(json.dumps(doc) + "\n")
        return
    sys.stderr.write(f"mreg: error: {line}\n")
    if hint:
        sys.stderr.write(f"mreg: {hint}\n")
