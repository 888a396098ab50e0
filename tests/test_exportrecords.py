"""The record of a data export (issue 21): written, read back, damage refused."""

from __future__ import annotations

import pytest

from modelreg import layout
from modelreg.errors import InvalidInput
from modelreg.exportrecords import (
    export_record,
    format_time,
    parse_time,
    read_export_record,
    write_export_record,
)

DIGEST = "ab" * 32


def _record(**over):
    kw = dict(
        sha256=DIGEST,
        rows=3,
        model="fraud",
        model_version="1.2.0",
        since=1_780_000_000.0,
        until=None,
        with_outcomes=True,
        format="jsonl",
        created=1_780_000_100.5,
    )
    kw.update(over)
    return export_record(**kw)


def test_written_and_read_back(tmp_path):
    path = write_export_record(tmp_path, _record())
    assert path == layout.export_record_path(tmp_path, DIGEST)
    assert path.name == f"{DIGEST}.yaml" and path.parent.name == "exports"
    got = read_export_record(tmp_path, DIGEST)
    assert got == _record()
    assert got["kind"] == "DataExport" and got["version"] == 1
    assert got["since"] == format_time(1_780_000_000.0) and got["since"].endswith("Z")
    assert got["until"] is None and got["created"].endswith(".500000Z")
    assert parse_time(got["since"]) == 1_780_000_000.0


def test_missing_is_none_and_bad_digest_refused(tmp_path):
    assert read_export_record(tmp_path, DIGEST) is None
    with pytest.raises(InvalidInput):
        read_export_record(tmp_path, "../../etc/passwd")
    assert not (tmp_path / "exports").exists()


@pytest.mark.parametrize(
    "text",
    [
        b"kind: DataExport\nversion: 1\n",  # fields missing
        b"[not, a, mapping]\n",
        b"kind: DataExport\n\x00",
        b"x" * 20000,  # too large
    ],
)
def test_damaged_record_refused(tmp_path, text):
    path = layout.export_record_path(tmp_path, DIGEST)
    path.parent.mkdir(parents=True)
    path.write_bytes(text)
    with pytest.raises(InvalidInput, match=r"exports.*\.yaml"):
        read_export_record(tmp_path, DIGEST)


def test_wrong_types_and_other_digest_refused(tmp_path):
    path = write_export_record(tmp_path, _record())
    good = path.read_text()
    for old, new in [
        ("rows: 3", "rows: -1"),
        ("rows: 3", "rows: three"),
        ("with_outcomes: true", "with_outcomes: 1"),
        ("format: jsonl", "format: csv"),
        ("model_version: 1.2.0", "model_version: x"),
        (f"sha256: {DIGEST}", f"sha256: {'cd' * 32}"),
        ("version: 1", "version: 2"),
    ]:
        assert old in good
        path.write_text(good.replace(old, new))
        with pytest.raises(InvalidInput, match="damaged export record"):
            read_export_record(tmp_path, DIGEST)


def test_parse_time_refuses_nonsense():
    with pytest.raises(InvalidInput, match="--since"):
        parse_time("yesterday", "--since")
    assert parse_time("2026-12-03T12:00:00+01:00") == parse_time("2026-12-03T11:00:00Z")
