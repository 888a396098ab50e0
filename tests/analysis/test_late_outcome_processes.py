"""Late outcomes through real serving processes and `watch` (issue 14, "done when").

Two router processes serve a release in simulated time (each chunk of 30 s between two
analyses is a new pair of OS processes, as a deploy would restart them), log each request's
decision, and report its conversion 20 seconds later with `record_outcome`; conversions
still due cross from one process to the next. `watch` steps the release up 5 -> 25 -> 50
-> 100 on the files those processes wrote. An identical canary must be promoted; a canary
converting 20% less must be rolled back.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelreg.analysis import watch
from modelreg.analysis.demo import Clock
from modelreg.release import ops

CHUNK = Path(__file__).with_name("serve_chunk.py")
CHECKS = ("conversion >= baseline", {"policy": {"passes": 2, "min_samples": 300}})


def _run(store, tmp_path: Path, canary_conversion: float, delay_s: float = 20.0):
    ops.start(store, "m", "1.1.0", steps="5,25,50,100", analysis=CHECKS, seed=f"{3:032x}")
    clock = Clock()

    def serve(seconds: float) -> None:
        def one(worker: int) -> None:
            subprocess.run(
                [sys.executable, str(CHUNK), str(store.root), repr(clock.t), repr(seconds),
                 str(tmp_path / f"pending-{worker}.json"), str(worker), repr(canary_conversion),
                 repr(delay_s)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one, (1, 2)))
        clock.t += seconds

    return watch(store, "m", interval_s=30, max_duration_s=2 * 3600, clock=clock, sleep=serve)


@pytest.mark.slow
def test_an_identical_canary_is_promoted_through_step_ups(model, tmp_path):
    report = _run(model, tmp_path, canary_conversion=0.10)
    assert report.outcome == "promoted", [e.summary for e in report.events]
    assert [e.action for e in report.events].count("step") == 2
    assert not [e for e in report.events if e.verdict == "fail"]


@pytest.mark.slow
def test_a_canary_converting_20_percent_less_is_rolled_back(model, tmp_path):
    report = _run(model, tmp_path, canary_conversion=0.08)
    assert report.outcome == "aborted", [e.summary for e in report.events]
    assert "conversion" in report.events[-1].summary
