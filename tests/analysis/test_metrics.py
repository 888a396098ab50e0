"""Recording in serving processes: the histogram, the recorder, flushes, processes, compaction."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.analysis.demo import Clock
from modelreg.analysis.sources import StoreSource, compact, metrics_dir
from modelreg.errors import MregError
from modelreg.release import ops
from modelreg.serving import Router
from modelreg.serving.aggregate import REL_ACCURACY, LogHistogram, difference, iter_lines
from modelreg.serving.metrics import SEGMENT_S

ROOT = Path(__file__).resolve().parents[2]


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1))
def test_log_histogram_quantiles_have_bounded_relative_error(values):
    h = LogHistogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        exact = ordered[int(q * (len(ordered) - 1))]
        got = h.quantile(q)
        assert got is not None
        assert abs(got - exact) <= REL_ACCURACY * abs(exact) + 1e-9 * 1.01


@given(st.lists(st.floats(0, 1e4), max_size=50), st.lists(st.floats(0, 1e4), max_size=50))
def test_log_histogram_merges_and_round_trips(a, b):
    ha, hb, both = LogHistogram(), LogHistogram(), LogHistogram()
    for v in a:
        ha.add(v)
        both.add(v)
    before = ha.copy()
    for v in b:
        hb.add(v)
        both.add(v)
    ha.merge(hb)
    assert ha.to_dict() == both.to_dict()
    assert LogHistogram.from_dict(ha.to_dict()).bins() == both.bins()
    assert ha.minus(before).to_dict() == hb.to_dict()


def test_differences_of_shadow_answers():
    assert difference(0.5, 0.75) == 0.25
    assert difference("cat", "cat") == 0.0
    assert difference("cat", "dog") is None
    assert difference(True, False) is None  # bools compare by equality, not distance
    assert difference(float("nan"), float("nan")) is None


def started(model, weight=50):
    ops.start(model, "m", "1.1.0", weight=weight, seed="0" * 32)
    return model


def test_record_flushes_one_line_per_group_into_the_release_directory(model):
    started(model)
    clock = Clock()
    r = Router.open("m", store=model.root, materialize=False, clock=clock, wall=clock)
    for i in range(1000):
        d = r.route(user_id=f"u{i}")
        r.record(d, latency_ms=10 + i % 7, error=i % 100 == 0, score=0.3, conversion=i % 2)
    assert r.metrics.flush() == 2
    assert r.metrics.flush() == 0  # nothing changed since
    files = list(metrics_dir(model.root, "m", 1).glob("*.jsonl"))
    assert len(files) == 1 and files[0].name.endswith(f"-{int(clock.t // SEGMENT_S)}.jsonl")
    lines = list(iter_lines(files[0]))
    assert {x["variant"] for x in lines} == {"baseline", "canary"}
    assert sum(x["n"] for x in lines) == 1000 and sum(x["err"] for x in lines) == 10
    assert sum(x["out"]["conversion"][1] for x in lines) == 500
    assert all(x["gen"] == 1 and x["v"] == 1 and x["lat"]["n"] == x["n"] for x in lines)
    r.close()


def test_timer_outcomes_and_late_outcomes(model):
    started(model, weight=0)
    r = Router.open("m", store=model.root, materialize=False)
    d = r.route(user_id="u1")
    with r.timer(d) as t:
        t.outcome(clicks=1)
        t.score = 0.5
    with pytest.raises(ZeroDivisionError), r.timer(d):
        1 / 0  # noqa: B018
    with r.timer(d) as t:
        t.fail()
    logged = d.to_dict()  # as a request log keeps it
    r.record_outcome(logged, purchase=20.0)
    r.record_outcome("u1", purchase=5.0)  # by key: routed again, sticky
    r.record_outcome(d, purchase=1.0)
    with pytest.raises(MregError):
        r.record_shadow(d, 1, 1)  # not in shadow mode
    r.close()
    sample = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)
    b = sample.baseline
    assert (b.n, b.errors) == (3, 2)
    assert b.out["clicks"] == [1, 1.0, 1.0]
    assert b.out["purchase"] == [3, 26.0, 426.0]
    assert sum(c for _, _, c in b.latency) == 3 and sum(c for _, _, c in b.scores) == 1


def test_shadow_answers_are_compared(model):
    ops.start(model, "m", "1.1.0", shadow=True)
    r = Router.open("m", store=model.root, materialize=False)
    d = r.route(user_id="u1")
    assert d.shadow is not None
    for base, can in ((0.5, 0.5), (0.5, 0.505), (0.5, 0.9), ("a", "b"), ("a", "a")):
        r.record(d, latency_ms=5)
        r.record_shadow(d, base, can, latency_ms=6, score=0.4)
    r.close()
    sample = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)
    assert sample.mode == "shadow" and sample.baseline.n == 5
    c = sample.canary
    assert (c.n, c.pairs, c.unequal) == (5, 5, 1)
    assert sum(cnt for _, _, cnt in c.diffs) == 5


WRITER = textwrap.dedent(
    """
    import sys
    from modelreg.serving import Router
    r = Router.open("m", store=sys.argv[1], materialize=False, flush_interval_s=0)
    for i in range(int(sys.argv[2])):
        d = r.route(user_id=f"{sys.argv[3]}-{i}")
        r.record(d, latency_ms=1 + i % 50, error=i % 10 == 0)
    # no close(): the interpreter's exit flushes what is left
    """
)


def test_many_processes_share_a_store_and_nothing_is_lost(model):
    started(model)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(model.root), "3000", f"p{k}"], cwd=ROOT)
        for k in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    files = list(metrics_dir(model.root, "m", 1).glob("*.jsonl"))
    assert len(files) == 4  # one file per process: no two writers ever share one
    sample = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)
    assert sample.baseline.n + sample.canary.n == 12_000
    assert sample.baseline.errors + sample.canary.errors == 1200


@pytest.mark.parametrize("background", [False, True])
def test_a_forked_worker_never_flushes_its_parents_counts(model, background):
    """gunicorn --preload: the parent recorded 100 requests, forks, the worker records 7."""
    started(model)
    r = Router.open("m", store=model.root, materialize=False, flush_interval_s=3600)
    if background:
        r.metrics.start_thread()
    for i in range(100):
        r.record(r.route(user_id=f"parent-{i}"), latency_ms=5)
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            for i in range(7):
                r.record(r.route(user_id=f"child-{i}"), latency_ms=5)
            r.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    r.close()
    files = list(metrics_dir(model.root, "m", 1).glob("*.jsonl"))
    assert len(files) == 2  # one file per process
    per_file = sorted(sum(x["n"] for x in iter_lines(f)) for f in files)
    assert per_file == [7, 100]


def test_torn_lines_are_ignored_and_compaction_never_double_counts(model):
    started(model)
    clock = Clock(1_800_000_000.0)
    r = Router.open("m", store=model.root, materialize=False, clock=clock, wall=clock)
    rng = random.Random(1)
    for _ in range(5):  # five segments of 10 minutes, one flush each
        for i in range(200):
            r.record(r.route(user_id=f"u{rng.randrange(10_000)}"), latency_ms=3, error=i < 2)
        r.metrics.flush()
        clock.t += SEGMENT_S
    r.close()
    directory = metrics_dir(model.root, "m", 1)
    with open(next(directory.glob("*.jsonl")), "a") as fh:
        fh.write('{"v":1,"gen":1,"variant":"canary","n":99999')  # torn by a crash
    rollout = ops.read_rollout(model, "m")
    before = StoreSource(model.root).read(rollout, 60)
    assert before.baseline.n + before.canary.n == 1000
    for p in directory.glob("*.jsonl"):
        os.utime(p, (clock.t - 3600, clock.t - 3600))
    absorbed = compact(model.root, "m", 1, clock.t + SEGMENT_S, grace_s=60)
    assert absorbed == 5
    names = [p.name for p in directory.glob("*.jsonl")]
    assert len(names) == 1 and names[0].startswith("compact-")
    after = StoreSource(model.root).read(rollout, 60)
    assert (after.baseline.n, after.canary.n) == (before.baseline.n, before.canary.n)
    assert after.baseline.errors + after.canary.errors == 10
    assert after.baseline.latency == before.baseline.latency
    header = json.loads((directory / names[0]).read_text().splitlines()[0])
    assert len(header["compacted"]) == 5
    # A crash after writing the compacted file but before deleting the sources: no double count.
    (directory / header["compacted"][0]).write_text(json.dumps({"v": 1, "n": 5}) + "\n")
    again = StoreSource(model.root).read(rollout, 60)
    assert again.baseline.n + again.canary.n == 1000
    assert compact(model.root, "m", 1, clock.t + SEGMENT_S, grace_s=60) == 0  # nothing new


def test_a_flush_that_cannot_write_keeps_the_data_for_the_next_one(model):
    started(model)
    r = Router.open("m", store=model.root, materialize=False, flush_interval_s=0)
    (model.root / "metrics").write_text("not a directory")
    d = r.route(user_id="u1")
    r.record(d, latency_ms=1)  # the flush fails inside record(): serving goes on
    r.record(d, latency_ms=1)
    assert r.metrics.errors >= 1 and r.metrics.last_error
    (model.root / "metrics").unlink()
    assert r.metrics.flush() == 1
    sample = StoreSource(model.root).read(ops.read_rollout(model, "m"), 60)
    assert sample.baseline.n + sample.canary.n == 2
    r.close()
