"""Hostile input (issue 8): every case is refused with a clear error and the store is unchanged.

Covers names and paths that try to escape the store, symbolic links in registered
directories, YAML built to execute code or to exhaust memory or the stack, undecodable bytes,
bundles that escape or lie, and remotes that serve wrong or truncated bytes. "Unchanged" is
checked byte for byte with `snapshot` (every file's mode and SHA-256, every directory).
Finer bundle cases (each tar member kind) are in tests/test_bundle.py; this suite adds what
crosses several modules and the CLI's exit codes.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from modelreg import IntegrityError, InvalidInput, MregError, Store
from modelreg.bundle import HEADER, MANIFEST
from modelreg.hashing import hash_bytes
from modelreg.remote import Remote
from modelreg.yamlio import dump

from ..cli.helpers import assert_one_line_error, make_writable, ok
from ..conftest import snapshot

WEIGHTS = bytes(range(256)) * 64
VOCAB = b"a b c\n"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.onnx").write_bytes(WEIGHTS)
    (src / "sub" / "vocab.txt").write_bytes(VOCAB)
    return src


@pytest.fixture
def filled(store: Store, model_dir: Path) -> Store:
    """A store with fraud@1.0.0 in production."""
    store.register("fraud", [model_dir], version="1.0.0", detect_code=False)
    store.promote("fraud@1.0.0", "production")
    return store


def refused(
    store: Store, call, error: type[MregError] = MregError, match: str | None = None
) -> str:
    """Run `call`, which must raise `error`, and check the store did not change at all."""
    before = snapshot(store.root)
    with pytest.raises(error, match=match) as info:
        call()
    assert snapshot(store.root) == before
    return str(info.value)


# -- names and paths --------------------------------------------------------------------------

BAD_NAMES = [
    "../evil", "/etc/passwd", "a/../../b", "a/b/c", "..", ".", "a/", "/", "", "Fraud",
    "fraud\n", "fra\x00ud", "fraud/..", "team/.", "a\\b", "fraud.", "x" * 65, "caf\u00e9",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_model_names_are_refused_before_any_path_is_built(filled, model_dir, name):
    msg = refused(
        filled,
        lambda: filled.register(name, [model_dir], version="2.0.0", detect_code=False),
        InvalidInput,
    )
    assert "invalid model name" in msg


@pytest.mark.parametrize(
    "spec",
    ["fraud@../../config", "fraud@/etc/passwd", "fraud@1.0.0/../x", "../fraud@1.0.0",
     "fraud@prod\x00", "fraud@1.0.0+evil"],
)  # fmt: skip
def test_unsafe_refs_are_refused_by_reads_and_moves(filled, tmp_path, spec):
    refused(filled, lambda: filled.resolve(spec), InvalidInput)
    refused(filled, lambda: filled.promote(spec, "staging"), InvalidInput)
    refused(filled, lambda: filled.get(spec, tmp_path / "out"), InvalidInput)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("alias", ["../../config", "/abs", "a/b", "Prod", "latest", "", "1.0.0"])
def test_unsafe_alias_names_are_refused(filled, alias):
    refused(filled, lambda: filled.promote("fraud@1.0.0", alias), InvalidInput)


def test_cli_refuses_a_traversing_name_with_one_line_and_exit_2(filled, model_dir, run_mreg):
    before = snapshot(filled.root)
    res = run_mreg("register", "../../etc/evil", str(model_dir), "--no-code", "-V", "1.0.0")
    assert "invalid model name" in assert_one_line_error(res, 2)
    res = run_mreg("get", "fraud@../../config", "-o", "out")
    assert_one_line_error(res, 2)
    assert snapshot(filled.root) == before


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("new\nline.bin", "control characters"),
        ("back\\slash.bin", "relative POSIX path"),
        (os.fsdecode(b"\xff\xfe.bin"), "not valid UTF-8"),
    ],
)
def test_file_names_no_store_could_give_back_are_refused(filled, model_dir, filename, message):
    # A file name with a newline, a backslash or undecodable bytes used to be registered (or
    # crash with exit 70 after the objects were written): `mreg get` could never write it back.
    (model_dir / filename).write_bytes(b"payload")
    refused(
        filled,
        lambda: filled.register("fraud", [model_dir], version="2.0.0", detect_code=False),
        InvalidInput,
        message,
    )


# -- symbolic links and special files in registered directories -------------------------------


@pytest.mark.parametrize(
    "case",
    ["to a file outside", "to a directory outside", "to a file inside", "dangling", "loop"],
)
def test_symlinks_inside_a_registered_directory_are_refused(filled, model_dir, tmp_path, case):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_bytes(b"PRIVATE KEY")
    link = {
        "to a file outside": (model_dir / "sub" / "leak.txt", secret / "id_rsa"),
        "to a directory outside": (model_dir / "leakdir", secret),
        "to a file inside": (model_dir / "alias.onnx", model_dir / "model.onnx"),
        "dangling": (model_dir / "dangling", tmp_path / "nowhere"),
        "loop": (model_dir / "loop", model_dir / "loop"),
    }[case]
    link[0].symlink_to(link[1])
    msg = refused(
        filled,
        lambda: filled.register("fraud", [model_dir], version="2.0.0", detect_code=False),
        InvalidInput,
        "symbolic links",
    )
    assert str(link[0]) in msg
    assert not filled.objects.has(hash_bytes(b"PRIVATE KEY"))


def test_a_symlink_given_explicitly_is_followed(filled, tmp_path):
    # The documented choice: a link the user names on the command line is what they mean
    # (like `cp`, `tar` without -h, `git add`: the top level is followed); links found while
    # walking a directory are refused.
    real = tmp_path / "real.onnx"
    real.write_bytes(b"the real weights")
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    mv = filled.register("fraud", [link], version="2.0.0", detect_code=False).version
    assert [(f.path, f.sha256) for f in mv.files] == [
        ("link.onnx", hash_bytes(b"the real weights"))
    ]
    assert filled.verify().ok


def test_fifos_in_a_directory_are_refused_not_read(filled, model_dir):
    os.mkfifo(model_dir / "pipe")  # reading it would block the registration forever
    refused(
        filled,
        lambda: filled.register("fraud", [model_dir], version="2.0.0", detect_code=False),
        InvalidInput,
        "not a regular file",
    )


# -- YAML: tags, aliases, size, depth, encoding -----------------------------------------------

SENTINEL = "pwned-by-yaml"

HOSTILE_YAML = {
    "python tag": (
        f'!!python/object/apply:os.system ["touch {SENTINEL}"]\n'.encode(),
        "could not determine a constructor",
    ),
    "custom tag": (b"lr: !include /etc/passwd\n", "could not determine a constructor"),
    "billion laughs": (
        b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode()
            for i in range(8)
        ),
        "anchors and aliases",
    ),
    "scalar alias": (b"a: &x 1\nb: *x\n", "anchors and aliases"),
    # A few hundred KB of '[' used to overflow libyaml's recursive composer: SIGSEGV, no error.
    "deep flow nesting": (b"a: " + b"[" * 300_000 + b"]" * 300_000 + b"\n", "nested deeper"),
    "deep block nesting": (
        b"".join(b" " * i + b"k:\n" for i in range(100)) + b" " * 100 + b"k: 1\n",
        "nested deeper",
    ),
    "huge": (b"lr: '" + b"x" * (17 * 1024 * 1024) + b"'\n", "larger than 16 MiB"),
    "invalid UTF-8": (b"lr: caf\xe9\n", "not valid UTF-8"),
    "NUL byte": (b"lr: 1\x00\n", "character 6: control characters are not allowed"),
}


CRASHERS = {"deep flow nesting"}
"""Without the fix these kill the interpreter (SIGSEGV): they run in `mreg` subprocesses only."""


@pytest.mark.parametrize("case", [c for c in HOSTILE_YAML if c not in CRASHERS])
def test_hostile_params_files_are_refused(filled, model_dir, tmp_path, monkeypatch, case):
    data, message = HOSTILE_YAML[case]
    params = tmp_path / "params.yaml"
    params.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    from modelreg.yamlio import loads_data

    refused(
        filled,
        lambda: filled.register(
            "fraud",
            [model_dir],
            version="2.0.0",
            params=loads_data(params.read_bytes(), str(params)),
            detect_code=False,
        ),
        InvalidInput,
        message,
    )
    assert not (tmp_path / SENTINEL).exists()


def test_deeply_nested_json_is_refused_not_a_crash(filled, model_dir, tmp_path, run_mreg):
    deep = tmp_path / "params.json"
    deep.write_bytes(b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    before = snapshot(filled.root)
    res = run_mreg("register", "fraud", str(model_dir), "--no-code", "--params-file", str(deep))
    assert "nested deeper than 64" in assert_one_line_error(res, 2)
    assert snapshot(filled.root) == before


def test_cli_hostile_yaml_exits_2_and_runs_nothing(filled, model_dir, tmp_path, run_mreg):
    before = snapshot(filled.root)
    for case in ("python tag", "deep flow nesting", "billion laughs", "invalid UTF-8"):
        f = tmp_path / "params.yaml"
        f.write_bytes(HOSTILE_YAML[case][0])
        res = run_mreg("register", "fraud", str(model_dir), "--no-code", "--params-file", str(f))
        assert HOSTILE_YAML[case][1] in assert_one_line_error(res, 2), case
    assert not (tmp_path / "work" / SENTINEL).exists()
    assert snapshot(filled.root) == before


@pytest.mark.parametrize(
    ("relpath", "case"),
    [
        ("config.yaml", "python tag"),
        ("config.yaml", "deep flow nesting"),
        ("models/fraud/aliases/production.yaml", "python tag"),
        ("models/fraud/aliases/production.yaml", "invalid UTF-8"),
        ("models/fraud/versions/1.0.0.yaml", "billion laughs"),
        ("models/fraud/versions/1.0.0.yaml", "deep flow nesting"),
    ],
)
def test_hostile_yaml_inside_the_store_is_reported_as_damage(
    filled, run_mreg, tmp_path, relpath, case
):
    # Someone with write access plants a document that would run code or explode when
    # loaded; commands report the damage in one line (exit 1 or 2) and nothing runs.
    path = filled.root / relpath
    make_writable(path)
    path.write_bytes(HOSTILE_YAML[case][0])
    before = snapshot(filled.root)
    for args in (["show", "fraud@production"], ["promote", "fraud@1.0.0", "--to", "production"]):
        res = run_mreg(*args)
        assert res.returncode in (1, 2), res
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("mreg: error: "), res
    assert not (tmp_path / "work" / SENTINEL).exists()
    assert snapshot(filled.root) == before


def test_cli_arguments_that_are_not_utf8_are_refused(filled, model_dir, run_mreg):
    before = snapshot(filled.root)
    bad = os.fsdecode(b"fraud\xff")  # what the shell passes for undecodable argv bytes
    res = run_mreg("register", bad, str(model_dir), "--no-code")
    assert "invalid model name" in assert_one_line_error(res, 2)
    message = os.fsdecode(b"caf\xe9")
    res = run_mreg("register", "fraud", str(model_dir), "--no-code", "-m", message)
    assert "not valid UTF-8" in assert_one_line_error(res, 2)
    assert snapshot(filled.root) == before


# -- bundles ----------------------------------------------------------------------------------


def _tar(
    path: Path, members: list[tuple[str, bytes]], special: tarfile.TarInfo | None = None
) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if special is not None:
            tar.addfile(special)
    return path


def _bundle_parts(store: Store, tmp_path: Path) -> tuple[bytes, bytes, dict[str, bytes]]:
    bundle = store.pack("fraud@1.0.0", tmp_path / "good.tar").out
    with tarfile.open(bundle) as tar:
        parts = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return parts.pop(HEADER), parts.pop(MANIFEST), parts


def _forged(store: Store, rel: str) -> tuple[bytes, bytes]:
    """A self-consistent header and manifest whose file entry has the path `rel`."""
    mv = store.resolve("fraud@1.0.0")
    doc = mv.to_dict()
    doc["files"] = [{**doc["files"][0], "path": rel}]
    doc["version"] = "9.9.9"
    manifest = dump(doc)
    header = dump(
        {"schema": "mreg/v1", "kind": "Bundle", "format": 1, "name": "fraud",
         "version": "9.9.9", "id": hash_bytes(manifest), "mreg": "0.1.0"}
    )  # fmt: skip
    return header, manifest


def test_bundle_with_a_tampered_file_after_good_ones_changes_nothing(filled, tmp_path):
    # The tampered entry comes last: the good entries before it must not enter the store
    # either (they used to be committed as objects before the bad one was found).
    header, manifest, files = _bundle_parts(filled, tmp_path)
    assert list(files) == ["files/model.onnx", "files/sub/vocab.txt"]
    files["files/sub/vocab.txt"] = b"a b X\n"  # same size, one byte changed
    evil = _tar(tmp_path / "tampered.tar", [(HEADER, header), (MANIFEST, manifest), *files.items()])
    other = Store.init(tmp_path / "other")
    msg = refused(other, lambda: other.unpack(evil), IntegrityError, "corrupt")
    assert "files/sub/vocab.txt" in msg


@pytest.mark.parametrize("rel", ["../../escape.bin", "/etc/cron.d/evil", "a/../../b", "x\x1b[2J"])
def test_bundle_whose_manifest_names_an_escaping_path_is_refused(filled, tmp_path, rel):
    header, manifest = _forged(filled, rel)
    evil = _tar(
        tmp_path / "evil.tar",
        [(HEADER, header), (MANIFEST, manifest), (f"files/{rel}".replace("//", "/"), WEIGHTS)],
    )
    other = Store.init(tmp_path / "other")
    # Since issue 15 the manifest itself is refused as malformed (exit 1), wherever it comes
    # from: its paths are checked whenever a ModelVersion is built.
    refused(other, lambda: other.unpack(evil), IntegrityError, "malformed manifest: unsafe path")
    assert not (tmp_path / "escape.bin").exists()


@pytest.mark.parametrize(
    "header", [HOSTILE_YAML["python tag"][0], HOSTILE_YAML["billion laughs"][0], b"\xff\xfe"]
)
def test_bundle_with_a_hostile_header_is_refused(filled, tmp_path, header):
    _, manifest, files = _bundle_parts(filled, tmp_path)
    evil = _tar(tmp_path / "evil.tar", [(HEADER, header), (MANIFEST, manifest), *files.items()])
    other = Store.init(tmp_path / "other")
    refused(other, lambda: other.unpack(evil), IntegrityError)


def test_gzip_bomb_bundle_header_is_refused_before_it_is_read(filled, tmp_path):
    # 64 MiB of zeros compress to ~64 KB: the header entry's declared size is checked first.
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo(HEADER)
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 1024 * 1024
    other = Store.init(tmp_path / "other")
    refused(other, lambda: other.unpack(bomb), IntegrityError, "too large")


def test_cli_unpack_of_a_bundle_whose_header_nests_too_deep(filled, tmp_path, run_mreg):
    _, manifest, files = _bundle_parts(filled, tmp_path)
    header = HOSTILE_YAML["deep flow nesting"][0]
    evil = _tar(tmp_path / "deep.tar", [(HEADER, header), (MANIFEST, manifest), *files.items()])
    other = Store.init(tmp_path / "other")
    before = snapshot(other.root)
    res = run_mreg("unpack", str(evil), cwd=tmp_path / "other")
    assert "nested deeper than 64" in assert_one_line_error(res, 1)
    assert snapshot(other.root) == before


def test_bundle_cut_short_is_refused(filled, tmp_path):
    good = filled.pack("fraud@1.0.0", tmp_path / "good.tar").out
    data = good.read_bytes()
    with tarfile.open(good) as tar:
        last = tar.getmembers()[-1]
    other = Store.init(tmp_path / "other")
    # in the header, in the manifest's tar header, in the middle, one byte short of the end
    for cut in (100, 1536, len(data) // 2, last.offset_data + last.size - 1):
        short = tmp_path / f"short-{cut}.tar"
        short.write_bytes(data[:cut])
        refused(other, lambda short=short: other.unpack(short), MregError)
    assert other.models() == []


def test_cli_unpack_of_an_escaping_bundle(filled, tmp_path, run_mreg):
    header, manifest, _ = _bundle_parts(filled, tmp_path)
    link = tarfile.TarInfo("files/model.onnx")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    evil = _tar(tmp_path / "evil.tar", [(HEADER, header), (MANIFEST, manifest)], link)
    other = Store.init(tmp_path / "other")
    before = snapshot(other.root)
    res = run_mreg("unpack", str(evil), cwd=tmp_path / "other")
    assert "only regular files" in assert_one_line_error(res, 2)
    assert snapshot(other.root) == before


# -- remotes that serve wrong or truncated bytes ----------------------------------------------


def _pushed(filled: Store, tmp_path: Path) -> Path:
    remote = tmp_path / "remote"
    filled.remotes.add("origin", str(remote))
    filled.push()
    return remote


def _content(root: Path) -> dict[str, tuple[int, str]]:
    """The store's content: everything but the disposable remote-tracking cache and tmp/."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(("remotes", "tmp"))}


@pytest.mark.parametrize("fault", ["tampered", "truncated", "empty", "replaced", "longer"])
def test_pull_refuses_wrong_or_truncated_objects(filled, tmp_path, fault):
    remote = _pushed(filled, tmp_path)
    mv = filled.resolve("fraud@1.0.0")
    obj = remote / "objects" / mv.files[0].sha256[:2] / mv.files[0].sha256
    make_writable(obj)
    good = obj.read_bytes()
    obj.write_bytes(
        {
            "tampered": bytes([good[0] ^ 0xFF]) + good[1:],
            "truncated": good[: len(good) // 2],
            "empty": b"",
            "replaced": VOCAB,  # another object's bytes: valid content, wrong name
            "longer": good + b"appended",
        }[fault]
    )
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(remote))
    before = _content(other.root)
    result = other.pull()
    assert not result.ok and result.rejected, result
    assert mv.files[0].sha256[:12] in " ".join(result.rejected)
    rejected = " ".join(result.rejected)
    assert ("truncated" in rejected) == (fault in ("truncated", "empty", "replaced")), rejected
    after = _content(other.root)
    assert not other.objects.has(mv.files[0].sha256)
    assert other.models() == [] and not (other.root / "models" / "fraud").exists()
    changed = {k for k in {*before, *after} if before.get(k) != after.get(k)}
    # What may change: the audit trail, which a pull always merges (it is history, not
    # state), and verified objects received before the bad one (a re-run needs them).
    assert {k for k in changed if not k.startswith("objects/")} <= {
        "audit/log.jsonl",
        "audit/head.json",
    }
    assert all(other.objects.verify(d) for d in other.objects.iter_digests())
    assert other.verify().ok


def test_pull_refuses_a_manifest_whose_bytes_are_not_its_alias_id(filled, tmp_path):
    # Same name and version, other bytes: the remote's manifest no longer hashes to the id
    # its production alias recorded, so the alias is not taken and nothing names it.
    remote = _pushed(filled, tmp_path)
    manifest = remote / "models" / "fraud" / "versions" / "1.0.0.yaml"
    make_writable(manifest)
    manifest.write_bytes(manifest.read_bytes().replace(b"message: ''", b"message: evil"))
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(remote))
    result = other.pull()
    assert not result.ok, result
    assert not (other.root / "models" / "fraud" / "aliases" / "production.yaml").exists()
    assert other.verify().ok, other.verify().problems


@pytest.mark.parametrize("fault", ["tampered", "truncated"])
def test_serving_reader_never_caches_wrong_bytes(filled, tmp_path, fault):
    remote = _pushed(filled, tmp_path)
    mv = filled.resolve("fraud@1.0.0")
    f = next(f for f in mv.files if f.path == "model.onnx")
    obj = remote / "objects" / f.sha256[:2] / f.sha256
    make_writable(obj)
    good = obj.read_bytes()
    obj.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:] if fault == "tampered" else good[:1000])
    cache = tmp_path / "cache"
    reader = Remote(str(remote), cache_dir=cache)
    with pytest.raises(IntegrityError, match="truncated" if fault == "truncated" else "corrupt"):
        reader.artifact_path("fraud@production", "model.onnx")
    assert not reader.cache.has(f.sha256)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    obj.write_bytes(good)  # repaired upstream: now it is served
    assert reader.artifact_path("fraud@production", "model.onnx").read_bytes() == good


def test_cli_pull_of_a_tampered_remote_exits_1_and_names_the_object(filled, tmp_path, run_mreg):
    remote = _pushed(filled, tmp_path)
    f = filled.resolve("fraud@1.0.0").files[0]
    obj = remote / "objects" / f.sha256[:2] / f.sha256
    make_writable(obj)
    obj.write_bytes(bytes([obj.read_bytes()[0] ^ 0xFF]) + obj.read_bytes()[1:])
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(remote))
    res = run_mreg("pull", "--json", cwd=tmp_path / "other")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res
    out = res.json()
    assert not out["ok"] and any(f.sha256[:12] in r for r in out["rejected"])
    assert ok(run_mreg("verify", cwd=tmp_path / "other"))
