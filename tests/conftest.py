"""Shared fixtures: an isolated environment, a store, a real git repo, and `run_mreg`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from modelreg import Store

# CI runs are reproducible: the same examples every time (see STYLE: derandomized profile).
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# In CI every test must run: a skip because a tool or package is missing means .ci/run failed
# to install it, and a green run would hide untested code (issue 13). Skips that depend on
# who runs the suite (root reads any file) or on the machine's filesystems stay skips.
_MISSING = ("not installed", "missing", "not checked out", "needs git", "could not import")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if any(word in reason.lower() for word in _MISSING):
        report.outcome = "failed"
        report.longrepr = f"CI must run every test, but this one was skipped: {reason}"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever finds a real .modelreg/ or reads the user's git identity."""
    monkeypatch.setenv("MREG_CEILING_DIRS", str(tmp_path))
    monkeypatch.delenv("MREG_STORE", raising=False)
    monkeypatch.delenv("MREG_DEBUG", raising=False)
    monkeypatch.setenv("MREG_AUTHOR", "Test Author <test@example.com>")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Git Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "git@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Git Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "git@example.com")
    monkeypatch.setenv("COLUMNS", "200")
    # `mreg` subprocesses share one bytecode cache per session, outside the repository: with
    # PYTHONDONTWRITEBYTECODE set (as on this project's machines) each would compile every
    # module it imports again (~0.15-0.3 s per command, thousands of commands)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path.parent / "pycache"))
    (tmp_path / "home").mkdir(exist_ok=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in `tmp_path/work`."""
    return Store.init(tmp_path / "work")


@pytest.fixture
def workdir(store: Store) -> Path:
    """The directory that holds the store (cwd for CLI runs)."""
    return store.root.parent


@pytest.fixture
def model_file(tmp_path: Path) -> Callable[..., Path]:
    """Make a small artifact file: model_file('model.onnx', b'bytes')."""

    def make(name: str = "model.onnx", content: bytes | None = None) -> Path:
        p = tmp_path / "inputs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if content is not None else f"weights of {name}".encode())
        return p

    return make


def git(cwd: Path, *args: str) -> str:
    """Run real git in `cwd` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git work tree with one commit on branch `main`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Repo User")
    git(repo, "config", "user.email", "repo@example.com")
    (repo / "train.py").write_text("print('training')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


class MregResult:
    """A finished `mreg` subprocess."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<mreg exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


@pytest.fixture
def run_mreg(tmp_path: Path) -> Callable[..., MregResult]:
    """Run `python -m modelreg ARGS...` as a user would; cwd defaults to tmp_path/work."""

    def run(
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> MregResult:
        full_env = {**os.environ, **(env or {})}
        where = cwd or tmp_path / "work"
        where.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "modelreg", *args],
            cwd=where,
            env=full_env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return MregResult(proc)

    return run


DERIVED = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.dirty")
"""The derived index (issue 18): a cache any read may build, never the store's content."""


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under `root` with its mode and content digest, to prove nothing changed.

    The derived index at the store's top (`DERIVED`) is left out: reads build and update it,
    and deleting it loses nothing (tests/test_index.py checks it against the files).
    """
    out = {}
    for p in sorted(root.rglob("*")):
        if p.parent == root and p.name in DERIVED:
            continue
        if p.is_file():
            out[str(p.relative_to(root))] = (
                p.stat().st_mode,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = (p.stat().st_mode, "")
    return out
