"""The CLI prints only through `modelreg.cli._output` (issue 16).

Every module of `src/modelreg/cli/` but `_output.py` is read with `ast`: a call of `print`,
`typer.echo`/`secho`, `click.echo`/`secho`, a rich `Console`, `Progress`, `Live` or `Status`
made directly, or any use of `sys.stdout`/`sys.stderr`, fails the test. Rendering on the
console `Output.result` hands over (`c.print(...)`) is printing through the output module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "src" / "modelreg" / "cli"
OUTPUT = "_output.py"

_STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}
_ECHO = {("typer", "echo"), ("typer", "secho"), ("click", "echo"), ("click", "secho")}
_DISPLAYS = {"Console", "Progress", "Live", "Status"}


def _offences(source: str, filename: str = "<probe>") -> list[str]:
    """What in `source` writes to the terminal without the output module, with line numbers."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == "sys" and node.attr in _STREAMS:
                found.append(f"{filename}:{node.lineno}: sys.{node.attr}")
            if isinstance(base, ast.Name) and (base.id, node.attr) in _ECHO:
                found.append(f"{filename}:{node.lineno}: {base.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            found.extend(
                f"{filename}:{node.lineno}: from sys import {a.name}"
                for a in node.names
                if a.name in _STREAMS
            )
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if isinstance(func, ast.Name) and name == "print":
                found.append(f"{filename}:{node.lineno}: print()")
            elif name in _DISPLAYS:
                found.append(f"{filename}:{node.lineno}: {name}()")
    return found


def _cli_modules() -> list[Path]:
    return sorted(p for p in CLI.glob("*.py") if p.name != OUTPUT)


def test_the_cli_modules_are_found() -> None:
    names = {p.name for p in _cli_modules()}
    assert {"__init__.py", "export.py", "validate.py", "ui.py", "release.py"} <= names
    assert (CLI / OUTPUT).is_file()


@pytest.mark.parametrize("path", _cli_modules(), ids=lambda p: p.name)
def test_cli_module_prints_only_through_the_output_module(path: Path) -> None:
    offences = _offences(path.read_text(), path.name)
    assert not offences, "print through modelreg.cli._output instead: " + "; ".join(offences)


@pytest.mark.parametrize(
    "source",
    [
        "print('x')\n",
        "import sys\nsys.stdout.write('x')\n",
        "import sys\nsys.stderr.write('x')\n",
        "import sys\nif sys.stderr.isatty():\n    pass\n",
        "from sys import stdout\n",
        "import typer\ntyper.echo('x')\n",
        "import click\nclick.secho('x')\n",
        "from rich.console import Console\nConsole().print('x')\n",
        "import rich.console\nrich.console.Console(stderr=True)\n",
        "from rich.progress import Progress\nProgress()\n",
        "from rich import print\nprint('x')\n",
    ],
)
def test_the_checker_catches_direct_output(source: str) -> None:
    assert _offences(source)


@pytest.mark.parametrize(
    "source",
    [
        "def render(c):\n    c.print('x')\n",
        "import sys\nsys.exit(2)\nsys.argv[1:]\n",
        "from modelreg.cli._output import raw, stderr_line\nraw('x')\nstderr_line('y')\n",
    ],
)
def test_the_checker_lets_output_through_the_module(source: str) -> None:
    assert _offences(source) == []
