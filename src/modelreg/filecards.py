"""What model files declare about themselves, read without loading weights or running code.

`read_cards` picks a reader by file name (issue 20): `.onnx` (the `onnx` package, the
`modelreg[onnx]` extra), `.safetensors` (the header read here: it is the format's whole
contract), `.gguf` (the header read by `modelreg.ggufheader`, which says why not with the
`gguf` package), an MLflow `MLmodel` file (`yamlio`) and a Hugging Face `config.json`. Any
other file is not opened, and `onnx` is not imported unless a file needs it: registering a
pickle costs nothing more than before.

Each reader returns a small card of plain data (`modelreg.declared` says what is in each),
or raises `Unread` saying why not: the extra is missing ("skipped"), or the file is not what
its name says, damaged or over a bound ("unreadable"). Register records either and goes on.

Memory, by format: a safetensors header is read whole but refused above
`SAFETENSORS_MAX_HEADER` (the bound of the format's own library) before anything is
allocated; ONNX files are parsed whole by protobuf without their external data (memory about
the file's size, freed after) and refused above `ONNX_MAX_BYTES` (2 GiB, protobuf's own limit
on one message: a bigger model keeps its weights in external data, which is not read); of a
GGUF file only the header is read, through a buffered file, short values kept and arrays
skipped, never the tensors' data; `MLmodel` and `config.json` are refused above
`TEXT_MAX_BYTES`. Base layer (docs/architecture.md): it reads the files it is given.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg import yamlio
from modelreg.errors import InvalidInput

__all__ = [
    "ONNX_MAX_BYTES",
    "SAFETENSORS_MAX_HEADER",
    "TEXT_MAX_BYTES",
    "CardReading",
    "Unread",
    "card_reader",
    "read_cards",
    "read_safetensors",
]

SAFETENSORS_MAX_HEADER = 100_000_000
"""A safetensors header longer than this is refused (the `safetensors` library's own bound)."""
ONNX_MAX_BYTES = 2 * 1024**3
"""An ONNX file above this is not parsed (protobuf's limit for one message)."""
TEXT_MAX_BYTES = 1024 * 1024
"""An `MLmodel` or `config.json` above this is not read."""
_MAX_ITEMS = 64
"""At most this many metadata entries, inputs or outputs are kept per file (a card stays small)."""
_MAX_TEXT = 256
"""Metadata values longer than this are left out (a card is not a copy of the file)."""
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_HF_SIZES = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "vocab_size", "max_position_embeddings", "torch_dtype",
)  # fmt: skip


class Unread(Exception):
    """A file's card could not be read: `kind` is "skipped" (extra missing) or "unreadable"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class CardReading:
    """The cards read from a version's files (path -> card), and the files left unread."""

    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    unread: dict[str, dict[str, str]] = field(default_factory=dict)


def card_reader(path: str) -> str | None:
    """Which reader a file of the version gets, by its name alone (None: not opened)."""
    base = path.rsplit("/", 1)[-1]
    if base == "MLmodel":
        return "mlflow"
    if base == "config.json":
        return "huggingface"
    ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return ext if ext in ("onnx", "safetensors", "gguf") else None


def read_cards(files: Iterable[tuple[str, Path]]) -> CardReading:
    """Read the card of each (path in the version, file on disk) that has a reader."""
    reading = CardReading()
    for rel, src in files:
        kind = card_reader(rel)
        if kind is None:
            continue
        try:
            card = _READERS[kind](src)
        except Unread as exc:
            reading.unread[rel] = {"reason": exc.kind, "detail": exc.detail}
            continue
        if card is not None:
            reading.cards[rel] = card
    return reading


def _unreadable(what: str) -> Unread:
    return Unread("unreadable", what)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


# -- safetensors ----------------------------------------------------------------------------


def read_safetensors(path: Path) -> dict[str, Any]:
    """The header of a safetensors file: 8 bytes (little-endian length), then that much JSON.

    The declared length is checked against `SAFETENSORS_MAX_HEADER` and the file's size
    before a byte of it is read; each tensor's dtype, shape and offsets are checked.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            head = f.read(8)
            if len(head) < 8:
                raise _unreadable("not a safetensors file: shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > SAFETENSORS_MAX_HEADER or n > size - 8:
                raise _unreadable(
                    f"not a safetensors file: declares a {n}-byte header "
                    f"(the file has {size - 8} bytes after the length; at most "
                    f"{SAFETENSORS_MAX_HEADER} are read)"
                )
            raw = f.read(n)
    except OSError as exc:
        raise _unreadable(f"cannot read ({exc.strerror})") from None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise _unreadable("not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise _unreadable("not a safetensors file: its header is not a JSON object")
    data_size = size - 8 - n
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise _unreadable("not a safetensors file: __metadata__ is not an object")
    dtypes: dict[str, int] = {}
    params = 0
    for name, t in header.items():
        params += _tensor(name, t, data_size)
        dtypes[t["dtype"]] = dtypes.get(t["dtype"], 0) + 1
    card: dict[str, Any] = {
        "format": "safetensors",
        "tensors": len(header),
        "parameters": params,
        "dtypes": dict(sorted(dtypes.items())),
    }
    kept = {
        str(k): v
        for k, v in sorted(meta.items())[:_MAX_ITEMS]
        if isinstance(v, str) and len(v) <= _MAX_TEXT
    }
    if kept:
        card["metadata"] = kept
    return card


def _tensor(name: str, t: Any, data_size: int) -> int:
    """Check one tensor entry of a safetensors header; its element count."""
    bad = f"not a safetensors file: tensor {name[:80]!r}"
    if not isinstance(t, dict) or not isinstance(t.get("dtype"), str):
        raise _unreadable(f"{bad} has no dtype")
    shape, offsets = t.get("shape"), t.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _unreadable(f"{bad} has a bad shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise _unreadable(f"{bad} has data offsets outside the file")
    count = math.prod(shape)
    width = _DTYPE_BYTES.get(t["dtype"])
    if width is not None and count * width != offsets[1] - offsets[0]:
        raise _unreadable(f"{bad}: its shape and dtype do not match its bytes")
    return count


# -- ONNX -----------------------------------------------------------------------------------

_ONNX_TYPES = {"FLOAT": "float32", "DOUBLE": "float64"}


# The first byte of a serialized ModelProto: the tag of one of its fields (field number << 3
# | wire type): ir_version (1, varint) in what every writer emits, else another top-level one.
_ONNX_FIRST = {0x08, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA}


def _head(path: Path, n: int) -> tuple[bytes, int]:
    """The first `n` bytes of a file and its size."""
    try:
        with open(path, "rb") as f:
            return f.read(n), f.seek(0, 2)
    except OSError as exc:
        raise _unreadable(f"cannot read ({exc.strerror})") from None


def _read_onnx(path: Path) -> dict[str, Any]:
    head, size = _head(path, 1)
    if not head or head[0] not in _ONNX_FIRST:  # told without importing onnx (~0.5-3 s)
        raise _unreadable("not an ONNX model: it does not start with a ModelProto field")
    try:
        import onnx
    except ImportError:
        raise Unread("skipped", "install modelreg[onnx] to read ONNX") from None
    if size > ONNX_MAX_BYTES:
        raise _unreadable(f"larger than {ONNX_MAX_BYTES} bytes: not parsed")
    from google.protobuf.message import DecodeError  # onnx's own dependency

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise _unreadable(f"not an ONNX model ({type(exc).__name__})") from None
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    card: dict[str, Any] = {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "opsets": dict(sorted(opsets.items())),
        "inputs": [_onnx_io(v, onnx) for v in graph.input if v.name not in weights][:_MAX_ITEMS],
        "outputs": [_onnx_io(v, onnx) for v in graph.output][:_MAX_ITEMS],
    }
    if producer:
        card["producer"] = producer
    return card


def _onnx_io(value: Any, onnx: Any) -> dict[str, Any]:
    """One graph input or output: name, element type, shape (a name for a symbolic dim)."""
    t = value.type
    which = t.WhichOneof("value")
    out: dict[str, Any] = {"name": value.name}
    if which != "tensor_type":
        out["type"] = str(which or "unknown").removesuffix("_type")
        out["shape"] = None
        return out
    name = onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)
    out["type"] = _ONNX_TYPES.get(name, name.lower())
    if not t.tensor_type.HasField("shape"):
        out["shape"] = None
        return out
    dims: list[int | str | None] = []
    for d in t.tensor_type.shape.dim:
        kind = d.WhichOneof("value")
        dims.append(int(d.dim_value) if kind == "dim_value" else d.dim_param or None)
    out["shape"] = dims
    return out


# -- GGUF -----------------------------------------------------------------------------------


def _read_gguf(path: Path) -> dict[str, Any]:
    from modelreg.ggufheader import GGUFError, read_gguf

    try:
        return read_gguf(path)
    except GGUFError as exc:
        raise _unreadable(str(exc)) from None
    except OSError as exc:
        raise _unreadable(f"cannot read ({exc.strerror})") from None


# -- MLflow MLmodel and Hugging Face config.json ---------------------------------------------


def _small_doc(path: Path, what: str, *, as_json: bool = False) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(TEXT_MAX_BYTES + 1)
    except OSError as exc:
        raise _unreadable(f"cannot read ({exc.strerror})") from None
    if len(data) > TEXT_MAX_BYTES:
        raise _unreadable(f"larger than {TEXT_MAX_BYTES} bytes: not read")
    try:
        return json.loads(data) if as_json else yamlio.load(data, what)
    except (ValueError, RecursionError):  # json's errors (UnicodeDecodeError is a ValueError)
        raise _unreadable(f"not {what}: not JSON") from None
    except InvalidInput as exc:
        raise _unreadable(f"not {what}: {exc}") from None


def _read_mlmodel(path: Path) -> dict[str, Any]:
    doc = _small_doc(path, "an MLflow MLmodel file")
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise _unreadable("not an MLflow MLmodel file: it has no flavors")
    card: dict[str, Any] = {"format": "mlflow", "flavors": sorted(map(str, doc["flavors"]))}
    sig = doc.get("signature")
    if isinstance(sig, dict):
        for part in ("inputs", "outputs"):
            if isinstance(sig.get(part), str):
                card[part] = _mlflow_schema(sig[part], part)
    return card


def _mlflow_schema(text: str, part: str) -> list[dict[str, Any]]:
    """An MLflow signature's `inputs` or `outputs`: a JSON list of columns or tensor specs."""
    try:
        cols = json.loads(text)
    except (ValueError, RecursionError):
        raise _unreadable(f"MLmodel's signature {part} is not JSON") from None
    if not isinstance(cols, list):
        raise _unreadable(f"MLmodel's signature {part} is not a list")
    out = []
    for i, col in enumerate(cols[:_MAX_ITEMS]):
        if not isinstance(col, dict):
            raise _unreadable(f"MLmodel's signature {part}[{i}] is not an object")
        spec = col.get("tensor-spec")
        io: dict[str, Any] = {"name": _text(col.get("name", f"#{i}"))}
        if col.get("type") == "tensor" and isinstance(spec, dict):
            io["type"] = _text(spec.get("dtype"))
            shape = spec.get("shape")
            io["shape"] = (
                [d if type(d) is int and d >= 0 else None for d in shape]
                if isinstance(shape, list)
                else None
            )
        else:
            io["type"] = _text(col.get("type"))
            io["shape"] = None
        if col.get("required") is False:
            io["optional"] = True
        out.append(io)
    return out


def _read_hf_config(path: Path) -> dict[str, Any] | None:
    doc = _small_doc(path, "a JSON config file", as_json=True)
    if not isinstance(doc, dict) or not ("model_type" in doc or "architectures" in doc):
        return None  # some other config.json: nothing to say about it
    card: dict[str, Any] = {"format": "huggingface"}
    archs = doc.get("architectures")
    if isinstance(archs, list):
        card["architectures"] = [_text(a)[:_MAX_TEXT] for a in archs[:_MAX_ITEMS]]
    if isinstance(doc.get("model_type"), str):
        card["model_type"] = doc["model_type"][:_MAX_TEXT]
    for key in _HF_SIZES:
        value = doc.get(key)
        if (type(value) is int and value >= 0) or (isinstance(value, str) and len(value) < 32):
            card[key] = value
    return card


_READERS = {
    "onnx": _read_onnx,
    "safetensors": read_safetensors,
    "gguf": _read_gguf,
    "mlflow": _read_mlmodel,
    "huggingface": _read_hf_config,
}
