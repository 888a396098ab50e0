"""What model files declare, read at register (issue 20): real ONNX, GGUF, safetensors,
MLmodel and config.json files made here; shown, diffed, searched, and the interface gate."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelreg import Store
from modelreg.conditions import parse_filter
from modelreg.declared import Declared, interface_problems
from modelreg.errors import Conflict
from modelreg.filecards import read_safetensors
from modelreg.manifest import ModelVersion
from tests.cli.helpers import assert_one_line_error, ok
from tests.conftest import snapshot

onnx = pytest.importorskip("onnx")
gguf = pytest.importorskip("gguf")


# -- real files, made with the formats' own writers (or by their documented layout) ----------


def make_onnx(
    path: Path, width: int = 30, name: str = "features", elem: int = 1, weight: float = 0.5
) -> Path:
    """A one-MatMul ONNX model: input `name` [batch, width] -> `score` [batch, 1]."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(name, elem, ["batch", width])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 1], [weight] * width)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [name, "w"], ["score"])], "g", [x], [y], initializer=[w]
    )
    model = helper.make_model(
        graph, producer_name="mreg-tests", opset_imports=[helper.make_opsetid("", 17)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_gguf(path: Path) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)
    w.add_file_type(2)  # MOSTLY_Q4_0
    w.add_name("tiny")
    w.add_tensor("t", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_safetensors(path: Path, header: dict | None = None, data: bytes = b"\0" * 30) -> Path:
    """The format's documented layout: 8-byte little-endian header length, JSON, the bytes."""
    header = header or {
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F16", "shape": [3], "data_offsets": [24, 30]},
        "__metadata__": {"format": "pt"},
    }
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


MLMODEL = """\
flavors:
  python_function: {loader_module: mlflow.sklearn, python_version: 3.11.7}
  sklearn: {sklearn_version: 1.5.0, serialization_format: cloudpickle}
signature:
  inputs: '[{"type": "double", "name": "age", "required": true},
            {"type": "string", "name": "city", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]'
"""

HF_CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "id2label": {"0": "NEG", "1": "POS"},
}


class _Run:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = code, stdout, stderr

    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<mreg exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


@pytest.fixture
def run_mreg(workdir, monkeypatch):
    """`mreg ARGS` in-process through `main()` (the error funnel that sets exit codes), in
    the store's directory: a subprocess per command would import onnx each time (~1-3 s)."""
    import signal

    from typer.testing import CliRunner

    from modelreg.cli import main

    monkeypatch.chdir(workdir)

    def run(*args: str) -> _Run:
        handler = signal.getsignal(signal.SIGINT)
        with CliRunner().isolation() as (out, err, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                signal.signal(signal.SIGINT, handler)
                sys.stdout.flush()
                sys.stderr.flush()
            return _Run(code, out.getvalue().decode(), err.getvalue().decode())

    return run


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A directory with one file of each format a card is read from."""
    d = tmp_path / "bundle"
    make_onnx(d / "model.onnx")
    make_gguf(d / "model.gguf")
    make_safetensors(d / "model.safetensors")
    (d / "mlflow").mkdir()
    (d / "mlflow" / "MLmodel").write_text(MLMODEL)
    (d / "config.json").write_text(json.dumps(HF_CONFIG))
    (d / "weights.pkl").write_bytes(b"not read")
    return d


def test_register_reads_every_format_into_the_manifest(bundle, store, run_mreg):
    res = ok(run_mreg("register", "m", str(bundle), "--json"))
    out = res.json()
    assert out["notes"] == []
    files = out["declared"]["files"]
    assert set(files) == {"model.onnx", "model.gguf", "model.safetensors", "mlflow/MLmodel",
                          "config.json"}  # fmt: skip
    assert files["model.onnx"]["opsets"] == {"ai.onnx": 17}
    assert files["model.onnx"]["producer"] == "mreg-tests"
    assert files["model.onnx"]["inputs"] == [  # the initializer `w` is not an input
        {"name": "features", "type": "float32", "shape": ["batch", 30]}
    ]
    assert files["model.onnx"]["outputs"][0]["shape"] == ["batch", 1]
    assert files["model.gguf"] | {"version": 0} == {
        "format": "gguf", "architecture": "llama", "context_length": 4096, "file_type": "Q4_0",
        "name": "tiny", "parameters": 32, "tensors": 1, "version": 0,
    }  # fmt: skip
    assert files["model.safetensors"] == {
        "format": "safetensors", "tensors": 2, "parameters": 9, "dtypes": {"F16": 1, "F32": 1},
        "metadata": {"format": "pt"},
    }  # fmt: skip
    assert files["mlflow/MLmodel"] == {
        "format": "mlflow",
        "flavors": ["python_function", "sklearn"],
        "inputs": [
            {"name": "age", "type": "double", "shape": None},
            {"name": "city", "type": "string", "shape": None, "optional": True},
        ],
        "outputs": [{"name": "#0", "type": "float32", "shape": [None, 2]}],
    }
    assert files["config.json"] == {
        "format": "huggingface", "architectures": ["BertForSequenceClassification"],
        "model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
    }  # fmt: skip
    # the manifest on disk holds it, and passes the packaged JSON schema
    doc = yaml.safe_load(store.manifest_path("m", "0.1.0").read_bytes())
    assert doc["declared"]["files"] == files
    ok(run_mreg("validate", str(store.manifest_path("m", "0.1.0"))))
    # shown by `mreg show`, for people and machines
    shown = ok(run_mreg("show", "m@0.1.0", "--json")).json()
    assert shown["declared"]["files"]["model.gguf"]["context_length"] == 4096
    human = ok(run_mreg("show", "m@0.1.0")).stdout
    assert "input features" in human and "float32 [batch, 30]" in human
    assert "BertForSequenceClassification" in human


def test_diff_shows_a_changed_input_shape_and_type(tmp_path, store, run_mreg):
    make_onnx(tmp_path / "a" / "model.onnx", width=30)
    make_onnx(tmp_path / "b" / "model.onnx", width=32, elem=11)  # DOUBLE
    ok(run_mreg("register", "m", str(tmp_path / "a" / "model.onnx")))
    ok(run_mreg("register", "m", str(tmp_path / "b" / "model.onnx")))
    d = ok(run_mreg("diff", "m@0.1.0", "m@0.2.0", "--json")).json()
    assert d["declared"] == {
        "model.onnx: input features": {"a": "float32 [batch, 30]", "b": "float64 [batch, 32]"}
    }
    human = ok(run_mreg("diff", "m@0.1.0", "m@0.2.0")).stdout
    assert "declared" in human and "float64 [batch, 32]" in human


def test_list_where_searches_declared_fields(bundle, tmp_path, store, run_mreg):
    ok(run_mreg("register", "m", str(bundle)))
    ok(run_mreg("register", "m", str(make_onnx(tmp_path / "o" / "model.onnx"))))
    ok(run_mreg("register", "other", str(make_gguf(tmp_path / "g" / "x.gguf"))))

    def found(where: str) -> list[str]:
        res = ok(run_mreg("list", "--where", where, "--json"))
        return sorted(f"{r['name']}@{r['version']}" for r in res.json())

    assert found("declared.format = 'gguf'") == ["m@0.1.0", "other@0.1.0"]
    assert found("declared.onnx.opset >= 17") == ["m@0.1.0", "m@0.2.0"]
    assert found("declared.onnx.opset > 17") == []
    assert found("declared.gguf.context_length >= 4096 and declared.safetensors.dtype = F16") == [
        "m@0.1.0"
    ]
    assert found("declared.huggingface.model_type = bert") == ["m@0.1.0"]
    assert found("declared.mlflow.flavors = sklearn") == ["m@0.1.0"]
    assert found("declared.onnx.input = features and declared.format != gguf") == [
        "m@0.1.0", "m@0.2.0"
    ]  # fmt: skip
    assert found("declared.gguf.architecture LIKE 'lla%'") == ["m@0.1.0", "other@0.1.0"]
    # the same conditions without the index (what gates and `list` on a stale index run)
    mv = store.info("m@0.1.0").version
    for text, want in [("declared.format = safetensors", True), ("declared.format = tflite",
                       False), ("declared.safetensors.parameters == 9", True)]:  # fmt: skip
        assert all(c.holds(mv) for c in parse_filter(text)) is want, text


def test_interface_gate_refuses_a_changed_input_and_passes_the_same(tmp_path, store, run_mreg):
    def reg(folder: str, **kw: int) -> None:
        ok(run_mreg("register", "m", str(make_onnx(tmp_path / folder / "model.onnx", **kw))))

    ok(run_mreg("policy", "gate", "production", "signature == production"))
    reg("a", width=30)
    ok(run_mreg("promote", "m@0.1.0", "--to", "production"))  # no current version: passes
    reg("b", width=32)
    before = snapshot(store.root)
    res = run_mreg("promote", "m@0.2.0", "--to", "production")
    line = assert_one_line_error(res, 1)
    assert "interface == production" in line
    assert (
        "model.onnx: input 'features' shape [batch, 32] != production 0.1.0's [batch, 30]" in line
    )
    assert snapshot(store.root) == before  # the alias did not move
    # the same interface with other weights is fine; a renamed file is still paired
    path = make_onnx(tmp_path / "c" / "renamed.onnx", width=30, weight=0.25)
    ok(run_mreg("register", "m", str(path)))
    ok(run_mreg("promote", "m@0.3.0", "--to", "production"))
    # config.yaml's gates take it too, and a version without interface is refused there
    cfg = store.root / "config.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc["gates"] = {"staging": ["interface == production"]}
    cfg.write_text(yaml.safe_dump(doc))
    ok(run_mreg("register", "m", str(make_safetensors(tmp_path / "d" / "w.safetensors"))))
    line = assert_one_line_error(run_mreg("promote", "m@0.4.0", "--to", "staging"), 1)
    assert "renamed.onnx of production 0.3.0: no counterpart in this version" in line


def test_interface_comparison_rules():
    def d(**files: dict) -> Declared:
        return Declared(files)

    def onnx_card(*ios: dict) -> dict:
        return {"format": "onnx", "inputs": list(ios), "outputs": []}

    x = {"name": "x", "type": "float32", "shape": ["batch", 3]}
    assert interface_problems(d(a=onnx_card(x)), d(a=onnx_card(x | {"shape": ["n", 3]})), "p") == []
    assert interface_problems(d(a=onnx_card(x)), d(a=onnx_card(x | {"shape": [1, 3]})), "p") == [
        "a: input 'x' shape [batch, 3] != p's [1, 3]"
    ]
    assert interface_problems(d(a=onnx_card(x)), d(a=onnx_card(x | {"type": "int64"})), "p") == [
        "a: input 'x' type float32 != p's int64"
    ]
    opt = {"name": "o", "type": "string", "shape": None, "optional": True}
    assert interface_problems(d(a=onnx_card(x, opt)), d(a=onnx_card(x)), "p") == []
    assert interface_problems(d(a=onnx_card(x)), d(a=onnx_card(x, x | {"name": "y"})), "p") == [
        "a: input 'y' of p is gone"
    ]
    assert interface_problems(None, d(), "p")[0].startswith("cannot compare with p:")
    skipped = Declared({}, {"m.onnx": {"reason": "skipped", "detail": "install"}})
    assert "did not read m.onnx" in interface_problems(skipped, d(), "p")[0]
    assert interface_problems(d(), d(), "p") == []


def test_missing_extra_is_skipped_with_a_note(tmp_path, store):
    model = make_onnx(tmp_path / "in" / "model.onnx")
    make_gguf(tmp_path / "in" / "model.gguf")
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['gguf'] = None\n"
        "from modelreg.cli import main; sys.argv = ['mreg', *sys.argv[1:]]; main()"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=store.root.parent, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip

    res = run("register", "m", str(model.parent))
    assert res.returncode == 0, res
    assert "skipped: model.onnx (install modelreg[onnx] to read ONNX)" in res.stdout
    res = run("register", "m", str(model.parent), "--version", "0.1.0", "--json")
    assert res.returncode == 0, res
    assert json.loads(res.stdout)["notes"] == [
        "skipped: model.onnx (install modelreg[onnx] to read ONNX)"
    ]
    doc = yaml.safe_load(store.manifest_path("m", "0.1.0").read_bytes())
    assert doc["declared"]["unread"] == {
        "model.onnx": {"reason": "skipped", "detail": "install modelreg[onnx] to read ONNX"}
    }
    assert doc["declared"]["files"]["model.gguf"]["context_length"] == 4096  # needs no extra


def test_damaged_and_hostile_files_are_noted_and_register_goes_on(tmp_path, store, run_mreg):
    d = tmp_path / "bad"
    d.mkdir()
    # a header length of 2**63: refused before any byte of it is read or allocated
    (d / "huge.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    make_safetensors(d / "lying.safetensors", data=b"\0" * 10)  # offsets past the end
    (d / "broken.onnx").write_bytes(b"\x08\x07" + b"\xff" * 50)  # starts like one, is not
    (d / "text.onnx").write_text("weights")
    (d / "fake.gguf").write_bytes(b"GGUF" + b"\xff" * 20)
    (d / "MLmodel").write_text("flavors: [unclosed")
    res = ok(run_mreg("register", "m", str(d), "--json"))
    unread = res.json()["declared"]["unread"]
    assert sorted(unread) == ["MLmodel", "broken.onnx", "fake.gguf", "huge.safetensors",
                              "lying.safetensors", "text.onnx"]  # fmt: skip
    assert {u["reason"] for u in unread.values()} == {"unreadable"}
    assert len(res.json()["notes"]) == 6
    with pytest.raises(Exception, match="header"):
        read_safetensors(d / "huge.safetensors")


def test_other_files_import_no_reader(tmp_path):
    """The fast path: a file that is no card format (or only named like one) imports none."""
    work = tmp_path / "w"
    Store.init(work)
    (tmp_path / "weights.pkl").write_bytes(b"x" * 100)
    (tmp_path / "model.onnx").write_text("not a model")
    code = (
        "import sys; from modelreg import Store\n"
        f"s = Store.open({str(work)!r})\n"
        f"r = s.register('m', [{str(tmp_path / 'weights.pkl')!r}, "
        f"{str(tmp_path / 'model.onnx')!r}])\n"
        "assert r.created and 'onnx' not in sys.modules and 'gguf' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('onnx', 'gguf')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_manifest_without_declared_reads_back_unchanged():
    doc = {
        "schema": "mreg/v1", "kind": "ModelVersion", "name": "m", "version": "1.0.0",
        "created": "2026-01-01T00:00:00Z", "author": "a",
        "files": [{"path": "m.pkl", "sha256": "0" * 64, "size": 1, "format": "pickle"}],
    }  # fmt: skip
    mv = ModelVersion.from_dict(doc)
    assert mv.declared is None and "declared" not in mv.to_dict()
    with pytest.raises(Exception, match="declared"):
        ModelVersion.from_dict({**doc, "declared": {"files": {"a.onnx": {"inputs": []}}}})


def test_reregistering_identical_content_is_a_no_op(tmp_path, store):
    model = make_onnx(tmp_path / "m" / "model.onnx")
    first = store.register("m", [model], version="1.0.0")
    again = store.register("m", [model], version="1.0.0")
    assert not again.created and again.version.id == first.version.id
    other = make_onnx(tmp_path / "n" / "model.onnx", width=31)
    with pytest.raises(Conflict):
        store.register("m", [other], version="1.0.0")


def test_web_view_shows_and_diffs_what_files_declare(tmp_path, store):
    pytest.importorskip("jinja2")
    from modelreg.ui import pages
    from modelreg.ui.render import ServerLinks, render
    from modelreg.ui.views import LocalView

    store.register("m", [make_onnx(tmp_path / "a" / "model.onnx")], detect_code=False)
    store.register("m", [make_onnx(tmp_path / "b" / "model.onnx", width=32)], detect_code=False)
    view = LocalView(store)
    card = pages.version_page(view, "m", "0.1.0")
    html, _ = render("page.html", ServerLinks(), title="m@0.1.0", card=card, source="here")
    assert "Declared by the files" in html and "input features" in html
    assert "float32 [batch, 30]" in html
    diff = pages.diff_page(view, "m@0.1.0", "m@0.2.0")
    html, _ = render("page.html", ServerLinks(), title="diff", diff=diff, source="here")
    assert "model.onnx: input features" in html and "float32 [batch, 32]" in html
    assert diff["changed"] >= 2  # the file's digest and its input's shape


def test_no_credential_from_a_file_enters_the_manifest(tmp_path, store):
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    header = {
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "__metadata__": {"format": "pt", "api_token": token, "note": f"pushed with {token}"},
    }
    st = make_safetensors(tmp_path / "in" / "model.safetensors", header, data=b"\0" * 4)
    cfg = tmp_path / "in" / "config.json"
    cfg.write_text(json.dumps({"model_type": "bert", "architectures": [f"x {token}"]}))
    result = store.register("m", [st, cfg], detect_code=False)
    text = store.manifest_path("m", "0.1.0").read_text()
    assert token not in text
    declared = result.version.declared
    assert declared.files["model.safetensors"]["metadata"] == {"format": "pt"}
    assert declared.unread["config.json"]["reason"] == "unreadable"


def test_an_index_of_the_previous_format_is_rebuilt_with_declared_fields(tmp_path, store):
    import sqlite3

    store.register("m", [make_onnx(tmp_path / "a" / "model.onnx")], detect_code=False)
    assert [i.version.version for i in store.versions("m", where=["declared.onnx.opset = 17"])]
    index = store.root / "index.sqlite"
    with sqlite3.connect(index) as conn:  # as format 4 left it: no declared.* rows
        conn.execute("DELETE FROM fields WHERE key LIKE 'declared.%'")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'format'")
    conn.close()
    found = store.versions("m", where=["declared.onnx.opset = 17"])
    assert [i.version.version for i in found] == ["0.1.0"]
