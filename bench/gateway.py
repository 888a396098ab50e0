#!/usr/bin/env python3
"""Benchmark the latency the nginx-njs gateway adds to a request (issue 17).

One nginx process (one worker, started by `tests/integrations/nginx.py`'s `Nginx`) holds,
side by side, everything the run compares, so that both paths share the process, the
worker, the upstream and the machine's state:

* **upstream**: a server block answering `return 200 "ok"` (nginx itself: a Python upstream's
  jitter would swamp tens of microseconds);
* **A, plain proxy**: `proxy_pass` to that upstream without mreg, through an `upstream {}`
  block with the same keep-alive settings the gateway's export writes (`keepalive 32`,
  HTTP/1.1, `Connection ""`, `Host $host`);
* **B, mreg gateway**: the server `mreg release export m --format nginx-njs` wrote, for a
  real store made through the library with a live release: 10% canary, three rules (a
  user list of 1,000 testers, `region=cn-north`, `app_version^=3.`), none of which the
  bench users match, so every request evaluates all three rules, then hashes its user ID;
  both versions' upstreams point at the same `return 200` server;
* **C, njs only**: `return 200 $mreg_m_route` (the njs `route()` and nothing else, no proxy);
* **D, no njs**: `return 200 "..."`, a constant of the same length as C's answer.

The added latency of the gateway is B - A; the cost of the njs evaluation is C - D. The load
generator is a raw keep-alive socket per side (TCP_NODELAY; prebuilt requests, responses
read up to their Content-Length), sending requests one after the other and timing each with
`time.perf_counter_ns`; every request carries a distinct `x-user-id` (the same IDs on every
side) plus `x-region` and `x-app-version`. The sides are interleaved in rounds of `--batch`
requests, in the order A B C D, then D C B A, so drift of the machine hits every side alike;
`--warmup` requests per side come first and are not counted. Requests per second are those
of one connection sending sequentially (1 / mean latency): the client is a single Python
thread, so it is no measure of nginx's throughput under concurrent load.

Target of issue 17: median added latency (B - A) < 100 µs, on this machine.

Results go to stdout and, unless `--no-save`, to `bench/results/gateway-<date>.json`
(`--results-dir` elsewhere; `--json` prints the record to stdout instead of the table).

Usage::

    python3 bench/gateway.py                       # 20,000 requests per side
    python3 bench/gateway.py --requests 4000 --no-save
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:  # tests.integrations.nginx and tests.release.util
    sys.path.insert(0, str(ROOT))

TARGET_ADDED_MEDIAN_NS = 100_000
MODEL = "m"
TESTERS = [f"qa-{i}" for i in range(1000)]
RULES = [
    "testers: user_id in " + ",".join(TESTERS) + " -> canary",
    "region=cn-north -> baseline",
    "app_version^=3. -> canary",
]
WEIGHT = 10
SIDES = {
    "A": "nginx proxy, no mreg",
    "B": "mreg gateway (njs + proxy)",
    "C": "return $mreg_m_route (njs only)",
    "D": "return constant (no njs)",
}
_LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)", re.I)
_VARIANT = re.compile(rb"\r\nx-mreg-variant: *([a-z]+)", re.I)


def make_store(tmp: Path) -> Any:
    """A store with `m` 1.0.0 (production), 1.1.0, 1.2.0 and a live 10% canary of 1.1.0."""
    from tests.release.util import make_model

    from modelreg import Store
    from modelreg.release import ops

    store = make_model(Store.init(tmp / "store"), tmp)
    ops.start(store, MODEL, "1.1.0", weight=WEIGHT, rules=RULES, actor="bench")
    return store


def export(store: Any, gateway: Path, listen: int, upstream: int) -> None:
    """`mreg release export m --format nginx-njs`, the real CLI, in a fresh process."""
    up = f"127.0.0.1:{upstream}"
    subprocess.run(
        [
            sys.executable, "-m", "modelreg", "release", "export", MODEL, "-f", "nginx-njs",
            "-o", str(gateway), "--listen", f"127.0.0.1:{listen}", "--store", str(store.root),
            "--upstream", f"1.0.0={up}", "--upstream", f"1.1.0={up}",
        ],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip


def extra_conf(ports: dict[str, int], constant: str) -> str:
    """The server blocks of the upstream and of sides A, C, D (B is the export's)."""
    # keepalive_requests: nginx 1.22 closes a client connection after 1,000 requests by
    # default; the bench's one connection per side must stay open (every side alike)
    return f"""
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{ports["upstream"]};
    location / {{ return 200 "ok"; }}
  }}
  upstream bench_plain {{
    server 127.0.0.1:{ports["upstream"]};
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{ports["A"]};
    location / {{
      proxy_pass http://bench_plain;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
  server {{
    listen 127.0.0.1:{ports["C"]};
    location / {{ return 200 $mreg_m_route; }}
  }}
  server {{
    listen 127.0.0.1:{ports["D"]};
    location / {{ return 200 "{constant}"; }}
  }}
"""


def requests_for(n: int) -> list[bytes]:
    """`n` requests, each with its own user ID; none of them matches a rule."""
    regions = ("eu", "us", "ap")
    return [
        (
            f"GET /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nx-user-id: user-{i}\r\n"
            f"x-region: {regions[i % 3]}\r\nx-app-version: 2.4.1\r\n\r\n"
        ).encode()
        for i in range(n)
    ]


class Conn:
    """One keep-alive connection; `run` sends requests one by one and times each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run(self, reqs: list[bytes], out: list[int], variants: Counter[bytes]) -> None:
        send, recv, clock = self.sock.sendall, self.sock.recv, time.perf_counter_ns
        length, variant = _LENGTH.search, _VARIANT.search
        for req in reqs:
            t0 = clock()
            send(req)
            buf = recv(65536)
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                more = recv(65536)
                if not more:
                    raise ConnectionError(f"port {self.port} closed the connection")
                buf += more
                end = buf.find(b"\r\n\r\n")
            m = length(buf, 0, end + 2)
            if m is None:
                raise ValueError(f"no Content-Length from port {self.port}: {buf[:300]!r}")
            total = end + 4 + int(m.group(1))
            while len(buf) < total:
                buf += recv(65536)
            t1 = clock()
            out.append(t1 - t0)
            if not buf.startswith(b"HTTP/1.1 200 "):
                raise ValueError(f"port {self.port} answered {buf[:300]!r}")
            v = variant(buf, 0, end + 2)
            if v is not None:  # B: the gateway's response header
                variants[v.group(1)] += 1
            elif total - end - 4 > 2:  # C and D: the body is "UPSTREAM VARIANT VERSION"
                variants[buf[end + 4 : total].split(b" ")[1]] += 1

    def close(self) -> None:
        self.sock.close()


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def system_busy() -> float:
    """CPU-seconds the whole machine has been busy (all CPUs, every process, kernel threads)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def process_cpu(pids: list[int]) -> float:
    """CPU-seconds used so far by these processes (user + system)."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


def nginx_pids(master: int) -> list[int]:
    """The nginx master and its workers."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def wait_for_quiet(timeout: float, max_cores: float, window: float = 0.5) -> dict[str, float]:
    """Wait until fewer than `max_cores` are busy over `window` seconds (at most `timeout`).

    Another job on the same 2 cores slows the client and nginx alike, and so every latency,
    the added one included; this keeps the run to a quiet moment where it can.
    """
    t0 = time.perf_counter()
    while True:
        b0 = system_busy()
        time.sleep(window)
        busy = (system_busy() - b0) / window
        waited = time.perf_counter() - t0
        if busy < max_cores or waited >= timeout:
            return {"waited_s": waited, "busy_cores_before": busy}


def quantile(sorted_ns: list[int], q: float) -> float:
    """The q-quantile by linear interpolation (statistics.quantiles' 'inclusive' method)."""
    pos = q * (len(sorted_ns) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ns) - 1)
    return sorted_ns[lo] + (sorted_ns[hi] - sorted_ns[lo]) * (pos - lo)


def summary(ns: list[int]) -> dict[str, float]:
    s = sorted(ns)
    return {
        "median_us": quantile(s, 0.5) / 1000,
        "p90_us": quantile(s, 0.9) / 1000,
        "p99_us": quantile(s, 0.99) / 1000,
        "min_us": s[0] / 1000,
        "mean_us": statistics.fmean(s) / 1000,
        "requests_per_s": 1e9 / statistics.fmean(s),
        "requests": len(s),
    }


def measure(
    conns: dict[str, Conn], reqs: list[bytes], batch: int, warmup: int
) -> tuple[dict[str, list[int]], dict[str, Counter[bytes]], list[dict[str, float]]]:
    """Per-request latencies of every side, interleaved in rounds (A B C D, D C B A, ...)."""
    times: dict[str, list[int]] = {k: [] for k in conns}
    variants: dict[str, Counter[bytes]] = {k: Counter() for k in conns}
    for conn in conns.values():  # warm up: connections, upstream keep-alive, njs
        conn.run(reqs[:warmup], [], Counter())
    rounds: list[dict[str, float]] = []
    order = list(conns)
    for r, start in enumerate(range(0, len(reqs), batch)):
        chunk = reqs[start : start + batch]
        medians: dict[str, float] = {}
        for side in order if r % 2 == 0 else order[::-1]:
            got: list[int] = []
            conns[side].run(chunk, got, variants[side])
            times[side] += got
            medians[side] = statistics.median(got) / 1000
        rounds.append(medians)
    return times, variants, rounds


def machine() -> dict[str, Any]:
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    njs = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-http-js"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "nginx": nginx.removeprefix("nginx version: "),
        "libnginx_mod_http_js": njs or None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.integrations.nginx import AVAILABLE, WHY_MISSING, Nginx, free_port

    if not AVAILABLE:
        raise SystemExit(WHY_MISSING)
    ports = {k: free_port() for k in ("upstream", "A", "B", "C", "D")}
    reqs = requests_for(args.requests)
    with tempfile.TemporaryDirectory(prefix="mreg-bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        store = make_store(tmp)
        gateway = tmp / "gateway"
        export(store, gateway, ports["B"], ports["upstream"])
        # D answers a constant as long as C's route, "UPSTREAM VARIANT VERSION"
        constant = "mreg_m_1_0_0 baseline 1.0.0"
        nginx = Nginx(tmp / "nginx", gateway, extra=extra_conf(ports, constant))
        nginx.start(ports["B"])
        conns: dict[str, Conn] = {}
        try:
            assert nginx.proc is not None
            pids = [os.getpid(), *nginx_pids(nginx.proc.pid)]
            # before connecting: nginx closes a connection idle for 75 s (keepalive_timeout)
            quiet = wait_for_quiet(args.quiet_wait, args.quiet_cores)
            for side in SIDES:
                conns[side] = Conn(ports[side])
            b0, own0, t0 = system_busy(), process_cpu(pids), time.perf_counter()
            times, variants, rounds = measure(conns, reqs, args.batch, args.warmup)
            wall = time.perf_counter() - t0
            own = process_cpu(pids) - own0
            others = max(0.0, system_busy() - b0 - own) / wall
        finally:
            for c in conns.values():
                c.close()
            nginx.stop()
        errors = (tmp / "nginx" / "logs" / "error.log").read_text().strip()
    if errors:
        print(f"nginx error.log:\n{errors}", file=sys.stderr)

    results = {side: summary(times[side]) for side in SIDES}
    added = {
        f"{q}_us": results["B"][f"{q}_us"] - results["A"][f"{q}_us"]
        for q in ("median", "p90", "p99")
    }
    njs = {
        f"{q}_us": results["C"][f"{q}_us"] - results["D"][f"{q}_us"]
        for q in ("median", "p90", "p99")
    }
    per_round_added = [r["B"] - r["A"] for r in rounds]
    canary_share = {
        side: variants[side][b"canary"] / max(1, sum(variants[side].values()))
        for side in ("B", "C")
    }
    # the gateway must really route: about WEIGHT% of the users on the canary
    for side, share in canary_share.items():
        if not abs(share * 100 - WEIGHT) < 2:
            raise SystemExit(f"side {side} sent {share:.1%} to the canary, not ~{WEIGHT}%")
    return {
        "benchmark": "gateway",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "load": {
            **quiet,
            "bench_cores": own / wall,
            "other_cores": others,
            "seconds": wall,
        },
        "method": {
            "requests_per_side": args.requests,
            "batch": args.batch,
            "warmup": args.warmup,
            "rounds": len(rounds),
            "weight_percent": WEIGHT,
            "rules": [RULES[0].split(" in ")[0] + " in <1,000 IDs> -> canary", *RULES[1:]],
            "sides": SIDES,
        },
        "results": results,
        "added_by_gateway": added,
        "added_median_per_round_us": {
            "min": min(per_round_added),
            "median": statistics.median(per_round_added),
            "max": max(per_round_added),
        },
        "njs_only": njs,
        "canary_share": canary_share,
        "targets": {"median added < 100 us": added["median_us"] * 1000 < TARGET_ADDED_MEDIAN_NS},
    }


def report(record: dict[str, Any], emit: Callable[[str], None] = print) -> None:
    res = record["results"]
    width = max(len(f"{k} {v}") for k, v in SIDES.items())
    emit(f"{'side':<{width}}   median      p90      p99   req/s (1 conn)")
    for side, label in SIDES.items():
        r = res[side]
        emit(
            f"{side + ' ' + label:<{width}}  {r['median_us']:6.1f} µs {r['p90_us']:6.1f} µs "
            f"{r['p99_us']:6.1f} µs  {r['requests_per_s']:8.0f}"
        )
    for name, d in (
        ("added by gateway (B - A)", "added_by_gateway"),
        ("njs only (C - D)", "njs_only"),
    ):
        v = record[d]
        emit(
            f"{name:<{width}}  {v['median_us']:6.1f} µs {v['p90_us']:6.1f} µs {v['p99_us']:6.1f} µs"
        )
    pr = record["added_median_per_round_us"]
    emit(
        f"B - A per round of {record['method']['batch']} (medians): "
        f"{pr['min']:.1f} .. {pr['max']:.1f} µs, median {pr['median']:.1f} µs"
    )
    share = ", ".join(f"{k} {v:.1%}" for k, v in record["canary_share"].items())
    emit(f"canary share: {share} (weight {record['method']['weight_percent']}%)")
    load = record["load"]
    emit(
        f"cores busy meanwhile: client + nginx {load['bench_cores']:.2f}, everything else "
        f"{load['other_cores']:.2f} (waited {load['waited_s']:.1f} s for a quiet machine)"
    )
    for k, ok in record["targets"].items():
        emit(f"[{'PASS' if ok else 'FAIL'}] {k}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000, help="timed requests per side")
    ap.add_argument("--batch", type=int, default=1000, help="requests per side per round")
    ap.add_argument("--warmup", type=int, default=1000, help="untimed requests per side first")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="first wait up to this many seconds for the machine to be idle (0: do not wait)",
    )
    ap.add_argument(
        "--quiet-cores",
        type=float,
        default=0.15,
        help="idle means fewer than this many cores busy (default 0.15)",
    )
    ap.add_argument("--json", action="store_true", help="print the JSON record, not the table")
    ap.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    ap.add_argument("--no-save", action="store_true", help="print only, write no result file")
    args = ap.parse_args()

    record = run(args)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        report(record)
    if not args.no_save:
        out = args.results_dir / f"gateway-{dt.date.today().isoformat()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr if args.json else sys.stdout)
    return 0 if all(record["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
