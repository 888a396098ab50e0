"""The record a `mreg data export` leaves in the store (issue 21: production data to training).

Storage layer. `exports/<sha256>.yaml` (spelled by `layout.export_record_path`) says which
rows of which version's captured sample the file with that SHA-256 holds: the model and
version, the time window, whether outcomes were joined, the format and the row count. It is
written once per export (temp, fsync, rename); exporting the same rows again produces the
same bytes and so rewrites the same record with a new `created`.

`register --data FILE` looks the digest of FILE up here to record the lineage link "trained
on production data of NAME@VERSION": `read_export_record(root, sha256)` returns the record
as a dict, None when the store has no record of that digest, and raises InvalidInput when
the record is damaged (too large, not YAML, a field missing or of the wrong type).

The document::

    kind: DataExport
    version: 1
    sha256: <64 hex>            the export file's SHA-256
    rows: 1234                  rows in the file
    model: fraud                the model whose sample was exported
    model_version: 1.2.0
    since: '2026-12-01T00:00:00Z'   or null: from the first sample
    until: '2026-12-02T00:00:00Z'   or null: to the last sample
    with_outcomes: true
    format: jsonl               jsonl or parquet
    created: '2026-12-03T12:00:00Z'
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelreg import layout, yamlio
from modelreg.errors import InvalidInput
from modelreg.fsutil import atomic_write, read_regular
from modelreg.hashing import check_digest, is_digest
from modelreg.names import Version, check_name

__all__ = [
    "FORMATS",
    "KIND",
    "MAX_BYTES",
    "VERSION",
    "export_record",
    "format_time",
    "parse_export_record",
    "parse_time",
    "read_export_record",
    "write_export_record",
]

KIND = "DataExport"
VERSION = 1
FORMATS = ("jsonl", "parquet")
MAX_BYTES = 16 * 1024
"""The largest record read: a record is a few hundred bytes."""

_FIELDS = {
    "kind",
    "version",
    "sha256",
    "rows",
    "model",
    "model_version",
    "since",
    "until",
    "with_outcomes",
    "format",
    "created",
}


def format_time(t: float) -> str:
    """ISO-8601 UTC of epoch seconds `t` (`2026-12-03T12:00:00Z`, microseconds if any)."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_time(text: str, what: str = "time") -> float:
    """Epoch seconds of an ISO-8601 time (`Z` or an offset; no offset means UTC).

    Raises:
        InvalidInput: not an ISO-8601 time.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what}: expected an ISO-8601 time such as 2026-12-03T12:00:00Z")
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise InvalidInput(
            f"{what}: {text!r} is not an ISO-8601 time such as 2026-12-03T12:00:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def export_record(
    *,
    sha256: str,
    rows: int,
    model: str,
    model_version: str,
    since: float | None,
    until: float | None,
    with_outcomes: bool,
    format: str,
    created: float,
) -> dict[str, Any]:
    """The record of one export, checked (times in epoch seconds)."""
    doc = {
        "kind": KIND,
        "version": VERSION,
        "sha256": sha256,
        "rows": rows,
        "model": model,
        "model_version": model_version,
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
        "with_outcomes": with_outcomes,
        "format": format,
        "created": format_time(created),
    }
    return _check(doc, "export record")


def _utc(value: Any, key: str, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, datetime):  # an unquoted timestamp, as YAML reads one
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return format_time(value.timestamp())
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an ISO-8601 UTC time{' or null' if nullable else ''}")
    try:
        return format_time(parse_time(value, key))
    except InvalidInput:
        raise ValueError(f"{key} is not an ISO-8601 time") from None


def _check(doc: Any, source: str) -> dict[str, Any]:
    try:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise ValueError(f"not a {KIND} document")
        if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
            raise ValueError(f"version must be {VERSION}")
        unknown = set(doc) - _FIELDS
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
        if not is_digest(doc.get("sha256")):
            raise ValueError("sha256 must be a SHA-256 digest")
        rows = doc.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise ValueError("rows must be a count")
        model, version = doc.get("model"), doc.get("model_version")
        if not isinstance(model, str) or not isinstance(version, str):
            raise ValueError("model and model_version must be text")
        if not isinstance(doc.get("with_outcomes"), bool):
            raise ValueError("with_outcomes must be true or false")
        if doc.get("format") not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        out = {
            "kind": KIND,
            "version": VERSION,
            "sha256": doc["sha256"],
            "rows": rows,
            "model": check_name(model),
            "model_version": Version.parse(version).text,
            "since": _utc(doc.get("since"), "since", True),
            "until": _utc(doc.get("until"), "until", True),
            "with_outcomes": doc["with_outcomes"],
            "format": doc["format"],
            "created": _utc(doc.get("created"), "created", False),
        }
    except (InvalidInput, ValueError) as exc:
        raise InvalidInput(f"{source}: damaged export record ({exc})") from None
    return out


def parse_export_record(data: bytes, sha256: str, source: str) -> dict[str, Any]:
    """Parse and check the record of the export whose SHA-256 is `sha256`.

    Raises:
        InvalidInput: too large, not YAML, a field missing or of the wrong type, or the
            record of another digest than its name.
    """
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"{source}: larger than {MAX_BYTES} bytes, not an export record")
    doc = _check(yamlio.load(data, source, InvalidInput), source)
    if doc["sha256"] != sha256:
        raise InvalidInput(f"{source}: damaged export record (it names another sha256)")
    return doc


def read_export_record(root: Path, sha256: str) -> dict[str, Any] | None:
    """The record of the export whose file has this SHA-256 (None: no such export here).

    Raises:
        InvalidInput: `sha256` is not a digest, or the record is damaged.
    """
    path = layout.export_record_path(root, check_digest(sha256))
    data = read_regular(path, MAX_BYTES, InvalidInput)
    if data is None:
        return None
    return parse_export_record(data, sha256, str(path))


def write_export_record(root: Path, record: dict[str, Any]) -> Path:
    """Write an export's record (checked; temp, fsync, rename); return its path."""
    doc = _check(record, "export record")
    path = layout.export_record_path(root, doc["sha256"])
    atomic_write(path, yamlio.dump(doc))
    return path
