"""`mreg import gto` against tags made by the real gto (issue 20).

One git repository per module, with real git, real `git lfs` and GTO's own CLI commands
(`gto_tags.py`, run by the gto virtualenv's python). The files of each version are read at
the tagged commit: the work tree is left dirty on purpose.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput
from modelreg.importing.gto import parse_tag
from tests.conftest import git, snapshot
from tests.tools import require_tool

ARTIFACTS = """\
clf:
  type: model
  path: models/clf.bin
  description: the classifier
  labels: [vision, small]
nlp:
  type: model
  path: models/nlp
big:
  type: model
  path: models/big.bin
data:
  path: data/data.bin
cloud:
  path: s3://bucket/model.bin
"""


def _gto(repo: Path, *commands: str) -> None:
    python = require_tool("gto", "python")
    subprocess.run(
        [str(python), str(Path(__file__).with_name("gto_tags.py")), str(repo), *commands],
        check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_tool("gto", "python")
    if shutil.which("git-lfs") is None:
        pytest.skip("git-lfs is not installed (Debian package git-lfs, .ci/run installs it)")
    root = tmp_path_factory.mktemp("gto")
    home = root / "home"
    home.mkdir()
    old = {k: os.environ.get(k) for k in ("HOME", "GIT_CONFIG_NOSYSTEM")}
    os.environ.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    try:
        return _make_repo(root / "repo")
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _make_repo(repo: Path) -> dict[str, Any]:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Repo User")
    git(repo, "config", "user.email", "repo@example.com")
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("models/big.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "artifacts.yaml").write_text(ARTIFACTS)
    (repo / "models" / "nlp" / "b").mkdir(parents=True)
    (repo / "models" / "clf.bin").write_bytes(b"clf weights one")
    (repo / "models" / "nlp" / "a.txt").write_bytes(b"vocabulary")
    (repo / "models" / "nlp" / "b" / "c.bin").write_bytes(b"embeddings")
    (repo / "models" / "big.bin").write_bytes(b"big weights kept by git lfs" * 100)
    (repo / "data").mkdir()
    (repo / "data" / "data.bin.dvc").write_text(
        "outs:\n- md5: 0cc175b9c0f1b6a831c399e269772661\n  size: 1\n  path: data.bin\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "models")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "models" / "clf.bin").write_bytes(b"clf weights two")
    git(repo, "commit", "-q", "-am", "clf two")
    _gto(
        repo, f"register clf {first} --version v1.0.0 -m 'first release'",
        f"register nlp {first} --version v0.1.0", f"register big {first} --version v1.0.0",
        f"register data {first} --version v1.0.0", f"register cloud {first} --version v1.0.0",
        "assign clf --version v1.0.0 --stage prod", "register clf HEAD --version v1.1.0",
        "assign clf --version v1.1.0 --stage prod", "deprecate clf v1.1.0 prod -m 'too slow'",
        "deprecate nlp v0.1.0",
    )  # fmt: skip
    (repo / "models" / "clf.bin").write_bytes(b"uncommitted: never imported")
    return {"path": repo, "first": first}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _items(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for i in report["items"]:
        out.setdefault(i["source"], []).append(i)
    return out


def test_tag_grammar() -> None:
    assert parse_tag("clf@v1.2.0") == {
        "action": "register", "artifact": "clf", "version": "v1.2.0", "stage": None, "counter": 0
    }  # fmt: skip
    assert parse_tag("clf@v1.2.0!")["action"] == "deregister"  # type: ignore[index]
    assert parse_tag("clf#prod#3")["counter"] == 3  # type: ignore[index]
    assert parse_tag("clf#prod!#4")["action"] == "unassign"  # type: ignore[index]
    assert parse_tag("dir/sub=clf@deprecated")["artifact"] == "dir/sub:clf"  # type: ignore[index]
    assert parse_tag("v1.0.0") is None and parse_tag("clf@created") is None


def test_import_replays_gto_history(repo: dict[str, Any], store: Store) -> None:
    report = store.import_gto(str(repo["path"]))
    assert not report.failed, report
    items = _items(report.to_dict())
    assert items["clf@v1.0.0"][0]["status"] == "imported"
    assert items["clf@v1.1.0"][0]["status"] == "imported"

    v1 = store.info("clf@1.0.0").version
    assert [(f.path, f.sha256) for f in v1.files] == [("clf.bin", _sha(b"clf weights one"))]
    assert v1.author == "Repo User <repo@example.com>"
    assert v1.message == "first release\n\nthe classifier"
    assert {"vision", "small", "gto.type=model"} <= set(v1.tags)
    assert v1.code is not None and v1.code.commit == repo["first"]
    assert v1.code.path == "models/clf.bin"
    v2 = store.info("clf@1.1.0").version
    # the commit's bytes, not the work tree's
    assert [f.sha256 for f in v2.files] == [_sha(b"clf weights two")]

    # the stage: assigned 1.0.0, then 1.1.0, then 1.1.0 unassigned: back to 1.0.0
    prod = store.history("clf", "prod")
    assert [e.version for e in prod] == ["1.0.0", "1.1.0", "1.0.0"]
    assert all(e.actor == "Repo User <repo@example.com>" for e in prod)
    assert "too slow" in prod[-1].reason
    tag_time = git(repo["path"], "for-each-ref", "--format=%(taggerdate:iso-strict)",
                   "refs/tags/clf@v1.0.0")  # fmt: skip
    # (big@v1.0.0 is registered in the same second: pick clf's entry by its model)
    register = next(
        e for e in store.audit.entries()
        if e.action == "register" and e.model == "clf" and e.details.get("version") == "1.0.0"
    )  # fmt: skip
    assert register.time == tag_time.replace("+00:00", "Z")
    assert register.details["imported"]["key"] == "clf@v1.0.0"

    nlp = store.info("nlp@0.1.0")
    assert sorted(f.path for f in nlp.version.files) == ["a.txt", "b/c.bin"]
    assert nlp.deprecated and "deregistered in GTO" in nlp.deprecated["reason"]
    big = store.info("big@1.0.0").version  # a Git LFS pointer, read from .git/lfs/objects
    assert [f.sha256 for f in big.files] == [_sha(b"big weights kept by git lfs" * 100)]
    assert "DVC" in items["data@v1.0.0"][0]["reason"]
    assert items["data@v1.0.0"][0]["status"] == "skipped"
    assert "virtual" in items["cloud@v1.0.0"][0]["reason"]
    assert store.fsck().errors == []


def test_a_second_import_adds_only_new_tags(repo: dict[str, Any], store: Store) -> None:
    first = store.import_gto(str(repo["path"]))
    assert not first.failed and first.counts["imported"] >= 7
    before = snapshot(store.root)
    again = store.import_gto(str(repo["path"]))
    assert again.counts["imported"] == 0 and again.counts["planned"] == 0
    assert snapshot(store.root) == before
    dry = store.import_gto(str(repo["path"]), dry_run=True)
    assert dry.counts["planned"] == 0, [i for i in dry.items if i.status == "planned"]
    assert snapshot(store.root) == before


def test_a_missing_lfs_object_skips_the_version(
    repo: dict[str, Any], store: Store, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(repo["path"]), str(clone)], check=True,
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
    )  # fmt: skip
    report = store.import_gto(str(clone), ["big", "clf"])
    big = next(i for i in report.items if i.name == "big")
    assert big.status == "skipped" and "git lfs fetch" in big.reason
    assert not (store.root / "models" / "big").exists()
    assert store.info("clf@1.1.0").version.version == "1.1.0"


def test_dry_run_and_bad_input_change_nothing(
    repo: dict[str, Any], store: Store, run_mreg: Callable[..., Any], tmp_path: Path
) -> None:
    before = snapshot(store.root)
    r = run_mreg("import", "gto", str(repo["path"]), "--dry-run", "--model", "clf", "--json")
    assert r.ok and r.json()["dry_run"], r
    assert {i["status"] for i in r.json()["items"]} == {"planned"}
    r = run_mreg("import", "gto", str(tmp_path))
    assert r.returncode == 2 and "not a git repository" in r.stderr
    with pytest.raises(InvalidInput):
        store.import_gto(str(tmp_path / "nowhere"))
    assert snapshot(store.root) == before
