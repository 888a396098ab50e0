"""End-to-end tests of `mreg register`, run as a real subprocess against a real store."""

from __future__ import annotations

import hashlib
import json
import platform
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from modelreg import Store
from tests.cli.helpers import assert_one_line_error, ok
from tests.conftest import git, snapshot


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def manifest_doc(store: Store, name: str, version: str) -> dict:
    return yaml.safe_load(store.manifest_path(name, version).read_bytes())


# -- files, directories, formats -------------------------------------------------------------


def test_register_files_and_directory_keeps_layout_and_detects_formats(tmp_path, store, run_mreg):
    src = tmp_path / "inputs"
    contents = {
        "encoder.onnx": b"onnx graph",
        "scaler.joblib": b"joblib scaler",
        "bundle/weights.safetensors": b"safetensors blob",
        "bundle/sub/head.pt": b"torch head",
        "bundle/sub/deep/tok.pkl": b"pickled tokenizer",
        "bundle/sub/graph.pb": b"tf graph",
        "bundle/vocab.bin": b"unknown format",
    }
    for rel, data in contents.items():
        write(src / rel, data)

    res = ok(
        run_mreg(
            "register",
            "clf",
            str(src / "encoder.onnx"),
            str(src / "scaler.joblib"),
            str(src / "bundle"),
            "--json",
        )
    )
    out = res.json()

    # the first version without --version/--bump is 0.1.0
    assert (out["name"], out["version"], out["created"]) == ("clf", "0.1.0", True)
    # files of a directory keep their layout relative to it; given files keep their name
    expected = {
        "encoder.onnx": ("encoder.onnx", "onnx"),
        "scaler.joblib": ("scaler.joblib", "joblib"),
        "weights.safetensors": ("bundle/weights.safetensors", "safetensors"),
        "sub/head.pt": ("bundle/sub/head.pt", "pytorch"),
        "sub/deep/tok.pkl": ("bundle/sub/deep/tok.pkl", "pickle"),
        "sub/graph.pb": ("bundle/sub/graph.pb", "tensorflow"),
        "vocab.bin": ("bundle/vocab.bin", None),
    }
    got = {f["path"]: f for f in out["files"]}
    assert sorted(got) == sorted(expected)
    for path, (rel, fmt) in expected.items():
        data = contents[rel]
        assert got[path]["format"] == fmt, path
        assert got[path]["sha256"] == sha(data), path
        assert got[path]["size"] == len(data), path
    assert out["size"] == sum(len(d) for d in contents.values())

    # the manifest on disk: schema/kind header, read-only, its digest is the version's id
    mpath = store.manifest_path("clf", "0.1.0")
    raw = mpath.read_bytes()
    assert sha(raw) == out["id"]
    assert stat.S_IMODE(mpath.stat().st_mode) & 0o222 == 0
    doc = yaml.safe_load(raw)
    assert (doc["schema"], doc["kind"]) == ("mreg/v1", "ModelVersion")
    assert {f["path"]: f["sha256"] for f in doc["files"]} == {
        p: f["sha256"] for p, f in got.items()
    }


def test_reregister_identical_is_noop_other_content_conflicts(
    tmp_path, store, run_mreg, model_file
):
    f = model_file("model.onnx", b"v1 weights")
    first = store.register(
        "clf",
        [f],
        version="1.0.0",
        params={"lr": 0.01},
        metrics={"test": {"f1": 0.9}},
        detect_code=False,
    )
    before = snapshot(store.root)

    # same files, params and metrics (message and tags are not content): a no-op, exit 0
    res = ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.0.0",
            "-p",
            "lr=0.01",
            "--metric",
            "test.f1=0.9",
            "-m",
            "CI re-run",
            "--json",
        )
    )
    out = res.json()
    assert out["created"] is False
    assert (out["version"], out["id"]) == ("1.0.0", first.version.id)
    assert snapshot(store.root) == before

    # other bytes under the same version: exit 1, nothing written (no object, no audit entry)
    other = model_file("model.onnx.new", b"v2 weights")
    line = assert_one_line_error(run_mreg("register", "clf", str(other), "-V", "1.0.0"), 1)
    assert "clf@1.0.0 already exists" in line
    # same bytes but other params: also other content
    res = run_mreg(
        "register", "clf", str(f), "-V", "1.0.0", "-p", "lr=0.02", "--metric", "test.f1=0.9"
    )
    assert "already exists" in assert_one_line_error(res, 1)
    assert snapshot(store.root) == before


# -- versions ---------------------------------------------------------------------------------


def test_bump_major_minor_patch_and_default(store, run_mreg, model_file):
    f = model_file()
    seen = []
    for extra in ([], ["--bump", "major"], ["--bump", "minor"], ["--bump", "patch"], []):
        out = ok(run_mreg("register", "clf", str(f), *extra, "--json")).json()
        assert out["created"] is True
        seen.append(out["version"])
    assert seen == ["0.1.0", "1.0.0", "1.1.0", "1.1.1", "1.2.0"]
    assert [i.version.version for i in store.versions("clf")] == seen


def test_prerelease_versions_order_by_semver(store, run_mreg, model_file):
    f = model_file()
    store.register("clf", [f], version="1.0.0", detect_code=False)
    store.register("clf", [f], version="2.0.0-rc.2", detect_code=False)
    store.register("clf", [f], version="2.0.0-alpha", detect_code=False)
    out = ok(run_mreg("register", "clf", str(f), "-V", "2.0.0-rc.10", "--json")).json()
    assert (out["version"], out["created"]) == ("2.0.0-rc.10", True)

    rows = ok(run_mreg("list", "clf", "--json")).json()
    # numeric pre-release identifiers compare as numbers: rc.2 < rc.10; pre-releases < release
    assert [r["version"] for r in rows] == ["1.0.0", "2.0.0-alpha", "2.0.0-rc.2", "2.0.0-rc.10"]
    assert store.resolve("clf@latest").version == "2.0.0-rc.10"
    store.register("clf", [f], version="2.0.0", detect_code=False)
    assert store.resolve("clf").version == "2.0.0"


def test_build_metadata_is_refused(store, run_mreg, model_file):
    f = model_file()
    before = snapshot(store.root)
    line = assert_one_line_error(run_mreg("register", "clf", str(f), "-V", "1.0.0+build.7"), 2)
    assert "build metadata" in line
    assert snapshot(store.root) == before


# -- params and metrics -------------------------------------------------------------------------


def test_params_and_metrics_from_flags_and_files(tmp_path, store, run_mreg, model_file):
    f = model_file()
    params_yaml = write(
        tmp_path / "p.yaml", "lr: 0.1\noptim:\n  name: sgd\n  momentum: 0.9\nlayers: [64, 32]\n"
    )
    metrics_json = write(
        tmp_path / "m.json", json.dumps({"test": {"f1": 0.88, "auc": 0.95}, "train": {"loss": 1}})
    )
    ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.0.0",
            "--params-file",
            str(params_yaml),
            "--param",
            "lr=0.01",
            "-p",
            "optim.name=adam",
            "-p",
            "epochs=10",
            "-p",
            "note=baseline run",
            "--metrics-file",
            str(metrics_json),
            "--metric",
            "test.f1=0.91",
            "--metric",
            "validation.f1=0.9",
        )
    )
    mv = store.resolve("clf@1.0.0")
    # command-line values override the file; dotted keys nest; values are typed scalars
    assert mv.params == {
        "lr": 0.01,
        "optim": {"name": "adam", "momentum": 0.9},
        "layers": [64, 32],
        "epochs": 10,
        "note": "baseline run",
    }
    assert mv.metrics == {
        "test": {"f1": 0.91, "auc": 0.95},
        "train": {"loss": 1.0},
        "validation": {"f1": 0.9},
    }

    # the other way round: JSON params, YAML metrics
    params_json = write(tmp_path / "p.json", json.dumps({"lr": 0.5, "seed": 7}))
    metrics_yaml = write(tmp_path / "m.yaml", "test:\n  f1: 0.8\n")
    ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.1.0",
            "--params-file",
            str(params_json),
            "--metrics-file",
            str(metrics_yaml),
        )
    )
    doc = manifest_doc(store, "clf", "1.1.0")
    assert doc["params"] == {"lr": 0.5, "seed": 7}
    assert doc["metrics"] == {"test": {"f1": 0.8}}


# -- lineage: data, requirements, code, author ------------------------------------------------


def test_data_lineage_hashes_local_paths_and_records_uris(tmp_path, store, run_mreg, model_file):
    f = model_file()
    data_file = write(tmp_path / "data" / "train.csv", b"a,b\n1,2\n")
    ds = tmp_path / "dataset"
    parts = {"part-0.parquet": b"rows 0", "nested/part-1.parquet": b"rows 1 and more"}
    for rel, data in parts.items():
        write(ds / rel, data)
    ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.0.0",
            "--data",
            str(data_file),
            "--data",
            str(ds),
            "--data",
            "s3://bucket/train/2024-06.parquet",
            "--data",
            "https://example.com/data.csv?v=2",
        )
    )
    refs = {d.uri: d for d in store.resolve("clf@1.0.0").data}
    assert list(refs) == [
        str(data_file),
        str(ds),
        "s3://bucket/train/2024-06.parquet",
        "https://example.com/data.csv?v=2",
    ]
    one = refs[str(data_file)]
    assert (one.kind, one.sha256, one.size, one.files) == (
        "path",
        sha(b"a,b\n1,2\n"),
        8,
        1,
    )
    tree = hashlib.sha256()
    for rel in sorted(parts):
        tree.update(f"{rel}\0{sha(parts[rel])}\n".encode())
    d = refs[str(ds)]
    assert (d.kind, d.sha256, d.size, d.files) == (
        "path",
        tree.hexdigest(),
        sum(len(b) for b in parts.values()),
        2,
    )
    for uri in ("s3://bucket/train/2024-06.parquet", "https://example.com/data.csv?v=2"):
        assert (refs[uri].kind, refs[uri].sha256) == ("uri", None)
    # local data is hashed, never copied into the store
    assert not store.objects.has(sha(b"a,b\n1,2\n"))


def test_requirements_are_stored_and_parsed(tmp_path, store, run_mreg, model_file):
    f = model_file()
    text = "# pinned\nnumpy==1.26.4\n\nscikit-learn>=1.4  # the model\ntorch\n"
    req = write(tmp_path / "requirements.txt", text)
    ok(run_mreg("register", "clf", str(f), "-V", "1.0.0", "--requirements", str(req)))
    deps = store.resolve("clf@1.0.0").dependencies
    assert deps is not None
    assert deps.packages == ("numpy==1.26.4", "scikit-learn>=1.4", "torch")
    assert deps.python == platform.python_version()
    assert deps.requirements is not None
    assert deps.requirements.sha256 == sha(text.encode())
    assert deps.requirements.path == "requirements.txt"
    # the file itself is kept in the store, byte for byte
    assert store.objects.path(deps.requirements.sha256).read_bytes() == text.encode()


def store_bytes(store: Store) -> list[tuple[str, bytes]]:
    """Every file under .modelreg/ with its bytes, to grep for a secret."""
    return [
        (str(p.relative_to(store.root)), p.read_bytes())
        for p in sorted(store.root.rglob("*"))
        if p.is_file()
    ]


def test_requirements_formats_are_parsed_and_stored_as_given(tmp_path, store, run_mreg, model_file):
    f = model_file()
    env = (
        "name: fraud\n"
        "channels: [conda-forge]\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - numpy>=1.26\n"
        "  - pip:\n"
        "      - requests==2.31.0\n"
        "      - -e git+https://github.com/org/y.git#egg=y\n"
    )
    uv_lock = (
        'version = 1\nrequires-python = ">=3.11"\n\n'
        '[[package]]\nname = "demo"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n'
        '[[package]]\nname = "six"\nversion = "1.16.0"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
    )
    cases = [
        ("environment.yml", env, "conda-environment",
         ["python=3.11", "numpy>=1.26", "requests==2.31.0",
          "-e git+https://github.com/org/y.git#egg=y"]),
        ("uv.lock", uv_lock, "uv-lock", ["six==1.16.0"]),
        ("requirements.txt", "-e git+https://github.com/org/y.git@v1#egg=y\ntorch  # gpu\n",
         "requirements", ["-e git+https://github.com/org/y.git@v1#egg=y", "torch"]),
    ]  # fmt: skip
    for minor, (name, text, fmt, packages) in enumerate(cases):
        req = write(tmp_path / "reqs" / str(minor) / name, text)
        ok(run_mreg("register", "clf", str(f), "-V", f"1.{minor}.0", "--requirements", str(req)))
        deps = manifest_doc(store, "clf", f"1.{minor}.0")["dependencies"]
        assert deps["packages"] == packages, name
        entry = deps["requirements"]
        assert (entry["path"], entry["format"], entry["size"]) == (name, fmt, len(text.encode()))
        assert store.objects.path(entry["sha256"]).read_bytes() == text.encode()


def test_reregistering_with_the_same_requirements_is_a_noop(tmp_path, store, run_mreg, model_file):
    f = model_file()
    req = write(tmp_path / "environment.yml", "dependencies:\n  - numpy\n  - pip: [requests]\n")
    args = ("register", "clf", str(f), "-V", "1.0.0", "--requirements", str(req), "--json")
    first = ok(run_mreg(*args)).json()
    before = snapshot(store.root)
    again = ok(run_mreg(*args)).json()
    assert (again["created"], again["id"]) == (False, first["id"])
    assert snapshot(store.root) == before


CREDENTIAL_FILES = [
    (
        "requirements.txt",
        "numpy\n--index-url https://user:Tk-91xq-index@pypi.corp.example/simple\n",
        2,
    ),
    ("requirements.txt", "-e git+https://ghp_Tk91xqVCS@github.com/org/y.git#egg=y\n", 1),
    (
        "requirements.txt",
        "torch\n\npkg @ https://ci:Tk-91xq-direct@files.corp.example/pkg-1.0.whl\n",
        3,
    ),
    (
        "environment.yml",
        "channels:\n  - conda-forge\n  - https://conda.anaconda.org/t/Tk-91xq-chan/private\ndependencies: [numpy]\n",
        3,
    ),
    (
        "environment.yml",
        "channels: ['https://me:Tk-91xq-basic@conda.corp.example/main']\ndependencies: [numpy]\n",
        1,
    ),
    (
        "environment.yml",
        "dependencies:\n  - numpy\n  - pip:\n    - --extra-index-url https://u:Tk-91xq-pip@pypi.corp.example/simple\n",
        4,
    ),
    (
        "uv.lock",
        'version = 1\n[[package]]\nname = "x"\nversion = "1"\nsource = { registry = "https://u:Tk-91xq-uv@pypi.corp.example/simple" }\n',
        5,
    ),
]


@pytest.mark.parametrize(("name", "text", "line"), CREDENTIAL_FILES)
def test_a_credential_in_requirements_is_refused_and_never_stored(
    tmp_path, store, run_mreg, model_file, name, text, line
):
    f = model_file()
    secret = next(
        w for w in text.replace("/", " ").replace("@", " ").replace(":", " ").split() if "Tk" in w
    )
    req = write(tmp_path / "given" / name, text)
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "-V", "1.0.0", "--requirements", str(req))
    msg = assert_one_line_error(res, 2)
    assert f"{req}:{line}: holds a credential in a URL" in msg
    assert secret not in res.stderr + res.stdout
    assert snapshot(store.root) == before  # nothing written: no object, manifest or audit entry
    assert not [p for p, data in store_bytes(store) if secret.encode() in data]

    # the same file with the secret as an environment variable reference is stored as written
    fixed = text.replace(secret, "${PIP_TOKEN}")
    write(req, fixed)
    ok(run_mreg("register", "clf", str(f), "-V", "1.0.0", "--requirements", str(req)))
    files = store_bytes(store)
    assert any(fixed.encode() == data for _, data in files)
    assert not [p for p, data in files if secret.encode() in data]


def test_unknown_or_malformed_requirements_change_nothing(tmp_path, store, run_mreg, model_file):
    f = model_file()
    before = snapshot(store.root)
    cases = [
        ("pyproject.toml", "[project]\ndependencies = ['numpy']\n", "pyproject.toml: unknown format"),
        ("deps.txt", "name: fraud\ndependencies:\n  - numpy\n", "deps.txt:1: not a requirement"),
        ("environment.yml", "name: fraud\n", "environment.yml: not a conda environment file"),
        ("uv.lock", "version = 1\n[[package]\n", "uv.lock:2: not valid TOML"),
    ]  # fmt: skip
    for name, text, expected in cases:
        req = write(tmp_path / "bad" / name, text)
        res = run_mreg("register", "clf", str(f), "-V", "1.0.0", "--requirements", str(req))
        assert expected in assert_one_line_error(res, 2), name
    assert snapshot(store.root) == before


def test_code_lineage_from_a_real_git_repo(
    tmp_path, store, workdir, run_mreg, model_file, git_repo
):
    f = model_file()
    head = git(git_repo, "rev-parse", "HEAD")
    at = ("--store", str(workdir))

    # inside the work tree: commit and branch; an untracked file does not make it dirty
    (git_repo / "scratch.txt").write_text("untracked\n")
    ok(run_mreg("register", "clf", str(f), "-V", "1.0.0", *at, cwd=git_repo))
    code = store.resolve("clf@1.0.0").code
    assert code is not None
    assert (code.commit, code.branch, code.dirty) == (head, "main", False)
    assert Path(code.repo) == git_repo.resolve()

    # editing a tracked file makes the tree dirty
    (git_repo / "train.py").write_text("print('training, edited')\n")
    ok(run_mreg("register", "clf", str(f), "-V", "1.1.0", *at, cwd=git_repo))
    code = store.resolve("clf@1.1.0").code
    assert code is not None
    assert (code.commit, code.dirty) == (head, True)

    # --no-code inside the work tree records nothing
    ok(run_mreg("register", "clf", str(f), "-V", "1.2.0", "--no-code", *at, cwd=git_repo))
    assert store.resolve("clf@1.2.0").code is None
    # outside any work tree nothing is recorded either
    ok(run_mreg("register", "clf", str(f), "-V", "1.3.0"))
    assert store.resolve("clf@1.3.0").code is None

    # --code DIR from elsewhere; a new commit checked out detached; origin URL as the repo
    git(git_repo, "commit", "-q", "-am", "second")
    second = git(git_repo, "rev-parse", "HEAD")
    git(git_repo, "checkout", "-q", "--detach", "HEAD")
    git(git_repo, "remote", "add", "origin", "https://example.com/team/fraud.git")
    ok(run_mreg("register", "clf", str(f), "-V", "2.0.0", "--code", str(git_repo)))
    code = store.resolve("clf@2.0.0").code
    assert code is not None
    assert (code.commit, code.branch, code.dirty, code.repo) == (
        second,
        None,
        False,
        "https://example.com/team/fraud.git",
    )
    assert second != head

    # --code on a directory that is not a git work tree is refused, nothing written
    before = snapshot(store.root)
    nogit = tmp_path / "nogit"
    nogit.mkdir()
    line = assert_one_line_error(
        run_mreg("register", "clf", str(f), "-V", "3.0.0", "--code", str(nogit)), 2
    )
    assert "not inside a git work tree" in line
    assert snapshot(store.root) == before


def test_author_from_mreg_author_then_git_config(store, workdir, run_mreg, model_file, git_repo):
    f = model_file()
    ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.0.0",
            env={"MREG_AUTHOR": "Jane Doe <jane@example.com>"},
        )
    )
    assert store.resolve("clf@1.0.0").author == "Jane Doe <jane@example.com>"
    # without MREG_AUTHOR the git identity of the repository is used
    ok(
        run_mreg(
            "register",
            "clf",
            str(f),
            "-V",
            "1.1.0",
            "--no-code",
            "--store",
            str(workdir),
            cwd=git_repo,
            env={"MREG_AUTHOR": ""},
        )
    )
    assert store.resolve("clf@1.1.0").author == "Repo User <repo@example.com>"
    # the audit trail names the same actors
    actors = [(e.details["version"], e.actor) for e in store.log("clf")]
    assert actors == [
        ("1.0.0", "Jane Doe <jane@example.com>"),
        ("1.1.0", "Repo User <repo@example.com>"),
    ]


# -- the object store -------------------------------------------------------------------------


def test_identical_content_is_stored_once_and_objects_are_read_only(tmp_path, store, run_mreg):
    src = tmp_path / "inputs"
    shared = b"the same weights, registered three times"
    write(src / "a" / "model.onnx", shared)
    write(src / "b" / "renamed.pt", shared)
    write(src / "b" / "extra.bin", b"only in b")
    ok(run_mreg("register", "team/a", str(src / "a" / "model.onnx"), "-V", "1.0.0"))
    ok(run_mreg("register", "b", str(src / "b"), "-V", "1.0.0"))
    ok(run_mreg("register", "team/a", str(src / "a"), "-V", "1.1.0"))

    objects = sorted(p for p in (store.root / "objects").rglob("*") if p.is_file())
    assert [p.name for p in objects] == sorted([sha(shared), sha(b"only in b")])
    for p in objects:
        assert p.parent.name == p.name[:2]  # fanned out by digest prefix
        assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0, f"{p} is writable"
    # the real coreutils sha256sum agrees with every object's name
    proc = subprocess.run(
        ["sha256sum", *map(str, objects)], capture_output=True, text=True, check=True
    )
    sums = [line.split(maxsplit=1) for line in proc.stdout.splitlines()]
    assert len(sums) == len(objects)
    for (digest, path), obj in zip(sums, objects, strict=True):
        assert (Path(path), digest) == (obj, obj.name)


@pytest.mark.parametrize("kind", ["file-outside", "dir-inside"])
def test_symlink_inside_directory_is_refused(tmp_path, store, run_mreg, kind):
    d = tmp_path / "inputs" / "model"
    write(d / "weights.pt", b"w")
    if kind == "file-outside":
        secret = write(tmp_path / "secret.txt", b"outside the model directory")
        (d / "link.txt").symlink_to(secret)
    else:
        (d / "sub").mkdir()
        (d / "alias").symlink_to(d / "sub", target_is_directory=True)
    before = snapshot(store.root)
    line = assert_one_line_error(run_mreg("register", "clf", str(d), "-V", "1.0.0"), 2)
    assert "symbolic link" in line
    assert snapshot(store.root) == before
