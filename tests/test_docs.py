"""The docs are checked: the CLI reference is generated from --help and must be current."""

import runpy
from pathlib import Path

import typer.main

from modelreg.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current():
    render = runpy.run_path(str(ROOT / "docs" / "gen_cli_reference.py"))["render"]
    current = (ROOT / "docs" / "cli-reference.md").read_text()
    assert current == render(), "run: python docs/gen_cli_reference.py > docs/cli-reference.md"


def test_every_command_is_documented():
    group = typer.main.get_command(app)
    cli_md = (ROOT / "docs" / "cli.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in group.commands:  # type: ignore[attr-defined]
        assert f"mreg {name}" in readme, f"README does not mention mreg {name}"
        assert f"`mreg {name}" in cli_md, f"docs/cli.md has no --json shape for mreg {name}"


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("pip install -e . && mreg demo")
    assert block[1].startswith("pip install -e '.[test]' && pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && pytest" in ci


def test_readme_names_every_system_package_ci_installs():
    import re

    ci = (ROOT / ".ci" / "run").read_text()
    packages = re.search(r"^packages=\(([^)]*)\)", ci, re.M)
    assert packages, ".ci/run lists its apt packages in packages=(...)"
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Running the tests") :]
    for name in packages.group(1).split():
        assert f"`{name}`" in section, f"README's 'Running the tests' does not name {name}"
    assert (
        "--upgrade --upgrade-strategy eager" in ci
        and "--upgrade --upgrade-strategy eager" in section
    )


def test_the_reference_does_not_depend_on_apps_built_before():
    """Installing the commands into another app first changed nothing of `mreg`'s help.

    `remote` installed its subcommands into one module-level group, so every installation
    added to it and `mreg remote add --help` showed Typer's `{name} {url}` afterwards.
    """
    import importlib

    from modelreg.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        other = typer.Typer()
        other.callback()(lambda: None)
        importlib.import_module(f"modelreg.cli.{module}").install(other)
    test_cli_reference_is_current()
