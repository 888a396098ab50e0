#!/usr/bin/env python3
"""Benchmark `Router.route()` and the reload check against their floors and GrowthBook (issue 5).

What is timed, in one process, interleaved round-robin so that drift of the machine hits every
case alike; each case runs `--batch` calls per sample over 100,000 distinct user IDs (cycled), and
the median over `--samples` samples is reported, per call, loop overhead included for every case:

* `route()` with a user ID and no rules (a 5% canary: the common case);
* `route()` with three rules that do not match (a user-ID list, a region equality, an
  app-version prefix), so all three are evaluated before the global weight;
* one reload check (`router.check()` when nothing changed: two `stat()` calls);
* one bare `hashlib.sha256(key.encode()).digest()` of the key (the floor: route() must hash);
* GrowthBook's Python SDK (`pip install growthbook`) evaluating an equivalent feature: one
  experiment rule on the `id` attribute with weights 95/5, via `set_attributes` +
  `eval_feature` on one long-lived instance (its cheapest per-request path; no network).

Targets of issue 5: route() median < 1.5 µs without rules and < 3 µs with three rules; as
ratios in the same run, >= 5x faster than GrowthBook and <= 2.5x one bare sha256.

Results go to stdout and to `bench/results/route-<date>.json` (the committed record).

Usage::

    python3 bench/route.py                      # full run
    python3 bench/route.py --samples 5 --no-save
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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
TARGET_ROUTE_NS = 1500
TARGET_RULES_NS = 3000
TARGET_GROWTHBOOK_SPEEDUP = 5.0
TARGET_SHA256_RATIO = 2.5
KEYS = [f"user-{i}" for i in range(100_000)]


def make_store(root: Path):
    from modelreg import Store
    from modelreg.release import ops

    store = Store.init(root)
    for v in ("1.0.0", "1.1.0"):
        f = root / f"model-{v}.bin"
        f.write_bytes(v.encode() * 1000)
        store.register("fraud-detector", [f], version=v, detect_code=False, author="bench")
    store.promote("fraud-detector@1.0.0", "production", actor="bench")
    ops.start(store, "fraud-detector", "1.1.0", weight=5, actor="bench")
    return store


def age(paths: list[Path]) -> None:
    """Set mtimes in the past so that the racy-file rule does not force re-reads."""
    past = time.time() - 60
    for p in paths:
        if p.exists():
            os.utime(p, (past, past))


def cases(store_root: Path) -> dict[str, Callable[[int], None]]:
    """Each case runs N calls and returns nothing; the caller times it."""
    from modelreg.release import ops
    from modelreg.serving import Router
    from modelreg.store import Store

    store = Store.open(store_root)
    plain = Router.open("fraud-detector", store=store_root, check_interval_ms=1000)

    # A second model for the rules case, so each router has its own manifest.
    ruled_name = "fraud-detector-rules"
    for v in ("1.0.0", "1.1.0"):
        f = store_root.parent / f"r-{v}.bin"
        f.write_bytes(b"r" + v.encode() * 1000)
        store.register(ruled_name, [f], version=v, detect_code=False, author="bench")
    store.promote(f"{ruled_name}@1.0.0", "production", actor="bench")
    rules = [
        "user_id in qa-1,qa-2,qa-3 -> canary",
        "region=cn-north -> baseline",
        "app_version^=3. -> canary",
    ]
    ops.start(store, ruled_name, "1.1.0", weight=5, rules=rules, actor="bench")
    ruled = Router.open(ruled_name, store=store_root, check_interval_ms=1000)
    age([plain._source.rollout_path, plain._source.alias_path, ruled._source.rollout_path])
    plain.check()
    ruled.check()
    attrs = [
        {"region": ("eu", "us", "ap")[i % 3], "app_version": "2.4.1"} for i in range(len(KEYS))
    ]
    assert ruled.route(user_id="u", attributes=attrs[0]).reason == "weight"
    n_keys = len(KEYS)
    sha = hashlib.sha256

    def route_plain(n: int, start: int = 0) -> None:
        route, keys = plain.route, KEYS
        for i in range(start, start + n):
            route(user_id=keys[i % n_keys])

    def route_rules(n: int, start: int = 0) -> None:
        route, keys = ruled.route, KEYS
        for i in range(start, start + n):
            j = i % n_keys
            route(user_id=keys[j], attributes=attrs[j])

    def check(n: int, start: int = 0) -> None:
        c = plain.check
        for _ in range(n):
            c()

    def bare_sha256(n: int, start: int = 0) -> None:
        keys = KEYS
        for i in range(start, start + n):
            sha(keys[i % n_keys].encode()).digest()

    out: dict[str, Callable[[int], None]] = {
        "route_no_rules": route_plain,
        "route_three_rules": route_rules,
        "reload_check": check,
        "sha256_of_key": bare_sha256,
    }
    try:
        from growthbook import GrowthBook
    except ImportError:
        print("growthbook is not installed (pip install growthbook): skipping it", file=sys.stderr)
        return out
    seed = ops.status(store, "fraud-detector").rollout.seed  # type: ignore[union-attr]
    features = {
        "fraud-detector-version": {
            "defaultValue": "1.0.0",
            "rules": [
                {
                    "key": "fraud-detector-canary",
                    "variations": ["1.0.0", "1.1.0"],
                    "weights": [0.95, 0.05],
                    "hashAttribute": "id",
                    "seed": seed,
                }
            ],
        }
    }
    gb = GrowthBook(features=features)
    versions = {gb_eval(gb, k) for k in KEYS[:2000]}
    assert versions == {"1.0.0", "1.1.0"}, versions

    def growthbook(n: int, start: int = 0) -> None:
        keys = KEYS
        set_attributes, eval_feature = gb.set_attributes, gb.eval_feature
        for i in range(start, start + n):
            set_attributes({"id": keys[i % n_keys]})
            eval_feature("fraud-detector-version")

    out["growthbook"] = growthbook
    return out


def gb_eval(gb: Any, key: str) -> str:
    gb.set_attributes({"id": key})
    return str(gb.eval_feature("fraud-detector-version").value)


def measure(
    fns: dict[str, Callable[..., None]], samples: int, batch: int
) -> dict[str, dict[str, float]]:
    per_call: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm up
        fn(min(batch, 2000))
    offset = 0
    for _ in range(samples):
        for name, fn in fns.items():  # round-robin: drift hits every case alike
            n = batch if name != "growthbook" else max(batch // 10, 100)
            if name == "reload_check":
                n = max(batch // 10, 100)
            t0 = time.perf_counter_ns()
            fn(n, offset)
            per_call[name].append((time.perf_counter_ns() - t0) / n)
        offset += batch
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

    with tempfile.TemporaryDirectory(prefix="mreg-bench-route-") as tmp:
        root = Path(tmp) / "work"
        store = make_store(root)
        results = measure(cases(store.root), args.samples, args.batch)

    med = {k: v["median_ns"] for k, v in results.items()}
    ratios = {
        "route_no_rules_over_sha256": med["route_no_rules"] / med["sha256_of_key"],
        "route_three_rules_over_sha256": med["route_three_rules"] / med["sha256_of_key"],
    }
    if "growthbook" in med:
        ratios["growthbook_over_route_no_rules"] = med["growthbook"] / med["route_no_rules"]
    targets = {
        "route_no_rules < 1.5 us": med["route_no_rules"] < TARGET_ROUTE_NS,
        "route_three_rules < 3 us": med["route_three_rules"] < TARGET_RULES_NS,
        "route within 2.5x of sha256": ratios["route_no_rules_over_sha256"] <= TARGET_SHA256_RATIO,
    }
    if "growthbook" in med:
        targets[">= 5x faster than GrowthBook"] = (
            ratios["growthbook_over_route_no_rules"] >= TARGET_GROWTHBOOK_SPEEDUP
        )
    try:
        import growthbook

        gb_version = getattr(growthbook, "__version__", None) or _dist_version("growthbook")
    except ImportError:
        gb_version = None
    record: dict[str, Any] = {
        "benchmark": "route",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "method": {"samples": args.samples, "batch": args.batch, "distinct_keys": len(KEYS)},
        "growthbook_version": gb_version,
        "results": results,
        "ratios": ratios,
        "targets": targets,
    }
    width = max(map(len, results))
    print(f"{'case':<{width}}  median      p90")
    for k, v in results.items():
        print(f"{k:<{width}}  {v['median_ns']:7.0f} ns {v['p90_ns']:7.0f} ns")
    for k, r in ratios.items():
        print(f"{k}: {r:.2f}")
    for k, ok in targets.items():
        print(f"[{'PASS' if ok else 'FAIL'}] {k}")
    if not args.no_save:
        out = BENCH_DIR / "results" / f"route-{dt.date.today().isoformat()}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
