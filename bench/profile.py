#!/usr/bin/env python3
"""Throughput, memory and size of the training data's profile (issue 21).

Writes a file of `--rows` rows (default 1,000,000) and 10 columns (6 numbers: normal,
lognormal, uniform, integer ages, a column with 5% missing, a small count; 3 categories of
5, 50 and 10,000 values; a boolean) as CSV and as Parquet (row groups of 100,000), then, each
in a fresh process:

- `modelreg.profiling.profile_file` on each: wall time, rows/s, MB/s, peak RSS (the
  process's maximum resident set, minus the same process's RSS after imports);
- the anchors: pyarrow's CSV reader alone (`pyarrow.csv.read_csv`, multi-threaded, the
  whole table in memory) and its Parquet reader alone (`pyarrow.parquet.read_table`), and
  pandas' `read_csv` + `describe(include="all")` when pandas is installed.

Also: the bytes of the profile of a 100-column file (50 numbers, 50 categories).

`--register` measures instead what the profile adds to a registration (issue 21): `mreg
register`'s library call with the CSV as `--data`, without and with `profile=True`, each in
a fresh process and a fresh store (the model file is a few bytes: the time is the data's).

Usage::

    python3 bench/profile.py --rows 100000 --no-save   # while developing
    python3 bench/profile.py                           # writes bench/results/profile-<date>.json/.md
    python3 bench/profile.py --register                # register with/without --profile, CSV only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
SRC = BENCH_DIR.parent / "src"

CHILD = r"""
import json, sys, time
sys.path.insert(0, {src!r})
kind, path = sys.argv[1], sys.argv[2]
import pyarrow, pyarrow.csv, pyarrow.parquet, datasketches
from modelreg.profiling import profile_file
def rss_kb(key="VmRSS:"):
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
base = rss_kb()
t0 = time.perf_counter()
if kind == "mreg":
    n = profile_file(path).rows
elif kind.startswith("register"):
    import pathlib, tempfile
    from modelreg import Store
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "model.bin").write_bytes(b"weights")
    base, t0 = rss_kb(), time.perf_counter()
    mv = Store.init(tmp / "s").register(
        "m", [tmp / "model.bin"], data=[path], profile=kind == "register-profile",
        detect_code=False,
    ).version
    n = mv.data[0].profile.rows if mv.data[0].profile else 0
elif kind == "pyarrow":
    n = (pyarrow.csv.read_csv(path) if path.endswith(".csv") else pyarrow.parquet.read_table(path)).num_rows
else:
    import pandas
    n = len(pandas.read_csv(path).describe(include="all"))
wall = time.perf_counter() - t0
peak = rss_kb("VmHWM:")
print(json.dumps({{"rows": n, "seconds": wall, "peak_rss_mb": peak / 1024, "rss_over_imports_mb": (peak - base) / 1024}}))
"""


def write_files(rows: int, tmp: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(21)
    score = rng.normal(0, 1, rows)
    score_mask = rng.random(rows) < 0.05
    table = pa.table(
        {
            "x": rng.normal(0, 1, rows),
            "income": np.round(rng.lognormal(10, 1, rows), 2),
            "u": rng.random(rows),
            "age": rng.integers(18, 91, rows),
            "score": pa.array(score, mask=score_mask),
            "clicks": rng.poisson(3, rows),
            "country": rng.choice([f"c{i}" for i in range(5)], rows),
            "city": rng.choice([f"city{i}" for i in range(50)], rows),
            "user": np.char.add("u", rng.integers(0, 10_000, rows).astype(str)),
            "vip": rng.random(rows) < 0.1,
        }
    )
    paths = {"csv": tmp / "data.csv", "parquet": tmp / "data.parquet"}
    pcsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"], row_group_size=100_000)
    return paths


def child(kind: str, path: Path) -> dict:
    code = CHILD.format(src=str(SRC))
    out = subprocess.run(
        [sys.executable, "-c", code, kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def wide_profile_bytes(tmp: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(SRC))
    from modelreg.profiling import profile_file

    rng = np.random.default_rng(3)
    n = 20_000
    cols = {f"n{i}": rng.normal(i, 1 + i, n) for i in range(50)}
    cols |= {f"c{i}": rng.choice([f"value-{j}" for j in range(100)], n) for i in range(50)}
    path = tmp / "wide.parquet"
    pq.write_table(pa.table(cols), path)
    return len(profile_file(path).to_json())


def register_cost(rows: int, no_save: bool) -> int:
    """`register --data FILE.csv` without and with the profile: seconds and peak RSS."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_files(rows, Path(tmp))["csv"]
        size_mb = round(path.stat().st_size / 1e6, 1)
        for kind in ("register", "register-profile"):
            r = child(kind, path) | {"kind": kind, "file_mb": size_mb}
            results.append(r)
            print(json.dumps(r), flush=True)
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    plain, prof = results
    text = "\n".join(
        [
            f"# register --profile ({date[:10]}, CSV of {rows:,} rows x 10 columns, "
            f"{plain['file_mb']} MB)",
            "",
            "| register | seconds | peak RSS MB | RSS over imports MB |",
            "|---|---:|---:|---:|",
            *(
                f"| {r['kind'].replace('register-profile', 'with --profile')} | "
                f"{r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['rss_over_imports_mb']:.0f} |"
                for r in results
            ),
            "",
            f"The profile adds {prof['seconds'] - plain['seconds']:.1f} s "
            f"({prof['seconds'] / plain['seconds']:.0f}x the registration without it).",
            "",
        ]
    )
    print(text)
    if not no_save:
        base = BENCH_DIR / "results" / f"profile-register-{date[:10]}"
        base.with_suffix(".json").write_text(
            json.dumps({"date": date, "results": results}, indent=1) + "\n"
        )
        base.with_suffix(".md").write_text(text)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--register", action="store_true", help="register with/without --profile")
    args = ap.parse_args()
    if args.register:
        return register_cost(args.rows, args.no_save)
    try:
        import pandas  # noqa: F401

        anchors = ["pyarrow", "pandas"]
    except ImportError:
        anchors = ["pyarrow"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(args.rows, Path(tmp))
        for fmt, path in paths.items():
            size_mb = path.stat().st_size / 1e6
            for kind in ["mreg", *anchors]:
                if kind == "pandas" and fmt != "csv":
                    continue
                r = child(kind, path)
                r |= {
                    "format": fmt,
                    "reader": kind,
                    "file_mb": round(size_mb, 1),
                    "rows_per_s": round(r["rows"] / r["seconds"]),
                    "mb_per_s": round(size_mb / r["seconds"], 1),
                }
                results.append(r)
                print(json.dumps(r), flush=True)
        wide = wide_profile_bytes(Path(tmp))
    doc = {
        "bench": "profile",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rows": args.rows,
        "results": results,
        "profile_bytes_100_features": wide,
    }
    lines = [
        f"# Profile throughput ({doc['date'][:10]}, {args.rows:,} rows x 10 columns)",
        "",
        "| format | reader | file MB | seconds | rows/s | MB/s | peak RSS MB | RSS over imports MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['format']} | {r['reader']} | {r['file_mb']} | {r['seconds']:.2f} | "
            f"{r['rows_per_s']:,} | {r['mb_per_s']} | {r['peak_rss_mb']:.0f} | {r['rss_over_imports_mb']:.0f} |"
        )
    lines += [
        "",
        f"Profile of 100 features (50 numbers, 50 categories): {wide:,} bytes of JSON.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        base = BENCH_DIR / "results" / f"profile-{doc['date'][:10]}"
        base.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
        base.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
