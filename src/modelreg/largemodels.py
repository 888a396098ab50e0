"""`mreg check-large-models`: model files that should be registered rather than committed.

The `mreg-check-large-models` pre-commit hook (issue 7): files with a model format's extension
over a size limit, found among the paths given (a commit's files). Base layer
(docs/architecture.md): it stats the files it is given and knows nothing of a store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidInput, MregError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MODEL_EXTENSIONS",
    "LargeFile",
    "LargeFilesReport",
    "LargeModelFiles",
    "check_large_models",
    "parse_size",
]

MODEL_EXTENSIONS = (
    ".onnx", ".pt", ".pth", ".pb", ".tflite", ".h5", ".keras", ".safetensors", ".pkl",
    ".pickle", ".joblib", ".gguf", ".mlmodel", ".xgb", ".ubj", ".lgb", ".cbm", ".ckpt", ".bin",
)  # fmt: skip
"""What `check_large_models` treats as a model file by default (the formats `register` detects)."""
DEFAULT_MAX_SIZE = 1024 * 1024
"""Model files above this size (1 MiB) should be registered, not committed."""


class LargeModelFiles(MregError):
    """`mreg check-large-models` found model files that should be registered (exit 1)."""


@dataclass(frozen=True)
class LargeFile:
    """A model file over the size limit."""

    file: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"file": self.file, "size": self.size}


@dataclass(frozen=True)
class LargeFilesReport:
    """What `mreg check-large-models` checked and found."""

    checked: int
    max_size: int
    large: tuple[LargeFile, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg check-large-models`."""
        return {
            "ok": not self.large,
            "checked": self.checked,
            "max_size": self.max_size,
            "large": [f.to_dict() for f in self.large],
        }

    def raise_for_problems(self) -> None:
        """Raise LargeModelFiles (exit 1) when a model file is over the limit."""
        if self.large:
            raise LargeModelFiles(
                f"{len(self.large)} model file(s) over {self.max_size:,} bytes: register them "
                "(mreg register NAME FILE) and commit code, not weights"
            )


_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(|b|[kmgt](?:b|ib|i)?)\s*\Z", re.I)


def parse_size(text: str) -> int:
    """Bytes from `1048576`, `500KB`, `10MiB`, `1.5G` (KB, MB, GB: powers of 1000; K, KiB: 1024)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise InvalidInput(f"invalid size {text!r}: expected e.g. 500KB, 10MiB or 1048576")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit in ("", "b"):
        return int(number)
    power = "kmgt".index(unit[0]) + 1
    return int(number * (1000 if unit.endswith("b") and len(unit) == 2 else 1024) ** power)


def check_large_models(
    paths: Sequence[str | os.PathLike[str]],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    extensions: Collection[str] = MODEL_EXTENSIONS,
) -> LargeFilesReport:
    """Find model files (by extension) larger than `max_size` bytes among `paths`.

    Paths that do not exist (deleted files) or are not model files are skipped.
    """
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    large = []
    checked = 0
    for given in paths:
        p = Path(given)
        if p.suffix.lower() not in wanted or not p.is_file():
            continue
        checked += 1
        size = p.stat().st_size
        if size > max_size:
            large.append(LargeFile(str(given), size))
    return LargeFilesReport(checked, max_size, tuple(large))
