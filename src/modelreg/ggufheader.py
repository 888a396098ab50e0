"""The metadata of a GGUF file, read from its header (issue 20). Base layer: reads one file.

GGUF (llama.cpp's format, documented in ggml's `docs/gguf.md`) starts with a header: magic
`GGUF`, version (uint32), tensor count and key/value count (uint64), the key/value pairs, then
one entry per tensor (name, dimensions, type, offset), then the tensors' data, which is never
read here. Why not `gguf.GGUFReader`: it parses every value into numpy arrays, and a
150,000-token vocabulary (`tokenizer.ggml.tokens`, in every LLM file) took it 13 s on this
machine; this reader skips arrays (a numeric one with one seek, a string array one length at
a time) and keeps only scalars and short strings, in a fraction of a second. The tests check
it against `gguf.GGUFWriter`'s files and `GGUFReader`'s answers.

Every count and length is checked against the bytes left in the file before it is used, so
a hostile header cannot make it allocate or loop beyond the file's size.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["FILE_TYPES", "GGUFError", "read_gguf"]

FILE_TYPES = {
    0: "ALL_F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip
"""`general.file_type` (llama.cpp's `llama_ftype`, `MOSTLY_` dropped) by number."""

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_MAX_KEY = 65536
_MAX_KEPT = 256  # a string value longer than this is skipped, not kept
_MAX_DIMS = 8
_MAX_STRINGS = 4_000_000  # an array of more strings is refused (vocabularies have ~256,000)


class GGUFError(ValueError):
    """The file is not a GGUF file mreg can read (the message says why)."""


class _Reader:
    def __init__(self, f: BinaryIO, size: int, endian: str) -> None:
        self.f, self.size, self.endian = f, size, endian

    def left(self) -> int:
        return self.size - self.f.tell()

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise GGUFError("not a GGUF file: it ends inside its header")
        return self.f.read(n)

    def skip(self, n: int) -> None:
        if n > self.left():
            raise GGUFError("not a GGUF file: it ends inside its header")
        self.f.seek(n, 1)

    def unpack(self, code: str) -> Any:
        fmt = self.endian + code
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, least: int, what: str) -> int:
        """A uint64 count of items at least `least` bytes each, checked against the file."""
        n = int(self.unpack("Q"))
        if n * least > self.left():
            raise GGUFError(f"not a GGUF file: {n} {what} cannot fit in the file")
        return n

    def string(self, keep: int) -> str | None:
        n = self.count(1, "bytes of a string")
        if n > keep:
            self.skip(n)
            return None
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError("not a GGUF file: a string is not UTF-8") from None

    def value(self, kind: int) -> Any:
        """A value of `kind`: a scalar, a short string, or None (a long string or an array)."""
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string(_MAX_KEPT)
        if kind != _ARRAY:
            raise GGUFError(f"not a GGUF file: unknown value type {kind}")
        item = int(self.unpack("I"))
        if item in _SCALARS:
            width = struct.calcsize(_SCALARS[item])
            self.skip(self.count(width, "array items") * width)
        elif item == _STRING:
            n = self.count(8, "array strings")
            if n > _MAX_STRINGS:
                raise GGUFError(f"an array of {n} strings: more than mreg reads")
            for _ in range(n):
                self.skip(self.count(1, "bytes of a string"))
        else:  # arrays of arrays: no known file has them
            raise GGUFError(f"not a GGUF file: an array of value type {item}")
        return None


def read_gguf(path: Path) -> dict[str, Any]:
    """The card of a GGUF file: version, architecture, sizes, quantization, parameters."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        if f.read(4) != b"GGUF":
            raise GGUFError("not a GGUF file: it does not start with the GGUF magic")
        raw = f.read(4)
        if len(raw) < 4:
            raise GGUFError("not a GGUF file: it ends inside its header")
        little = struct.unpack("<I", raw)[0]
        endian = "<" if little & 0xFFFF else ">"  # a big-endian file reads as 0x0300_0000
        version = struct.unpack(endian + "I", raw)[0]
        if version not in (2, 3):
            raise GGUFError(f"GGUF version {version} is not one mreg reads (2 and 3)")
        r = _Reader(f, size, endian)
        tensors = r.count(24, "tensors")  # name length, dims, type, offset: 24 bytes at least
        pairs = r.count(13, "key/value pairs")  # key length, value type, a byte of value
        meta: dict[str, Any] = {}
        for _ in range(pairs):
            key = r.string(_MAX_KEY)
            value = r.value(int(r.unpack("I")))
            if key is not None and value is not None:
                meta[key] = value
        params = 0
        for _ in range(tensors):
            r.string(_MAX_KEY)
            n_dims = int(r.unpack("I"))
            if n_dims > _MAX_DIMS:
                raise GGUFError(f"not a GGUF file: a tensor of {n_dims} dimensions")
            params += math.prod(int(r.unpack("Q")) for _ in range(n_dims))
            r.skip(12)  # type (uint32) and offset (uint64)
    return _card(version, tensors, params, meta)


def _card(version: int, tensors: int, params: int, meta: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "format": "gguf", "version": version, "tensors": tensors, "parameters": params,
    }  # fmt: skip
    arch = meta.get("general.architecture")
    if isinstance(arch, str):
        card["architecture"] = arch
        for key in ("context_length", "block_count", "embedding_length"):
            value = meta.get(f"{arch}.{key}")
            if isinstance(value, int) and not isinstance(value, bool):
                card[key] = value
    if isinstance(meta.get("general.name"), str):
        card["name"] = meta["general.name"]
    ftype = meta.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        card["file_type"] = FILE_TYPES.get(ftype, str(ftype))
    return card
