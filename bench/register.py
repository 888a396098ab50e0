#!/usr/bin/env python3
"""Benchmark `mreg register` against its floors and against DVC and MLflow, in one run.

What is timed, per file size, on the same warm file, each repetition into a fresh destination
(a new store, temp file or repository, so nothing is ever deduplicated), interleaved round-robin
so that drift of the machine hits every tool alike; the median of `--repeat` runs is reported:

* floor: a bare Python loop that reads 1 MiB chunks, updates `hashlib.sha256` and writes a temp
  file; once without and once with a final `fsync` (mreg fsyncs every object);
* references that split the floor in two: hashing only (no write), copying only (with fsync);
* `sha256sum FILE` (coreutils; reported, but it is no ceiling: it does not use SHA-NI);
* mreg register through the library and through the CLI (`mreg register ... --no-code`),
  each into a new store, with the CLI's peak RSS (from `wait4`, per child process);
* competitors, run with `--competitor-python` (a separate virtualenv holding dvc and mlflow):
  `dvc add FILE` in a fresh `git init` + `dvc init` repository with default settings, and
  MLflow (sqlite tracking + registry, local artifacts) `log_artifact` in a run plus
  `register_model` of that artifact.

Then start-up times of `mreg --help`, `mreg show NAME@latest` and `python -c "import typer,
rich"`, and a pass/fail list of the targets of issue 3. Results go to stdout, to
`bench/results/register-<date>.json` (the committed measurement record) and to a Markdown
table beside it.

Usage::

    python3 bench/register.py --sizes 1,4 --repeat 5 \
        --competitor-python /tmp/mreg-bench-venv/bin/python
    python3 bench/register.py --sizes 0.25 --repeat 3 --no-save      # quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

TARGET_FLOOR_RATIO = 0.9
TARGET_RSS_MIB = 64
TARGET_STARTUP_RATIO = 1.5
TARGET_DVC_SPEEDUP = 3.0

# Environment for the competitors: no telemetry/analytics daemons (they would run detached
# after the timed command, compete for the 2 cores and try a network that is not there).
QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "GIT_TERMINAL_PROMPT": "0",
}

MLFLOW_SCRIPT = r"""
import json, os, sys, time
t0 = time.perf_counter()
import mlflow
t1 = time.perf_counter()
workdir, src = sys.argv[1], sys.argv[2]
uri = "sqlite:///" + os.path.join(workdir, "mlflow.db")
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
exp_id = mlflow.create_experiment(
    "bench", artifact_location="file://" + os.path.join(workdir, "artifacts")
)
mlflow.set_experiment(experiment_id=exp_id)
t2 = time.perf_counter()
with mlflow.start_run() as run:
    mlflow.log_artifact(src)
t3 = time.perf_counter()
# MLflow 3 registers a `runs:/` URI only for logged models (an MLmodel directory); a plain
# artifact is registered by its artifact URI, which records it as the version's source.
mv = mlflow.register_model(run.info.artifact_uri.rstrip("/") + "/" + os.path.basename(src),
                           "bench")
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "log_artifact": t3 - t2,
                  "register_model": t4 - t3, "version": mv.version, "source": mv.source,
                  "mlflow": mlflow.__version__}))
"""

# A minimal Typer CLI that parses the same arguments as `mreg show` and does nothing: the
# start-up floor of any Typer command (Typer >= 0.2x coerces parameters through pydantic).
TYPER_APP = """
from pathlib import Path
from typing import Annotated, Optional
import typer
app = typer.Typer(add_completion=False)
@app.command()
def show(spec: str,
         store: Annotated[Optional[Path], typer.Option("--store")] = None,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    pass
@app.command()
def other() -> None:
    pass
app()
"""


# -- small helpers ------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_sizes(text: str) -> list[float]:
    sizes = [float(s) for s in text.split(",") if s.strip()]
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes are positive numbers of GiB, e.g. 1,4 or 0.25")
    return sizes


def size_label(gib: float) -> str:
    return f"{gib:g} GiB"


def size_bytes(gib: float) -> int:
    return max(MiB, round(gib * GiB / MiB) * MiB)


def cpu_times() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def system_busy() -> float:
    """CPU-seconds the whole machine has been busy (all CPUs, every process, kernel threads).

    The difference over a measurement minus the measured process's own CPU time is what the
    rest of the machine used meanwhile: another job on the same 2 cores shows up there.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def wait_for_quiet(timeout: float, max_cores: float, window: float = 0.5) -> dict[str, float]:
    """Wait until the machine is idle (less than `max_cores` busy over `window` seconds).

    Another job on the same 2 cores (a test suite, say) slows every tool it overlaps; this
    keeps the measurements to quiet moments where it can, and records what it saw.
    """
    t0 = time.perf_counter()
    while True:
        b0 = system_busy()
        time.sleep(window)
        busy = (system_busy() - b0) / window
        waited = time.perf_counter() - t0
        if busy < max_cores or waited >= timeout:
            return {"waited": waited, "busy_cores_before": busy}


class Timer:
    """Wall, own CPU and machine-wide busy time of an in-process operation."""

    def __enter__(self) -> Timer:
        self.u0, self.s0 = cpu_times()
        self.b0 = system_busy()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        u1, s1 = cpu_times()
        self.result = {
            "seconds": self.seconds,
            "cpu_user": u1 - self.u0,
            "cpu_sys": s1 - self.s0,
            "system_busy": system_busy() - self.b0,
        }


def vm_hwm(pid: int) -> int | None:
    """The peak RSS (VmHWM) of a running process since its exec, in bytes, if readable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_timed(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    poll_rss: bool = False,
) -> dict[str, Any]:
    """Run a command; return wall seconds, CPU time (wait4), peak RSS, and its output.

    Peak RSS: `ru_maxrss` from wait4 is of that one child (RUSAGE_CHILDREN would be the
    maximum over every child ever reaped), but on Linux it also counts the high-water mark of
    the address space the child had before exec, i.e. this benchmark's own Python process
    (subprocess spawns through vfork), so it is only an upper bound (every command then shows
    at least ~35 MiB, even sha256sum). With `poll_rss`, the child's VmHWM (peak RSS of the
    exec'ed program alone) is read from /proc every 10 ms until it exits, which is exact up
    to the last 10 ms; the poll costs this many milliseconds of latency at most, so it is used
    for the long register runs, not for the start-up timings.
    """
    full_env = env if env is not None else {**os.environ, **QUIET_ENV}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0 = system_busy()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        hwm = None
        if poll_rss:
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                hwm = vm_hwm(proc.pid) or hwm
                time.sleep(0.01)
        else:
            _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy = system_busy() - busy0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
        )
    return {
        "seconds": wall,
        "max_rss_bytes": hwm if hwm is not None else ru.ru_maxrss * 1024,
        "max_rss_source": "VmHWM" if hwm is not None else "wait4 (upper bound)",
        "wait4_maxrss_bytes": ru.ru_maxrss * 1024,  # Linux reports KiB
        "cpu_user": ru.ru_utime,
        "cpu_sys": ru.ru_stime,
        "system_busy": busy,
        "stdout": stdout,
    }


def resident_fraction(path: Path) -> float | None:
    """Share of the file in the page cache (util-linux `fincore`), or None if unknown."""
    if not shutil.which("fincore"):
        return None
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return int(out[0]) / path.stat().st_size
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return None


def warm(path: Path) -> float | None:
    """Make sure `path` is in the page cache (read it if needed); return the resident share."""
    frac = resident_fraction(path)
    if frac is None or frac < 0.999:
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(8 * MiB)
            while fh.readinto(buf):
                pass
        frac = resident_fraction(path)
    return frac


def settle() -> None:
    """Flush dirty pages left by the previous measurement so it cannot slow the next one."""
    os.sync()


def make_random_file(path: Path, nbytes: int) -> None:
    if path.is_file() and path.stat().st_size == nbytes:
        log(f"reusing {path} ({nbytes / GiB:g} GiB)")
        return
    log(f"writing {nbytes / GiB:g} GiB of random bytes to {path} ...")
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as fh:
        left = nbytes
        while left:
            n = min(left, 4 * MiB)
            fh.write(os.urandom(n))
            left -= n
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# -- the measured operations --------------------------------------------------------------------


def floor_loop(
    src: Path, dst: Path, *, fsync: bool, write: bool = True, hashing: bool = True
) -> str:
    """The bare loop of issue 3: read 1 MiB chunks, update sha256, write a temp file."""
    h = hashlib.sha256()
    with open(src, "rb") as fin:
        fout = open(dst, "wb") if write else None
        try:
            while chunk := fin.read(CHUNK):
                if hashing:
                    h.update(chunk)
                if fout is not None:
                    fout.write(chunk)
            if fout is not None and fsync:
                fout.flush()
                os.fsync(fout.fileno())
        finally:
            if fout is not None:
                fout.close()
    return h.hexdigest()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.scratch = workdir / "scratch"
        self.python = sys.executable
        exe_dir = Path(sys.executable).parent
        self.mreg = str(exe_dir / "mreg") if (exe_dir / "mreg").exists() else shutil.which("mreg")
        if not self.mreg:
            raise SystemExit("mreg is not installed (pip install -e .)")
        self.competitor = self._find_competitor(args.competitor_python)
        self._counter = 0
        self.resident: list[float | None] = []
        self.waits: list[dict[str, float]] = []
        # mreg and the start-up commands run with a bytecode cache, as after a normal install.
        # This sandbox sets PYTHONDONTWRITEBYTECODE=1 and src/ has no __pycache__, so without
        # this every `mreg` would recompile all of modelreg; the cache goes to the work dir
        # (PYTHONPYCACHEPREFIX), not into src/.
        self.py_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.py_env.update(QUIET_ENV, PYTHONPYCACHEPREFIX=str(workdir / "pycache"))

    # fresh destinations ------------------------------------------------------------------------

    def fresh_dir(self, label: str) -> Path:
        self._counter += 1
        d = self.scratch / f"{label}-{self._counter}"
        d.mkdir(parents=True)
        return d

    def cleanup(self, d: Path) -> None:
        shutil.rmtree(d, ignore_errors=True)

    def prepare(self, src: Path) -> None:
        """Right before a timed operation: no dirty pages pending, the source fully cached,
        and (waiting up to --quiet-wait seconds) no other job busy on the machine."""
        settle()
        self.resident.append(warm(src))
        self.waits.append(wait_for_quiet(self.args.quiet_wait, self.args.quiet_cores))

    # competitors -------------------------------------------------------------------------------

    def _find_competitor(self, python: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {"python": python, "dvc": None, "mlflow": None}
        if not python:
            info["why"] = "no --competitor-python given"
            return info
        if not Path(python).exists():
            info["why"] = f"{python} does not exist"
            return info
        for mod in ("dvc", "mlflow"):
            code = f"import importlib.metadata as m; print(m.version({mod!r}))"
            r = subprocess.run([python, "-c", code], capture_output=True, text=True)
            if r.returncode == 0:
                info[mod] = r.stdout.strip()
        dvc_exe = Path(python).parent / "dvc"
        info["dvc_cmd"] = [str(dvc_exe)] if dvc_exe.exists() else [python, "-m", "dvc"]
        return info

    # one measurement each ----------------------------------------------------------------------

    def m_floor(
        self, src: Path, *, fsync: bool, write: bool = True, hashing: bool = True
    ) -> dict[str, Any]:
        d = self.fresh_dir("floor")
        try:
            self.prepare(src)
            with Timer() as t:
                digest = floor_loop(src, d / "out.tmp", fsync=fsync, write=write, hashing=hashing)
        finally:
            self.cleanup(d)
        return {**t.result, "digest": digest}

    def m_sha256sum(self, src: Path) -> dict[str, Any]:
        self.prepare(src)
        r = run_timed(["sha256sum", str(src)], poll_rss=True)
        r["digest"] = r.pop("stdout").split()[0]
        return r

    def m_mreg_lib(self, src: Path) -> dict[str, Any]:
        from modelreg import Store

        d = self.fresh_dir("mreg-lib")
        try:
            store = Store.init(d)
            self.prepare(src)
            with Timer() as t:
                res = store.register("bench", [src], version="1.0.0", detect_code=False)
            digest = res.version.files[0].sha256
            assert store.objects.path(digest).stat().st_size == src.stat().st_size
        finally:
            self.cleanup(d)
        return {**t.result, "digest": digest}

    def m_mreg_cli(self, src: Path) -> dict[str, Any]:
        from modelreg import Store

        d = self.fresh_dir("mreg-cli")
        try:
            store = Store.init(d)
            self.prepare(src)
            r = run_timed(
                [
                    self.mreg,
                    "register",
                    "bench",
                    str(src),
                    "--version",
                    "1.0.0",
                    "--no-code",
                    "--store",
                    str(d),
                ],
                cwd=d,
                env=self.py_env,
                poll_rss=True,
            )
            digests = list(store.objects.iter_digests())
            r.pop("stdout")
            r["digest"] = next(
                (x for x in digests if store.objects.size(x) == src.stat().st_size), None
            )
        finally:
            self.cleanup(d)
        return r

    def m_dvc(self, src: Path) -> dict[str, Any]:
        d = self.fresh_dir("dvc")
        try:
            subprocess.run(["git", "init", "-q"], cwd=d, check=True)
            subprocess.run(
                [*self.competitor["dvc_cmd"], "init", "-q"],
                cwd=d,
                check=True,
                env={**os.environ, **QUIET_ENV},
            )
            target = d / src.name
            try:  # same inode, so the file stays warm and no setup write is pending
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
            self.prepare(src)
            r = run_timed([*self.competitor["dvc_cmd"], "add", src.name], cwd=d, poll_rss=True)
            r.pop("stdout")
            dvcfile = (d / f"{src.name}.dvc").read_text()
            r["digest"] = "md5:" + dvcfile.split("md5:")[1].split()[0]
        finally:
            self.cleanup(d)
        return r

    def m_mlflow(self, src: Path) -> dict[str, Any]:
        d = self.fresh_dir("mlflow")
        try:
            script = d / "bench_mlflow.py"
            script.write_text(MLFLOW_SCRIPT)
            self.prepare(src)
            r = run_timed(
                [self.competitor["python"], str(script), str(d), str(src)], cwd=d, poll_rss=True
            )
            inner = json.loads(r.pop("stdout").strip().splitlines()[-1])
            r["process_seconds"] = r["seconds"]
            # the operation proper: log_artifact in a run + register_model (not the import of
            # mlflow nor the creation of the sqlite database, which a long-lived user pays once)
            r["seconds"] = inner["log_artifact"] + inner["register_model"]
            r["inner"] = inner
        finally:
            self.cleanup(d)
        return r


# -- the run ------------------------------------------------------------------------------------


def machine_info(bench: Bench) -> dict[str, Any]:
    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fs = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(bench.workdir)],
        capture_output=True,
        text=True,
    ).stdout.strip()
    import ssl

    import modelreg

    git = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "sha_ni": "sha_ni" in flags,
        "memory_gib": round(mem / GiB, 1),
        "kernel": platform.release(),
        "filesystem": fs,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "mreg": modelreg.__version__,
        "mreg_commit": git,
        "mreg_src_changes": [line.strip() for line in dirty if line.strip()],
        "mreg_exe": bench.mreg,
        "modelreg_imported_from": modelreg.__file__,
        "dvc": bench.competitor.get("dvc"),
        "mlflow": bench.competitor.get("mlflow"),
        "competitor_python": bench.competitor.get("python"),
        "sha256sum": subprocess.run(
            ["sha256sum", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0],
    }


TOOLS: list[tuple[str, str, str]] = [
    # key, label, kind
    ("floor", "floor: read+sha256+write loop", "floor"),
    ("floor_fsync", "floor + final fsync", "floor"),
    ("hash_only", "ref: read+sha256 only", "ref"),
    ("copy_fsync", "ref: read+write+fsync only", "ref"),
    ("sha256sum", "coreutils sha256sum", "ref"),
    ("mreg_lib", "mreg register (library)", "mreg"),
    ("mreg_cli", "mreg register (CLI)", "mreg"),
    ("dvc_add", "dvc add (fresh repo)", "competitor"),
    ("mlflow", "MLflow log_artifact+register_model", "competitor"),
]


def bench_size(bench: Bench, gib: float) -> dict[str, Any]:
    nbytes = size_bytes(gib)
    src = bench.workdir / f"random-{gib:g}GiB.bin"
    make_random_file(src, nbytes)
    warm(src)
    settle()
    ops = {
        "floor": lambda: bench.m_floor(src, fsync=False),
        "floor_fsync": lambda: bench.m_floor(src, fsync=True),
        "hash_only": lambda: bench.m_floor(src, fsync=False, write=False),
        "copy_fsync": lambda: bench.m_floor(src, fsync=True, hashing=False),
        "sha256sum": lambda: bench.m_sha256sum(src),
        "mreg_lib": lambda: bench.m_mreg_lib(src),
        "mreg_cli": lambda: bench.m_mreg_cli(src),
    }
    skipped: dict[str, str] = {}
    if bench.competitor.get("dvc"):
        ops["dvc_add"] = lambda: bench.m_dvc(src)
    else:
        skipped["dvc_add"] = bench.competitor.get("why") or "dvc not installed"
    if bench.competitor.get("mlflow"):
        ops["mlflow"] = lambda: bench.m_mlflow(src)
    else:
        skipped["mlflow"] = bench.competitor.get("why") or "mlflow not installed"
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in ops}
    orders: list[list[str]] = []
    bench.resident = []
    bench.waits = []
    rng = random.Random(f"{bench.args.seed}-{gib}")
    for rep in range(bench.args.repeat):
        # a new order each round, so no tool always runs right after the same neighbour
        # (what the previous operation left behind, e.g. freed memory, affects the next one)
        order = list(ops)
        rng.shuffle(order)
        orders.append(order)
        for key in order:
            r = ops[key]()
            samples[key].append(r)
            log(
                f"  {size_label(gib)} rep {rep + 1}/{bench.args.repeat} {key:12s} "
                f"{r['seconds']:7.3f} s  {nbytes / MiB / r['seconds']:8.1f} MiB/s"
            )
    ref_digest = samples["floor"][0]["digest"]
    for key in ("floor_fsync", "hash_only", "mreg_lib", "mreg_cli", "sha256sum"):
        for r in samples.get(key, []):
            if r["digest"] != ref_digest:
                raise RuntimeError(f"{key} hashed {r['digest']}, expected {ref_digest}")
    results: dict[str, Any] = {}
    for key, rs in samples.items():
        secs = [r["seconds"] for r in rs]
        med = statistics.median(secs)
        entry: dict[str, Any] = {
            "median_seconds": med,
            "min_seconds": min(secs),
            "max_seconds": max(secs),
            "samples_seconds": secs,
            "mib_per_s": nbytes / MiB / med,
            "cpu_user_median": statistics.median(r["cpu_user"] for r in rs),
            "cpu_sys_median": statistics.median(r["cpu_sys"] for r in rs),
            # share of the 2 cores used by everything else during the run (other jobs,
            # kernel writeback threads), median over the runs
            "others_cpu_share_median": statistics.median(
                max(0.0, r["system_busy"] - r["cpu_user"] - r["cpu_sys"])
                / (r["seconds"] if key != "mlflow" else r["process_seconds"])
                / (os.cpu_count() or 1)
                for r in rs
            ),
        }
        if "max_rss_bytes" in rs[0]:
            entry["peak_rss_mib_max"] = max(r["max_rss_bytes"] for r in rs) / MiB
            entry["peak_rss_mib_median"] = statistics.median(r["max_rss_bytes"] for r in rs) / MiB
            entry["peak_rss_source"] = rs[0]["max_rss_source"]
            entry["wait4_maxrss_mib_max"] = max(r["wait4_maxrss_bytes"] for r in rs) / MiB
        if key == "mlflow":
            entry["process_median_seconds"] = statistics.median(r["process_seconds"] for r in rs)
            for part in ("import", "setup", "log_artifact", "register_model"):
                entry[f"{part}_median_seconds"] = statistics.median(r["inner"][part] for r in rs)
        results[key] = entry
    if "dvc_add" in samples:
        results["dvc_add"]["digest"] = samples["dvc_add"][0]["digest"]
    base = results["mreg_lib"]["mib_per_s"]
    for entry in results.values():
        entry["ratio_to_mreg_lib"] = entry["mib_per_s"] / base
    return {
        "size_gib": gib,
        "bytes": nbytes,
        "file": str(src),
        "sha256": ref_digest,
        "resident_fraction_min": min((f for f in bench.resident if f is not None), default=None),
        "orders": orders,
        "quiet_waits": bench.waits,
        "results": results,
        "skipped": skipped,
    }


def use_snapshot(workdir: Path) -> str:
    """Extract src/ of HEAD into the work dir and import modelreg from there (here and in
    every child process, through PYTHONPATH); return a description of what is measured."""
    commit = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest = workdir / f"mreg-src-{commit[:12]}"
    if not (dest / "src" / "modelreg" / "__init__.py").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO_DIR), "archive", "--format=tar", commit, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    src = str(dest / "src")
    sys.path.insert(0, src)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH", "")) if p
    )
    return f"committed HEAD {commit} (git archive, imported from {src})"


def warm_up_cli(bench: Bench) -> None:
    """One small `mreg register` first, so the bytecode cache exists before anything is timed."""
    from modelreg import Store

    d = bench.fresh_dir("warm-up")
    small = d / "small.bin"
    small.write_bytes(os.urandom(4096))
    Store.init(d)
    run_timed(
        [bench.mreg, "register", "bench", str(small), "--no-code", "--store", str(d)],
        cwd=d,
        env=bench.py_env,
    )
    bench.cleanup(d)


def bench_startup(bench: Bench) -> dict[str, Any]:
    from modelreg import Store

    d = bench.workdir / "startup-store"
    shutil.rmtree(d, ignore_errors=True)
    store = Store.init(d)
    small = bench.workdir / "small-model.onnx"
    small.write_bytes(os.urandom(4096))
    store.register(
        "bench",
        [small],
        version="1.0.0",
        detect_code=False,
        params={"lr": 0.01},
        metrics={"test": {"f1": 0.91}},
    )
    cmds = {
        "python_pass": [bench.python, "-c", "pass"],
        "import_typer_rich": [bench.python, "-c", "import typer, rich"],
        "typer_app": [bench.python, "-c", TYPER_APP, "show", "bench@latest", "--store", str(d)],
        "mreg_help": [bench.mreg, "--help"],
        "mreg_show": [bench.mreg, "show", "bench@latest", "--store", str(d)],
        "mreg_show_no_pyc": [bench.mreg, "show", "bench@latest", "--store", str(d)],
    }
    # mreg_show_no_pyc: as this sandbox runs it (PYTHONDONTWRITEBYTECODE=1 and no __pycache__
    # in src/, so modelreg is compiled on every start); a diagnostic, not a target
    sandbox_env = {**os.environ, **QUIET_ENV}
    envs = {k: sandbox_env if k == "mreg_show_no_pyc" else bench.py_env for k in cmds}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(2):  # warm-up: bytecode caches, page cache
        for key, cmd in cmds.items():
            run_timed(cmd, cwd=bench.workdir, env=envs[key])
    for _ in range(bench.args.startup_runs):
        for key, cmd in cmds.items():
            times[key].append(run_timed(cmd, cwd=bench.workdir, env=envs[key])["seconds"])
    shutil.rmtree(d, ignore_errors=True)
    small.unlink()
    base = statistics.median(times["import_typer_rich"])
    app = statistics.median(times["typer_app"])
    out: dict[str, Any] = {
        "runs": bench.args.startup_runs,
        "src_has_pycache": (REPO_DIR / "src" / "modelreg" / "__pycache__").is_dir(),
    }
    for key, ts in times.items():
        med = statistics.median(ts)
        out[key] = {
            "median_seconds": med,
            "min_seconds": min(ts),
            "samples_seconds": ts,
            "ratio_to_typer_rich": med / base,
            "ratio_to_typer_app": med / app,
        }
    out["commands"] = {k: " ".join([Path(c[0]).name, *c[1:]]) for k, c in cmds.items()}
    out["commands"]["typer_app"] = "python3 -c <a one-command Typer app> show bench@latest --store"
    out["commands"]["mreg_show_no_pyc"] += " (PYTHONDONTWRITEBYTECODE=1, no pyc for src/)"
    return out


def evaluate(sizes: list[dict[str, Any]], startup: dict[str, Any] | None) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    for s in sizes:
        res, label = s["results"], size_label(s["size_gib"])
        for who in ("mreg_lib", "mreg_cli"):
            for floor, desc in (
                ("floor", "the floor as specified (no fsync)"),
                ("floor_fsync", "the floor + fsync (like for like)"),
            ):
                ratio = res[who]["mib_per_s"] / res[floor]["mib_per_s"]
                targets.append(
                    {
                        "target": f"{label}: {who.replace('_', ' ')} >= {TARGET_FLOOR_RATIO}x {desc}",
                        "value": round(ratio, 3),
                        "limit": TARGET_FLOOR_RATIO,
                        "pass": ratio >= TARGET_FLOOR_RATIO,
                    }
                )
        if "dvc_add" in res:
            speedup = res["dvc_add"]["median_seconds"] / res["mreg_cli"]["median_seconds"]
            targets.append(
                {
                    "target": f"{label}: mreg CLI >= {TARGET_DVC_SPEEDUP}x faster than dvc add",
                    "value": round(speedup, 3),
                    "limit": TARGET_DVC_SPEEDUP,
                    "pass": speedup >= TARGET_DVC_SPEEDUP,
                }
            )
    big = max(sizes, key=lambda s: s["size_gib"]) if sizes else None
    if big is not None:
        rss = big["results"]["mreg_cli"]["peak_rss_mib_max"]
        targets.append(
            {
                "target": f"{size_label(big['size_gib'])}: mreg CLI register peak RSS "
                f"< {TARGET_RSS_MIB} MiB",
                "value": round(rss, 1),
                "limit": TARGET_RSS_MIB,
                "pass": rss < TARGET_RSS_MIB,
                "note": None if big["size_gib"] >= 4 else "the target is stated for a 4 GiB file",
            }
        )
    if startup is not None:
        for key, name in (("mreg_help", "mreg --help"), ("mreg_show", "mreg show")):
            ratio = startup[key]["ratio_to_typer_rich"]
            targets.append(
                {
                    "target": f"{name} <= {TARGET_STARTUP_RATIO}x python -c 'import typer, rich'",
                    "value": round(ratio, 3),
                    "limit": TARGET_STARTUP_RATIO,
                    "pass": ratio <= TARGET_STARTUP_RATIO,
                }
            )
    return targets


# -- reporting ----------------------------------------------------------------------------------


def markdown(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        f"# mreg register benchmark, {record['date']}",
        "",
        f"Command: `{record['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (SHA-NI: {'yes' if m['sha_ni'] else 'no'}), "
        f"{m['memory_gib']} GiB RAM, Linux {m['kernel']}, {m['filesystem']}; Python "
        f"{m['python']} ({m['openssl']}); mreg {m['mreg']}; dvc {m['dvc']}; "
        f"mlflow {m['mlflow']}.",
        "",
        f"mreg code measured: {record['mreg_source']}.",
        "",
        f"Median of {record['repeat']} runs, warm page cache, each run into a fresh destination.",
        "",
    ]
    for s in record["sizes"]:
        lines += [
            f"## {size_label(s['size_gib'])}",
            "",
            "| what | median s | min s | MiB/s (median) | x mreg lib | peak RSS MiB | CPU s "
            "| others' CPU |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, label, _ in TOOLS:
            if key in s["results"]:
                e = s["results"][key]
                rss = f"{e['peak_rss_mib_max']:.1f}" if "peak_rss_mib_max" in e else ""
                cpu = e["cpu_user_median"] + e["cpu_sys_median"]
                lines.append(
                    f"| {label} | {e['median_seconds']:.3f} | {e['min_seconds']:.3f} | "
                    f"{e['mib_per_s']:.0f} | "
                    f"{e['ratio_to_mreg_lib']:.2f} | {rss} | {cpu:.2f} | "
                    f"{e['others_cpu_share_median']:.0%} |"
                )
            elif key in s["skipped"]:
                lines.append(f"| {label} | not installed: {s['skipped'][key]} | | | | | | |")
        frac = s["resident_fraction_min"]
        lines += [
            "",
            f"Source file in the page cache before every run: at least "
            f"{'unknown' if frac is None else f'{frac:.1%}'}. CPU s: the tool's own user+sys "
            "CPU time. Others' CPU: share of the machine's cores used by everything else "
            "during the run (other jobs, kernel writeback threads). Peak RSS: the largest "
            "VmHWM of the process over the runs (its main process only).",
        ]
        if "mlflow" in s["results"]:
            e = s["results"]["mlflow"]
            lines += [
                "",
                f"MLflow's row is `log_artifact` ({e['log_artifact_median_seconds']:.3f} s) + "
                f"`register_model` ({e['register_model_median_seconds']:.3f} s); the whole "
                f"process (import mlflow {e['import_median_seconds']:.2f} s, new sqlite "
                f"store {e['setup_median_seconds']:.2f} s) took "
                f"{e['process_median_seconds']:.2f} s.",
            ]
        lines.append("")
    st = record.get("startup")
    if st:
        lines += [
            f"## Start-up (median of {st['runs']} runs)",
            "",
            "| command | median ms | min ms | x `import typer, rich` | x one-command Typer app |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        keys = ("python_pass", "import_typer_rich", "typer_app", "mreg_help", "mreg_show")
        for key in (*keys, "mreg_show_no_pyc"):
            e = st[key]
            lines.append(
                f"| `{st['commands'][key]}` | {e['median_seconds'] * 1000:.0f} | "
                f"{e['min_seconds'] * 1000:.0f} | {e['ratio_to_typer_rich']:.2f} | "
                f"{e['ratio_to_typer_app']:.2f} |"
            )
        lines.append("")
    lines += ["## Targets", "", "| target | measured | result |", "| --- | ---: | --- |"]
    for t in record["targets"]:
        note = f" ({t['note']})" if t.get("note") else ""
        lines.append(f"| {t['target']} | {t['value']} | {'PASS' if t['pass'] else 'FAIL'}{note} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[1.0, 4.0],
        help="file sizes in GiB, comma separated (default 1,4; 0.25 for a quick run)",
    )
    p.add_argument("--repeat", type=int, default=5, help="runs per tool and size (median)")
    p.add_argument("--startup-runs", type=int, default=15, help="runs per start-up command")
    p.add_argument("--seed", default="mreg", help="seed of the shuffled order of the tools")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for the machine to be idle "
        "(0: do not wait)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=0.15,
        help="idle means fewer than this many cores busy (default 0.15)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="where the random files are made or reused (default: a temp dir)",
    )
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="delete the random files at the end even with --workdir",
    )
    p.add_argument(
        "--competitor-python",
        default=None,
        help="python of a virtualenv with dvc and mlflow, e.g. /tmp/mreg-bench-venv/bin/python",
    )
    p.add_argument(
        "--snapshot",
        action="store_true",
        help="benchmark the committed HEAD (git archive into the work dir, put first on "
        "PYTHONPATH) instead of the work tree, which other people may be editing meanwhile",
    )
    p.add_argument("--no-startup", action="store_true", help="skip the start-up timings")
    p.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--no-save", action="store_true", help="print only, write no result files")
    args = p.parse_args()

    own_tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mreg-bench-", dir="/tmp")) if own_tmp else args.workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    need = sum(size_bytes(s) for s in args.sizes) + 3 * max(size_bytes(s) for s in args.sizes)
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise SystemExit(
            f"need about {need / GiB:.1f} GiB free in {workdir}, have {free / GiB:.1f} GiB"
        )
    source = use_snapshot(workdir) if args.snapshot else None
    bench = Bench(args, workdir)
    if not bench.competitor.get("dvc") or not bench.competitor.get("mlflow"):
        log(
            f"competitors: {bench.competitor.get('why') or 'missing in that python'}; "
            "dvc/mlflow rows will say not installed"
        )
    record: dict[str, Any] = {
        "schema": "mreg-bench/register/v1",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python3", "bench/register.py", *sys.argv[1:]]),
        "repeat": args.repeat,
        "machine": machine_info(bench),
        "mreg_source": source or "work tree (src/ as it is, including uncommitted changes)",
        "sizes": [],
    }
    warm_up_cli(bench)
    try:
        for gib in args.sizes:
            log(f"== {size_label(gib)}")
            record["sizes"].append(bench_size(bench, gib))
        record["startup"] = None if args.no_startup else bench_startup(bench)
    finally:
        shutil.rmtree(bench.scratch, ignore_errors=True)
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.cleanup:
            for gib in args.sizes:
                (workdir / f"random-{gib:g}GiB.bin").unlink(missing_ok=True)
    record["targets"] = evaluate(record["sizes"], record["startup"])
    md = markdown(record)
    print(md)
    if not args.no_save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        stem = args.results_dir / f"register-{record['date'][:10]}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        stem.with_suffix(".md").write_text(md)
        log(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
