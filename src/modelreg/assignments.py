"""`KEY=VALUE` arguments and params/metrics files, turned into the dicts `register` takes.

- `--param lr=0.01` → {"lr": 0.01}; values are read as YAML scalars; dotted keys nest
  (`--param optim.name=adam` → {"optim": {"name": "adam"}}).
- `--metric test.f1=0.91` → {"test": {"f1": 0.91}}; the part before the first dot is the split.
- `--params-file` / `--metrics-file` take YAML or JSON; command-line values override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelreg import yamlio
from modelreg.conditions import parse_scalar
from modelreg.errors import InvalidInput, NotFound

__all__ = ["load_mapping_file", "parse_metrics", "parse_params"]


def _split(arg: str, flag: str, example: str) -> tuple[str, str]:
    key, sep, value = arg.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise InvalidInput(f"invalid {flag} {arg!r}: expected KEY=VALUE, e.g. {example}")
    return key, value.strip()


def load_mapping_file(path: str | Path, flag: str) -> dict[str, Any]:
    """Read a YAML or JSON file that must hold a mapping."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{flag} {path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{flag} {path}: cannot read ({exc.strerror})") from None
    doc = yamlio.loads_data(data, str(p))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"{flag} {path}: expected a mapping at the top level")
    return doc


def parse_params(args: Sequence[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge `KEY=VALUE` params over `base` (dotted keys nest)."""
    out: dict[str, Any] = dict(base or {})
    for arg in args:
        key, value = _split(arg, "--param", "lr=0.01")
        parts = key.split(".")
        if any(not p for p in parts):
            raise InvalidInput(f"invalid --param {arg!r}: empty key segment")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = parse_scalar(value)
    return out


def parse_metrics(
    args: Sequence[str], base: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Merge `SPLIT.NAME=NUMBER` metrics over `base`."""
    out: dict[str, dict[str, Any]] = {}
    for split, values in (base or {}).items():
        if not isinstance(values, dict):
            example = f"{split}: {values}" if isinstance(values, (int, float)) else "f1: 0.9"
            raise InvalidInput(
                f"--metrics-file: {split!r} is not a split mapping metric names to numbers: "
                f"group metrics by split, e.g. 'test: {{{example}}}'"
            )
        out[str(split)] = dict(values)
    for arg in args:
        key, value = _split(arg, "--metric", "test.f1=0.91")
        split, dot, name = key.partition(".")
        if not dot or not split or not name:
            raise InvalidInput(
                f"invalid --metric {arg!r}: expected SPLIT.NAME=VALUE, e.g. test.f1=0.91"
            )
        number = parse_scalar(value)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise InvalidInput(f"invalid --metric {arg!r}: {value!r} is not a number")
        out.setdefault(split, {})[name] = number
    return out
