"""What a version's model files declare (issue 20): the manifest's `declared` section. Pure.

`register` reads it once (`modelreg.filecards`) and the manifest keeps it, immutable like the
rest; a manifest written before has none, and stays valid. The section:

    declared:
      files:                          # path in the version -> what that file declares
        model.onnx: {format: onnx, ir_version: 9, opsets: {ai.onnx: 17}, producer: ...,
                     inputs: [{name: features, type: float32, shape: [batch, 30]}], outputs: [...]}
        model.safetensors: {format: safetensors, tensors: 4, parameters: 1234,
                            dtypes: {F32: 4}, metadata: {...}}
        MLmodel: {format: mlflow, flavors: [python_function, sklearn], inputs: [...], ...}
      unread:                         # files a reader exists for, not read, and why
        big.onnx: {reason: skipped, detail: install modelreg[onnx] to read ONNX}

Here live the three uses of it: `flat` (what `mreg diff` compares), `search_values` (the
`declared.*` fields of `mreg list --where` and the index) and `interface_problems` (the gate
`interface == ALIAS`, documented in docs/validation.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg.names import check_alias

__all__ = [
    "PREFIX",
    "Declared",
    "flat",
    "interface_gate",
    "interface_problems",
    "render_shape",
    "search_values",
]

PREFIX = "declared."
"""The search fields' prefix: `declared.format`, `declared.onnx.opset`, ..."""
_GATE = re.compile(r"\s*(?:interface|signature)\s*==?\s*(\S+)\s*")
_KEY = re.compile(r"[A-Za-z0-9_\-/]+")  # a search field's part (as `modelreg.conditions`)
_IO = ("inputs", "outputs")


@dataclass(frozen=True)
class Declared:
    """The `declared` section: cards by file path, and the files left unread with why."""

    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unread: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the manifest's section, also in `--json`)."""
        return {
            "files": {p: dict(c) for p, c in sorted(self.files.items())},
            "unread": {p: dict(u) for p, u in sorted(self.unread.items())},
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Declared:
        """Check the section's structure (ValueError naming the problem)."""
        if not isinstance(doc, dict):
            raise ValueError("declared is not a mapping")
        files, unread = doc.get("files") or {}, doc.get("unread") or {}
        if not isinstance(files, dict) or not isinstance(unread, dict):
            raise ValueError("declared.files and declared.unread must be mappings")
        for path, card in files.items():
            if not isinstance(card, dict) or not isinstance(card.get("format"), str):
                raise ValueError(f"declared.files[{path!r}] has no format")
            for part in _IO:
                ios = card.get(part, [])
                if not isinstance(ios, list) or not all(_is_io(io) for io in ios):
                    raise ValueError(f"declared.files[{path!r}].{part} is malformed")
        for path, why in unread.items():
            if not isinstance(why, dict) or not isinstance(why.get("reason"), str):
                raise ValueError(f"declared.unread[{path!r}] has no reason")
        return cls(
            {str(p): c for p, c in files.items()},
            {str(p): {str(k): str(v) for k, v in u.items()} for p, u in unread.items()},
        )

    def interfaces(self) -> dict[str, Mapping[str, Any]]:
        """The cards that declare inputs or outputs (ONNX graphs, MLflow signatures)."""
        return {p: c for p, c in self.files.items() if any(k in c for k in _IO)}


def _is_io(io: Any) -> bool:
    shape = io.get("shape") if isinstance(io, dict) else None
    return (
        isinstance(io, dict)
        and isinstance(io.get("name"), str)
        and (shape is None or isinstance(shape, list))
    )


def render_shape(shape: Any) -> str:
    """A shape as people read it: `[None, 30]`, `[batch, 3, 224, 224]`; `?` when unknown."""
    if shape is None:
        return "?"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _io_text(io: Mapping[str, Any]) -> str:
    opt = " (optional)" if io.get("optional") else ""
    return f"{io.get('type')} {render_shape(io.get('shape'))}{opt}"


def flat(declared: Declared | None) -> dict[str, Any]:
    """One value per line of what the files declare, keyed `PATH: WHAT` (for `mreg diff`)."""
    out: dict[str, Any] = {}
    if declared is None:
        return out
    for path, card in declared.files.items():
        for key, value in card.items():
            if key in _IO:
                for io in value:
                    out[f"{path}: {key[:-1]} {io['name']}"] = _io_text(io)
            elif isinstance(value, Mapping):
                for sub, v in value.items():
                    out[f"{path}: {key}.{sub}"] = v
            else:
                out[f"{path}: {key}"] = (
                    ", ".join(map(str, value)) if isinstance(value, list) else value
                )
    for path, why in declared.unread.items():
        out[f"{path}: unread"] = f"{why.get('reason')}: {why.get('detail', '')}"
    return out


def search_values(declared: Declared | None) -> dict[str, list[Any]]:
    """The `declared.*` search fields of a version, each with all its values.

    `declared.format` (each card's format), then per card `declared.FORMAT.KEY` for each
    scalar (a list gives each element; `dtypes` the dtype names; `metadata` one field per
    key), `declared.FORMAT.input` / `.output` (the names) and `declared.onnx.opset` (the
    default domain's). A field holds when any of its values satisfies the condition.
    """
    out: dict[str, list[Any]] = {}
    if declared is None:
        return out

    def add(key: str, value: Any) -> None:
        if all(_KEY.fullmatch(p) for p in key.split(".")[1:]) and (
            isinstance(value, (int, float, str)) and not isinstance(value, bool)
        ):
            out.setdefault(key, []).append(value)

    for card in declared.files.values():
        fmt = str(card["format"])
        add(f"{PREFIX}format", fmt)
        for key, value in card.items():
            name = f"{PREFIX}{fmt}.{key}"
            if key in _IO:
                for io in value:
                    add(f"{PREFIX}{fmt}.{key[:-1]}", io["name"])
            elif key == "opsets" and isinstance(value, Mapping):
                add(f"{PREFIX}{fmt}.opset", value.get("ai.onnx"))
            elif key == "dtypes" and isinstance(value, Mapping):
                for dtype in value:
                    add(f"{PREFIX}{fmt}.dtype", dtype)
            elif isinstance(value, Mapping):
                for sub, v in value.items():
                    add(f"{name}.{sub}", v)
            elif isinstance(value, list):
                for v in value:
                    add(name, v)
            elif key != "format":
                add(name, value)
    return out


def interface_gate(gate: str) -> str | None:
    """The alias of an `interface == ALIAS` gate (`signature == ALIAS` too), else None."""
    m = _GATE.fullmatch(gate)
    return check_alias(m.group(1)) if m else None


def _pairs(
    mine: dict[str, Mapping[str, Any]], theirs: dict[str, Mapping[str, Any]]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Cards paired by path, then the one left of a format on each side; the unpaired."""
    pairs = [(p, p) for p in sorted(mine.keys() & theirs.keys())]
    rest_a = [p for p in sorted(mine) if p not in theirs]
    rest_b = [p for p in sorted(theirs) if p not in mine]
    for fmt in sorted({str(mine[p]["format"]) for p in rest_a}):
        a = [p for p in rest_a if mine[p]["format"] == fmt]
        b = [p for p in rest_b if theirs[p]["format"] == fmt]
        if len(a) == 1 and len(b) == 1:  # model.onnx renamed model-v2.onnx: still the model
            pairs.append((a[0], b[0]))
            rest_a.remove(a[0])
            rest_b.remove(b[0])
    return pairs, rest_a, rest_b


def _dims_equal(a: Any, b: Any) -> bool:
    """Shapes agree: same rank, same fixed sizes; a symbolic or unknown dim matches another."""
    if a is None or b is None:
        return a is None and b is None
    fixed = [(x, y) for x, y in zip(a, b, strict=False) if type(x) is int or type(y) is int]
    return len(a) == len(b) and all(x == y for x, y in fixed)


def _compare_io(path: str, part: str, mine: Any, theirs: Any, who: str) -> list[str]:
    word = part[:-1]
    a = {io["name"]: io for io in mine or ()}
    b = {io["name"]: io for io in theirs or ()}
    out = []
    for name in sorted(a.keys() | b.keys()):
        x, y = a.get(name), b.get(name)
        if y is None and x is not None and not x.get("optional"):
            out.append(f"{path}: {word} {name!r} is new (not in {who})")
        elif x is None and y is not None and not y.get("optional"):
            out.append(f"{path}: {word} {name!r} of {who} is gone")
        elif x is not None and y is not None:
            if x.get("type") != y.get("type"):
                out.append(
                    f"{path}: {word} {name!r} type {x.get('type')} != {who}'s {y.get('type')}"
                )
            if not _dims_equal(x.get("shape"), y.get("shape")):
                mine_s, theirs_s = render_shape(x.get("shape")), render_shape(y.get("shape"))
                out.append(f"{path}: {word} {name!r} shape {mine_s} != {who}'s {theirs_s}")
    return out


def _unknown(declared: Declared | None) -> str | None:
    """Why a version's interface cannot be known (None: it is known, maybe empty)."""
    if declared is None:
        return "records no declared interface (registered before mreg read model files)"
    for path, why in sorted(declared.unread.items()):
        if path.rsplit(".", 1)[-1].lower() == "onnx" or path.rsplit("/", 1)[-1] == "MLmodel":
            return f"did not read {path} ({why.get('detail') or why.get('reason')})"
    return None


def interface_problems(mine: Declared | None, theirs: Declared | None, who: str) -> list[str]:
    """How a version's declared inputs and outputs differ from those of `who` ([]: same).

    Inputs and outputs are compared by name: the same names (an optional MLflow column may
    come or go), the same element types, and shapes of the same rank with the same fixed
    sizes (a symbolic or unknown dimension matches any other such one). Paired by file path,
    else one card of a format on each side. Metadata, opsets and producers are not compared.
    A version whose interface is unknown (registered before this, or its ONNX/MLmodel file
    was not read) fails: the gate cannot vouch for what it could not see.
    """
    for side, d in (("this version", mine), (who, theirs)):
        why = _unknown(d)
        if why:
            return [f"cannot compare with {who}: {side} {why}"]
    assert mine is not None and theirs is not None
    pairs, extra, gone = _pairs(mine.interfaces(), theirs.interfaces())
    out = [f"{p}: declares an interface {who} does not have" for p in extra]
    out += [f"{p} of {who}: no counterpart in this version" for p in gone]
    for a, b in pairs:
        for part in _IO:
            ca, cb = mine.files[a], theirs.files[b]
            out += _compare_io(a, part, ca.get(part), cb.get(part), who)
    return out
