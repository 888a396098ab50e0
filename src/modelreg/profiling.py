"""Profile a training data file (CSV, JSON Lines, Parquet) in one streamed pass. Issue 21.

Model layer, like the other readers of a user's file (`requirements`, `metricsfile`): it
reads the file it is given and returns a `modelreg.dataprofile.Profile`.

- **Streaming, bounded memory.** Rows are read in chunks of `CHUNK` rows (Parquet by
  record batches of that size) into a `modelreg.profilebuilder.ProfileBuilder`, so memory
  does not grow with the file: per column a bounded sketch (a t-digest for numbers, a
  frequent-items sketch for categories).
- **Deterministic.** The t-digest and the frequent-items sketch have no randomness (unlike
  KLL, whose compactions flip a time-seeded coin), and every format is fed through the same
  chunks, so the same rows give the same profile bytes from CSV, JSON Lines or Parquet.
- **Types** are decided on the first chunk: JSON and Parquet types as given (numbers,
  booleans, strings); in CSV a column whose non-empty values all parse as numbers is a
  number, all `true`/`false` (any case) a boolean, else a category. A later value of
  another type counts as `invalid`. Empty strings and nulls are `missing`. JSON Lines keys
  first seen after the first chunk are not profiled; Parquet columns of other types
  (dates, lists...) are left out.

The sketches come with the `profile` extra (`pip install 'modelreg[profile]'`), Parquet
with the `parquet` extra (pyarrow); both are imported only when profiling.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from modelreg.dataprofile import Profile
from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.profilebuilder import (
    FALSE,
    TRUE,
    ProfileBuilder,
    frequent_capacity,
    is_missing,
    is_number,
    sketches,
)

__all__ = [
    "CHUNK",
    "SUFFIXES",
    "ProfileBuilder",
    "detect_format",
    "frequent_capacity",
    "profile_file",
    "profile_rows",
]

CHUNK = 8192
"""Rows per chunk (and per Parquet record batch)."""
MAX_LINE = 1 << 20
"""Longest JSON Lines line (and CSV field) read."""
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_T = TypeVar("_T")


def detect_format(path: Path) -> str:
    """The format named by the file's suffix (csv, jsonl or parquet).

    Raises:
        InvalidInput: An unknown suffix.
    """
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{path}: unknown data format; mreg reads .csv, .jsonl, .parquet")
    return fmt


def _csv_type(values: Iterable[str]) -> str:
    seen = [v for v in values if v != ""]
    if seen and all(v.lower() in (TRUE, FALSE) for v in seen):
        return "boolean"
    try:
        if seen and all(math.isfinite(float(v)) for v in seen):
            return "number"
    except ValueError:
        pass
    return "category"


def _json_type(values: Iterable[Any]) -> str:
    seen = [v for v in values if not is_missing(v)]
    if seen and all(isinstance(v, bool) for v in seen):
        return "boolean"
    if seen and all(is_number(v) for v in seen):
        return "number"
    return "category"


def _chunks_of(rows: Iterator[_T]) -> Iterator[list[_T]]:
    while batch := list(itertools.islice(rows, CHUNK)):
        yield batch


def _columns(batch: list[list[Any]], names: Sequence[str]) -> dict[str, Sequence[Any]]:
    width = len(names)
    if all(len(r) == width for r in batch):
        return dict(zip(names, zip(*batch, strict=True), strict=True))
    return {name: [r[i] if i < len(r) else None for r in batch] for i, name in enumerate(names)}


def _csv_rows(fh: io.TextIOBase, path: Path) -> tuple[list[str], Iterator[list[Any]]]:
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path}: empty CSV file (no header)") from None
    except csv.Error as exc:
        raise InvalidInput(f"{path}: malformed CSV header ({exc})") from None
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InvalidInput(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    return header, reader


def _jsonl_rows(fh: io.TextIOBase, path: Path) -> Iterator[dict[str, Any]]:
    for lineno, line in enumerate(iter(lambda: fh.readline(MAX_LINE + 1), ""), 1):
        if len(line) > MAX_LINE:
            raise InvalidInput(f"{path}:{lineno}: line longer than {MAX_LINE} characters")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise InvalidInput(f"{path}:{lineno}: not a JSON object") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{path}:{lineno}: not a JSON object")
        yield row


def _parquet_batches(path: Path, columns: Sequence[str] | None) -> Iterator[dict[str, list[Any]]]:
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pt
    except ImportError:
        raise MregError(
            "Parquet needs the parquet extra: pip install 'modelreg[parquet]'"
        ) from None
    try:
        pf = pq.ParquetFile(path)
        wanted = [
            f.name
            for f in pf.schema_arrow
            if (columns is None or f.name in columns)
            and (
                pt.is_integer(f.type)
                or pt.is_floating(f.type)
                or pt.is_decimal(f.type)
                or pt.is_boolean(f.type)
                or pt.is_string(f.type)
                or pt.is_large_string(f.type)
                or pt.is_dictionary(f.type)
            )
        ]
        for batch in pf.iter_batches(batch_size=CHUNK, columns=wanted):
            yield {name: batch.column(name).to_pylist() for name in wanted}
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInput(f"{path}: not a readable Parquet file") from None


def _rechunk(
    batches: Iterator[dict[str, list[Any]]],
) -> Iterator[tuple[dict[str, Sequence[Any]], int]]:
    """Parquet batches cut into chunks of exactly CHUNK rows, as the other formats are."""
    buf: dict[str, list[Any]] = {}
    size = 0
    for batch in batches:
        for name, values in batch.items():
            buf.setdefault(name, []).extend(values)
        size += len(next(iter(batch.values()), []))
        while size >= CHUNK:
            yield {k: v[:CHUNK] for k, v in buf.items()}, CHUNK
            buf = {k: v[CHUNK:] for k, v in buf.items()}
            size -= CHUNK
    if size:
        rest: dict[str, Sequence[Any]] = dict(buf)
        yield rest, size


def _row_chunks(
    path: Path, fmt: str, fh: io.TextIOBase, columns: Sequence[str] | None
) -> Iterator[tuple[dict[str, Sequence[Any]], int]]:
    if fmt == "csv":
        header, reader = _csv_rows(fh, path)
        try:
            for batch in _chunks_of(reader):
                cols = _columns(batch, header)
                yield {k: v for k, v in cols.items() if columns is None or k in columns}, len(batch)
        except csv.Error as exc:
            raise InvalidInput(f"{path}: malformed CSV ({exc})") from None
        return
    yield from _object_chunks(_jsonl_rows(fh, path), columns)


def _object_chunks(
    rows: Iterator[Mapping[str, Any]], columns: Sequence[str] | None
) -> Iterator[tuple[dict[str, Sequence[Any]], int]]:
    for objs in _chunks_of(rows):
        names: dict[str, None] = {}
        for obj in objs:
            names.update(dict.fromkeys(obj))
        cols = {n: [obj.get(n) for obj in objs] for n in names}
        yield {k: v for k, v in cols.items() if columns is None or k in columns}, len(objs)


def profile_rows(
    rows: Iterable[Mapping[str, Any]], *, format: str = "jsonl", bins: int = 10, top: int = 20
) -> Profile:
    """Profile rows given as mappings of JSON-typed values, as a JSON Lines file's are.

    The rows are consumed in chunks of `CHUNK` (an iterator keeps memory bounded); types are
    decided on the first chunk. `format` is what the profile says it was made from.

    Raises:
        InvalidInput: Bad `bins` or `top`.
        MregError: The profile extra is not installed.
    """
    sketches()
    return _profile_chunks(_object_chunks(iter(rows), None), format, bins, top, None)


def profile_file(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    columns: Sequence[str] | None = None,
    bins: int = 10,
    top: int = 20,
) -> Profile:
    """Profile a CSV, JSON Lines or Parquet file in one pass, in bounded memory.

    Args:
        path: The file.
        format: csv, jsonl or parquet; by default from the file's suffix.
        columns: Only these columns (default: all).
        bins: Quantile bins of a number (10: deciles).
        top: Most frequent values kept of a category.

    Raises:
        NotFound: No such file.
        InvalidInput: Unknown format, malformed content, bad `bins` or `top`.
        MregError: The extra needed is not installed.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in ("csv", "jsonl", "parquet"):
        raise InvalidInput(f"{p}: unknown data format {fmt!r}; mreg reads csv, jsonl, parquet")
    if not p.is_file():
        raise NotFound(f"{p}: no such file")
    sketches()
    if fmt == "parquet":
        return _profile_chunks(_rechunk(_parquet_batches(p, columns)), fmt, bins, top, columns)
    csv.field_size_limit(MAX_LINE)
    try:
        with open(p, encoding="utf-8", newline="") as fh:
            return _profile_chunks(_row_chunks(p, fmt, fh, columns), fmt, bins, top, columns)
    except UnicodeDecodeError:
        raise InvalidInput(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read ({exc.strerror})") from None


def _profile_chunks(
    chunks: Iterator[tuple[dict[str, Sequence[Any]], int]],
    fmt: str,
    bins: int,
    top: int,
    columns: Sequence[str] | None,
) -> Profile:
    first = next(chunks, None)
    if first is None:
        return ProfileBuilder({}, fmt=fmt, bins=bins, top=top).profile()
    cols, rows = first
    unknown = [c for c in columns or () if c not in cols]
    if unknown:
        raise InvalidInput(f"no column {', '.join(map(repr, unknown))} in the data")
    infer = _csv_type if fmt == "csv" else _json_type
    types = {name: infer(values) for name, values in cols.items()}
    builder = ProfileBuilder(types, fmt=fmt, bins=bins, top=top)
    builder.add(cols, rows)
    for cols, rows in chunks:
        builder.add(cols, rows)
    return builder.profile()
