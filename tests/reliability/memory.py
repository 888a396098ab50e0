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


_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs the command as its child and writes the child's peak RSS (KiB) to a file.

Linux carries a process's RSS high-water mark across fork and exec, so a command forked
straight from pytest would report at least pytest's own peak. Forked from this small
launcher, it reports its own (plus the launcher's few MiB at most).
"""


def run_measured(
    *args: str, cwd: Path, env: dict[str, str] | None = None, label: str = "", timeout: float = 120
) -> Measured:
    """Run `mreg ARGS...` in `cwd`; return its exit code, output and peak RSS in MiB."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "maxrss"
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(report), sys.executable, "-m", "modelreg", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            timeout=timeout,
        )
        peak = int(report.read_text()) / 1024
    if label:
        REPORT.append({"case": label, "exit": proc.returncode, "peak_mib": round(peak, 1)})
    return Measured(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        peak,
    )


@cache
def baseline_mib() -> float:
    """Peak RSS of `mreg --version`: what any command costs before it reads anything."""
    return run_measured("--version", cwd=Path.cwd()).peak_mib
