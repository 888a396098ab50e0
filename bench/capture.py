"""Benchmark the cost of the sampled capture on the hot path (issue 21), in one run.

    PYTHONPATH=src python bench/capture.py [--samples 31] [--batch 20000] [--no-save]

A request in a model server is `route()`, `record()` and, with capture, `capture()`. Cases,
on one real router over a real store, timed round-robin so drift hits them alike:

* `record` — `router.record(d, latency_ms=..., score=...)`, today's recording.
* `record+capture_off` — the same plus `router.capture(d, features, prediction)` with the
  capture not configured (rate 0): one random draw, and return.
* `record+capture_1pct` — capture at rate 0.01 (features allow-listed, one hashed identifier,
  reservoir of 1000 rows per version and window): 99 calls in 100 cost one draw.
* `record+capture_all` — rate 1.0: every request encoded, hashed and put in the reservoir
  (the worst case; flushes are excluded by a long flush interval and a window per run).

Results go to stdout and to `bench/results/capture-<date>.json`, with the ratios of each case
to `record` in ns per call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
FEATURES = {"age": 41, "country": "fr", "amount": 12.5, "user_id": "u-123", "email": "x@y.z"}


def make_store(root: Path) -> Any:
    from modelreg import Store

    store = Store.init(root)
    f = root / "model.bin"
    f.write_bytes(b"weights" * 1000)
    store.register("fraud-detector", [f], version="1.0.0", detect_code=False, author="bench")
    store.promote("fraud-detector@1.0.0", "production", actor="bench")
    return store


def cases(root: Path) -> tuple[dict[str, Callable[[int], None]], list[Any]]:
    """Each case runs N requests; the routers are returned to be closed."""
    from modelreg.serving.router import Router

    routers = []

    def router(rate: float) -> Any:
        r = Router.open("fraud-detector", store=root, flush_interval_s=3600)
        if rate:
            r.sampler.configure(
                rate=rate, size=1000, features=("age", "country", "amount"),
                identifiers=("user_id",), key="bench-key-of-16-bytes-or-more", window_s=86_400,
            )  # fmt: skip
        routers.append(r)
        return r

    def case(r: Any, capture: bool) -> Callable[[int], None]:
        d = r.route(user_id="u-1")
        record, cap = r.record, r.capture

        if not capture:

            def run(n: int) -> None:
                for _ in range(n):
                    record(d, latency_ms=12.5, score=0.7)

        else:

            def run(n: int) -> None:
                for _ in range(n):
                    record(d, latency_ms=12.5, score=0.7)
                    cap(d, FEATURES, 0.7)

        return run

    fns = {
        "record": case(router(0.0), False),
        "record+capture_off": case(router(0.0), True),
        "record+capture_1pct": case(router(0.01), True),
        "record+capture_all": case(router(1.0), True),
    }
    return fns, routers


def measure(fns: dict[str, Callable[[int], None]], samples: int, batch: int) -> dict[str, Any]:
    per_call: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(min(batch, 2000))
    for _ in range(samples):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn(batch)
            per_call[name].append((time.perf_counter_ns() - t0) / batch)
    return {
        k: {
            "median_ns": statistics.median(v),
            "min_ns": min(v),
            "p90_ns": sorted(v)[int(0.9 * (len(v) - 1))],
            "samples": len(v),
        }
        for k, v in per_call.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=31)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mreg-bench-capture-") as tmp:
        store = make_store(Path(tmp) / "work")
        fns, routers = cases(store.root)
        results = measure(fns, args.samples, args.batch)
        for r in routers:
            r.close()
    base = results["record"]["median_ns"]
    ratios = {k: v["median_ns"] / base for k, v in results.items() if k != "record"}
    record: dict[str, Any] = {
        "benchmark": "capture",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "method": {"samples": args.samples, "batch": args.batch},
        "results": results,
        "ratios_to_record": ratios,
    }
    width = max(map(len, results))
    print(f"{'case':<{width}}  median      p90   x record")
    for k, v in results.items():
        print(
            f"{k:<{width}}  {v['median_ns']:7.0f} ns {v['p90_ns']:7.0f} ns"
            f"  {v['median_ns'] / base:5.2f}"
        )
    if not args.no_save:
        out = BENCH_DIR / "results" / f"capture-{dt.date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
