"""Regenerating `modelreg.cli._index.SUMMARY` from the real app (`python docs/gen_cli_index.py`).

Kept apart from `_index` so that the table the CLI reads at start-up imports nothing of the
app it describes (no import cycle between `modelreg.cli` and its index).
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["summary_of", "write_summary"]


def summary_of(modules: tuple[str, ...]) -> tuple[tuple[str, str, str, bool], ...]:
    """What `SUMMARY` must hold for the app built from the command `modules`."""
    from typer.core import TyperGroup

    from modelreg.cli import build_app

    def commands(app: typer.Typer) -> dict[str, Any]:
        group = typer.main.get_command(app)
        assert isinstance(group, TyperGroup)
        return {n: group.commands[n] for n in group.list_commands(typer.Context(group))}

    module_of = {n: m for m in modules for n in commands(build_app((m,)))}
    return tuple(
        (name, module_of[name], (cmd.help or "").split("\n\n")[0].strip(),
         isinstance(cmd, TyperGroup))
        for name, cmd in commands(build_app(modules)).items()
    )  # fmt: skip


def write_summary() -> str:
    """Regenerate `SUMMARY` in this file from the real app; return what was written."""
    import re
    import textwrap
    from pathlib import Path

    from modelreg.cli import MODULES

    lines = ["SUMMARY: tuple[tuple[str, str, str, bool], ...] = ("]
    for name, module, text, group in summary_of(MODULES):
        # long texts as implicit concatenations of short literals: lines stay under 100
        parts = textwrap.wrap(text, 70, drop_whitespace=False, break_on_hyphens=False) or [""]
        lines.append(f"    ({name!r}, {module!r}, {' '.join(repr(x) for x in parts)}, {group}),")
    lines.append(")")
    from modelreg.cli import _index

    path = Path(_index.__file__)
    text = re.sub(
        r"(# -- generated: .*?--\n).*?(# -- end generated --)",
        lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2),
        path.read_text(),
        flags=re.S,
    )
    path.write_text(text)
    return f"wrote {path} ({len(lines) - 2} commands); run ruff format on it"
