"""A reference profile of a data set: per feature its type, counts and distribution. Issue 21.

Model layer (docs/architecture.md): pure data, no I/O. `modelreg.profiling` builds a
`Profile` from a CSV, JSON Lines or Parquet file; `modelreg.analysis.drift` compares a
production sample with it. docs/monitoring.md describes the format.

A profile is plain data (`to_dict`), JSON- and YAML-serializable, small (a few hundred bytes
per feature) and the same bytes for the same input (`to_json`, sorted keys, numbers rounded
to `SIGNIFICANT` digits). Its document::

    {"kind": "DataProfile", "version": 1, "format": "csv", "rows": 1000,
     "features": [
       {"name": "age", "type": "number", "count": 990, "missing": 10, "invalid": 0,
        "min": 18, "max": 90, "mean": 41.2, "std": 12.1, "exact": false,
        "edges": [25, 31, ...], "shares": [0.1, 0.1, ...]},
       {"name": "country", "type": "category", "count": 1000, "missing": 0, "invalid": 0,
        "exact": true, "top": [["de", 400], ["fr", 350]], "other": 250}]}

A number's distribution is a histogram over the bins (-inf, e1], (e1, e2], ..., (ek, +inf)
with `shares` (one more than `edges`, summing to 1): the edges are the feature's quantiles
at equal levels (deciles by default) from a quantile sketch, equal edges merged, so `exact`
is false; or, when the feature had few distinct values, every value but the largest is an
edge and the shares are exact (`exact` true). A category's (or boolean's, as `"true"` and
`"false"`) distribution is its most frequent values with their counts, and `other`, the
count of every other value. `count` is the number of present values of the expected type,
`missing` the empty ones, `invalid` those of another type; `rows` = count + missing +
invalid for each feature.

`from_dict` is the one validator of a profile read back (it comes from outside: a store
object, a remote): bounded sizes, types and orders checked, one-line `InvalidInput`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from modelreg.errors import InvalidInput

__all__ = [
    "FEATURE_TYPES",
    "FORMATS",
    "KIND",
    "MAX_BYTES",
    "MAX_FEATURES",
    "MAX_TOP",
    "VERSION",
    "Feature",
    "Profile",
    "from_dict",
    "from_json",
    "rounded",
]

KIND = "DataProfile"
VERSION = 1
FEATURE_TYPES = ("number", "category", "boolean")
MAX_BYTES = 4 * 1024 * 1024
"""Largest profile document read back (100 features take about 30 KiB)."""
MAX_FEATURES = 10_000
MAX_EDGES = 1_000
MAX_TOP = 1_000
MAX_VALUE_CHARS = 200
"""A category value longer than this is cut to it when profiled (and refused when read)."""
MAX_NAME_CHARS = 256
SIGNIFICANT = 7
"""Significant digits kept of every stored float (the profile's bytes are stable)."""
FORMATS = ("csv", "jsonl", "parquet", "sample")
"""What a profile was made from (`sample`: values given in memory)."""


def rounded(x: float) -> float:
    """`x` to `SIGNIFICANT` significant digits (ints stay exact when they fit)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{SIGNIFICANT}g}")


@dataclass(frozen=True)
class Feature:
    """One column's profile (see the module docstring for the fields)."""

    name: str
    type: str
    count: int
    missing: int
    invalid: int
    exact: bool
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: tuple[float, ...] = ()
    shares: tuple[float, ...] = ()
    top: tuple[tuple[str, int], ...] = ()
    other: int = 0

    @property
    def rows(self) -> int:
        """Rows seen: present, missing and invalid values."""
        return self.count + self.missing + self.invalid

    @property
    def missing_rate(self) -> float:
        """Share of rows without a value (missing or invalid)."""
        return (self.missing + self.invalid) / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The feature as plain data."""
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "count": self.count,
            "missing": self.missing,
            "invalid": self.invalid,
            "exact": self.exact,
        }
        if self.type == "number":
            for key in ("min", "max", "mean", "std"):
                value = getattr(self, key)
                d[key] = None if value is None else rounded(value)
            d["edges"] = [rounded(e) for e in self.edges]
            d["shares"] = [rounded(s) for s in self.shares]
        else:
            d["top"] = [[v, c] for v, c in self.top]
            d["other"] = self.other
        return d


@dataclass(frozen=True)
class Profile:
    """A data set's profile: its format, row count and features in column order."""

    rows: int
    features: tuple[Feature, ...]
    format: str = "csv"
    _index: dict[str, Feature] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update((f.name, f) for f in self.features)

    def feature(self, name: str) -> Feature | None:
        """The named feature's profile, or None."""
        return self._index.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The profile document (`kind`, `version`, `format`, `rows`, `features`)."""
        return {
            "kind": KIND,
            "version": VERSION,
            "format": self.format,
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
        }

    def to_json(self) -> bytes:
        """The document as canonical JSON bytes: the same profile, the same bytes."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return text.encode() + b"\n"


def from_json(data: bytes, source: str = "profile") -> Profile:
    """Parse and validate a profile document read from outside (size bounded first).

    Raises:
        InvalidInput: Too large, not JSON, or not a valid profile (`source` names it).
    """
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"{source}: larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{source}: not JSON") from None
    return from_dict(doc, source)


def _int(d: Mapping[str, Any], key: str, where: str) -> int:
    value = d.get(key)
    if type(value) is not int or value < 0:
        raise InvalidInput(f"{where}: {key} must be a non-negative integer")
    return value


def _num(value: Any, what: str, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidInput(f"{where}: {what} must be a finite number")
    return float(value)


def _opt_num(d: Mapping[str, Any], key: str, where: str) -> float | None:
    value = d.get(key)
    return None if value is None else _num(value, key, where)


def _str(value: Any, what: str, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{where}: {what} must be a string of at most {limit} characters")
    return value


def _list(d: Mapping[str, Any], key: str, where: str, limit: int) -> list[Any]:
    value = d.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidInput(f"{where}: {key} must be a list of at most {limit} items")
    return value


def _number_feature(d: Mapping[str, Any], base: dict[str, Any], where: str) -> Feature:
    edges = tuple(_num(e, "edges", where) for e in _list(d, "edges", where, MAX_EDGES))
    shares = tuple(_num(s, "shares", where) for s in _list(d, "shares", where, MAX_EDGES + 1))
    if any(b <= a for a, b in pairwise(edges)):
        raise InvalidInput(f"{where}: edges must increase")
    if base["count"] and len(shares) != len(edges) + 1:
        raise InvalidInput(f"{where}: shares must be one more than edges")
    if any(s < 0 for s in shares) or (shares and abs(sum(shares) - 1) > 1e-3):
        raise InvalidInput(f"{where}: shares must be non-negative and sum to 1")
    return Feature(
        **base,
        min=_opt_num(d, "min", where),
        max=_opt_num(d, "max", where),
        mean=_opt_num(d, "mean", where),
        std=_opt_num(d, "std", where),
        edges=edges,
        shares=shares,
    )


def _category_feature(d: Mapping[str, Any], base: dict[str, Any], where: str) -> Feature:
    top: list[tuple[str, int]] = []
    for item in _list(d, "top", where, MAX_TOP):
        if not isinstance(item, list) or len(item) != 2:
            raise InvalidInput(f"{where}: top must hold [value, count] pairs")
        value = _str(item[0], "a top value", where, MAX_VALUE_CHARS)
        if type(item[1]) is not int or item[1] < 0:
            raise InvalidInput(f"{where}: a top count must be a non-negative integer")
        top.append((value, item[1]))
    if len({v for v, _ in top}) != len(top):
        raise InvalidInput(f"{where}: top values must be distinct")
    other = _int(d, "other", where)
    if sum(c for _, c in top) + other != base["count"]:
        raise InvalidInput(f"{where}: top counts and other must add up to count")
    return Feature(**base, top=tuple(top), other=other)


def _feature(d: Any, where: str) -> Feature:
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: must be a mapping")
    name = _str(d.get("name"), "name", where, MAX_NAME_CHARS)
    where = f"{where} ({name!r})"
    kind = d.get("type")
    if kind not in FEATURE_TYPES:
        raise InvalidInput(f"{where}: type must be one of {', '.join(FEATURE_TYPES)}")
    if not isinstance(d.get("exact"), bool):
        raise InvalidInput(f"{where}: exact must be true or false")
    base: dict[str, Any] = {
        "name": name,
        "type": kind,
        "count": _int(d, "count", where),
        "missing": _int(d, "missing", where),
        "invalid": _int(d, "invalid", where),
        "exact": d["exact"],
    }
    if kind == "number":
        return _number_feature(d, base, where)
    return _category_feature(d, base, where)


def from_dict(doc: Any, source: str = "profile") -> Profile:
    """Validate a profile document and return the `Profile` it describes.

    Raises:
        InvalidInput: Wrong kind or version, a missing or ill-typed field, too many
            features, edges that do not increase, shares that do not sum to 1, counts that
            do not add up; the message names `source` and the feature.
    """
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}: must be a mapping")
    if doc.get("kind") != KIND:
        raise InvalidInput(f"{source}: kind must be {KIND}")
    if doc.get("version") != VERSION:
        raise InvalidInput(f"{source}: version {doc.get('version')!r} unknown (mreg reads 1)")
    if doc.get("format") not in FORMATS:
        raise InvalidInput(f"{source}: format must be one of {', '.join(FORMATS)}")
    rows = _int(doc, "rows", source)
    raw = _list(doc, "features", source, MAX_FEATURES)
    features = tuple(_feature(f, f"{source}: feature {i}") for i, f in enumerate(raw))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise InvalidInput(f"{source}: feature names must be distinct")
    for f in features:
        if f.rows != rows:
            raise InvalidInput(f"{source}: feature {f.name!r} counts do not add up to rows")
    return Profile(rows=rows, features=features, format=doc["format"])
