"""`mreg data export` of what real routers in separate processes captured (issue 21)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.exportrecords import format_time, parse_time, read_export_record
from modelreg.serving.router import Router
from tests.conftest import snapshot
from tests.release.util import make_model

ROOT = Path(__file__).resolve().parents[2]
KEY = "a-capture-key-of-some-length"

SERVER = textwrap.dedent(
    """
    import json, sys
    from modelreg.serving.router import Router

    root, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    router = Router.open("m", store=root, flush_interval_s=0.05)
    router.sampler.configure(rate=0.5, size=1000, features=("age",), identifiers=("user",))
    refs = []
    for i in range(n):
        d = router.route(user_id=f"{who}-{i}")
        ref = router.capture(d, features={"age": i, "user": f"{who}-{i}", "ssn": "ssn-secret-value"},
                             prediction=i / n)
        if ref is not None:
            refs.append(ref)
    for ref in refs[::3]:  # outcomes of every third sampled request, in this process
        router.record_outcome(ref, converted=1)
    print(json.dumps(refs))
    """
)  # the router is flushed at interpreter exit, as a serving process is


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """Two serving processes capture into one store; returns (store, refs of each)."""
    tmp = tmp_path_factory.mktemp("capture")
    store = make_model(Store.init(tmp / "work"), tmp)
    env = {**os.environ, "MREG_CAPTURE_KEY": KEY}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SERVER, str(store.root), who, "200"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for who in ("a", "b")
    ]
    refs = {}
    for who, p in zip(("a", "b"), procs, strict=True):
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        refs[who] = json.loads(out)
    # outcomes arriving in a third process, for requests the first one captured
    late = Router.open("m", store=store.root, flush_interval_s=0)
    for ref in refs["a"][1::3]:
        late.record_outcome(ref, revenue=2.5)
    late.close()
    return store, refs


def _export(run_mreg, store, out, *args):
    return run_mreg("data", "export", "m@1.0.0", "--out", str(out), "--json", *args,
                    cwd=store.root.parent)  # fmt: skip


def _read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_export_has_exactly_the_captured_rows_with_their_outcomes(captured, run_mreg, tmp_path):
    store, refs = captured
    out = tmp_path / "sample.jsonl"
    r = _export(run_mreg, store, out, "--with-outcomes")
    assert r.ok, r
    doc = r.json()
    sampled = {ref["request"] for who in refs for ref in refs[who]}
    assert 100 < len(sampled) < 300  # rate 0.5 of 400
    assert doc["rows"] == len(sampled)
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert {k: doc[k] for k in ("model", "version", "with_outcomes", "format")} == {
        "model": "m", "version": "1.0.0", "with_outcomes": True, "format": "jsonl",
    }  # fmt: skip
    rows = _read(out)
    assert {row["request"] for row in rows} == sampled
    assert [(row["time"], row["request"]) for row in rows] == sorted(
        (row["time"], row["request"]) for row in rows
    )
    want: dict[str, dict[str, float]] = {rid: {} for rid in sampled}
    for ref in refs["a"][::3] + refs["b"][::3]:
        want[ref["request"]]["converted"] = 1.0
    for ref in refs["a"][1::3]:
        want[ref["request"]]["revenue"] = 2.5
    assert {row["request"]: row["outcomes"] for row in rows} == want
    for row in rows:  # the allow-list: age kept, user hashed, ssn never stored
        assert set(row["features"]) == {"age", "user"}
        assert len(row["features"]["user"]) == 64
    for p in store.root.rglob("*"):
        if p.is_file() and "samples" in p.parts:
            data = p.read_bytes()
            assert b"ssn" not in data and b'"a-1"' not in data and b'"b-2"' not in data
    record = read_export_record(store.root, doc["sha256"])
    assert record is not None
    assert (record["rows"], record["model"], record["model_version"]) == (doc["rows"], "m", "1.0.0")
    assert record["with_outcomes"] is True and record["since"] is None


def test_export_is_deterministic_and_windows_filter(captured, run_mreg, tmp_path):
    store, _ = captured
    one, two = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    a, b = _export(run_mreg, store, one), _export(run_mreg, store, two)
    assert a.ok and b.ok and a.json()["sha256"] == b.json()["sha256"]
    rows = _read(one)
    assert "outcomes" not in rows[0]
    times = [parse_time(r["time"]) for r in rows]
    k = len(rows) // 3
    cut1 = (times[k - 1] + times[k]) / 2
    cut2 = (times[2 * k - 1] + times[2 * k]) / 2
    since, until = format_time(cut1), format_time(cut2)
    r = _export(run_mreg, store, tmp_path / "w.jsonl", "--since", since, "--until", until)
    assert r.ok, r
    got = _read(tmp_path / "w.jsonl")
    assert [g["request"] for g in got] == [x["request"] for x in rows[k : 2 * k]]
    assert r.json()["since"] == since and r.json()["until"] == until


def test_damaged_line_skipped_and_reported(captured, run_mreg, tmp_path):
    store, _ = captured
    good = _export(run_mreg, store, tmp_path / "good.jsonl").json()
    victim = sorted((store.root / "samples" / "m" / "1.0.0").glob("*[0-9].jsonl"))[0]
    original = victim.read_bytes()
    try:
        victim.write_bytes(original + b'{"v": 1, "request": \n' + b"x" * 70_000 + b"\n")
        r = _export(run_mreg, store, tmp_path / "bad.jsonl")
        assert r.ok, r
        doc = r.json()
        assert doc["rows"] == good["rows"] and doc["sha256"] == good["sha256"]
        assert doc["skipped"] == 2
        assert all(victim.name in p for p in doc["problems"])
        human = run_mreg("data", "export", "m@1.0.0", "--out", str(tmp_path / "h.jsonl"),
                         cwd=store.root.parent)  # fmt: skip
        assert human.ok and "skipped" in human.stdout and victim.name in human.stdout
    finally:
        victim.write_bytes(original)


def test_parquet(captured, run_mreg, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    store, _ = captured
    out = tmp_path / "s.parquet"
    r = _export(run_mreg, store, out, "--format", "parquet", "--with-outcomes")
    assert r.ok, r
    table = pq.read_table(out)
    assert table.num_rows == r.json()["rows"] > 0
    assert r.json()["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("ref", "args"),
    [
        ("m@9.9.9", []),
        ("nope@1.0.0", []),
        ("m@1.0.0", ["--since", "yesterday"]),
        ("m@1.0.0", ["--format", "csv"]),
        ("m@1.0.0", ["--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"]),
    ],
)
def test_refused_with_exit_2_and_nothing_written(captured, run_mreg, tmp_path, ref, args):
    store, _ = captured
    before = snapshot(store.root)
    out = tmp_path / "x.jsonl"
    r = run_mreg("data", "export", ref, "--out", str(out), *args, cwd=store.root.parent)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("mreg: error:")
    assert not out.exists()
    assert snapshot(store.root) == before


def test_a_version_never_captured_exports_zero_rows(captured, run_mreg, tmp_path):
    store, _ = captured
    out = tmp_path / "none.jsonl"
    r = run_mreg("data", "export", "m@1.2.0", "--out", str(out), "--json", "--with-outcomes",
                 cwd=store.root.parent)  # fmt: skip
    assert r.ok, r
    assert r.json()["rows"] == 0 and out.read_bytes() == b""
    assert r.json()["sha256"] == hashlib.sha256(b"").hexdigest()
    assert read_export_record(store.root, r.json()["sha256"])["model_version"] == "1.2.0"
