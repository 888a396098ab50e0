"""Generate docs/cli-reference.md from the CLI's own --help (run after changing a command).

    python docs/gen_cli_reference.py > docs/cli-reference.md

tests/test_docs.py fails when the checked-in file differs from what this prints.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.main

from modelreg.cli import app


def _walk(cmd: Any, ctx: typer.Context, path: list[str], out: list[str]) -> None:
    sub = getattr(cmd, "commands", None)
    if path:
        out.append(f"{'#' * min(len(path) + 1, 4)} `mreg {' '.join(path)}`\n")
        out.append("```text")
        out.append(cmd.get_help(ctx).rstrip())
        out.append("```\n")
    for name in sub or {}:
        child = sub[name]
        child_ctx = typer.Context(child, info_name=name, parent=ctx, terminal_width=100)
        _walk(child, child_ctx, [*path, name], out)


def render() -> str:
    """The whole reference as Markdown."""
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="mreg", terminal_width=100)
    out = [
        "# mreg command reference",
        "",
        "Generated from `--help` by `docs/gen_cli_reference.py`; do not edit by hand. Exit",
        "codes, environment variables and the `--json` shapes are in [cli.md](cli.md).",
        "",
        "```text",
        group.get_help(ctx).rstrip(),
        "```",
        "",
    ]
    _walk(group, ctx, [], out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
