"""The `mreg` command line: a thin Typer layer over `modelreg.Store`.

`main()` is the single error funnel: an `MregError` becomes one line on stderr and its exit
code (0 ok, 1 failure, 2 usage or invalid input, 130 interrupted, 70 internal error); a
traceback is shown only with `--traceback` or `MREG_DEBUG=1`.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import typer

from modelreg.cli import aliases, bundle, demo, read, register, release, remote, store, validate

__all__ = ["app", "main"]

app = typer.Typer(
    name="mreg",
    help="mreg: a model registry and canary-release tool. "
    "Exit codes: 0 ok, 1 failure (conflict, failed gate or check), 2 usage or invalid input.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

store.install(app)
register.install(app)
read.install(app)
aliases.install(app)
demo.install(app)
release.install(app)
remote.install(app)
bundle.install(app)
validate.install(app)


class _Interrupted(BaseException):
    """Raised by our SIGINT handler; a BaseException so no library swallows it as an error."""


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn every outcome into the documented exit code."""
    from modelreg.cli._output import error
    from modelreg.errors import MregError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("MREG_DEBUG", "") not in ("", "0")
    if "--traceback" in args:
        args.remove("--traceback")
        debug = True
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        app(args=args, prog_name="mreg")
    except MregError as exc:
        if debug:
            raise
        error(str(exc))
        sys.exit(exc.exit_code)
    except _Interrupted:
        sys.stderr.write("mreg: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # the funnel: anything unexpected is a bug, reported as such
        if debug:
            raise
        error(f"internal error: {type(exc).__name__}: {exc}")
        sys.stderr.write("mreg: this is a bug; please report it, rerun with --traceback\n")
        sys.exit(70)
