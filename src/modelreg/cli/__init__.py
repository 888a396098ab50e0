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
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from modelreg.cli._index import SUMMARY, index_app

__all__ = ["COMMAND_MODULES", "MODULES", "app", "build_app", "main"]

MODULES = (
    "store",
    "register",
    "read",
    "aliases",
    "delete",
    "signing",
    "policy",
    "demo",
    "release",
    "remote",
    "bundle",
    "validate",
    "maintenance",
    "hooks",
    "imports",
    "data",
    "monitor",
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
    _plain_usage(app)
    return app


class _Command(TyperCommand):
    """A command whose usage line names arguments as people read them: `NAME [PATHS]...`.

    Typer 0.28 writes a required argument as `{name}` in the usage line (`mreg show [OPTIONS]
    {ref}`, issue 13); this gives click's own convention back, the metavar or the upper-cased
    name, in brackets when optional, with `...` when it takes several.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                piece = param.metavar or (param.name or "").upper()
                if param.nargs != 1:
                    piece += "..."
                pieces.append(piece if param.required else f"[{piece}]")
        return pieces


def _plain_usage(app: typer.Typer) -> None:
    """Give every command of `app` (and of its groups) the usage line of `_Command`."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _Command
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _plain_usage(group.typer_instance)


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


def _show_version(value: bool) -> None:
    if value:
        from modelreg import __version__
        from modelreg.cli._output import raw

        raw(f"mreg {__version__}\n")
        raise typer.Exit()


def _group(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print mreg's version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
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
    from modelreg.cli._output import error, raw, stderr_line
    from modelreg.errors import MregError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("MREG_DEBUG", "") not in ("", "0")
    if "--traceback" in args:
        args.remove("--traceback")
        debug = True
    signal.signal(signal.SIGINT, _on_sigint)
    command = args[0] if args and not args[0].startswith("-") else None
    module = COMMAND_MODULES.get(command or "")
    if args == ["--version"]:  # answered before any command is built
        from modelreg import __version__

        raw(f"mreg {__version__}\n")
        return
    if args in ([], ["--help"]):  # the listing only: see modelreg.cli._index
        cli = index_app(_new_app())
    else:
        cli = build_app((module,)) if module else build_app()
    # With --json, failures are JSON too: one object on stderr (docs/cli.md, issue 13). The
    # parser's own usage errors are caught for that only; otherwise Typer prints them.
    as_json = "--json" in args
    try:
        if not as_json:
            cli(args=args, prog_name="mreg")
            return
        rv = cli(args=args, prog_name="mreg", standalone_mode=False)
    except MregError as exc:
        if debug:
            raise
        error(str(exc), as_json=as_json, kind=type(exc).__name__, exit_code=exc.exit_code)
        sys.exit(exc.exit_code)
    except _Interrupted:
        if as_json:
            error("interrupted", as_json=True, kind="Interrupted", exit_code=130)
        else:
            stderr_line("interrupted")
        sys.exit(130)
    except Exception as exc:  # the funnel: anything unexpected is a bug, reported as such
        if as_json and _is_usage_error(exc):
            code = int(getattr(exc, "exit_code", 2))
            error(exc.format_message(), as_json=True, kind="UsageError", exit_code=code)  # type: ignore[attr-defined]
            sys.exit(code)
        if debug:
            raise
        hint = "this is a bug; please report it, rerun with --traceback"
        error(f"internal error: {type(exc).__name__}: {exc}", hint, as_json=as_json,
              kind="InternalError", exit_code=70)  # fmt: skip
        sys.exit(70)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


def _is_usage_error(exc: Exception) -> bool:
    """An error of the argument parser (Typer's click): it knows its exit code and message."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)
