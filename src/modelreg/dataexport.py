"""`mreg data export`: a version's captured sample as one file, with its digest (issue 21).

Domain layer. Reads every process's sample files of `NAME@VERSION` (`samples/NAME/VERSION/`,
written by `serving.capture`), keeps the rows whose time falls in `[since, until)`, joins
the outcomes recorded for them (`--with-outcomes`: every outcome line of the version, in
whichever process it arrived, summed per outcome name), and writes them ordered by time and
request id, so the same sample gives the same bytes. Each line read is checked (at most
`MAX_LINE` bytes, JSON, the fields and their types); a damaged one is skipped and reported,
never fatal. The file is written through a temp file and renamed; its SHA-256 and row count
are returned and recorded in the store (`exportrecords`, `exports/<sha256>.yaml`), where
`register --data` finds them for the lineage link.

An exported row (JSON Lines, keys sorted)::

    {"features": {...}, "prediction": 0.83, "request": "9f0c…", "time": "2026-12-03T12:00:01.5Z",
     "variant": "canary", "version": "1.2.0", "outcomes": {"converted": 1.0}}

`outcomes` only with `--with-outcomes` (`{}` when none arrived). Parquet (the `parquet`
extra): the same rows, `features` and `outcomes` as struct columns.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.catalog import resolve
from modelreg.errors import InvalidInput, MregError
from modelreg.exportrecords import FORMATS, export_record, format_time, write_export_record
from modelreg.fsutil import TMP_PREFIX, open_atomic
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_file

__all__ = [
    "MAX_LINE",
    "MAX_PROBLEMS",
    "OUTCOMES_SUFFIX",
    "DataExport",
    "SampleRows",
    "export",
    "read_rows",
]

MAX_LINE = 64 * 1024
"""The longest line read from a sample file (`serving.capture.MAX_LINE`)."""
MAX_PROBLEMS = 100
"""Damaged lines reported one by one at most (all are counted)."""
OUTCOMES_SUFFIX = ".outcomes.jsonl"


@dataclass(frozen=True)
class DataExport:
    """What `mreg data export` wrote."""

    file: str
    sha256: str
    rows: int
    model: str
    version: str
    since: str | None
    until: str | None
    with_outcomes: bool
    format: str
    skipped: int = 0
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "rows": self.rows,
            "model": self.model,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "with_outcomes": self.with_outcomes,
            "format": self.format,
            "skipped": self.skipped,
            "problems": list(self.problems),
        }


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root, self.count = root, 0
        self.lines: list[str] = []

    def add(self, path: Path, lineno: int, why: str) -> None:
        self.count += 1
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(f"{path.relative_to(self.root)}:{lineno}: {why}")


def _lines(path: Path, problems: _Problems) -> Any:
    """(line number, parsed object) of each well-formed line of a file (no link followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        problems.add(path, 0, f"cannot read ({exc.strerror})")
        return
    with os.fdopen(fd, "rb") as fh:
        lineno = 0
        while True:
            line = fh.readline(MAX_LINE + 1)
            if not line:
                return
            lineno += 1
            if len(line) > MAX_LINE:
                problems.add(path, lineno, f"longer than {MAX_LINE} bytes, skipped")
                while line and not line.endswith(b"\n"):  # skip the rest of the long line
                    line = fh.readline(MAX_LINE + 1)
                continue
            if not line.endswith(b"\n"):
                problems.add(path, lineno, "cut short (no end of line), skipped")
                return
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError):
                problems.add(path, lineno, "not JSON, skipped")
                continue
            if not isinstance(doc, dict) or doc.get("v") != 1:
                problems.add(path, lineno, "not a sample line of format 1, skipped")
                continue
            yield lineno, doc


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _sample(doc: dict[str, Any], version: str) -> str | None:
    """Why a sample line is malformed (None: it is well formed)."""
    if not isinstance(doc.get("request"), str) or not doc["request"]:
        return "no request id"
    if not _number(doc.get("t")):
        return "no time"
    if doc.get("version") != version:
        return "a row of another version"
    if not isinstance(doc.get("variant"), str) or not isinstance(doc.get("features"), dict):
        return "no variant or no features"
    return None


def _files(root: Path, name: str, version: str) -> tuple[list[Path], list[Path]]:
    directory = layout.samples_dir(root, name, version)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    samples, outcomes = [], []
    for e in entries:
        if e.name.startswith(TMP_PREFIX) or not e.is_file(follow_symlinks=False):
            continue
        if e.name.endswith(OUTCOMES_SUFFIX):
            outcomes.append(Path(e.path))
        elif e.name.endswith(".jsonl"):
            samples.append(Path(e.path))
    return samples, outcomes


def _collect(
    root: Path,
    name: str,
    version: str,
    since: float | None,
    until: float | None,
    with_outcomes: bool,
    problems: _Problems,
) -> list[dict[str, Any]]:
    samples, outcome_files = _files(root, name, version)
    rows: dict[str, dict[str, Any]] = {}
    for path in samples:
        for lineno, doc in _lines(path, problems):
            why = _sample(doc, version)
            if why is not None:
                problems.add(path, lineno, f"{why}, skipped")
                continue
            t = float(doc["t"])
            if (since is not None and t < since) or (until is not None and t >= until):
                continue
            row = {
                "request": doc["request"],
                "time": format_time(t),
                "version": version,
                "variant": doc["variant"],
                "features": doc["features"],
                "prediction": doc.get("prediction"),
                "_t": t,
            }
            old = rows.get(doc["request"])
            if old is None or t < old["_t"]:  # a request twice (never, but): its first row
                rows[doc["request"]] = row
    if with_outcomes:
        for row in rows.values():
            row["outcomes"] = {}
        for path in outcome_files:
            for lineno, doc in _lines(path, problems):
                outs, rid = doc.get("outcomes"), doc.get("request")
                if not isinstance(rid, str) or not isinstance(outs, dict):
                    problems.add(path, lineno, "not an outcome line, skipped")
                    continue
                if not all(isinstance(k, str) and _number(v) for k, v in outs.items()):
                    problems.add(path, lineno, "an outcome that is not a number, skipped")
                    continue
                hit = rows.get(rid)
                if hit is not None:
                    acc = hit["outcomes"]
                    for k, v in outs.items():
                        acc[k] = acc.get(k, 0.0) + float(v)
    ordered = sorted(rows.values(), key=lambda r: (r["_t"], r["request"]))
    for r in ordered:
        del r["_t"]
    return ordered


@dataclass(frozen=True)
class SampleRows:
    """The rows of a version's captured sample (as exported), and the damaged lines skipped."""

    rows: tuple[dict[str, Any], ...]
    skipped: int = 0
    problems: tuple[str, ...] = ()


def read_rows(
    handle: StoreHandle,
    name: str,
    version: str,
    *,
    since: float | None = None,
    until: float | None = None,
    with_outcomes: bool = False,
) -> SampleRows:
    """The captured rows of `name`/`version` in `[since, until)`, merged as `export` does.

    The reader `mreg monitor` shares with the export (issue 21): ordered by time and
    request id, the export's row shape; damaged lines are skipped and reported.
    """
    problems = _Problems(handle.root)
    rows = _collect(handle.root, name, version, since, until, with_outcomes, problems)
    return SampleRows(tuple(rows), problems.count, tuple(problems.lines))


def _write_jsonl(out: Path, rows: list[dict[str, Any]]) -> None:
    with open_atomic(out) as fh:
        for r in rows:
            fh.write(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def _write_parquet(out: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInput(
            "--format parquet needs the parquet extra: pip install 'modelreg[parquet]'"
        ) from None
    empty = pa.table({"request": pa.array([], pa.string())})
    try:
        table = pa.Table.from_pylist(rows) if rows else empty
        with open_atomic(out) as fh:
            pq.write_table(table, fh)
    except pa.ArrowException as exc:  # mixed types in a column, an empty struct
        raise InvalidInput(f"the sample cannot be written as Parquet ({exc})") from None


def export(
    handle: StoreHandle,
    spec: str,
    out: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    with_outcomes: bool = False,
    format: str = "jsonl",
) -> DataExport:
    """Write the captured sample of `NAME@VERSION` to `out` and record the export.

    Args:
        handle: The store.
        spec: `NAME@VERSION` (or an alias).
        out: The file written (replaced if it exists).
        since: Only rows captured at or after this time (epoch seconds).
        until: Only rows captured before this time (epoch seconds).
        with_outcomes: Join the outcomes recorded for each row.
        format: `jsonl` or `parquet` (the `parquet` extra).

    Raises:
        NotFound: no such model or version.
        InvalidInput: an unknown format, `since` after `until`, or Parquet without its extra.
    """
    if format not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("--since must be before --until")
    mv = resolve(handle, spec)
    problems = _Problems(handle.root)
    rows = _collect(handle.root, mv.name, mv.version, since, until, with_outcomes, problems)
    try:
        (_write_parquet if format == "parquet" else _write_jsonl)(out, rows)
    except OSError as exc:
        raise MregError(f"{out}: cannot write ({exc.strerror})") from None
    digest, _ = hash_file(out)
    record = export_record(
        sha256=digest,
        rows=len(rows),
        model=mv.name,
        model_version=mv.version,
        since=since,
        until=until,
        with_outcomes=with_outcomes,
        format=format,
        created=handle.clock().timestamp(),
    )
    write_export_record(handle.root, record)
    return DataExport(
        file=str(out),
        sha256=digest,
        rows=len(rows),
        model=mv.name,
        version=mv.version,
        since=record["since"],
        until=record["until"],
        with_outcomes=with_outcomes,
        format=format,
        skipped=problems.count,
        problems=tuple(problems.lines),
    )
