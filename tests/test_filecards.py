"""The readers of model files (issue 20), on files made by the formats' own writers: ONNX
external data never read, GGUF headers as gguf's reader sees them, hostile headers refused."""

from __future__ import annotations

import struct

import pytest

onnx = pytest.importorskip("onnx")
gguf = pytest.importorskip("gguf")


def test_onnx_external_data_is_not_read(tmp_path, store):
    """A model whose weights live beside it: the graph is read, the weights never are."""
    import numpy as np
    import onnx.numpy_helper
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    w = onnx.numpy_helper.from_array(np.full((256, 1), 0.5, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True,
              location="weights.bin", size_threshold=0)  # fmt: skip
    (tmp_path / "ext" / "weights.bin").unlink()  # were it read, the reading would fail
    card = store.register("m", [path], detect_code=False).version.declared.files["model.onnx"]
    assert card["inputs"] == [{"name": "x", "type": "float32", "shape": [None, 256]}]


def test_a_hostile_gguf_is_refused_quickly(tmp_path, store):
    # magic, version 3, 1 tensor, 2**63 key/value pairs: the reader fails on the first
    path = tmp_path / "h" / "evil.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 2**63) + b"\xff" * 64)
    unread = store.register("m", [path], detect_code=False).version.declared.unread
    assert unread["evil.gguf"]["reason"] == "unreadable"


def test_gguf_header_agrees_with_ggufs_own_reader(tmp_path):
    """mreg reads GGUF headers itself (fast, arrays skipped): the same answers as gguf's."""
    import numpy as np

    from modelreg.ggufheader import FILE_TYPES, read_gguf

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_context_length(32768)
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_file_type(15)  # MOSTLY_Q4_K_M
    w.add_name("tiny")
    w.add_token_list([f"tok{i}" for i in range(2000)])
    w.add_token_scores([0.5] * 2000)
    w.add_description("x" * 1000)  # a long string: skipped, not kept
    w.add_tensor("a", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("b", np.zeros((3,), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    card = read_gguf(path)
    theirs = gguf.GGUFReader(str(path))
    field = theirs.get_field
    assert card == {
        "format": "gguf", "version": int(field("GGUF.version").contents()), "tensors": 2,
        "parameters": sum(int(t.n_elements) for t in theirs.tensors), "architecture": "qwen2",
        "context_length": field("qwen2.context_length").contents(), "block_count": 2,
        "embedding_length": 8, "name": "tiny", "file_type": "Q4_K_M",
    }  # fmt: skip
    assert card["parameters"] == 35
    theirs_names = {int(t): t.name.removeprefix("MOSTLY_") for t in gguf.LlamaFileType}
    assert all(theirs_names[k] == v for k, v in FILE_TYPES.items())


def test_gguf_big_endian_header(tmp_path):
    import numpy as np

    from modelreg.ggufheader import read_gguf

    path = tmp_path / "be.gguf"
    w = gguf.GGUFWriter(str(path), "llama", endianess=gguf.GGUFEndian.BIG)
    w.add_context_length(4096)
    w.add_tensor("t", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert read_gguf(path)["context_length"] == 4096 and read_gguf(path)["parameters"] == 32
