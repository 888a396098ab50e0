"""Git LFS as a remote (issue 20), against a real giftless server and the real `git lfs`.

giftless (local storage backend, anonymous read-write) runs under gunicorn on 127.0.0.1,
once for the module; each test uses its own repository path on it. Requests are counted
from gunicorn's access log, so "a second push sends nothing" is measured, not assumed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import IntegrityError
from modelreg.remote import Remote
from modelreg.remote.backend import RemoteError
from tests.conftest import MregResult, git, snapshot
from tests.lfsserver import ANON, JWT, JWT_KEY, LfsServer, giftless
from tests.tools import require_tool

GIT_LFS = shutil.which("git-lfs")
pytestmark = pytest.mark.skipif(GIT_LFS is None, reason="git-lfs is not installed")


@pytest.fixture(scope="module")
def lfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LfsServer]:
    """giftless letting anyone read and write."""
    yield from giftless(tmp_path_factory.mktemp("giftless"), ANON)


Run = Callable[..., MregResult]


def _store(where: Path, url: str | None = None, meta: Path | None = None) -> Store:
    """A store in `where`, with the LFS remote `lfs` when `url` is given."""
    where.mkdir(exist_ok=True)
    store = Store.init(where)
    if url is not None:
        store.remotes.add("lfs", f"lfs+{url}", {"meta": str(meta)})
    return store


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _object(store: Store, data: bytes) -> Path:
    return store.objects.path(_digest(data))


def test_push_pull_and_what_a_second_push_costs(lfs_server: LfsServer, tmp_path: Path) -> None:
    path, url = lfs_server.repo()
    a = _store(tmp_path / "a", url, tmp_path / "meta")
    big = os.urandom(3 << 20)  # several 1 MiB chunks each way
    (tmp_path / "model.bin").write_bytes(big)
    (tmp_path / "config.json").write_bytes(b'{"layers": 2}')
    a.register("m", [tmp_path / "model.bin", tmp_path / "config.json"])
    r = a.push()
    assert (r.objects_sent, r.bytes_sent) == (2, len(big) + 13)
    assert lfs_server.requests(path) == {"batch": 1, "put": 2, "get": 0, "verify": 2}
    # the server holds the objects under their SHA-256; the meta URL holds everything else
    assert (lfs_server.storage / path / _digest(big)).read_bytes() == big
    assert (tmp_path / "meta" / "models" / "m").is_dir()
    assert not (tmp_path / "meta" / "objects").exists()

    assert a.push().objects_sent == 0
    assert lfs_server.requests(path) == {"batch": 1, "put": 2, "get": 0, "verify": 2}

    # a new version sharing one file: status asks once; the push sends one batch request and
    # one PUT (only what changed)
    (tmp_path / "config.json").write_bytes(b'{"layers": 3}')
    a.register("m", [tmp_path / "model.bin", tmp_path / "config.json"])
    assert a.remote_status().objects_to_push == 1
    r = a.push()
    assert (r.objects_sent, r.objects_present) == (1, 1)
    assert lfs_server.requests(path) == {"batch": 3, "put": 3, "get": 0, "verify": 3}

    b = _store(tmp_path / "b", url, tmp_path / "meta")
    p = b.pull()
    assert p.ok and p.objects_received == 3 and len(p.manifests_received) == 2
    assert lfs_server.requests(path) == {"batch": 4, "put": 3, "get": 3, "verify": 3}
    assert _object(b, big).read_bytes() == big
    assert b.verify().ok
    # serving code reads the LFS remote through its cache, verified
    remote = Remote(f"lfs+{url}", {"meta": str(tmp_path / "meta")}, cache_dir=tmp_path / "c")
    with remote.open_artifact("m@0.1.0", "model.bin") as fh:
        assert fh.read() == big


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_object_on_the_server_is_rejected(
    lfs_server: LfsServer, tmp_path: Path, damage: str
) -> None:
    path, url = lfs_server.repo()
    a = _store(tmp_path / "a", url, tmp_path / "meta")
    data = os.urandom(200_000)
    (tmp_path / "model.bin").write_bytes(data)
    a.register("m", [tmp_path / "model.bin"])
    a.push()
    held = lfs_server.storage / path / _digest(data)
    held.write_bytes(data[:-1] + bytes([data[-1] ^ 1]) if damage == "tampered" else data[:1000])
    b = _store(tmp_path / "b", url, tmp_path / "meta")
    before = snapshot(b.root)
    r = b.pull()
    assert not r.ok
    rejected = " ".join(r.rejected)
    assert _digest(data)[:12] in rejected and "m@0.1.0 not pulled" in rejected
    assert r.manifests_received == ()
    after = snapshot(b.root)
    assert {k: v for k, v in after.items() if k.startswith(("objects", "models"))} == {
        k: v for k, v in before.items() if k.startswith(("objects", "models"))
    }


def _lfs_repo(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """A bare repository and a work tree whose `*.bin` files Git LFS tracks on `url`."""
    bare, work = tmp_path / "bare.git", tmp_path / "work-tree"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (work / ".lfsconfig").write_text(f'[lfs]\n\turl = "{url}"\n\tlocksverify = false\n')
    git(work, "remote", "add", "origin", str(bare))
    return bare, work


def test_git_lfs_fetches_what_mreg_pushed(lfs_server: LfsServer, tmp_path: Path) -> None:
    _, url = lfs_server.repo()
    a = _store(tmp_path / "a", url, tmp_path / "meta")
    data = os.urandom(1_500_000)
    (tmp_path / "model.bin").write_bytes(data)
    a.register("m", [tmp_path / "model.bin"])
    a.push()
    # a repository holding only the pointer (committed without the LFS filter), pushed by git
    bare, work = _lfs_repo(tmp_path, url)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{_digest(data)}\n"
    (work / "model.bin").write_text(pointer + f"size {len(data)}\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "pointer")
    git(work, "push", "-q", "origin", "main")
    git(tmp_path, "lfs", "install", "--skip-repo")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert (clone / "model.bin").read_bytes() == data


def test_mreg_pulls_what_git_lfs_pushed_and_registers_pointers(
    lfs_server: LfsServer, run_mreg: Run, tmp_path: Path
) -> None:
    path, url = lfs_server.repo()
    git(tmp_path, "lfs", "install", "--skip-repo")
    bare, work = _lfs_repo(tmp_path, url)
    data = os.urandom(1_200_000)
    (work / "model.bin").write_bytes(data)
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "model")
    git(work, "push", "-q", "origin", "main")  # git lfs's pre-push hook sends the object
    assert (lfs_server.storage / path / _digest(data)).read_bytes() == data
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(bare), str(clone)], check=True,
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
    )  # fmt: skip
    pointer = clone / "model.bin"
    assert pointer.read_bytes().startswith(b"version https://git-lfs")

    # only the pointer here, no LFS remote: refused, nothing written
    a = _store(tmp_path / "a")
    before = snapshot(a.root)
    r = run_mreg("register", "m", str(pointer), cwd=tmp_path / "a")
    assert r.returncode == 2 and "Git LFS pointer" in r.stderr, r
    assert snapshot(a.root) == before
    # with the LFS server as a remote: the object is fetched and verified, never sent again
    a.remotes.add("lfs", f"lfs+{url}", {"meta": str(tmp_path / "meta")})
    (entry,) = a.register("m", [pointer]).version.files
    assert (entry.sha256, entry.size) == (_digest(data), len(data))
    assert _object(a, data).read_bytes() == data
    puts = lfs_server.requests(path)["put"]
    r = a.push()
    assert (r.objects_sent, r.bytes_sent, r.objects_present) == (0, 0, 1)
    assert lfs_server.requests(path)["put"] == puts
    # a pointer whose object is in the repository's LFS cache needs no remote
    git(clone, "lfs", "fetch")
    c = _store(tmp_path / "c")
    assert c.register("m", [pointer]).version.files[0].sha256 == _digest(data)
    assert _object(c, data).read_bytes() == data
    # and what git lfs sent is pulled by another store
    b = _store(tmp_path / "b", url, tmp_path / "meta")
    p = b.pull()
    assert p.ok and p.objects_received == 1
    assert _object(b, data).read_bytes() == data


def test_an_lfs_remote_needs_meta_and_refuses_secrets(run_mreg: Run, tmp_path: Path) -> None:
    _store(tmp_path / "work")
    before = snapshot(tmp_path / "work" / ".modelreg")
    r = run_mreg("remote", "add", "x", "lfs+https://example.invalid/o/r.git/info/lfs")
    assert r.returncode == 2 and "meta=URL" in r.stderr
    r = run_mreg(
        "remote", "add", "x", "lfs+https://example.invalid/o/r.git/info/lfs",
        "--option", "meta=s3://bucket/p", "--option", "meta.token=abc",
    )  # fmt: skip
    assert r.returncode == 2 and "secret" in r.stderr
    r = run_mreg("remote", "add", "x", "lfs+https://u:pw@example.invalid/o/r.git/info/lfs")
    assert r.returncode == 2 and "password" in r.stderr
    assert snapshot(tmp_path / "work" / ".modelreg") == before


def test_credentials_from_the_environment_or_a_git_credential_helper(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python = require_tool("giftless", "python")
    token = subprocess.run(
        [
            str(python), "-c",
            "import jwt, sys, time; print(jwt.encode({'sub': 'tester', 'exp': time.time() + 600,"
            " 'scopes': 'obj:org/*'}, sys.argv[1], 'HS256'))", JWT_KEY,
        ],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    server = giftless(tmp_path_factory.mktemp("giftless-auth"), JWT)
    lfs = next(server)
    try:
        path, url = lfs.repo()
        a = _store(tmp_path / "a", url, tmp_path / "meta")
        (tmp_path / "model.bin").write_bytes(b"weights" * 1000)
        a.register("m", [tmp_path / "model.bin"])
        config = (a.root / "config.yaml").read_bytes()
        # no credentials: refused by the server, one line naming where they come from
        with pytest.raises(RemoteError, match=r"401.*MREG_LFS_AUTHORIZATION"):
            a.push()
        assert lfs.requests(path)["put"] == 0
        # a git credential helper (what git and git-lfs use): asked after the 401
        git(tmp_path, "config", "--global", "credential.helper",
            f"!f() {{ echo username=_jwt; echo password={token}; }}; f")  # fmt: skip
        assert a.push().objects_sent == 1
        git(tmp_path, "config", "--global", "--unset", "credential.helper")
        # the environment: the whole header
        b = _store(tmp_path / "b", url, tmp_path / "meta")
        with pytest.raises(RemoteError):
            b.pull()
        monkeypatch.setenv("MREG_LFS_AUTHORIZATION", f"Bearer {token}")
        assert b.pull().objects_received == 1
        assert _object(b, b"weights" * 1000).is_file()
        # never written to either store
        for root in (a.root, b.root):
            assert not any(token in p.read_text(errors="replace") for p in root.rglob("*.yaml"))
        assert (a.root / "config.yaml").read_bytes() == config
    finally:
        server.close()


def test_a_corrupt_local_object_is_never_sent_whole(lfs_server: LfsServer, tmp_path: Path) -> None:
    path, url = lfs_server.repo()
    a = _store(tmp_path / "a", url, tmp_path / "meta")
    data = os.urandom((2 << 20) + 5000)
    (tmp_path / "model.bin").write_bytes(data)
    a.register("m", [tmp_path / "model.bin"])
    obj = _object(a, data)
    obj.chmod(0o644)
    obj.write_bytes(b"X" + data[1:])  # bit rot in the local store
    with pytest.raises(IntegrityError, match="corrupt"):
        a.push()
    held = lfs_server.storage / path / _digest(data)
    assert not held.exists() or held.stat().st_size < len(data)  # the body was broken off
    assert not (tmp_path / "meta" / "models").exists()  # no manifest names it there
