"""The hooks in .pre-commit-hooks.yaml, run by the real `pre-commit try-repo` in temp git repos.

`try-repo` installs the hook repository into a fresh virtualenv (`language: python`: pip
installs mreg and its dependencies from the package index), as on a user's machine or a
clean CI runner. It only sees what is committed (plus tracked changes), so the hook
repository is a temp git repo holding this work tree's files as a commit would (tracked and
untracked, not ignored). The two runs (good files, bad files) go in parallel, once per session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelreg import Store, yamlio
from modelreg.release import ops
from tests.integrations.conftest import ROOT, SEED, register

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

SHIPPED = ("src/", "pyproject.toml", "README.md", ".pre-commit-hooks.yaml")


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def _hook_repo(dest: Path, env: dict[str, str]) -> None:
    listed = _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", env=env)
    for rel in listed.splitlines():
        if rel.startswith(SHIPPED) and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    _git(dest, "init", "-q", "-b", "main", env=env)
    _git(dest, "add", "-A", env=env)
    _git(dest, "commit", "-q", "-m", "hooks", env=env)


def _user_repo(dest: Path, env: dict[str, str], *, broken: bool) -> list[str]:
    """A repository with a store (documents tracked in git), a GitOps manifest and model files."""
    _git(dest, "init", "-q", "-b", "main", env=env)
    store = Store.init(dest)
    for version, f1 in (("1.0.0", 0.90), ("1.1.0", 0.93)):
        register(store, dest / "_build", "fraud", version, f1)
    store.promote("fraud@1.0.0", "production")
    ops.start(store, "fraud", "1.1.0", weight=5, rules=["region=eu -> canary"], seed=SEED)
    rollout = store.root / "releases" / "fraud.yaml"
    gitops = dest / "deploy" / "fraud.mreg.yaml"
    gitops.parent.mkdir()
    doc = yamlio.load(rollout.read_bytes())
    (dest / "small.onnx").write_bytes(b"\0" * 1000)
    (dest / "notes.txt").write_text("not a manifest\n")
    if broken:
        doc["canary"]["version"] = "9.9.9"
        rollout.write_text(rollout.read_text().replace("\nweight: 5\n", "\nweight: 500\n"))
        (dest / "big.onnx").write_bytes(b"\0" * 2_000_000)
    gitops.write_bytes(yamlio.dump(doc))
    shutil.rmtree(dest / "_build")
    files = [str(p.relative_to(dest)) for p in sorted(dest.rglob("*")) if p.is_file()]
    return [f for f in files if not f.startswith((".git/", ".modelreg/locks", ".modelreg/objects"))]


@pytest.fixture(scope="session")
def hook_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """`pre-commit try-repo HOOKS --files ...` on a good and on a broken repository."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    pytest.importorskip("pre_commit")
    base = tmp_path_factory.mktemp("precommit")
    pip_cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("MREG_", "GIT_", "PRE_COMMIT"))
        },
        "HOME": str(base / "home"),
        "PRE_COMMIT_HOME": str(base / "pre-commit"),
        "PIP_CACHE_DIR": pip_cache,  # a clean CI machine downloads; a developer's reuses
        "PIP_NO_COMPILE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Hook Tester",
        "GIT_AUTHOR_EMAIL": "hooks@example.com",
        "GIT_COMMITTER_NAME": "Hook Tester",
        "GIT_COMMITTER_EMAIL": "hooks@example.com",
        "MREG_CEILING_DIRS": str(base),
        "MREG_AUTHOR": "Hook Tester <hooks@example.com>",
    }
    (base / "home").mkdir()
    hooks = base / "hooks"
    hooks.mkdir()
    _hook_repo(hooks, env)
    procs = {}
    for name in ("good", "bad"):
        repo = base / name
        repo.mkdir()
        files = _user_repo(repo, env, broken=name == "bad")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pre_commit", "try-repo", str(hooks), "--files", *files],
            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    runs = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        runs[name] = Run(proc.returncode, out)
    return runs


def _status(output: str, hook: str) -> str:
    (line,) = [ln for ln in output.splitlines() if ln.startswith(f"{hook}...")]
    return line.rstrip(".").rsplit(".", 1)[-1]


def test_hooks_pass_on_valid_manifests_and_small_models(hook_runs):
    run = hook_runs["good"]
    assert run.returncode == 0, run.output
    assert _status(run.output, "mreg validate") == "Passed"
    assert _status(run.output, "mreg check-large-models") == "Passed"


def test_hooks_fail_on_broken_manifests_and_large_models(hook_runs):
    run = hook_runs["bad"]
    assert run.returncode == 1, run.output
    assert _status(run.output, "mreg validate") == "Failed"
    assert _status(run.output, "mreg check-large-models") == "Failed"
    lines = run.output.splitlines()
    assert ".modelreg/releases/fraud.yaml: weight: must be at most 100, got 500" in lines
    assert "deploy/fraud.mreg.yaml: canary: fraud@9.9.9 does not exist in the store" in lines
    # pre-commit splits the files between parallel runs: each prints its own summary
    summaries = [re.fullmatch(r"mreg: error: (\d+) problem\(s\) in .*", ln) for ln in lines]
    assert sum(int(m[1]) for m in summaries if m) == 2
    assert (
        "big.onnx: 1.9 MiB model file (limit 1.0 MiB): register it with 'mreg register NAME "
        "big.onnx' instead of committing it"
    ) in lines
    assert not any(line.startswith("small.onnx") for line in lines)


def test_the_hook_manifest():
    hooks = {h["id"]: h for h in yamlio.load((ROOT / ".pre-commit-hooks.yaml").read_bytes())}
    assert set(hooks) == {"mreg-validate", "mreg-check-large-models"}
    assert all(h["language"] == "python" for h in hooks.values())

    pattern = re.compile(hooks["mreg-validate"]["files"])
    matched = [
        ".modelreg/config.yaml", "sub/.modelreg/models/fraud/versions/1.0.0.yaml",
        ".modelreg/models/team/r/aliases/production.yaml", ".modelreg/releases/fraud.yaml",
        "deploy/fraud.mreg.yaml", "fraud.mreg.yml",
    ]  # fmt: skip
    unmatched = [".modelreg/audit/head.json", "deploy/service.yaml", "mreg.yaml", "x.mreg.json"]
    assert all(pattern.search(p) for p in matched)
    assert not any(pattern.search(p) for p in unmatched)
