"""The profile builder: a data set's columns, fed chunk by chunk, summarised in bounded memory.

Model layer. Issue 21; `modelreg.profiling` reads files into it, docs/monitoring.md
describes the result (`modelreg.dataprofile.Profile`).

- Per numeric column a t-digest (Apache DataSketches `tdigest_double`, compression
  `COMPRESSION`) and at most `EXACT_LIMIT` distinct values, with exact sums (`math.fsum`).
- Per category or boolean column a frequent-items sketch (DataSketches' Misra–Gries
  variant) holding at most `frequent_capacity(top)` values.

Both sketches are deterministic (unlike KLL, whose compactions flip a time-seeded coin), so
the same chunks give the same profile. DataSketches comes with the `profile` extra and is
imported only when a builder is made.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from modelreg.dataprofile import (
    FEATURE_TYPES,
    FORMATS,
    MAX_FEATURES,
    MAX_VALUE_CHARS,
    Feature,
    Profile,
    rounded,
)
from modelreg.errors import InvalidInput, MregError

__all__ = [
    "COMPRESSION",
    "EXACT_LIMIT",
    "FALSE",
    "TRUE",
    "ProfileBuilder",
    "frequent_capacity",
    "is_missing",
    "is_number",
    "sketches",
]

COMPRESSION = 5000
"""t-digest compression: deciles within about 0.05% in rank (200 was 2% off near the median)."""
EXACT_LIMIT = 1024
"""A numeric column with at most this many distinct values gets exact bins and shares."""
TRUE, FALSE = "true", "false"


def sketches() -> Any:
    """The datasketches module, or a one-line error naming the extra."""
    try:
        import datasketches
    except ImportError:
        raise MregError(
            "profiling data needs the profile extra: pip install 'modelreg[profile]'"
        ) from None
    return datasketches


def frequent_capacity(top: int) -> int:
    """Values a category column's sketch holds at most, for `top` values kept."""
    return (1 << _lg_map(top)) * 3 // 4


def _lg_map(top: int) -> int:
    # Four times the values kept, and at least 96, so that the top ones are exact unless
    # the column is diverse; 3/4 of the map is usable.
    return max(7, math.ceil(math.log2(top * 4 / 0.75)))


class _Number:
    def __init__(self, ds: Any) -> None:
        self.digest = ds.tdigest_double(COMPRESSION)
        self.exact: Counter[float] | None = Counter()
        self.count = self.missing = self.invalid = 0
        self.shift: float | None = None
        self.total = self.squares = 0.0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, values: Sequence[float]) -> None:
        import numpy as np

        if not values:
            return
        self.count += len(values)
        if self.shift is None:
            self.shift = values[0]
        array = np.asarray(values, dtype=np.float64)
        centred = array - self.shift
        # fsum: exactly rounded, so the same on every machine (numpy's sum is not)
        self.total += math.fsum(centred.tolist())
        self.squares += math.fsum((centred * centred).tolist())
        self.lo, self.hi = min(self.lo, float(array.min())), max(self.hi, float(array.max()))
        self.digest.update(array)
        if self.exact is not None:
            self.exact.update(values)
            if len(self.exact) > EXACT_LIMIT:
                self.exact = None

    def feature(self, name: str, bins: int) -> Feature:
        base = {"name": name, "type": "number", "count": self.count}
        base.update(missing=self.missing, invalid=self.invalid)
        if not self.count:
            return Feature(**base, exact=True)  # type: ignore[arg-type]
        n, shift = self.count, self.shift or 0.0
        mean = shift + self.total / n
        var = max(self.squares / n - (self.total / n) ** 2, 0.0)
        std = math.sqrt(var * n / (n - 1)) if n > 1 else 0.0
        if self.exact is not None:
            edges, shares = _grouped(self.exact, n, bins)
        else:
            edges = [self.digest.get_quantile(i / bins) for i in range(1, bins)]
            shares = [1 / bins] * bins
        edges, shares = _rounded_bins(edges, shares)
        return Feature(
            **base,  # type: ignore[arg-type]
            exact=self.exact is not None,
            min=rounded(self.lo),
            max=rounded(self.hi),
            mean=rounded(mean),
            std=rounded(std),
            edges=tuple(edges),
            shares=tuple(shares),
        )


def _rounded_bins(edges: list[float], shares: list[float]) -> tuple[list[float], list[float]]:
    """Edges rounded as stored, and a bin whose edges become equal given to the next.

    Two edges become equal for a point mass (t-digest quantiles) or for values closer than
    the rounding.
    """
    out_e: list[float] = []
    out_s: list[float] = []
    carry = 0.0
    for e, s in zip(edges, shares[:-1], strict=True):
        carry += s
        r = rounded(e)
        if out_e and r <= out_e[-1]:
            continue
        out_e.append(r)
        out_s.append(carry)
        carry = 0.0
    out_s.append(carry + shares[-1])
    return out_e, [rounded(x) for x in out_s]


def _grouped(counts: dict[float, int], n: int, bins: int) -> tuple[list[float], list[float]]:
    """Exact bins of a few distinct values: cut after a value where a level i/bins is reached.

    Every value is a bin of its own when there are at most `bins` of them.
    """
    values = sorted(counts)
    edges: list[float] = []
    shares: list[float] = []
    seen = share = 0
    cut = 1
    for v in values[:-1]:
        seen += counts[v]
        share += counts[v]
        if len(values) <= bins or seen * bins >= cut * n:
            while cut < bins and seen * bins >= cut * n:
                cut += 1
            edges.append(v)
            shares.append(share / n)
            share = 0
    shares.append((share + counts[values[-1]]) / n)
    return edges, shares


class _Category:
    def __init__(self, ds: Any, kind: str, top: int) -> None:
        self.ds = ds
        self.kind = kind
        self.top = top
        self.sketch = ds.frequent_strings_sketch(_lg_map(top))
        self.count = self.missing = self.invalid = 0

    def add(self, values: Sequence[str]) -> None:
        counts = Counter(values)
        self.count += len(values)
        for v in sorted(counts):
            self.sketch.update(v, counts[v])

    def feature(self, name: str) -> Feature:
        # Every value the sketch holds, with the bounds of its count: exact when no value
        # was ever evicted (then lower == upper for all).
        err = self.ds.frequent_items_error_type.NO_FALSE_NEGATIVES
        items = self.sketch.get_frequent_items(err, 0) if self.count else []
        exact = all(lower == upper for _, _, lower, upper in items)
        kept = sorted(((-lower, v) for v, _, lower, _ in items if lower > 0))[: self.top]
        top = tuple((v, -neg) for neg, v in kept)
        return Feature(
            name=name,
            type=self.kind,
            count=self.count,
            missing=self.missing,
            invalid=self.invalid,
            exact=exact,
            top=top,
            other=self.count - sum(c for _, c in top),
        )


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value)


def is_missing(value: Any) -> bool:
    """None, an empty string or NaN."""
    return value is None or value == "" or (type(value) is float and math.isnan(value))


class ProfileBuilder:
    """Feed columns chunk by chunk; `profile()` returns the `Profile` of all rows fed.

    `types` maps each column, in order, to number, category or boolean; `add` takes one
    chunk as column -> values (None or "" for missing; CSV strings are parsed here).
    """

    def __init__(self, types: dict[str, str], *, fmt: str, bins: int = 10, top: int = 20) -> None:
        if not 2 <= bins <= 100 or not 1 <= top <= 1000:
            raise InvalidInput("bins must be 2..100 and top 1..1000")
        if len(types) > MAX_FEATURES:
            raise InvalidInput(f"more than {MAX_FEATURES} columns")
        if fmt not in FORMATS or any(kind not in FEATURE_TYPES for kind in types.values()):
            raise InvalidInput(
                f"format must be one of {', '.join(FORMATS)}, types {', '.join(FEATURE_TYPES)}"
            )
        ds = sketches()
        self.fmt, self.bins, self.rows = fmt, bins, 0
        self.cols: dict[str, _Number | _Category] = {
            name: _Number(ds) if kind == "number" else _Category(ds, kind, top)
            for name, kind in types.items()
        }

    def add(self, chunk: Mapping[str, Sequence[Any]], rows: int) -> None:
        """Add `rows` rows given as column -> list of `rows` values."""
        self.rows += rows
        for name, col in self.cols.items():
            values = chunk.get(name) or [None] * rows
            if isinstance(col, _Number):
                col.add(self._numbers(col, values))
            else:
                col.add(self._labels(col, values))

    def _numbers(self, col: _Number, values: Sequence[Any]) -> list[float]:
        if self.fmt != "jsonl":
            # CSV strings and Parquet numbers: `float` in C over the chunk, when every value
            # is present and finite (JSON is left out: float(True) would pass a boolean).
            try:
                fast = list(map(float, values))
            except (TypeError, ValueError):
                pass
            else:
                if all(map(math.isfinite, fast)):
                    return fast
        out: list[float] = []
        append, isfinite = out.append, math.isfinite
        missing = invalid = 0
        for v in values:
            if v is None or v == "":
                missing += 1
                continue
            t = type(v)
            if t is str or t is float or t is int:  # not bool: type(True) is bool
                try:
                    x = float(v)
                except ValueError:
                    invalid += 1
                    continue
                if x != x:  # NaN: Parquet's and pandas' missing value
                    missing += 1
                elif isfinite(x):
                    append(x)
                else:
                    invalid += 1
            else:
                invalid += 1
        col.missing += missing
        col.invalid += invalid
        return out

    def _labels(self, col: _Category, values: Sequence[Any]) -> list[str]:
        boolean = col.kind == "boolean"
        if (
            self.fmt == "csv"  # every value a string: the checks below run in C
            and not boolean
            and "" not in values
            and None not in values
            and max(map(len, values), default=0) <= MAX_VALUE_CHARS
        ):
            return list(values)
        out: list[str] = []
        for v in values:
            if v is None or v == "":
                col.missing += 1
            elif boolean:
                if isinstance(v, bool):
                    out.append(TRUE if v else FALSE)
                elif isinstance(v, str) and v.lower() in (TRUE, FALSE):
                    out.append(v.lower())
                else:
                    col.invalid += 1
            elif isinstance(v, str):
                out.append(v[:MAX_VALUE_CHARS])
            else:
                col.invalid += 1
        return out

    def profile(self) -> Profile:
        """The profile of every row added so far."""
        features = tuple(
            col.feature(name, self.bins) if isinstance(col, _Number) else col.feature(name)
            for name, col in self.cols.items()
        )
        return Profile(rows=self.rows, features=features, format=self.fmt)
