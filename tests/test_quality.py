"""The project's own checks run inside the suite, so a lint or type error fails CI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff comes with the test extra")
def test_ruff_lint_and_format():
    dirs = [d for d in ("src", "tests", "bench", "examples") if (ROOT / d).is_dir()]
    lint = _run("ruff", "check", *dirs)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--check", "src")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict():
    out = _run(sys.executable, "-m", "mypy")
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli_startup_imports_stay_light():
    """`mreg --help` must not import gitpython, s3fs, fsspec, filelock or the store's modules."""
    code = (
        "import sys\n"
        "sys.argv = ['mreg', '--help']\n"
        "from modelreg.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['git', 's3fs', 'fsspec', 'filelock', 'modelreg.store', 'semver']\n"
        "print('LOADED:' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "LOADED:", out.stdout


def _modules_after(argv: list[str], cwd: Path, watch: list[str]) -> list[str]:
    """Run `mreg *argv` in-process (a fresh interpreter); which of `watch` it imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['mreg', *{argv!r}]\n"
        "from modelreg.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"print('LOADED:' + ','.join(m for m in {watch!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return [m for m in out.stdout.strip().splitlines()[-1].removeprefix("LOADED:").split(",") if m]


def test_read_and_register_import_only_what_they_use(tmp_path: Path):
    """`show` reads no objects, audit log, remotes or conditions; `register` outside a git
    work tree never imports gitpython (~35-70 ms each; see docs/benchmarks.md, start-up)."""
    assert not any((d / ".git").exists() for d in (tmp_path, *tmp_path.parents))
    (tmp_path / "model.bin").write_bytes(b"weights")
    assert _modules_after(["init"], tmp_path, []) == []
    reg = ["register", "m", "model.bin", "--version", "1.0.0"]
    assert _modules_after(reg, tmp_path, ["git", "s3fs", "fsspec"]) == []
    watch = ["git", "s3fs", "fsspec", "filelock", "modelreg.objects", "modelreg.audit",
             "modelreg.conditions", "modelreg.remote.config"]  # fmt: skip
    assert _modules_after(["show", "m@1.0.0"], tmp_path, watch) == []


def test_library_import_is_light():
    code = "import modelreg, sys; print([m for m in ('typer','rich','git','s3fs') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_core_never_prints_or_exits():
    """print, sys.exit and typer belong to cli/ only."""
    offenders = []
    for p in (ROOT / "src" / "modelreg").rglob("*.py"):
        if "cli" in p.relative_to(ROOT / "src" / "modelreg").parts:
            continue
        text = p.read_text()
        for needle in (
            "print(",
            "sys.exit(",
            "import typer",
            "from rich",
            "import rich",
            "import click",
        ):
            if needle in text:
                offenders.append(f"{p.name}: {needle}")
    assert offenders == []


def test_every_command_and_parameter_has_help():
    import typer.main

    from modelreg.cli import app

    group = typer.main.get_command(app)
    missing = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        if not (cmd.help or "").strip():
            missing.append(name)
        for param in cmd.params:
            if param.name != "help" and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
    assert missing == []


def test_top_level_help_lists_the_real_commands():
    """`mreg --help` is built from modelreg.cli._index, not from the commands: it must match."""
    from modelreg.cli import MODULES
    from modelreg.cli._index import SUMMARY
    from modelreg.cli._index_gen import summary_of

    assert SUMMARY == summary_of(MODULES), "run: python docs/gen_cli_index.py"
    full = "from modelreg.cli import build_app; build_app()(args={args!r}, prog_name='mreg')"
    for columns in ("50", "80", "200"):
        env = {**os.environ, "COLUMNS": columns}
        for args in ([], ["--help"]):
            fast = subprocess.run(
                [sys.executable, "-m", "modelreg", *args], capture_output=True, text=True, env=env
            )
            real = subprocess.run(
                [sys.executable, "-c", full.format(args=args)], capture_output=True, text=True,
                env=env,
            )  # fmt: skip
            assert (fast.returncode, fast.stdout, fast.stderr) == (
                real.returncode, real.stdout, real.stderr,
            ), (columns, args)  # fmt: skip


def test_command_table_matches_the_app():
    """`mreg CMD` builds only CMD's module: the table must name the module of every command."""
    import importlib

    import typer
    import typer.main

    from modelreg.cli import COMMAND_MODULES, app

    full = typer.main.get_command(app)
    assert set(COMMAND_MODULES) == set(full.commands)  # type: ignore[attr-defined]
    for name, module in COMMAND_MODULES.items():
        one = typer.Typer()
        one.callback()(lambda: None)
        importlib.import_module(f"modelreg.cli.{module}").install(one)
        assert name in typer.main.get_command(one).commands  # type: ignore[attr-defined]
