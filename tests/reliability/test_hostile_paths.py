"""A hostile remote, bundle or output directory (issue 15), fixed as classes, not examples.

1. No write through a link: below the directory a command writes into (`get -o`, `pack
   --format oci`), no directory on a file's way may be a symbolic link, wherever it points;
   a link in a file's place is replaced, never written through.
2. One validator for a manifest's file paths (`manifest.check_files`, `names.check_path`),
   run whenever a `ModelVersion` is built: pull, unpack (bundles, OCI layouts), register,
   and reading the store (so `verify` and `fsck` report what slipped in).
3. A manifest's file sizes are those of its objects: checked on receipt (pull, unpack), and
   by `verify`/`fsck` as a manifest error.

Every refusal is checked through the CLI: exit code, one `mreg: error:` line (or, for pull,
the `rejected` report), and the store (and the output directory) unchanged byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelreg import IntegrityError, InvalidInput, Store
from modelreg.bundle import HEADER, MANIFEST
from modelreg.fsutil import open_beneath
from modelreg.hashing import hash_bytes
from modelreg.manifest import ModelVersion, check_files
from modelreg.names import check_path
from modelreg.oci import CONFIG_MEDIA_TYPE, FILE_MEDIA_TYPE
from modelreg.yamlio import dump, load

from ..cli.helpers import assert_one_line_error, make_writable, ok
from ..conftest import snapshot

WEIGHTS = bytes(range(256)) * 16
VOCAB = b"a b c\n"
INNER = b"inner bytes"
HUGE = 1_000_000_000_000_000


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    src = tmp_path / "model"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "model.onnx").write_bytes(WEIGHTS)
    (src / "sub" / "vocab.txt").write_bytes(VOCAB)
    (src / "sub" / "deep" / "inner.bin").write_bytes(INNER)
    return src


@pytest.fixture
def filled(store: Store, model_dir: Path) -> Store:
    """A store with fraud@1.0.0 in production."""
    store.register("fraud", [model_dir], version="1.0.0", detect_code=False)
    store.promote("fraud@1.0.0", "production")
    return store


def _tree(root: Path) -> dict[str, Any]:
    """Every entry under `root` (links as their target, not followed), to prove no change."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("dir",)
    return out


# == 1. no write through a link below an output directory =====================================

LINKS: dict[str, Callable[[Path, Path], None]] = {
    # out/sub -> a directory outside, by absolute path (the reproduction)
    "absolute": lambda out, outside: (out / "sub").symlink_to(outside),
    "relative": lambda out, outside: (out / "sub").symlink_to(Path("..") / outside.name),
    # one level down: out/sub is real, out/sub/deep leads out
    "nested": lambda out, outside: (
        (out / "sub").mkdir(),
        (out / "sub" / "deep").symlink_to(outside),
    ),
    # a link that stays inside is refused too: files land at the path the manifest names
    "inside": lambda out, outside: (
        (out / "real").mkdir(),
        (out / "sub").symlink_to(out / "real"),
    ),
    "dangling": lambda out, outside: (out / "sub").symlink_to(outside / "nowhere"),
    "loop": lambda out, outside: (out / "sub").symlink_to("sub"),
}


@pytest.mark.parametrize("case", list(LINKS))
@pytest.mark.parametrize("force", [False, True])
def test_get_refuses_a_linked_directory_in_the_output(filled, run_mreg, tmp_path, case, force):
    out, outside = tmp_path / "work" / "out", tmp_path / "work" / "outside"
    out.mkdir(parents=True)
    outside.mkdir()
    LINKS[case](out, outside)
    before, out_before, outside_before = snapshot(filled.root), _tree(out), _tree(outside)
    res = run_mreg("get", "fraud@1.0.0", "-o", "out", *(["--force"] if force else []))
    line = assert_one_line_error(res, 2)
    linked = "out/sub/deep" if case == "nested" else "out/sub"
    assert f"{linked} is a symbolic link" in line, line
    # nothing written anywhere: not outside, and not the other files either (checked first)
    assert _tree(outside) == outside_before
    assert _tree(out) == out_before
    assert snapshot(filled.root) == before


def test_get_refuses_a_file_where_a_directory_is_needed(filled, run_mreg, tmp_path):
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    (out / "sub").write_bytes(b"a file, not a directory")
    res = run_mreg("get", "fraud@1.0.0", "-o", "out", "--force")
    assert "out/sub exists and is not a directory" in assert_one_line_error(res, 2)
    assert (out / "sub").read_bytes() == b"a file, not a directory"


def test_get_replaces_a_linked_file_only_with_force(filled, run_mreg, tmp_path):
    out, victim = tmp_path / "work" / "out", tmp_path / "victim.onnx"
    out.mkdir(parents=True)
    victim.write_bytes(b"do not touch")
    (out / "model.onnx").symlink_to(victim)
    res = run_mreg("get", "fraud@1.0.0", "-o", "out")
    assert "out/model.onnx is a symbolic link" in assert_one_line_error(res, 2)
    assert (out / "model.onnx").is_symlink() and not (out / "sub").exists()
    ok(run_mreg("get", "fraud@1.0.0", "-o", "out", "--force"))
    assert not (out / "model.onnx").is_symlink()
    assert (out / "model.onnx").read_bytes() == WEIGHTS
    assert victim.read_bytes() == b"do not touch"
    assert (out / "sub" / "deep" / "inner.bin").read_bytes() == INNER


def test_get_into_an_output_directory_named_through_a_link_is_followed(filled, run_mreg, tmp_path):
    # The documented choice: the directory the user names is what they mean (like `cp`);
    # only links *below* it are refused.
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "work" / "link").symlink_to(real)
    ok(run_mreg("get", "fraud@1.0.0", "-o", "link"))
    assert (real / "sub" / "deep" / "inner.bin").read_bytes() == INNER


def test_get_into_a_dangling_link_is_refused(filled, run_mreg, tmp_path):
    (tmp_path / "work" / "dl").symlink_to(tmp_path / "nowhere")
    res = run_mreg("get", "fraud@1.0.0", "-o", "dl")
    assert "dl: cannot create the directory" in assert_one_line_error(res, 2)
    assert not (tmp_path / "nowhere").exists()


def test_open_beneath_refuses_a_link_that_appears_after_the_check(tmp_path):
    # The walk itself refuses links (openat + O_NOFOLLOW), not only get's earlier check, so
    # a link swapped in between the two is not written through either.
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "a").mkdir(parents=True)
    outside.mkdir()
    with open_beneath(out, "a/b/c.bin") as fh:
        fh.write(b"ok")
    assert (out / "a" / "b" / "c.bin").read_bytes() == b"ok"
    (out / "a" / "b" / "c.bin").unlink()
    (out / "a" / "b").rmdir()
    (out / "a" / "b").symlink_to(outside)
    with pytest.raises(InvalidInput, match="is a symbolic link"), open_beneath(out, "a/b/c.bin"):
        pytest.fail("opened through a link")  # pragma: no cover
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("which", ["blobs/sha256", "blobs"])
def test_pack_oci_refuses_a_linked_blob_directory(filled, run_mreg, tmp_path, which):
    lay, outside = tmp_path / "work" / "lay", tmp_path / "outside"
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    outside.mkdir()
    target = lay / which
    for p in sorted(target.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    target.rmdir()
    target.symlink_to(outside)
    before, lay_before = snapshot(filled.root), _tree(lay)
    res = run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay")
    assert "is a symbolic link" in assert_one_line_error(res, 2)
    assert list(outside.iterdir()) == []
    assert _tree(lay) == lay_before and snapshot(filled.root) == before


def test_pack_oci_replaces_a_linked_index_never_writes_through_it(filled, run_mreg, tmp_path):
    lay, victim = tmp_path / "work" / "lay", tmp_path / "victim.json"
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    victim.write_bytes((lay / "index.json").read_bytes())
    (lay / "index.json").unlink()
    (lay / "index.json").symlink_to(victim)
    kept = victim.read_bytes()
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    assert not (lay / "index.json").is_symlink() and victim.read_bytes() == kept


# == 2. one validator for a manifest's file paths ==============================================

BAD_PATHS = {
    "dotdot": "../../x.onnx",
    "inner dotdot": "sub/../../x.onnx",
    "absolute": "/etc/cron.d/x",
    "backslash": "..\\..\\x.onnx",
    "empty segment": "sub//x.onnx",
    "dot segment": "./x.onnx",
    "empty": "",
    "NUL": "x\x00.onnx",
    "escape sequence": "x\x1b[2J.onnx",
    "C1 control": "x\x9b.onnx",
    "git": ".git/hooks/post-checkout",
    "git, other case": "sub/.GIT/config",
    "store": ".modelreg/config.yaml",
    "long segment": "a" * 256,
    "long path": "/".join(["d" * 200] * 21),
}
BAD_SETS = {
    "duplicate": ["model.onnx", "model.onnx"],
    "file and directory": ["model.onnx", "model.onnx/x.bin"],
    "directory and file": ["sub/x/y.bin", "sub/x"],
}


@pytest.mark.parametrize("case", list(BAD_PATHS))
def test_the_one_validator_refuses_each_unsafe_path(case):
    with pytest.raises(InvalidInput, match="unsafe path"):
        check_path(BAD_PATHS[case])
    with pytest.raises(InvalidInput, match="unsafe path"):
        check_files(["ok.onnx", BAD_PATHS[case]])


@pytest.mark.parametrize("case", list(BAD_SETS))
def test_the_one_validator_refuses_paths_no_directory_can_hold(case):
    with pytest.raises(InvalidInput, match=r"twice|both a file and the directory"):
        check_files(BAD_SETS[case])


def test_valid_paths_pass():
    check_files(["model.onnx", "sub/vocab.txt", "sub/deep/inner.bin", ".gitignore", "é/ü.txt"])
    check_path("a" * 255)


def _doc(store: Store, paths: list[str] | None = None, size: int | None = None) -> dict[str, Any]:
    """fraud@1.0.0's manifest as a dict, its files given other paths or another size."""
    doc = store.resolve("fraud@1.0.0").to_dict()
    files = doc["files"]
    if paths is not None:
        files = [{**files[i % len(files)], "path": p} for i, p in enumerate(paths)]
    if size is not None:
        files = [{**files[0], "size": size}, *files[1:]]
    return {**doc, "files": files}


def _files_of(case: str) -> list[str]:
    return BAD_SETS[case] if case in BAD_SETS else ["model.onnx", BAD_PATHS[case]]


@pytest.mark.parametrize("case", list(BAD_PATHS) + list(BAD_SETS))
def test_model_version_cannot_be_built_with_bad_paths(filled, case):
    doc = _doc(filled, _files_of(case))
    with pytest.raises(IntegrityError, match=r"malformed manifest: (unsafe path|file path)"):
        ModelVersion.from_dict(load(dump(doc)))


# -- pull ---------------------------------------------------------------------------------------


def _remote(filled: Store, tmp_path: Path) -> tuple[Path, Store]:
    """A file:// remote holding fraud@1.0.0, and a clone that pulled it."""
    remote = tmp_path / "remote"
    filled.remotes.add("origin", str(remote))
    filled.push()
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(remote))
    assert other.pull().ok
    return remote, other


def _plant(remote: Path, doc: dict[str, Any], version: str = "2.0.0") -> str:
    """What an attacker with write access to the remote does: a new version manifest, and
    the production alias moved to it with the right id (the audit trail is left alone)."""
    data = dump({**doc, "version": version})
    (remote / "models" / "fraud" / "versions" / f"{version}.yaml").write_bytes(data)
    alias_path = remote / "models" / "fraud" / "aliases" / "production.yaml"
    make_writable(alias_path)
    alias = load(alias_path.read_bytes())
    gen, mid = alias["generation"] + 1, hash_bytes(data)
    move = {**alias["history"][-1], "generation": gen, "id": mid, "version": version}
    move["previous"] = alias["version"]
    alias.update(generation=gen, id=mid, version=version, history=[*alias["history"], move])
    alias_path.write_bytes(dump(alias))
    return mid


def _content(root: Path) -> dict[str, tuple[int, str]]:
    """The store's content: all but the disposable remote-tracking cache and tmp/."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(("remotes", "tmp"))}


def _refused_pull(run_mreg, other: Store, *needles: str) -> list[str]:
    before = _content(other.root)
    res = run_mreg("pull", "--json", cwd=other.root.parent)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res
    out = res.json()
    rejected = out["rejected"]
    assert not out["ok"] and out["manifests_received"] == [] and out["refs_updated"] == [], out
    for needle in needles:
        assert any(needle in r for r in rejected), (needle, rejected)
    # the refused version and the alias moved to it are absent; nothing else changed
    assert _content(other.root) == before
    assert not (other.root / "models" / "fraud" / "versions" / "2.0.0.yaml").exists()
    assert other.resolve("fraud@production").version == "1.0.0"
    ok(run_mreg("verify", cwd=other.root.parent))
    return rejected


@pytest.mark.parametrize("case", ["dotdot", "absolute", "NUL", "git", "store", "long segment"])
def test_pull_refuses_a_manifest_with_an_unsafe_path(filled, tmp_path, run_mreg, case):
    remote, other = _remote(filled, tmp_path)
    _plant(remote, _doc(filled, _files_of(case)))
    rejected = _refused_pull(run_mreg, other, "versions/2.0.0.yaml: malformed manifest")
    assert any("unsafe path" in r for r in rejected)
    # and the alias that named it is refused, not left pointing at nothing
    assert any("production.yaml" in r and "does not have" in r for r in rejected), rejected


@pytest.mark.parametrize("case", list(BAD_SETS))
def test_pull_refuses_paths_no_directory_can_hold(filled, tmp_path, run_mreg, case):
    remote, other = _remote(filled, tmp_path)
    _plant(remote, _doc(filled, BAD_SETS[case]))
    _refused_pull(run_mreg, other, "versions/2.0.0.yaml: malformed manifest: file path")


# -- unpack: bundles and OCI layouts -----------------------------------------------------------


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _bundle(store: Store, tmp_path: Path, doc: dict[str, Any], sizes: bool = False) -> Path:
    """A self-consistent bundle of `doc` as fraud@9.9.9 (header id = the manifest's digest).

    Members carry each file's real bytes; `sizes` makes each member as long as the manifest
    says instead (so the manifest's size lie is not caught by the member's size alone).
    """
    manifest = dump({**doc, "version": "9.9.9"})
    header = dump(
        {"schema": "mreg/v1", "kind": "Bundle", "format": 1, "name": "fraud",
         "version": "9.9.9", "id": hash_bytes(manifest), "mreg": "0.1.0"}
    )  # fmt: skip
    members = [(HEADER, header), (MANIFEST, manifest)]
    for f in doc["files"]:
        data = store.objects.path(f["sha256"]).read_bytes()
        if sizes:
            data = data[: f["size"]].ljust(f["size"], b"\0")
        members.append((f"files/{f['path']}", data))
    return _tar(tmp_path / "evil.tar", members)


def _refused_unpack(run_mreg, tmp_path: Path, path: Path, code: int, needle: str) -> None:
    other = Store.init(tmp_path / "other")
    before = snapshot(other.root)
    res = run_mreg("unpack", str(path), cwd=tmp_path / "other")
    assert needle in assert_one_line_error(res, code), res
    assert snapshot(other.root) == before


@pytest.mark.parametrize(
    "case", ["git", "store", "long segment", "backslash", "C1 control", *BAD_SETS]
)
def test_unpack_refuses_a_bundle_whose_manifest_has_bad_paths(filled, tmp_path, run_mreg, case):
    paths = _files_of(case)
    doc = _doc(filled, paths)
    # members with names tar can hold; the manifest is refused before any member is read
    doc_ok = {**doc, "files": [{**f, "path": f"m{i}"} for i, f in enumerate(doc["files"])]}
    evil = _bundle(filled, tmp_path, doc_ok)
    # rewrite the manifest (and the header's id) to the hostile paths
    manifest = dump({**doc, "version": "9.9.9"})
    with tarfile.open(evil) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    header = load(members[0][1])
    header["id"] = hash_bytes(manifest)
    members[:2] = [(HEADER, dump(header)), (MANIFEST, manifest)]
    _tar(evil, members)
    _refused_unpack(run_mreg, tmp_path, evil, 1, "malformed manifest")


def _layout(
    filled: Store, run_mreg, tmp_path: Path, doc: dict[str, Any], layer_sizes: bool = True
) -> Path:
    """An OCI layout (from pack) whose config is `doc` as fraud@9.9.9, consistent throughout:
    config, layers (one per file, sized as the manifest says), annotations and index."""
    lay = tmp_path / "work" / "lay"
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    blobs = lay / "blobs" / "sha256"
    config = dump({**doc, "version": "9.9.9"})
    cdigest = hash_bytes(config)
    (blobs / cdigest).write_bytes(config)
    index = json.loads((lay / "index.json").read_bytes())
    image = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_bytes())
    image["config"] = {"mediaType": CONFIG_MEDIA_TYPE, "digest": f"sha256:{cdigest}",
                       "size": len(config)}  # fmt: skip
    image["layers"] = [
        {"mediaType": FILE_MEDIA_TYPE, "digest": f"sha256:{f['sha256']}",
         "size": f["size"] if layer_sizes else len(filled.objects.path(f["sha256"]).read_bytes()),
         "annotations": {"org.opencontainers.image.title": f["path"]}}
        for f in doc["files"]
    ]  # fmt: skip
    image["annotations"].update({"org.opencontainers.image.version": "9.9.9",
                                 "io.mreg.id": cdigest})  # fmt: skip
    data = json.dumps(image).encode()
    idigest = hash_bytes(data)
    (blobs / idigest).write_bytes(data)
    index["manifests"][0].update(digest=f"sha256:{idigest}", size=len(data))
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "9.9.9"
    (lay / "index.json").write_text(json.dumps(index))
    return lay


@pytest.mark.parametrize("case", ["dotdot", "git", "file and directory"])
def test_unpack_refuses_an_oci_layout_whose_manifest_has_bad_paths(
    filled, tmp_path, run_mreg, case
):
    lay = _layout(filled, run_mreg, tmp_path, _doc(filled, _files_of(case)))
    _refused_unpack(run_mreg, tmp_path, lay, 1, "malformed manifest")


# -- register, verify, fsck, get ---------------------------------------------------------------


def test_register_refuses_git_and_store_directories_and_file_dir_clashes(
    filled, model_dir, tmp_path, run_mreg
):
    before = snapshot(filled.root)
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    res = run_mreg("register", "fraud", str(model_dir), "--no-code", "-V", "2.0.0")
    assert "'.git' segment is reserved" in assert_one_line_error(res, 2)
    (model_dir / ".git" / "HEAD").unlink()
    (model_dir / ".git").rmdir()
    # a file `deep` next to a directory holding deep/inner.bin: no directory can hold both
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "deep").write_bytes(b"a file named deep")
    res = run_mreg("register", "fraud", str(model_dir / "sub"), str(clash / "deep"), "--no-code")
    assert "both a file and the directory" in assert_one_line_error(res, 2)
    assert snapshot(filled.root) == before


def _plant_local(store: Store, doc: dict[str, Any], version: str = "2.0.0") -> Path:
    """A manifest written into the store behind mreg's back (a hand edit, a bad copy)."""
    path = store.manifest_path("fraud", version)
    path.write_bytes(dump({**doc, "version": version}))
    return path


@pytest.mark.parametrize("case", ["dotdot", "git", "duplicate", "file and directory"])
def test_verify_and_fsck_report_a_stored_manifest_with_bad_paths(filled, run_mreg, case):
    _plant_local(filled, _doc(filled, _files_of(case)))
    before = snapshot(filled.root)
    res = run_mreg("verify")
    assert res.returncode == 1 and "versions/2.0.0.yaml" in res.stdout + res.stderr, res
    assert "malformed manifest" in res.stdout + res.stderr, res
    res = run_mreg("fsck", "--json")
    assert res.returncode == 1, res
    (finding,) = [f for f in res.json()["findings"] if f["severity"] == "error"]
    assert finding["kind"] == "bad-manifest"
    assert finding["path"] == "models/fraud/versions/2.0.0.yaml"
    assert "malformed manifest" in assert_one_line_error(
        run_mreg("get", "fraud@2.0.0", "-o", "o"), 1
    )
    assert snapshot(filled.root) == before


# == 3. a manifest's sizes are its objects' ====================================================


@pytest.mark.parametrize("claim", [HUGE, 1, 0])
def test_pull_refuses_a_size_that_is_not_the_objects_already_here(
    filled, tmp_path, run_mreg, claim
):
    # the object is fraud@1.0.0's, which the clone already has: nothing is downloaded, the
    # manifest is checked against the object it has
    remote, other = _remote(filled, tmp_path)
    _plant(remote, _doc(filled, size=claim))
    _refused_pull(run_mreg, other, f"the manifest says {claim}")


@pytest.mark.parametrize("claim", [HUGE, 3])
def test_pull_refuses_a_size_that_is_not_the_received_objects(filled, tmp_path, run_mreg, claim):
    # a new 10-byte object the clone does not have: refused as it is received, not stored
    remote, other = _remote(filled, tmp_path)
    data = b"0123456789"
    digest = hash_bytes(data)
    (remote / "objects" / digest[:2]).mkdir(exist_ok=True)
    (remote / "objects" / digest[:2] / digest).write_bytes(data)
    doc = _doc(filled)
    doc["files"] = [{**doc["files"][0], "sha256": digest, "size": claim}]
    _plant(remote, doc)
    _refused_pull(run_mreg, other, f"has 10 bytes, but the manifest says {claim}")
    assert not other.objects.has(digest)


def test_unpack_refuses_a_size_lie_in_a_bundle(filled, tmp_path, run_mreg):
    # members as long as their object: the manifest's size is the lie
    evil = _bundle(filled, tmp_path, _doc(filled, size=HUGE))
    _refused_unpack(run_mreg, tmp_path, evil, 1, f"the manifest says {HUGE}")
    # members as long as the manifest says (here: shorter than the object): wrong bytes
    evil = _bundle(filled, tmp_path, _doc(filled, size=10), sizes=True)
    _refused_unpack(run_mreg, tmp_path, evil, 1, "is corrupt")


@pytest.mark.parametrize("layer_sizes", [True, False])
def test_unpack_refuses_a_size_lie_in_an_oci_layout(filled, tmp_path, run_mreg, layer_sizes):
    lay = _layout(filled, run_mreg, tmp_path, _doc(filled, size=HUGE), layer_sizes=layer_sizes)
    _refused_unpack(run_mreg, tmp_path, lay, 1, str(HUGE))


@pytest.mark.parametrize("quick", [False, True])
def test_verify_and_fsck_report_a_size_lie_as_a_manifest_error(filled, run_mreg, quick):
    _plant_local(filled, _doc(filled, size=HUGE))
    before = snapshot(filled.root)
    flag = ["--quick"] if quick else []
    res = run_mreg("fsck", "--json", *flag)
    assert res.returncode == 1, res
    errors = [f for f in res.json()["findings"] if f["severity"] == "error"]
    # the object is intact (its content is its name): the manifest is what is wrong
    assert [(f["kind"], f["path"]) for f in errors] == [
        ("bad-manifest", "models/fraud/versions/2.0.0.yaml")
    ], errors
    assert f"says {HUGE} bytes" in errors[0]["message"]
    res = run_mreg("verify", *(["--no-objects"] if quick else []))
    assert res.returncode == 1 and f"says {HUGE} bytes" in res.stdout + res.stderr, res
    res = run_mreg("fsck", "--repair")
    assert res.returncode == 1, res
    assert filled.objects.verify(filled.resolve("fraud@1.0.0").files[0].sha256)
    assert snapshot(filled.root) == before


# == 9. pack --format oci into a layout with a malformed index.json ============================


@pytest.mark.parametrize(
    "index",
    [b"", b"not json", b"[]", b"null", b'{"manifests": {}}', b'{"manifests": [5]}',
     b'{"manifests": [{"annotations": []}]}', b"[" * 100_000, b"\xff\xfe"],
)  # fmt: skip
def test_pack_oci_into_a_layout_with_a_malformed_index(filled, run_mreg, tmp_path, index):
    lay = tmp_path / "work" / "lay"
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    (lay / "index.json").write_bytes(index)
    before, lay_before = snapshot(filled.root), _tree(lay)
    res = run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay")
    assert "index.json: not a readable OCI image index" in assert_one_line_error(res, 1)
    assert snapshot(filled.root) == before and _tree(lay) == lay_before


def test_pack_oci_into_a_layout_whose_index_is_a_fifo(filled, run_mreg, tmp_path):
    lay = tmp_path / "work" / "lay"
    ok(run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay"))
    (lay / "index.json").unlink()
    os.mkfifo(lay / "index.json")  # reading it would block forever
    res = run_mreg("pack", "fraud@1.0.0", "--format", "oci", "-o", "lay")
    assert "not a readable OCI image index" in assert_one_line_error(res, 1)
