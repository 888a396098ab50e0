#!/usr/bin/env python3
"""Benchmark push, pull, fetch and status against an S3 remote holding 1,000 and 100,000 objects.

Issue 18 ("remotes at scale"): with 100,000 objects on the remote, pushing one new version
must send O(changed) requests, not O(objects). For each size N this builds a store of N
objects in versions of 100 files (N/100 versions, one alias), puts it on moto's S3 server,
clones it, and then times, each as its own `mreg` process (`python -m modelreg`, start-up
included) and with every HTTP request the server answers counted:

* `status --remote`, nothing changed;
* `push` of one new version (10 files of 4 KiB);
* `fetch` and `pull` of that version in the clone, then `pull` with nothing new;
* `status --remote` in the clone.

The moto server runs in this process (a thread; the timed `mreg` runs in its own process, so
each gets a core) behind a WSGI wrapper that counts requests by kind (LIST, GET, HEAD, PUT).
Building is done once per size and cached (`--cache`, default `~/.cache/mreg-bench/scale`):
the versions are registered through the library (`Store.register`; the objects are written
without the durable copy thread and fsync, same names and bytes), the objects are put
straight into moto's in-process S3 backend (instead of N HTTP PUTs), and the metadata is
pushed by `mreg push`, so every manifest, ref and audit file on the remote is mreg's own.

`--src DIR` runs the timed commands with another `modelreg` (e.g. the previous commit's
`src/`, extracted with `git archive`), to compare before and after on the same remotes.

Usage::

    python3 bench/remote_scale.py                    # 1,000 and 100,000 objects
    python3 bench/remote_scale.py --sizes 1000 10000 --json
    python3 bench/remote_scale.py --src /tmp/before/src --save
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

BENCH_DIR = Path(__file__).resolve().parent
REPO_SRC = BENCH_DIR.parent / "src"
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MREG_AUTHOR": "bench <bench@example.com>",
}
FILES_PER_VERSION = 100
NEW_FILES = 10


class CountingMoto:
    """moto's S3 server on 127.0.0.1 in a thread, counting the requests it answers by kind."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = DomainDispatcherApplication(create_backend_app)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

        def counting(environ: dict[str, Any], start: Any) -> Any:
            query = unquote(environ.get("QUERY_STRING", ""))
            method = environ["REQUEST_METHOD"]
            kind = "LIST" if method == "GET" and "list-type" in query else method
            with self._lock:
                self.counts[kind] += 1
            return app(environ, start)

        self.server = make_server(
            "127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def take(self) -> dict[str, int]:
        with self._lock:
            out, self.counts = dict(self.counts), collections.Counter()
        return out


def _fast_put_file(self: Any, src: Path, progress: Any = None) -> tuple[str, int]:
    data = Path(src).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = self.path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest, len(data)


def build_store(cache: Path, n: int) -> Path:
    """A store of `n` objects in versions of FILES_PER_VERSION files (cached between runs)."""
    from modelreg import Store
    from modelreg.objects import ObjectStore

    where = cache / f"store-{n}"
    if (where / "done").exists():
        return where / "a"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    store = Store.init(where / "a")
    src = where / "src"
    original = ObjectStore.put_file
    ObjectStore.put_file = _fast_put_file  # type: ignore[method-assign]
    try:
        for v in range(n // FILES_PER_VERSION):
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir()
            for i in range(FILES_PER_VERSION):
                (src / f"shard-{i:03d}.bin").write_bytes(f"{n}-{v}-{i}-{uuid.uuid4()}".encode())
            store.register("ranker", [src], version=f"1.{v}.0", detect_code=False)
    finally:
        ObjectStore.put_file = original  # type: ignore[method-assign]
    store.promote(f"ranker@1.{n // FILES_PER_VERSION - 1}.0", "production")
    shutil.rmtree(src)
    (where / "done").write_text("ok\n")
    return where / "a"


def mreg(src: Path, cwd: Path, *args: str) -> float:
    env = {**os.environ, **AWS, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "modelreg", *args], cwd=cwd, env=env, capture_output=True
    )
    seconds = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(f"mreg {' '.join(args)} failed: {out.stderr.decode()[-2000:]}")
    return seconds


def workload(moto: CountingMoto, cache: Path, work: Path, n: int, src: Path) -> dict[str, Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from modelreg import Store

    t0 = time.perf_counter()
    cached = build_store(cache, n)
    built = time.perf_counter() - t0
    root = work / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(cached, root / "a")
    bucket = f"scale-{uuid.uuid4().hex[:12]}"
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    s3.create_bucket(bucket, "us-east-1")
    t0 = time.perf_counter()
    objects = [p for p in (root / "a" / ".modelreg" / "objects").rglob("*") if p.is_file()]
    for p in objects:
        s3.put_object(bucket, f"reg/objects/{p.parent.name}/{p.name}", p.read_bytes())
    loaded = time.perf_counter() - t0
    a_dir, b_dir = root / "a", root / "b"
    url = f"s3://{bucket}/reg"
    mreg(src, a_dir, "remote", "add", "origin", url, "-o", f"endpoint_url={moto.url}")
    moto.take()
    first = mreg(src, a_dir, "push")
    first_req = moto.take()
    shutil.copytree(a_dir, b_dir)
    rows: list[dict[str, Any]] = []

    def timed(what: str, where: Path, *args: str) -> None:
        moto.take()
        seconds = mreg(src, where, *args)
        req = moto.take()
        rows.append({"what": what, "seconds": round(seconds, 3), "requests": req})
        print(f"  N={n:>7,} {what:<34} {seconds:6.2f} s  {sum(req.values()):>5} requests {req}")

    timed("status --remote, nothing changed", a_dir, "status", "--remote")
    new = root / "new"
    new.mkdir()
    for i in range(NEW_FILES):
        (new / f"part-{i}.bin").write_bytes(os.urandom(4096))
    Store.open(a_dir).register("ranker", [new], version="9.0.0", detect_code=False)
    timed("push, one new version", a_dir, "push")
    timed("fetch, one new version", b_dir, "fetch")
    timed("pull, one new version", b_dir, "pull")
    timed("pull, nothing new", b_dir, "pull")
    timed("status --remote (clone)", b_dir, "status", "--remote")
    shutil.rmtree(root, ignore_errors=True)
    return {
        "objects": n,
        "versions": n // FILES_PER_VERSION,
        "build_seconds": round(built, 1),
        "load_seconds": round(loaded, 1),
        "first_push": {"seconds": round(first, 2), "requests": first_req},
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/mreg-bench/scale")
    ap.add_argument("--src", type=Path, default=REPO_SRC, help="the modelreg to time")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--save", action="store_true", help="write bench/results/remote-scale-*.json")
    args = ap.parse_args()
    os.environ.update(AWS)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    sys.path.insert(0, str(REPO_SRC))
    moto = CountingMoto()
    work = args.cache / "work"
    results = [workload(moto, args.cache, work, n, args.src.resolve()) for n in args.sizes]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH_DIR
    ).stdout.strip()
    doc = {
        "bench": "remote_scale",
        "date": dt.date.today().isoformat(),
        "commit": commit,
        "src": str(args.src),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
    if args.save:
        tag = "" if args.src.resolve() == REPO_SRC.resolve() else "-before"
        out = BENCH_DIR / "results" / f"remote-scale-{doc['date']}{tag}.json"
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
