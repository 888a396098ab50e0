#!/usr/bin/env python3
"""Registry reads at 1,000, 10,000 and 100,000 versions of one model (issue 18).

Builds (once, cached) stores holding N versions of one model `m` plus a small second model
`other`, through the library (`Store.register`, one version at a time, as a team registering
a version per training run would), then times every read of issue 18 as the whole CLI process
(`python -m modelreg ...`) at each size in one run, and the same searches against MLflow's
`search_model_versions` on a sqlite-backed registry of 10,000 versions, side by side.

Building
--------
Version i (0-based) of `m` is `{1 + i // 10000}.{i // 100 % 100}.{i % 100}`, with metrics
`test.f1`, `test.auc`, `val.loss`, parameters `lr`, `layers`, `optimizer.name`, tags `nightly`
and `region-eu`/`region-us`, all drawn from `random.Random(i)` (so a resumed build is the
same store). Every version registers the same 1 KiB artifact, so its object dedupes and the
build measures the metadata path (manifest, state, audit entry, index catch-up, each fsynced)
rather than copying bytes. Interleaved with the registrations, as in a real registry's life:

* every 1,000th version is promoted to `production` (force: the gate is not the point) and
  every 250th to `staging`, so both aliases move many times;
* every 100th version gets the tag `candidate` 50 versions later (a tag added after the fact);
* every 500th version is deprecated 10 versions later.

The sizes nest: the 10,000 store starts as a copy of the finished 1,000 store and the 100,000
store as a copy of the finished 10,000 store, so the same history is never registered twice.
A store is finished when `DONE` is in its directory; an interrupted build resumes from the
manifests present (`models/m/versions/`) and the last completed version recorded in
`progress.json` (whose interleaved events are replayed if they were cut short). Each build
appends its rate (registers per second, per 1,000 versions) to `build-log.jsonl` beside it.

The cache is `--cache` (default `$XDG_CACHE_HOME/mreg-bench/reads` or
`~/.cache/mreg-bench/reads`), outside the repository.

Usage::

    python3 bench/scale.py build --sizes 1000,10000,100000   # build/resume only (background)
    python3 bench/scale.py --sizes 1000,10000,100000 --repeat 5 \
        --mlflow-python /tmp/mreg-bench-venv/bin/python
    python3 bench/scale.py --sizes 1000,10000 --repeat 3 --no-save     # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from register import system_busy, wait_for_quiet  # bench/register.py

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
REPO_SRC = REPO_DIR / "src"
MODEL = "m"
OTHER = "other"
OTHER_VERSIONS = 20
AUTHOR = "bench <bench@example.com>"
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "MREG_AUTHOR": AUTHOR}
TARGET_RATIO = 1.5
SLOW_SECONDS = 20.0  # a read slower than this (warm-up) is timed once at that size
COLD_TIMEOUT = 1800.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mreg-bench" / "reads"


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes are positive counts, e.g. 1000,10000,100000")
    return sizes


# -- the synthetic history ----------------------------------------------------------------------


def version_of(i: int) -> str:
    return f"{1 + i // 10000}.{i // 100 % 100}.{i % 100}"


def fields_of(i: int) -> dict[str, Any]:
    """The metrics, parameters and tags of version i (deterministic, so a resume agrees)."""
    rng = random.Random(i)
    f1 = round(0.5 + 0.5 * rng.random() ** 0.5, 4)  # skewed high: ~2% at >= 0.99
    return {
        "metrics": {
            "test": {"f1": f1, "auc": round(min(1.0, f1 + rng.random() * 0.05), 4)},
            "val": {"loss": round(rng.uniform(0.01, 1.0), 4)},
        },
        "params": {
            "lr": rng.choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]),
            "layers": rng.randint(2, 12),
            "optimizer": {"name": rng.choice(["adam", "sgd", "adamw"])},
        },
        "tags": ["nightly", "region-eu" if i % 2 else "region-us"],
    }


def events_after(i: int) -> list[tuple[str, str, str]]:
    """The alias moves, late tags and deprecations that follow registering version i."""
    out: list[tuple[str, str, str]] = []
    if i % 1000 == 999:
        out.append(("promote", version_of(i), "production"))
    if i % 250 == 249:
        out.append(("promote", version_of(i), "staging"))
    if i >= 50 and (i - 50) % 100 == 0:
        out.append(("tag", version_of(i - 50), "candidate"))
    if i >= 10 and (i - 10) % 500 == 0:
        out.append(("deprecate", version_of(i - 10), "superseded"))
    return out


def apply_event(store: Any, ev: tuple[str, str, str], *, replay: bool) -> None:
    kind, version, what = ev
    spec = f"{MODEL}@{version}"
    try:
        if kind == "promote":
            store.promote(spec, what, reason="bench", force=True)
        elif kind == "tag":
            store.tag(spec, add=[what])
        else:
            store.deprecate(spec, reason=what)
    except Exception as exc:  # a replayed event may already be there
        if not replay:
            raise
        log(f"  replayed {ev}: {type(exc).__name__}: {exc}")


def store_dir(cache: Path, n: int) -> Path:
    return cache / f"scale-{n}"


def count_versions(root: Path) -> int:
    vdir = root / ".modelreg" / "models" / MODEL / "versions"
    if not vdir.is_dir():
        return 0
    return sum(1 for e in os.scandir(vdir) if e.name.endswith(".yaml"))


def build_store(cache: Path, n: int, smaller: Path | None, *, fsync: bool) -> dict[str, Any]:
    """Build (or resume) the store of n versions; return what the build measured."""
    from modelreg import Store

    where = store_dir(cache, n)
    root = where / "store"
    if (where / "DONE").exists():
        return json.loads((where / "DONE").read_text())
    where.mkdir(parents=True, exist_ok=True)
    progress_file = where / "progress.json"
    if not (root / ".modelreg").exists():
        shutil.rmtree(root, ignore_errors=True)
        if smaller is not None:
            log(f"scale-{n}: starting from a copy of {smaller}")
            shutil.copytree(smaller / "store", root, symlinks=True)
            shutil.copy(smaller / "progress.json", progress_file)
        else:
            Store.init(root)
            progress_file.write_text(json.dumps({"done_through": -1}))
    store = Store.open(root)
    artifact = cache / "artifact" / "model.bin"
    if not artifact.exists():
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_bytes(random.Random(0).randbytes(1024))
    if count_versions(root) == 0 or OTHER not in {m.name for m in store.models()}:
        for j in range(OTHER_VERSIONS):
            store.register(OTHER, [artifact], version=f"0.{j}.0", detect_code=False,
                           metrics={"test": {"f1": 0.9 + j / 1000}}, author=AUTHOR,
                           tags=["small"])  # fmt: skip
        store.promote(f"{OTHER}@0.{OTHER_VERSIONS - 1}.0", "production", reason="bench", force=True)
    have = count_versions(root)
    done_through = json.loads(progress_file.read_text())["done_through"]
    for i in range(done_through + 1, have):  # registered, but its events may be missing
        for ev in events_after(i):
            apply_event(store, ev, replay=True)
    progress_file.write_text(json.dumps({"done_through": have - 1}))
    if have < n:
        log(f"scale-{n}: {have:,} versions present, registering {n - have:,} more")
    blog = (where / "build-log.jsonl").open("a")
    t_start = t_chunk = time.perf_counter()
    chunk_start = have
    for i in range(have, n):
        f = fields_of(i)
        t0 = time.perf_counter()
        store.register(MODEL, [artifact], version=version_of(i), detect_code=False,
                       metrics=f["metrics"], params=f["params"], tags=f["tags"],
                       author=AUTHOR, message=f"nightly run {i}")  # fmt: skip
        reg = time.perf_counter() - t0
        for ev in events_after(i):
            apply_event(store, ev, replay=False)
        if i % 100 == 99 or i == n - 1:
            progress_file.write_text(json.dumps({"done_through": i}))
        if i % 1000 == 999 or i == n - 1:
            now = time.perf_counter()
            rec = {
                "at": i + 1,
                "registers": i + 1 - chunk_start,
                "seconds": round(now - t_chunk, 2),
                "per_register_ms": round((now - t_chunk) / (i + 1 - chunk_start) * 1000, 2),
                "last_register_ms": round(reg * 1000, 2),
                "fsync": fsync,
                "time": dt.datetime.now().isoformat(timespec="seconds"),
            }
            blog.write(json.dumps(rec) + "\n")
            blog.flush()
            log(f"scale-{n}: {i + 1:>7,} versions, {rec['per_register_ms']:.1f} ms per version "
                f"(register + events) over the last {rec['registers']:,}")  # fmt: skip
            t_chunk, chunk_start = now, i + 1
    blog.close()
    rates = [json.loads(line) for line in (where / "build-log.jsonl").read_text().splitlines()]
    info = {
        "versions": n,
        "built": dt.datetime.now().isoformat(timespec="seconds"),
        "this_session_seconds": round(time.perf_counter() - t_start, 1),
        "build_log": rates,
    }
    (where / "DONE").write_text(json.dumps(info, indent=1) + "\n")
    return info


def build_all(cache: Path, sizes: list[int], *, fsync: bool = True) -> dict[int, dict[str, Any]]:
    """Build the sizes in increasing order, each from a copy of the one before."""
    out: dict[int, dict[str, Any]] = {}
    smaller: Path | None = None
    for n in sizes:
        out[n] = build_store(cache, n, smaller, fsync=fsync)
        smaller = store_dir(cache, n)
    return out


# -- the timed reads ------------------------------------------------------------------------------

# (label, mreg arguments after the store): every read of issue 18, on model `m`.
READS: list[tuple[str, list[str]]] = [
    ("mreg --help (start-up floor)", ["--help"]),
    ("list m (first page of 100)", ["list", MODEL]),
    ("list m --json", ["list", MODEL, "--json"]),
    ("list m --limit 10", ["list", MODEL, "--limit", "10"]),
    ("list m --offset N-100 (last page)", ["list", MODEL, "--offset", "{last_page}"]),
    # a filter that 1,000 versions match fewer than 100 times is read a page of 10, so that
    # every size prints the same rows (100 manifests read at 100,000, 10 at 1,000, would
    # measure the page, not the store)
    (
        '--where "test.f1 >= 0.99" --limit 10',
        ["list", MODEL, "--where", "test.f1 >= 0.99", "--limit", "10"],
    ),
    (
        '--where "metrics.test.f1 >= 0.9 and params.lr < 0.1"',
        ["list", MODEL, "--where", "metrics.test.f1 >= 0.9 and params.lr < 0.1"],
    ),
    (
        '--where "tags.candidate" --limit 10',
        ["list", MODEL, "--where", "tags.candidate", "--limit", "10"],
    ),
    ('--where "created >= 2026-01-01"', ["list", MODEL, "--where", "created >= 2026-01-01"]),
    ("--sort test.f1 --desc", ["list", MODEL, "--sort", "test.f1", "--desc"]),
    ("--tag candidate --limit 10", ["list", MODEL, "--tag", "candidate", "--limit", "10"]),
    ("--alias production", ["list", MODEL, "--alias", "production"]),
    ("show m (latest)", ["show", MODEL]),
    ("show m@production", ["show", f"{MODEL}@production"]),
    ("log m (newest 100)", ["log", MODEL]),
    ("log m --action promote -n 10", ["log", MODEL, "--action", "promote", "-n", "10"]),
    ("history m (newest 100 moves)", ["history", MODEL]),
    ("list (models)", ["list"]),
]


def py_env(cache: Path) -> dict[str, str]:
    """The environment of a timed mreg: this repository's src, a bytecode cache (as after an
    install: this sandbox sets PYTHONDONTWRITEBYTECODE=1, see bench/register.py), no pager."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(QUIET_ENV, PYTHONPATH=str(REPO_SRC), PYTHONPYCACHEPREFIX=str(cache / "pycache"))
    env.update(COLUMNS="160", NO_COLOR="1")
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float | None = None) -> dict[str, Any]:
    """One whole `python -m modelreg ...` process: wall seconds, what the rest of the machine
    did meanwhile (busy cores besides it), and how much it printed."""
    b0 = system_busy()
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "modelreg", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timeout": timeout, "busy_cores": None}
    wall = time.perf_counter() - t0
    busy = system_busy() - b0
    if out.returncode != 0:
        raise RuntimeError(
            f"mreg {' '.join(args)} exited {out.returncode}: {out.stderr.decode()[-2000:]}"
        )
    return {
        "seconds": wall,
        "busy_cores": busy / wall if wall else 0.0,
        "stdout_bytes": len(out.stdout),
        "stderr_tail": out.stderr.decode("utf-8", "replace").strip()[-200:],
    }


def index_files(root: Path) -> list[Path]:
    return [
        root / ".modelreg" / f for f in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm")
    ]


def time_cold(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Delete the derived index and time the first `mreg list m`, which rebuilds it (what a
    store gets after a fresh copy, an `unpack` or a deleted index; the build kept it current,
    so this is the only way the first read of a built store pays for it)."""
    for f in index_files(root):
        f.unlink(missing_ok=True)
    r = run_cli(["list", MODEL, "--store", str(root)], env, COLD_TIMEOUT)
    if not (root / ".modelreg" / "index.sqlite").exists():
        r["note"] = "no index.sqlite after the read"
    return r


def ui_model_page(root: Path, env: dict[str, str], samples: int) -> dict[str, Any]:
    """`mreg ui`: the model page /models/m (first page of 100), first request and median."""
    import http.client
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "ui", "--store", str(root), "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mreg ui did not start") from None
                time.sleep(0.1)
        times = []
        size = 0
        for _ in range(samples + 1):
            t0 = time.perf_counter()
            conn.request("GET", f"/models/{MODEL}")
            resp = conn.getresponse()
            body = resp.read()
            times.append(time.perf_counter() - t0)
            if resp.status != 200:
                raise RuntimeError(f"/models/{MODEL}: HTTP {resp.status}")
            size = len(body)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"first": times[0], "median": statistics.median(times[1:]), "bytes": size}


def bench_reads(
    cache: Path,
    sizes: list[int],
    repeat: int,
    quiet_wait: float,
    ui: bool,
    cold: bool,
    timeout: float,
) -> dict[str, Any]:
    env = py_env(cache)
    roots = {n: store_dir(cache, n) / "store" for n in sizes}
    out: dict[str, Any] = {"reads": [], "cold": {}, "ui": {}}
    if cold:
        for n in sizes:
            wait_for_quiet(quiet_wait, 0.3)
            r = time_cold(roots[n], env)
            out["cold"][str(n)] = r
            log(f"cold (index rebuilt by the first list) N={n:>7,}: {r['seconds']} s")
    for label, template in READS:
        row: dict[str, Any] = {"read": label, "args": template, "sizes": {}}
        samples: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        argv = {
            n: [a.replace("{last_page}", str(max(0, n - 100))) for a in template]
            + ([] if template == ["--help"] else ["--store", str(roots[n])])
            for n in sizes
        }
        timed_out: dict[int, float] = {}
        slow: set[int] = set()
        for n in sizes:  # one warm-up each; a size whose warm-up times out is not timed again
            w = run_cli(argv[n], env, timeout)
            if w.get("timeout"):
                timed_out[n] = timeout
            elif w["seconds"] > SLOW_SECONDS:  # timed once, not `repeat` times
                slow.add(n)
        for k in range(repeat):  # round-robin, so drift hits every size alike
            for n in sizes:
                if n in timed_out or (n in slow and k > 0):
                    continue
                wait_for_quiet(quiet_wait, 0.3)
                r = run_cli(argv[n], env, timeout)
                if r.get("timeout"):
                    timed_out[n] = timeout
                else:
                    samples[n].append(r)
        for n in sizes:
            if n in timed_out:
                row["sizes"][str(n)] = {"median": None, "timeout": timeout}
                continue
            secs = [s["seconds"] for s in samples[n]]
            row["sizes"][str(n)] = {
                "median": statistics.median(secs),
                "min": min(secs),
                "max": max(secs),
                "samples": [round(x, 4) for x in secs],
                "busy_cores_max": round(max(s["busy_cores"] for s in samples[n]), 2),
                "stdout_bytes": samples[n][-1]["stdout_bytes"],
                "stderr_tail": samples[n][-1]["stderr_tail"],
            }
        lo, hi = row["sizes"][str(sizes[0])]["median"], row["sizes"][str(sizes[-1])]["median"]
        row["ratio"] = None if lo is None or hi is None else hi / lo
        out["reads"].append(row)
        log(
            f"{label:<55}"
            + "".join(f" {fmt_cell(row['sizes'][str(n)]):>7}" for n in sizes)
            + ("  x-" if row["ratio"] is None else f"  x{row['ratio']:.2f}")
        )
    if ui:
        for n in sizes:
            r = ui_model_page(roots[n], env, max(repeat, 5))
            out["ui"][str(n)] = r
            log(f"ui /models/m N={n:>7,}: first {r['first'] * 1000:.0f} ms, "
                f"median {r['median'] * 1000:.1f} ms")  # fmt: skip
    return out


# -- MLflow, in its own virtualenv ---------------------------------------------------------------


def bench_mlflow(python: str, cache: Path, n: int, repeat: int) -> dict[str, Any]:
    """Build (cached) and query a sqlite MLflow registry of n versions with bench/scale_mlflow.py
    run by `python` (a virtualenv holding mlflow, as bench/register.py's --competitor-python)."""
    helper = str(BENCH_DIR / "scale_mlflow.py")
    work = cache / f"mlflow-{n}"
    env = {**os.environ, **QUIET_ENV}
    build = subprocess.run(
        [python, helper, "build", str(work), str(n)], env=env, capture_output=True, text=True
    )
    if build.returncode != 0:
        raise RuntimeError(f"scale_mlflow.py build failed: {build.stderr[-3000:]}")
    info = json.loads(build.stdout)
    log(f"MLflow {info['mlflow']}: registry of {n:,} versions ready ({info.get('note', '')})")
    rows = []
    queries = json.loads(
        subprocess.run(
            [python, helper, "queries", str(work)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    def helper_run(label: str, calls: int) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        r = subprocess.run(
            [python, helper, "search", str(work), label, str(calls)],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"scale_mlflow.py search {label}: {r.stderr[-3000:]}")
        return wall, json.loads(r.stdout)

    for q in queries:
        if q.get("cannot"):
            rows.append(q)
            log(f"MLflow {q['read']:<53} cannot: {q['cannot']} ({q.get('probe_error')})")
            continue
        # the whole process, as for mreg: import, client, one call (first run is the warm-up)
        procs = [helper_run(q["read"], 0)[0] for _ in range(repeat + 1)][1:]
        # the call alone: `repeat` calls in one process, after one
        _, res = helper_run(q["read"], repeat)
        rows.append({
            **q,
            "process_median": statistics.median(procs),
            "process_samples": [round(x, 4) for x in procs],
            "call_median": statistics.median(res["calls"]),
            "results": res["results"],
            "import_seconds": res["import"],
        })  # fmt: skip
        log(f"MLflow {q['read']:<53} process {statistics.median(procs):6.3f} s, "
            f"call {statistics.median(res['calls']) * 1000:7.1f} ms, {res['results']} results")  # fmt: skip
    return {"mlflow": info["mlflow"], "versions": n, "build": info, "rows": rows}


# -- output ---------------------------------------------------------------------------------------


def fmt_cell(cell: dict[str, Any]) -> str:
    if cell.get("median") is None:
        return f"> {cell['timeout']:g}"
    return f"{cell['median']:.2f}"


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(record: dict[str, Any]) -> str:
    sizes = record["sizes"]
    ml = {r["read"]: r for r in (record.get("mlflow") or {}).get("rows", [])}
    ml_n = (record.get("mlflow") or {}).get("versions")
    head = (
        "| read | "
        + " | ".join(f"{n:,}" for n in sizes)
        + f" | {sizes[-1]:,} / {sizes[0]:,} | within {TARGET_RATIO}x |"
    )
    if ml:
        head += f" MLflow {ml_n:,}: process / call |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for row in record["reads"]["reads"]:
        cells = [fmt_cell(row["sizes"][str(n)]) for n in sizes]
        if row["ratio"] is None:
            ratio, ok = "-", "**no**"
        else:
            ratio = f"{row['ratio']:.2f}x"
            ok = "yes" if row["ratio"] <= TARGET_RATIO else "**no**"
        line = f"| `{row['read']}` | " + " | ".join(cells) + f" | {ratio} | {ok} |"
        if ml:
            m = ml.get(row["read"])
            if m is None:
                line += " |"
            elif m.get("cannot"):
                line += f" cannot: {m['cannot']} |"
            else:
                line += f" {m['process_median']:.2f} / {m['call_median'] * 1000:.0f} ms |"
        lines.append(line)
    cold = record["reads"].get("cold") or {}
    if cold:
        cells = [fmt_s(cold[str(n)]["seconds"]) if str(n) in cold else "-" for n in sizes]
        hi, lo = cold[str(sizes[-1])]["seconds"], cold[str(sizes[0])]["seconds"]
        ratio = "-" if hi is None or lo is None else f"{hi / lo:.1f}x"
        lines.append(
            "| cold: first `list m` with no index (rebuilds it) | "
            + " | ".join(cells)
            + f" | {ratio} | (not a target) |"
            + (" |" if ml else "")
        )
    ui = record["reads"].get("ui") or {}
    if ui:
        cells = [f"{ui[str(n)]['median'] * 1000:.0f} ms" for n in sizes]
        r = ui[str(sizes[-1])]["median"] / ui[str(sizes[0])]["median"]
        ok = "yes" if r <= TARGET_RATIO else "**no**"
        lines.append(
            "| web view `/models/m` (HTTP request to a running `mreg ui`) | "
            + " | ".join(cells)
            + f" | {r:.2f}x | {ok} |"
            + (" |" if ml else "")
        )
    return "\n".join(lines) + "\n"


# -- entry point ---------------------------------------------------------------------------------


def build_summary(b: dict[str, Any]) -> dict[str, Any]:
    rates = b.get("build_log", [])
    return {
        "versions": b.get("versions"),
        "built": b.get("built"),
        "per_1000_ms_per_version": [r["per_register_ms"] for r in rates],
        "fsync": [r.get("fsync", True) for r in rates],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", nargs="?", choices=["run", "build"], default="run")
    ap.add_argument("--sizes", type=parse_sizes, default=[1_000, 10_000, 100_000])
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument(
        "--no-fsync",
        action="store_true",
        help="build with os.fsync a no-op in this process (same store bytes; see the docstring)",
    )
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per read and size")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="wait up to S seconds before each run for the machine to be idle")  # fmt: skip
    ap.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="give up on a read at a size after S seconds (reported as > S)",
    )
    ap.add_argument("--no-ui", action="store_true", help="skip the web view's model page")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold (index rebuild) read")
    ap.add_argument("--mlflow-python", help="python of a virtualenv with mlflow")
    ap.add_argument("--mlflow-versions", type=int, default=10_000)
    ap.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument(
        "--only",
        metavar="REGEX",
        help="time only the reads whose label matches (saved as scale-DATE-rerun.*)",
    )
    args = ap.parse_args()
    if args.only:
        global READS
        READS = [r for r in READS if re.search(args.only, r[0])]
    os.environ.update(QUIET_ENV)
    sys.path.insert(0, str(REPO_SRC))
    if args.no_fsync:
        os.fsync = lambda fd: None  # type: ignore[assignment]
    builds = build_all(args.cache, args.sizes, fsync=not args.no_fsync)
    if args.command == "build":
        return 0
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_DIR
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True, cwd=REPO_DIR
    ).stdout.strip()
    record: dict[str, Any] = {
        "bench": "scale",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "commit": commit,
        "src_modified_files": dirty.splitlines(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sizes": args.sizes,
        "repeat": args.repeat,
        "builds": {str(n): build_summary(b) for n, b in builds.items()},
    }
    record["reads"] = bench_reads(
        args.cache,
        args.sizes,
        args.repeat,
        args.quiet_wait,
        not args.no_ui,
        not args.no_cold,
        args.timeout,
    )
    if args.mlflow_python:
        record["mlflow"] = bench_mlflow(
            args.mlflow_python, args.cache, args.mlflow_versions, min(args.repeat, 3)
        )
    table = markdown(record)
    print(table)
    if not args.no_save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        stem = args.results_dir / f"scale-{record['date'][:10]}{'-rerun' if args.only else ''}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        stem.with_suffix(".md").write_text(table)
        log(f"saved {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
