"""Code lineage never edits `os.environ` (issue 16): the git runs get an environment.

A git hook (pre-commit, post-commit) exports `GIT_DIR`, `GIT_INDEX_FILE`... pointing at the
repository it runs for; mreg drops them for its own `git` runs, in the environment it passes
to each run, and leaves the process's environment as it found it, at every moment (another
thread of the process may read it meanwhile).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelreg import lineage

HOOK_ENV = {
    "GIT_DIR": "/nonexistent/hook/.git",
    "GIT_WORK_TREE": "/nonexistent/hook",
    "GIT_INDEX_FILE": "/nonexistent/hook/.git/index",
    "GIT_PREFIX": "sub/",
    "GIT_OBJECT_DIRECTORY": "/nonexistent/hook/.git/objects",
}


def git(cwd: Path, *args: str) -> str:
    """Run real git in `cwd` as the test's own tool, outside the hook's environment."""
    env = {k: v for k, v in os.environ.items() if k not in HOOK_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables a git hook exports, pointing somewhere else than the repo under test."""
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def git_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Each git run of lineage: (the env it was given, os.environ at that moment)."""
    seen: list[tuple[dict[str, str], dict[str, str]]] = []
    real = subprocess.run

    def spy(args: Any, **kwargs: Any) -> Any:
        seen.append((dict(kwargs.get("env") or {}), dict(os.environ)))
        return real(args, **kwargs)

    monkeypatch.setattr(lineage.subprocess, "run", spy)
    return seen


def test_code_lineage_leaves_os_environ_alone(
    git_repo: Path, hook_env: None, git_runs: list[tuple[dict[str, str], dict[str, str]]]
) -> None:
    head = git(git_repo, "rev-parse", "HEAD")
    git_runs.clear()
    before = dict(os.environ)
    code = lineage.code_lineage(git_repo, required=True)
    assert dict(os.environ) == before
    assert code is not None
    assert (code.commit, code.branch, code.dirty) == (head, "main", False)
    assert Path(code.repo) == git_repo.resolve()
    assert git_runs, "lineage ran no git"
    for given, during in git_runs:
        assert during == before  # never scrubbed in place, not even for the run
        assert not set(HOOK_ENV) & set(given)  # the run itself sees no hook variable
        assert given == {k: v for k, v in before.items() if k not in HOOK_ENV}


def test_default_author_leaves_os_environ_alone(
    git_repo: Path,
    hook_env: None,
    git_runs: list[tuple[dict[str, str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MREG_AUTHOR")
    monkeypatch.chdir(git_repo)
    expected = dict(os.environ)
    assert lineage.default_author() == "Repo User <repo@example.com>"
    assert dict(os.environ) == expected
    assert len(git_runs) == 1
    given, during = git_runs[0]
    assert during == expected and not set(HOOK_ENV) & set(given)


def test_lineage_of_a_subdirectory_dirty_detached_with_origin(
    git_repo: Path, hook_env: None
) -> None:
    before = dict(os.environ)
    sub = git_repo / "src" / "pkg"
    sub.mkdir(parents=True)
    (sub / "model.py").write_text("x = 1\n")
    git(git_repo, "add", "src")
    git(git_repo, "commit", "-q", "-m", "pkg")
    git(git_repo, "checkout", "-q", "--detach", "HEAD")
    git(git_repo, "remote", "add", "origin", "https://example.com/team/fraud.git")
    (sub / "model.py").write_text("x = 2\n")
    code = lineage.code_lineage(sub)
    assert code is not None
    assert (code.branch, code.dirty, code.path, code.repo) == (
        None, True, "src/pkg", "https://example.com/team/fraud.git",
    )  # fmt: skip
    # a change staged, then undone in the work tree, is still a difference from the commit
    git(git_repo, "add", "src")
    (sub / "model.py").write_text("x = 1\n")
    code = lineage.code_lineage(sub)
    assert code is not None and code.dirty
    assert dict(os.environ) == before


def test_a_repository_without_commits(tmp_path: Path, hook_env: None) -> None:
    before = dict(os.environ)
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    assert lineage.code_lineage(repo) is None
    with pytest.raises(Exception, match="has no commits"):
        lineage.code_lineage(repo, required=True)
    assert dict(os.environ) == before


def test_register_from_a_hook_records_the_repo_it_runs_in(
    store: Any, workdir: Path, run_mreg: Any, model_file: Any, git_repo: Path
) -> None:
    """`mreg register` run by a hook of another repository records this one, unconfused."""
    f = model_file()
    res = run_mreg("register", "clf", str(f), "-V", "1.0.0", "--store", str(workdir),
                   cwd=git_repo, env=HOOK_ENV)  # fmt: skip
    assert res.returncode == 0, res
    code = store.resolve("clf@1.0.0").code
    assert code is not None
    assert (code.commit, code.branch) == (git(git_repo, "rev-parse", "HEAD"), "main")
