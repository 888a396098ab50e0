#!/usr/bin/env python3
"""Benchmark `mreg push` / `mreg pull` against s3fs's own `put` / `get` of the same files.

Two workloads, each on two targets:

* one 1 GiB artifact, and 1,000 small (4 KiB) artifacts registered as one version;
* the moto S3 server (`python -m moto.server` in its own process on 127.0.0.1, so the server
  and the client each get a core) and a local directory (`file://`).

For each: the reference (s3fs `put` of the file(s) one call per file, sequentially; fsspec's
local `put` for the directory), `mreg push` to an empty remote, a second `mreg push` of the
unchanged store, the reference `get`, and `mreg pull` into an empty store. Every timed
operation runs in its own process, timed from the parent, with its peak RSS from `wait4`.
mreg runs as the CLI (`python -m modelreg`), start-up included; the second push is also
timed as a library call (`Store.push`), start-up excluded.

Targets (issue 4): 1,000 small files pushed >= 3x faster than the sequential s3fs put; the
1 GiB push within 1.2x of s3fs's put with peak RSS < 128 MiB; a second push < 1 s.

Usage::

    python3 bench/remote.py                  # full run, writes bench/results/remote-DATE.json
    python3 bench/remote.py --big-mib 64     # quick run (not saved unless --save)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MiB = 1 << 20
BENCH_DIR = Path(__file__).resolve().parent
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MREG_AUTHOR": "bench <bench@example.com>",
}
S3_OPTS = "import s3fs, sys\nfs = s3fs.S3FileSystem(endpoint_url=sys.argv[1])\n"
# The references: s3fs's own calls, one file per call, one after the other.
PUT = S3_OPTS + (
    "src, dst = sys.argv[2], sys.argv[3]\n"
    "import os\n"
    "files = sorted(os.listdir(src)) if os.path.isdir(src) else [None]\n"
    "for f in files:\n"
    "    fs.put(os.path.join(src, f) if f else src, f'{dst}/{f}' if f else dst)\n"
)
GET = S3_OPTS + (
    "src, dst = sys.argv[2], sys.argv[3]\n"
    "import os\n"
    "keys = sorted(fs.find(src)) if fs.isdir(src) else [src]\n"
    "os.makedirs(dst, exist_ok=True)\n"
    "for k in keys:\n"
    "    fs.get(k, os.path.join(dst, k.rsplit('/', 1)[-1]))\n"
)
LOCAL_PUT = (
    "import fsspec, os, sys\n"
    "fs = fsspec.filesystem('file')\n"
    "os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)\n"
    "fs.put(sys.argv[1], sys.argv[2], recursive=True)\n"
)


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one process; wall time from here, peak RSS of that child from wait4."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **AWS, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out}\n{err}")
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def _rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def mreg(*args: str, cwd: Path) -> dict[str, Any]:
    return run([sys.executable, "-m", "modelreg", *args], cwd=cwd)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise SystemExit("moto server did not start")


def make_data(root: Path, big_mib: int, small: int) -> tuple[Path, Path]:
    big = root / "data" / "model.bin"
    big.parent.mkdir(parents=True)
    rnd = random.Random(1)
    with open(big, "wb") as fh:
        for _ in range(big_mib):
            fh.write(rnd.randbytes(MiB))
    shards = root / "data" / "shards"
    shards.mkdir()
    for i in range(small):
        (shards / f"shard-{i:04d}.bin").write_bytes(rnd.randbytes(4096))
    return big, shards


def store_with(root: Path, name: str, src: Path) -> Path:
    work = root / name
    mreg("init", str(work), cwd=root)
    mreg("register", name, str(src), "--version", "1.0.0", "--no-code", cwd=work)
    return work


def library_second_push(work: Path) -> float:
    code = (
        "import time, sys\nfrom modelreg import Store\n"
        "s = Store.open(sys.argv[1])\nt = time.perf_counter(); s.push()\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(work)], capture_output=True, text=True,
        env={**os.environ, **AWS}, check=True,
    )  # fmt: skip
    return round(float(out.stdout.strip()), 3)


def workload(
    root: Path, name: str, work: Path, src: Path, endpoint: str, tag: str
) -> dict[str, Any]:
    """Push and pull one store to S3 (moto) and to a local directory, next to the references.

    Fresh buckets and directories each time: nothing is deduplicated across runs.
    """
    s3: dict[str, Any] = {}
    ref_bucket, bucket = f"ref-{tag}", f"mreg-{tag}"
    for b in (ref_bucket, bucket):
        run([sys.executable, "-c", S3_OPTS + "fs.mkdir(sys.argv[2])", endpoint, b])
    s3["s3fs_put"] = run([sys.executable, "-c", PUT, endpoint, str(src), f"{ref_bucket}/{name}"])
    mreg(
        "remote",
        "add",
        f"s3-{tag}",
        f"s3://{bucket}/mreg",
        "-o",
        f"endpoint_url={endpoint}",
        cwd=work,
    )
    s3["mreg_push"] = mreg("push", f"s3-{tag}", cwd=work)
    s3["mreg_push_again"] = mreg("push", f"s3-{tag}", cwd=work)
    mreg("remote", "default", f"s3-{tag}", cwd=work)
    s3["mreg_push_again_library_s"] = library_second_push(work)
    got = root / f"get-{tag}"
    s3["s3fs_get"] = run([sys.executable, "-c", GET, endpoint, f"{ref_bucket}/{name}", str(got)])
    _rm(got)
    other = root / f"{name}-pulled-{tag}"
    mreg("init", str(other), cwd=root)
    mreg("remote", "add", "s3", f"s3://{bucket}/mreg", "-o", f"endpoint_url={endpoint}", cwd=other)
    s3["mreg_pull"] = mreg("pull", cwd=other)
    shutil.rmtree(other)

    local: dict[str, Any] = {}
    ref = root / f"ref-{tag}"
    local["fsspec_put"] = run([sys.executable, "-c", LOCAL_PUT, str(src), str(ref / name)])
    local["fsspec_get"] = run(
        [sys.executable, "-c", LOCAL_PUT, str(ref / name), str(root / f"lget-{tag}" / name)]
    )
    _rm(ref)
    _rm(root / f"lget-{tag}")
    remote = root / f"remote-{tag}"
    mreg("remote", "add", f"dir-{tag}", str(remote), cwd=work)
    local["mreg_push"] = mreg("push", f"dir-{tag}", cwd=work)
    local["mreg_push_again"] = mreg("push", f"dir-{tag}", cwd=work)
    other = root / f"{name}-pulled-dir-{tag}"
    mreg("init", str(other), cwd=root)
    mreg("remote", "add", "dir", str(remote), cwd=other)
    local["mreg_pull"] = mreg("pull", cwd=other)
    shutil.rmtree(other)
    shutil.rmtree(remote)
    return {"s3": s3, "local": local}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure across repetitions (the same shape as one run)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = median_of([r[key] for r in runs])
        else:
            out[key] = round(statistics.median(r[key] for r in runs), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the large artifact")
    ap.add_argument("--small", type=int, default=1000, help="number of 4 KiB artifacts")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the small workload")
    ap.add_argument("--save", action="store_true", help="save even a non-default run")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mreg-bench-remote-", dir=args.tmp))
    moto, endpoint = start_moto()
    try:
        big, shards = make_data(root, args.big_mib, args.small)
        results: dict[str, Any] = {}
        for name, src, repeat in (("small", shards, args.repeat), ("big", big, 1)):
            work = store_with(root, name, src)
            runs = [workload(root, name, work, src, endpoint, f"{name}-{i}") for i in range(repeat)]
            results[name] = {
                "bytes": sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
                if src.is_dir()
                else src.stat().st_size,
                "files": args.small if src.is_dir() else 1,
                **median_of(runs),
                "runs": runs,
            }
            shutil.rmtree(work)
    finally:
        moto.kill()
        shutil.rmtree(root, ignore_errors=True)
    s, b = results["small"]["s3"], results["big"]["s3"]
    checks = {
        "small_push_speedup_vs_sequential_s3fs_put": {
            "value": round(s["s3fs_put"]["seconds"] / s["mreg_push"]["seconds"], 2), "target": ">= 3",
        },
        "big_push_time_ratio_vs_s3fs_put": {
            "value": round(b["mreg_push"]["seconds"] / b["s3fs_put"]["seconds"], 2), "target": "<= 1.2",
        },
        "big_push_peak_rss_mib": {"value": b["mreg_push"]["peak_rss_mib"], "target": "< 128"},
        "second_push_cli_s": {
            "value": max(s["mreg_push_again"]["seconds"], b["mreg_push_again"]["seconds"]), "target": "< 1",
        },
    }  # fmt: skip
    checks["small_push_speedup_vs_sequential_s3fs_put"]["ok"] = (
        checks["small_push_speedup_vs_sequential_s3fs_put"]["value"] >= 3
    )
    checks["big_push_time_ratio_vs_s3fs_put"]["ok"] = (
        checks["big_push_time_ratio_vs_s3fs_put"]["value"] <= 1.2
    )
    checks["big_push_peak_rss_mib"]["ok"] = checks["big_push_peak_rss_mib"]["value"] < 128
    checks["second_push_cli_s"]["ok"] = checks["second_push_cli_s"]["value"] < 1
    import importlib.metadata as md

    doc = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "versions": {p: md.version(p) for p in ("s3fs", "fsspec", "moto", "aiobotocore")},
        },
        "params": {"big_mib": args.big_mib, "small": args.small, "small_bytes": 4096,
                   "repeat_small": args.repeat},
        "results": results,
        "targets": checks,
    }  # fmt: skip
    text = json.dumps(doc, indent=2)
    print(text)
    if args.save or (args.big_mib == 1024 and args.small == 1000):
        out = BENCH_DIR / "results" / f"remote-{doc['date'][:10]}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text + "\n")
        print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
