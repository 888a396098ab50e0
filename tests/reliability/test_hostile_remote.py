"""A hostile remote (issue 15, classes 3, 4, 5 and 7 on the remote side), fixed as classes.

3. A rollout manifest received by `pull` passes the parser the store's own reader uses, for
   its model, naming a baseline and a canary this store holds with the very manifests it
   names; a path under `releases/` that is not a model's name is not metadata at all.
4. Nothing below a `file://` remote's directory is read through a symbolic link: links to
   files or directories (manifests, refs, rollouts, objects, fan-out and top directories,
   `config.yaml`) are left out of its listing and reported, and reads open every directory
   with `O_NOFOLLOW`, so a link swapped in after the listing is refused too.
5. Sizes are bounded before memory is spent: a metadata file larger than its bound (16 MiB,
   64 MiB for the audit log) is not read, whatever its size, and a remote object is never
   copied past the size its manifest gives. Peak memory is measured (`memory.py`).
7. A pull the local audit trail could not record changes nothing.

Each refusal is checked through the CLI (exit code, the `rejected` report or one error
line) and the store is unchanged byte for byte, except the remote-tracking cache and tmp/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.hashing import hash_bytes
from modelreg.release import ops
from modelreg.yamlio import dump, load

from ..cli.helpers import assert_one_line_error, make_writable, ok
from ..conftest import snapshot
from .memory import PEAK_BOUND_MIB, run_measured

GIB = 1 << 30


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    src = tmp_path / "model"
    src.mkdir()
    (src / "model.onnx").write_bytes(bytes(range(256)) * 16)
    (src / "vocab.txt").write_bytes(b"a b c\n")
    return src


@pytest.fixture
def pair(store: Store, model_dir: Path, tmp_path: Path) -> tuple[Store, Path, Store]:
    """`store` with fraud 1.0.0 (production) and 1.1.0 pushed to a file:// remote, a clone
    that pulled both, and the rollout manifest of a release of 1.1.0 that was never pushed."""
    store.register("fraud", [model_dir], version="1.0.0", detect_code=False)
    store.promote("fraud@1.0.0", "production")
    (model_dir / "vocab.txt").write_bytes(b"a b c d\n")
    store.register("fraud", [model_dir], version="1.1.0", detect_code=False)
    remote = tmp_path / "remote"
    store.remotes.add("origin", str(remote))
    store.push()
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(remote))
    assert other.pull().ok
    return store, remote, other


def _content(root: Path) -> dict[str, tuple[int, str]]:
    """The store's content: all but the disposable remote-tracking cache and tmp/."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(("remotes", "tmp"))}


def _pull_json(run_mreg: Any, other: Store) -> dict[str, Any]:
    res = run_mreg("pull", "--json", cwd=other.root.parent)
    assert "Traceback" not in res.stderr, res
    out: dict[str, Any] = res.json()
    assert res.returncode == (0 if out["ok"] else 1), res
    return out


def _refused(run_mreg: Any, other: Store, *needles: str) -> list[str]:
    """Pull; it must report every needle under `rejected`, exit 1 and change nothing."""
    before = _content(other.root)
    out = _pull_json(run_mreg, other)
    rejected: list[str] = out["rejected"]
    assert not out["ok"] and out["refs_updated"] == [] and out["manifests_received"] == [], out
    for needle in needles:
        assert any(needle in r for r in rejected), (needle, rejected)
    assert _content(other.root) == before
    ok(run_mreg("fsck", cwd=other.root.parent))
    return rejected


# -- 3. rollout manifests ---------------------------------------------------------------------


def _rollout_doc(store: Store) -> dict[str, Any]:
    """A real rollout manifest of `store` (a release of fraud 1.1.0 at 5%), then undone."""
    ops.start(store, "fraud", "1.1.0", weight=5, seed="0123456789abcdef" * 2)
    path = ops.release_path(store, "fraud")
    doc: dict[str, Any] = load(path.read_bytes())
    return doc


def _plant_rollout(remote: Path, data: bytes, rel: str = "releases/fraud.yaml") -> None:
    path = remote / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tamper(doc: dict[str, Any], case: str, other: Store) -> bytes:
    d = {**doc, "baseline": dict(doc["baseline"]), "canary": dict(doc["canary"])}
    if case == "weight 1e308":
        d["weight"] = 1e308
    elif case == "weight -5":
        d["weight"] = -5
    elif case == "weight nan":
        d["weight"] = float("nan")
    elif case == "missing canary":
        d["canary"] = {"version": "9.9.9", "id": "0" * 64}
    elif case == "canary of other content":
        d["canary"]["id"] = "f" * 64
    elif case == "baseline of other content":
        d["baseline"]["id"] = "e" * 64
    elif case == "other model":
        d["model"] = "churn"
    elif case == "bad state":
        d["state"] = "exploded"
    elif case == "bad rule":
        d["rules"] = ["users in [a, b"]
    elif case == "generation behind its history":
        d["generation"] = d["generation"] + 5
    elif case == "same version twice":
        d["canary"] = dict(d["baseline"])
    elif case == "not a mapping":
        return b"- just\n- a list\n"
    elif case == "python tag":
        return b"!!python/object/apply:os.system ['true']\n"
    elif case == "deep nesting":
        return b"[" * 5000 + b"]" * 5000
    else:  # pragma: no cover
        raise AssertionError(case)
    return dump(d)


ROLLOUT_CASES = [
    "weight 1e308",
    "weight -5",
    "weight nan",
    "missing canary",
    "canary of other content",
    "baseline of other content",
    "other model",
    "bad state",
    "bad rule",
    "generation behind its history",
    "same version twice",
    "not a mapping",
    "python tag",
    "deep nesting",
]


@pytest.mark.parametrize("case", ROLLOUT_CASES)
def test_pull_refuses_a_rollout_manifest_this_store_would_call_damaged(pair, run_mreg, case):
    store, remote, other = pair
    _plant_rollout(remote, _tamper(_rollout_doc(store), case, other))
    _refused(run_mreg, other, f"{remote.as_uri()}/releases/fraud.yaml")
    assert not (other.root / "releases").exists()


def test_pull_takes_a_valid_rollout_manifest(pair, run_mreg):
    """The control: the same manifest, untampered, is taken and routers can use it."""
    store, remote, other = pair
    doc = _rollout_doc(store)
    _plant_rollout(remote, dump(doc))
    out = _pull_json(run_mreg, other)
    assert out["ok"] and out["refs_updated"] == ["releases/fraud.yaml"], out
    assert ops.read_rollout(other, "fraud") is not None
    ok(run_mreg("fsck", cwd=other.root.parent))


@pytest.mark.parametrize(
    "rel", ["releases/Evil.yaml", "releases/-x.yaml", "releases/a/B/c.yaml", "releases/.yaml"]
)
def test_a_rollout_path_that_is_no_model_name_is_not_metadata(pair, run_mreg, rel):
    """Not a model's name: never downloaded nor joined to a local path (fsck stays clean)."""
    store, remote, other = pair
    _plant_rollout(remote, dump(_rollout_doc(store)), rel)
    before = _content(other.root)
    out = _pull_json(run_mreg, other)
    assert out["ok"] and out["refs_updated"] == [], out
    assert _content(other.root) == before
    assert not (other.root / "releases").exists()
    ok(run_mreg("fsck", cwd=other.root.parent))


# -- 4. links inside a file:// remote -----------------------------------------------------------


SECRET = b"root:x:0:0:the target of a link must never be read\n"


def _link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        for p in path.rglob("*"):
            make_writable(p)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        make_writable(path)
        path.unlink()
    path.symlink_to(target)


def _no_copy_of(root: Path, needle: bytes) -> None:
    """No file under the store (the remote-tracking snapshot included) holds `needle`."""
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert needle not in p.read_bytes(), p


def _new_version_on(store: Store, model_dir: Path, remote: Path) -> tuple[str, str]:
    """fraud 2.0.0 pushed with production moved to it: what a pull would take."""
    (model_dir / "vocab.txt").write_bytes(b"a new vocabulary\n")
    mv = store.register("fraud", [model_dir], version="2.0.0", detect_code=False).version
    store.promote("fraud@2.0.0", "production")
    store.push()
    return mv.id, next(f.sha256 for f in mv.files if f.path == "vocab.txt")


@pytest.mark.parametrize(
    "what",
    [
        "manifest -> file outside",
        "manifest -> manifest outside",
        "alias -> file outside",
        "alias -> valid alias outside",
        "object -> right bytes outside",
        "objects fan-out dir -> outside",
        "model dir -> outside",
        "versions dir -> outside",
        "manifest -> loop",
        "manifest -> dangling",
        "manifest is a fifo",
    ],
)
def test_pull_never_reads_through_a_link_in_a_file_remote(
    pair, model_dir, tmp_path, run_mreg, what
):
    store, remote, other = pair
    mid, vocab = _new_version_on(store, model_dir, remote)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(SECRET)
    versions = remote / "models" / "fraud" / "versions"
    manifest = versions / "2.0.0.yaml"
    alias = remote / "models" / "fraud" / "aliases" / "production.yaml"
    obj = remote / "objects" / vocab[:2] / vocab
    if what == "manifest -> file outside":
        _link(manifest, secret)
    elif what == "manifest -> manifest outside":  # even the right bytes are not read
        (outside / "m.yaml").write_bytes(manifest.read_bytes())
        _link(manifest, outside / "m.yaml")
    elif what == "alias -> file outside":
        _link(alias, secret)
    elif what == "alias -> valid alias outside":
        (outside / "a.yaml").write_bytes(alias.read_bytes())
        _link(alias, outside / "a.yaml")
    elif what == "object -> right bytes outside":
        (outside / vocab).write_bytes(obj.read_bytes())
        _link(obj, outside / vocab)
    elif what == "objects fan-out dir -> outside":
        import shutil

        shutil.copytree(obj.parent, outside / "fan")
        _link(obj.parent, outside / "fan")
    elif what == "model dir -> outside":
        import shutil

        shutil.copytree(remote / "models" / "fraud", outside / "fraud")
        (outside / "fraud" / "secret.yaml").write_bytes(SECRET)
        _link(remote / "models" / "fraud", outside / "fraud")
    elif what == "versions dir -> outside":
        import shutil

        shutil.copytree(versions, outside / "versions")
        _link(versions, outside / "versions")
    elif what == "manifest -> loop":
        _link(manifest, Path(manifest.name))
    elif what == "manifest -> dangling":
        _link(manifest, outside / "nothing")
    elif what == "manifest is a fifo":
        make_writable(manifest)
        manifest.unlink()
        os.mkfifo(manifest)
    before = _content(other.root)
    out = _pull_json(run_mreg, other)
    assert not out["ok"], out
    rejected = " ".join(out["rejected"])
    assert "symbolic link" in rejected or "not a regular file" in rejected, rejected
    after = _content(other.root)
    changed = {k for k in {*before, *after} if before.get(k) != after.get(k)}
    # a version whose manifest and objects are readable is still taken (the alias cases),
    # and the remote's audit trail is merged (history); nothing came through a link
    taken = ("objects/", "audit/")
    if what.startswith("alias"):
        assert out["manifests_received"] == ["fraud@2.0.0"], out
        taken += ("models/fraud/versions/2.0.0.yaml",)
    else:
        assert out["manifests_received"] == [], out
        assert not (other.root / "models" / "fraud" / "versions" / "2.0.0.yaml").exists()
    assert {k for k in changed if not k.startswith(taken)} == set(), changed
    assert other.resolve("fraud@production").version == "1.0.0"
    _no_copy_of(other.root, SECRET)
    ok(run_mreg("fsck", cwd=other.root.parent))
    assert mid  # the version exists on the remote, only not through a link


def test_a_link_as_the_remote_itself_is_followed(pair, tmp_path, run_mreg):
    """The directory the user names may be a link (they named it), like `get -o`."""
    _store, remote, other = pair
    (tmp_path / "named").symlink_to(remote)
    ok(run_mreg("remote", "add", "named", str(tmp_path / "named"), cwd=other.root.parent))
    out = run_mreg("pull", "named", "--json", cwd=other.root.parent)
    assert out.returncode == 0 and out.json()["ok"], out


def test_push_never_writes_through_a_linked_directory_of_a_file_remote(
    pair, model_dir, tmp_path, run_mreg
):
    store, remote, _other = pair
    outside = tmp_path / "outside"
    outside.mkdir()
    _link(remote / "models" / "fraud" / "versions", outside)
    (model_dir / "vocab.txt").write_bytes(b"pushed through a link?\n")
    store.register("fraud", [model_dir], version="3.0.0", detect_code=False)
    res = run_mreg("push", cwd=store.root.parent)
    assert "symbolic link" in assert_one_line_error(res, 2), res
    assert list(outside.iterdir()) == []


# -- 5. sizes before memory --------------------------------------------------------------------


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    if path.exists() or path.is_symlink():
        make_writable(path)
        path.unlink()
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)


@pytest.mark.parametrize(
    "which",
    ["manifest", "alias", "rollout", "audit log", "config.yaml", "manifest 17 MiB"],
)
def test_pull_reads_no_metadata_file_past_its_bound(pair, model_dir, tmp_path, which):
    """A 1 GiB sparse file on the remote: refused from its size, in bounded memory."""
    store, remote, other = pair
    _new_version_on(store, model_dir, remote)
    target = {
        "manifest": remote / "models" / "fraud" / "versions" / "2.0.0.yaml",
        "manifest 17 MiB": remote / "models" / "fraud" / "versions" / "2.0.0.yaml",
        "alias": remote / "models" / "fraud" / "aliases" / "production.yaml",
        "rollout": remote / "releases" / "fraud.yaml",
        "audit log": remote / "audit" / "log.jsonl",
        "config.yaml": remote / "config.yaml",
    }[which]
    target.parent.mkdir(parents=True, exist_ok=True)
    _sparse(target, (17 << 20) if which.endswith("MiB") else GIB, b"schema: mreg/v1\n")
    before = _content(other.root)
    res = run_measured("pull", "--json", cwd=other.root.parent, label=f"pull: {which} 1 GiB")
    assert "Traceback" not in res.stderr, res
    assert res.returncode == 1, res
    assert res.peak_mib <= PEAK_BOUND_MIB, res.peak_mib
    if which == "config.yaml":  # the remote as a whole is unusable: one line, nothing done
        assert res.stderr.count("\n") == 1 and "larger than 16 MiB" in res.stderr, res.stderr
        assert _content(other.root) == before
        return
    import json

    out = json.loads(res.stdout)
    rejected = " ".join(out["rejected"])
    bound = "64 MiB" if which == "audit log" else "16 MiB"
    assert f"is larger than {bound}" in rejected, rejected
    after = _content(other.root)
    changed = {k for k in {*before, *after} if before.get(k) != after.get(k)}
    # what the remote holds besides the oversized file may still be taken, never that file
    never = {
        "manifest": "models/fraud/versions/2.0.0.yaml",
        "manifest 17 MiB": "models/fraud/versions/2.0.0.yaml",
        "alias": "models/fraud/aliases/production.yaml",
        "audit log": "(the local trail records the pull; it merged none of the remote's)",
    }.get(which, "releases/")
    assert out["audit_received"] == 0 or which != "audit log", out
    assert not any(k.startswith(never) for k in changed), changed
    assert not (other.root / "releases").exists()


def test_a_metadata_file_that_grows_after_the_listing_is_read_only_to_its_bound(pair, tmp_path):
    """The listing said small; the file is 1 GiB when read: the read itself is bounded."""
    from modelreg.errors import IntegrityError
    from modelreg.remote.backend import Backend

    _store, remote, other = pair
    manifest = remote / "models" / "fraud" / "versions" / "1.0.0.yaml"
    backend = Backend(other.remotes.get("origin"))
    assert backend.read("models/fraud/versions/1.0.0.yaml") == manifest.read_bytes()
    _sparse(manifest, GIB)
    with pytest.raises(IntegrityError, match="larger than 16 MiB"):
        backend.read("models/fraud/versions/1.0.0.yaml")
    with pytest.raises(IntegrityError, match="larger than 1 KiB"):
        backend.read("models/fraud/versions/1.0.0.yaml", 1024)


def test_a_remote_object_is_never_copied_past_its_manifest_size(pair, model_dir, tmp_path):
    """A 1 GiB sparse object where the manifest says a few bytes: refused before copying."""
    store, remote, other = pair
    _, vocab = _new_version_on(store, model_dir, remote)
    _sparse(remote / "objects" / vocab[:2] / vocab, GIB)
    before_tmp = (
        sum(1 for _ in (other.root / "tmp").rglob("*")) if (other.root / "tmp").exists() else 0
    )
    res = run_measured("pull", "--json", cwd=other.root.parent, label="pull: object 1 GiB sparse")
    assert res.returncode == 1 and res.peak_mib <= PEAK_BOUND_MIB, res
    import json

    rejected = " ".join(json.loads(res.stdout)["rejected"])
    assert f"{vocab[:12]} has {GIB} bytes, but the manifest says" in rejected, rejected
    assert not other.objects.has(vocab)
    after_tmp = (
        sum(1 for _ in (other.root / "tmp").rglob("*")) if (other.root / "tmp").exists() else 0
    )
    assert after_tmp == before_tmp  # nothing left staged


def test_push_does_not_overwrite_a_remote_file_it_could_not_read(
    pair, model_dir, tmp_path, run_mreg
):
    """An unread remote audit log is not an absent one: push refuses, the remote unchanged."""
    store, remote, _other = pair
    log = remote / "audit" / "log.jsonl"
    _sparse(log, 65 << 20, b"")
    (model_dir / "vocab.txt").write_bytes(b"one more\n")
    store.register("fraud", [model_dir], version="4.0.0", detect_code=False)
    before = snapshot(remote)
    res = run_mreg("push", cwd=store.root.parent)
    assert "larger than 64 MiB" in assert_one_line_error(res, 1), res
    assert snapshot(remote) == before


# -- 7. all or nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["last line", "an earlier line", "deep nesting"])
def test_a_pull_the_local_trail_cannot_record_changes_nothing(
    pair, model_dir, tmp_path, run_mreg, damage
):
    store, remote, other = pair
    _new_version_on(store, model_dir, remote)
    log = other.root / "audit" / "log.jsonl"
    make_writable(log)
    lines = log.read_bytes().splitlines(keepends=True)
    bad = b"[" * 100_000 + b"\n" if damage == "deep nesting" else b"{not json}\n"
    if damage == "an earlier line":
        lines[0] = bad
    else:
        lines.append(bad)
    log.write_bytes(b"".join(lines))
    before = snapshot(other.root)
    res = run_mreg("pull", cwd=other.root.parent)
    assert "nothing was pulled" in assert_one_line_error(res, 1), res
    after = snapshot(other.root)
    assert {k for k in after if k not in before or before[k] != after[k]} <= {
        k for k in after if k.startswith("remotes/")
    } - {"remotes/"}, "only the remote-tracking cache may change"
    assert not other.objects.has(hash_bytes(b"a new vocabulary\n"))


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_link_swapped_in_after_the_listing_is_not_read(pair, tmp_path, where):
    """Reads open every directory below the remote with O_NOFOLLOW, whatever a listing said."""
    from modelreg.errors import IntegrityError
    from modelreg.remote.backend import Backend

    _store, remote, other = pair
    rel = "models/fraud/versions/1.0.0.yaml"
    backend = Backend(other.remotes.get("origin"))
    assert rel in backend.list("models")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "1.0.0.yaml").write_bytes(SECRET)
    if where == "file":
        _link(remote / rel, outside / "1.0.0.yaml")
    else:
        _link(remote / "models" / "fraud" / "versions", outside)
    with pytest.raises(IntegrityError, match="symbolic link"):
        backend.read(rel)
    with pytest.raises(IntegrityError, match="symbolic link"):
        backend.read_range(rel, 0, 4)
    assert rel not in backend.list("models") and backend.stat(rel) is None
