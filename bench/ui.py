#!/usr/bin/env python3
"""Benchmark the web view (issue 9): time to serve the model list and a release page.

Builds, with the library, a store of 1,000 versions (`--models` models x `--versions`
versions, each model with `staging` and `production` aliases) and two releases whose 16
serving processes each recorded `--requests` requests over one simulated hour (flushed
every 10 s, as `Router.record` does): one analysed by `release watch --once` every 5
simulated minutes (which compacts sealed metrics segments into per-minute totals, as a
running watch does), one never analysed (the raw per-process files). Then runs the real `mreg ui` (uvicorn) on 127.0.0.1 and times complete HTTP
requests (one keep-alive connection, the whole body read): the first request, and the
median of `--samples` after it.

Targets: model list < 100 ms, release page < 300 ms (both releases).

Usage::

    python3 bench/ui.py                # writes bench/results/ui-<date>.json
    python3 bench/ui.py --requests 100000 --no-save
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelreg.store import Store

TARGETS_MS = {
    "model list": 100.0,
    "release page (analysed, compacted)": 300.0,
    "release page (raw files)": 300.0,
}
PATHS = {
    "model list": "/",
    "release page (analysed, compacted)": "/models/model-000/-/release",
    "release page (raw files)": "/models/model-001/-/release",
}


def build(workdir: Path, models: int, versions: int, requests: int) -> dict[str, float]:
    from modelreg.analysis.demo import Clock
    from modelreg.release import ops

    clock = Clock()
    Store.init(workdir)
    store = Store.open(workdir, clock=lambda: dt.datetime.fromtimestamp(clock.t, dt.timezone.utc))
    art = workdir / "model.bin"
    t0 = time.perf_counter()
    for m in range(models):
        name = f"model-{m:03d}"
        for v in range(versions):
            art.write_bytes(f"{name} {v}".encode())
            store.register(
                name, [art], version=f"1.{v}.0", params={"lr": 0.01 * (v + 1), "depth": v % 7},
                metrics={"test": {"f1": 0.8 + v / 1000}, "train": {"f1": 0.9}},
                detect_code=False, author="bench <bench@example.com>", message=f"build {v}",
            )  # fmt: skip
        store.promote(f"{name}@1.{versions - 2}.0", "production", actor="bench")
        store.promote(f"{name}@1.{versions - 1}.0", "staging", actor="bench")
    registering = time.perf_counter() - t0
    record_s = {}
    for name, analysed in (("model-000", True), ("model-001", False)):
        ops.start(store, name, f"1.{versions - 1}.0", steps="1,5,25,50",
                  analysis=["errors: error_rate <= baseline + 0.5pt",
                            "p99: latency.p99 <= 1.2x baseline", "conversion >= baseline"],
                  actor="bench")  # fmt: skip
        record_s[name] = record(store, name, requests, clock, analysed)
    return {"register_s": registering, "record_s": sum(record_s.values()), "requests": requests}


def record(store: Store, name: str, requests: int, clock, analysed: bool) -> float:
    """16 routers record `requests` over one simulated hour; `watch --once` every 5 minutes
    (which also compacts sealed segments) when `analysed`."""
    from modelreg.analysis.watch import watch
    from modelreg.serving import Router

    routers = [
        Router.open(name, store=store.root, materialize=False, clock=clock, wall=clock,
                    flush_interval_s=10)
        for _ in range(16)
    ]  # fmt: skip
    rng = random.Random(5)
    t0 = time.perf_counter()
    for second in range(3600):
        per_second = requests * (second + 1) // 3600 - requests * second // 3600
        for i in range(per_second):
            r = routers[i % 16]
            d = r.route(user_id=f"u{rng.randrange(1_000_000)}")
            r.record(d, latency_ms=rng.lognormvariate(3, 0.4), error=rng.random() < 0.01,
                     conversion=int(rng.random() < 0.1))  # fmt: skip
        clock.t += 1
        if analysed and second % 300 == 299:
            for r in routers:
                r.metrics.flush()
            watch(store, name, once=True, promote=False, clock=clock, actor="bench-watch")
    for r in routers:
        r.close()
    return time.perf_counter() - t0


def timed(conn: http.client.HTTPConnection, path: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return (time.perf_counter() - t) * 1000, resp.status, len(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mreg-bench-ui-") as tmp:
        work = Path(tmp) / "work"
        built = build(work, args.models, args.versions, args.requests)
        metrics = work / ".modelreg" / "metrics"
        files = {m: list((metrics / m).rglob("*.jsonl")) for m in ("model-000", "model-001")}
        lines = {m: sum(1 for p in fs for _ in p.open()) for m, fs in files.items()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelreg", "ui", "--port", "0", "--store", str(work)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "HOME": tmp},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split("at ", 1)[1].strip()
            host, port = url.removeprefix("http://").rstrip("/").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            results = {}
            for label, path in PATHS.items():
                first, status, size = timed(conn, path)
                assert status == 200, (label, status)
                samples = [timed(conn, path)[0] for _ in range(args.samples)]
                med = statistics.median(samples)
                results[label] = {
                    "first_ms": round(first, 1), "median_ms": round(med, 1),
                    "min_ms": round(min(samples), 1), "max_ms": round(max(samples), 1),
                    "bytes": size, "target_ms": TARGETS_MS[label],
                    "pass": med < TARGETS_MS[label],
                }  # fmt: skip
            conn.close()
        finally:
            proc.terminate()
            proc.wait()
    doc = {
        "bench": "ui",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "params": vars(args),
        "store": {
            "versions": args.models * args.versions,
            "models": args.models,
            "requests_per_release": built["requests"],
            "metrics_files": {m: len(fs) for m, fs in files.items()},
            "metrics_lines": lines,
            "register_s": round(built["register_s"], 1),
            "record_s": round(built["record_s"], 1),
        },
        "results": results,
    }
    print(json.dumps(doc, indent=2))
    for label, r in results.items():
        print(f"{label}: median {r['median_ms']} ms (first {r['first_ms']} ms), target "
              f"< {r['target_ms']:g} ms: {'pass' if r['pass'] else 'MISSED'}", file=sys.stderr)  # fmt: skip
    if not args.no_save:
        out = Path(__file__).parent / "results" / f"ui-{doc['date'][:10]}.json"
        out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if all(r["pass"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
