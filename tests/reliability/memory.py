"""Peak memory of an `mreg` subprocess, for the hostile-input bounds (issue 15).

`run_measured` runs `python -m modelreg ARGS...` and reads the child's peak resident set
size from the kernel (`wait4`'s rusage, `ru_maxrss`, KiB on Linux): the whole process,
interpreter and imports included, with nothing sampled or estimated. The bound every
hostile input is held to is `PEAK_BOUND_MIB`, documented in docs/reliability.md; a plain
`mreg --version` of the same interpreter is `baseline_mib()`, so a report can say how
much a hostile input added.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["PEAK_BOUND_MIB", "Measured", "baseline_mib", "run_measured"]

PEAK_BOUND_MIB = 256
"""No hostile input may make an `mreg` process's peak RSS exceed this (docs/reliability.md).

About three times what a plain command uses with every module it may import loaded; the
inputs that broke it used 1.08 GB (a sparse remote manifest) and 2.1 GB (a PAX header).
"""

REPORT: list[dict[str, object]] = []
"""Every measurement of the session (printed with `-s`; see `tests/reliability/conftest.py`)."""


@dataclass(frozen=True)
class Measured:
    """A finished `mreg` subprocess and its peak memory."""

    returncode: int
    stdout: str
    stderr: str
    peak_mib: float


def run_measured(
    *args: str, cwd: Path, env: dict[str, str] | None = None, label: str = "", timeout: float = 120
) -> Measured:
    """Run `mreg ARGS...` in `cwd`; return its exit code, output and peak RSS in MiB."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for t in readers:
        t.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss / 1024
    if label:
        REPORT.append({"case": label, "exit": proc.returncode, "peak_mib": round(peak, 1)})
    return Measured(
        proc.returncode,
        (out[0] if out else b"").decode("utf-8", "replace"),
        (err[0] if err else b"").decode("utf-8", "replace"),
        peak,
    )


@cache
def baseline_mib() -> float:
    """Peak RSS of `mreg --version`: what any command costs before it reads anything."""
    return run_measured("--version", cwd=Path.cwd()).peak_mib
