"""The `mreg` command line: a thin Typer layer over `modelreg.Store`.

`main()` is the single error funnel: an `MregError` becomes one line on stderr and its exit
code (0 ok, 1 failure, 2 usage or invalid input, 130 interrupted, 70 internal error); a
traceback is shown only with `--traceback` or `MREG_DEBUG=1`.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from types import FrameType

import typer

from modelreg.cli._index import SUMMARY, index_app

__all__ = ["COMMAND_MODULES", "MODULES", "app", "build_app", "main"]

MODULES = (
    "store",
    "register",
    "read",
    "aliases",
    "demo",
    "release",
    "remote",
    "bundle",
    "validate",
    "maintenance",
    "ui",
)

# Which module installs each top-level command. `mreg CMD ...` builds only that module's
# commands: importing every command module and building every command costs ~40 ms per run
# (see docs/benchmarks.md, start-up). The table is generated (modelreg.cli._index) and
# tests/test_quality.py checks it against the app.
COMMAND_MODULES = {name: module for name, module, _, _ in SUMMARY}


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The Typer app with the commands of `modules` (all of them by default)."""
    app = _new_app()
    for name in modules:
        importlib.import_module(f"modelreg.cli.{name}").install(app)
    return app


def _new_app() -> typer.Typer:
    app = typer.Typer(
        name="mreg",
        help="mreg: a model registry and canary-release tool. "
        "Exit codes: 0 ok, 1 failure (conflict, failed gate or check), 2 usage or invalid input.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    # A callback keeps the app a command group even when it holds a single command.
    app.callback()(_group)
    return app


def _group() -> None:
    """mreg: a model registry and canary-release tool."""


def __getattr__(name: str) -> typer.Typer:
    # `app`, the full app (for docs and tests), is built on first use only.
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module 'modelreg.cli' has no attribute {name!r}")


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
    command = args[0] if args and not args[0].startswith("-") else None
    module = COMMAND_MODULES.get(command or "")
    if args in ([], ["--help"]):  # the listing only: see modelreg.cli._index
        cli = index_app(_new_app())
    else:
        cli = build_app((module,)) if module else build_app()
    try:
        cli(args=args, prog_name="mreg")
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
