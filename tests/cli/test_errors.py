"""Bad input: a one-line error, the documented exit code, and a store left byte-for-byte as it was.

Exit codes: 0 ok; 1 failure (conflict, failed gate, refused transition, integrity problem,
lock timeout); 2 usage or invalid input (including names that do not exist, no store).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput
from tests.cli.helpers import assert_one_line_error, make_writable, ok
from tests.conftest import snapshot

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
root_skip = pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")


@pytest.fixture
def base(tmp_path: Path, store: Store) -> Store:
    """Model `m` 1.0.0 in production, plus input files under tmp_path/in."""
    inputs = tmp_path / "in"
    (inputs / "empty-dir").mkdir(parents=True)
    (inputs / "model.onnx").write_bytes(b"weights v1")
    (inputs / "other.onnx").write_bytes(b"other weights")
    (inputs / "broken.yaml").write_text("lr: [0.1\n")
    store.register(
        "m",
        [inputs / "model.onnx"],
        version="1.0.0",
        params={"lr": 0.1},
        metrics={"test": {"f1": 0.9}},
        detect_code=False,
    )
    store.promote("m@1.0.0", "production")
    return store


def case(id: str, args: list[str], code: int, needle: str, marks=()):
    """One row of the table: argv ('{in}' is the inputs directory), exit code, message part."""
    return pytest.param(args, code, needle, id=id, marks=marks)


F = "{in}/model.onnx"  # an existing input file
N = "{in}/other.onnx"  # another one, not in the store yet

CASES = [
    # unknown model, version, alias: exit 2
    case("unknown-model-show", ["show", "nope"], 2, "no model named 'nope'"),
    case("unknown-model-promote", ["promote", "nope@1.0.0", "--to", "staging"], 2, "no model"),
    case("unknown-version-show", ["show", "m@9.9.9"], 2, "no such version"),
    case("unknown-version-get", ["get", "m@2.0.0", "--out", "{in}/out"], 2, "no such version"),
    case("unknown-alias-show", ["show", "m@canary"], 2, "no such alias"),
    # invalid semver: exit 2
    case("semver-two-parts", ["register", "m", N, "-V", "1.0"], 2, "invalid version '1.0'"),
    case("semver-build-metadata", ["register", "m", N, "-V", "1.0.0+b1"], 2, "build metadata"),
    case("semver-in-ref", ["show", "m@1.2"], 2, "invalid version '1.2'"),
    # an existing version with other content: exit 1
    case(
        "existing-version-other-content", ["register", "m", N, "-V", "1.0.0"], 1, "already exists"
    ),
    # missing inputs: exit 2
    case("missing-file", ["register", "m", "{in}/missing.onnx"], 2, "no such file"),
    case("missing-data", ["register", "m", N, "--data", "{in}/nodata"], 2, "no such file"),
    case("missing-params-file", ["register", "m", N, "--params-file", "{in}/p.yaml"], 2, "no such"),
    case("missing-code-dir", ["register", "m", N, "--code", "{in}/nocode"], 2, "no such directory"),
    case("empty-directory", ["register", "m", "{in}/empty-dir"], 2, "nothing to register"),
    case(
        "unreadable-file", ["register", "m", "{in}/secret.onnx"], 2, "cannot read", marks=root_skip
    ),
    # unsafe names: exit 2
    case("name-dotdot", ["register", "../x", F], 2, "invalid model name"),
    case("name-absolute", ["register", "/abs", F], 2, "invalid model name"),
    case("name-two-slashes", ["register", "a/b/c", F], 2, "invalid model name"),
    case("name-uppercase", ["register", "UPPER", F], 2, "invalid model name"),
    case("name-newline", ["register", "a\nb", F], 2, "invalid model name"),
    case("name-unsafe-in-ref", ["show", "../../etc@1.0.0"], 2, "invalid model name"),
    case("alias-unsafe", ["promote", "m@1.0.0", "--to", "../prod"], 2, "invalid alias"),
    case("alias-latest-reserved", ["promote", "m@1.0.0", "--to", "latest"], 2, "reserved"),
    # malformed --param / --metric: exit 2
    case("param-no-equals", ["register", "m", N, "--param", "noequals"], 2, "invalid --param"),
    case("param-empty-key", ["register", "m", N, "--param", "=v"], 2, "invalid --param"),
    case("metric-no-split", ["register", "m", N, "--metric", "f1=0.9"], 2, "SPLIT.NAME"),
    case("metric-not-a-number", ["register", "m", N, "--metric", "test.f1=abc"], 2, "not a number"),
    case("metric-infinite", ["register", "m", N, "--metric", "test.f1=.inf"], 2, "finite"),
    case(
        "params-file-bad-yaml",
        ["register", "m", N, "--params-file", "{in}/broken.yaml"],
        2,
        "broken.yaml:",
    ),
    # other invalid input
    case("bump-unknown", ["register", "m", N, "--bump", "huge"], 2, "invalid --bump"),
    case("where-malformed", ["list", "--where", "f1 >> 0.9"], 2, "invalid condition"),
    case("tag-invalid", ["tag", "m@1.0.0", "bad tag"], 2, "invalid tag"),
]


@pytest.mark.parametrize(("args", "code", "needle"), CASES)
def test_bad_input_one_line_error_exit_code_store_unchanged(
    tmp_path, base, run_mreg, args, code, needle
):
    inputs = tmp_path / "in"
    if any("secret.onnx" in a for a in args):
        secret = inputs / "secret.onnx"
        secret.write_bytes(b"unreadable")
        secret.chmod(0)
    before = snapshot(base.root)
    res = run_mreg(*(a.replace("{in}", str(inputs)) for a in args))
    line = assert_one_line_error(res, code)
    assert needle in line, res
    assert snapshot(base.root) == before
    assert not (inputs / "out").exists()


def test_nul_in_a_name_is_refused(base):
    # NUL cannot travel through argv (the OS refuses it), so check the library entry points
    before = snapshot(base.root)
    for call in (
        lambda: base.register("a\x00b", [base.root.parent.parent / "in" / "model.onnx"]),
        lambda: base.resolve("m\x00@1.0.0"),
        lambda: base.promote("m@1.0.0", "prod\x00uction"),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert snapshot(base.root) == before


def test_metrics_file_scalar_split_with_metric_flag(tmp_path, base, run_mreg):
    mfile = tmp_path / "in" / "metrics.yaml"
    mfile.write_text("test: 0.9\n")
    before = snapshot(base.root)
    res = run_mreg(
        "register",
        "m",
        str(tmp_path / "in" / "other.onnx"),
        "--metrics-file",
        str(mfile),
        "--metric",
        "test.f1=0.8",
    )
    assert snapshot(base.root) == before
    assert_one_line_error(res, 2)


def test_namespace_conflict_leaves_store_unchanged(tmp_path, store, run_mreg):
    f = tmp_path / "in" / "a.onnx"
    f.parent.mkdir()
    f.write_bytes(b"team model")
    store.register("team", [f], version="1.0.0", detect_code=False)
    g = tmp_path / "in" / "b.onnx"
    g.write_bytes(b"new bytes for team/x")
    before = snapshot(store.root)
    line = assert_one_line_error(run_mreg("register", "team/x", str(g), "-V", "1.0.0"), 1)
    assert "already a model" in line
    assert snapshot(store.root) == before


def test_non_utf8_message_is_refused_cleanly(tmp_path, base, run_mreg):
    before = snapshot(base.root)
    message = b"latin-1 caf\xe9".decode("utf-8", "surrogateescape")
    res = run_mreg("register", "m", str(tmp_path / "in" / "other.onnx"), "-m", message)
    assert snapshot(base.root) == before
    assert_one_line_error(res, 2)


# -- a damaged store ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"{{{ not yaml at all\n", b"kind: Alias\nname: m\n"],
    ids=["bad-yaml", "wrong-kind"],
)
def test_corrupted_manifest_show_exits_1_with_one_line(base, run_mreg, garbage):
    manifest = base.manifest_path("m", "1.0.0")
    make_writable(manifest)
    manifest.write_bytes(garbage)
    before = snapshot(base.root)
    line = assert_one_line_error(run_mreg("show", "m@1.0.0"), 1)
    assert "manifest" in line or str(manifest) in line
    assert snapshot(base.root) == before


def test_corrupted_manifest_other_commands(base, run_mreg):
    manifest = base.manifest_path("m", "1.0.0")
    make_writable(manifest)
    manifest.write_bytes(b"garbage: [\n")
    before = snapshot(base.root)
    for args in (["show", "m@production"], ["list", "m"], ["get", "m", "--out", "out"]):
        assert_one_line_error(run_mreg(*args), 1)
    assert snapshot(base.root) == before
    assert not (base.root.parent / "out").exists()


# -- finding the store ----------------------------------------------------------------------


def test_no_store_found(tmp_path, run_mreg):
    elsewhere = tmp_path / "elsewhere" / "deep"
    line = assert_one_line_error(run_mreg("list", cwd=elsewhere), 2)
    assert "mreg init" in line
    # --store naming a directory that holds no store
    line = assert_one_line_error(run_mreg("show", "m", "--store", str(elsewhere)), 2)
    assert "mreg init" in line
    assert not (elsewhere / ".modelreg").exists()


def test_store_discovery_and_overrides(tmp_path, base, run_mreg):
    other = Store.init(tmp_path / "other")
    f = tmp_path / "in" / "other.onnx"
    other.register("only-in-other", [f], version="0.1.0", detect_code=False)

    def models(*args: str, **kw) -> list[str]:
        return [m["name"] for m in ok(run_mreg("list", "--json", *args, cwd=sub, **kw)).json()]

    # discovery walks up from a subdirectory to tmp_path/work/.modelreg
    sub = tmp_path / "work" / "a" / "b"
    assert models() == ["m"]
    # --store and MREG_STORE override discovery; --store wins over MREG_STORE
    assert models("--store", str(other.root.parent)) == ["only-in-other"]
    env = {"MREG_STORE": str(other.root)}
    assert models(env=env) == ["only-in-other"]
    assert models("--store", str(base.root.parent), env=env) == ["m"]
