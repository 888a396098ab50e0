"""The canary part of `mreg demo` (run_canary_demo) on a real store."""

from __future__ import annotations

import math

from modelreg.release import ops
from modelreg.release.demo import run_canary_demo
from tests.release.util import SEED


def test_canary_demo_shows_the_split_following_the_plan(model):
    demo = run_canary_demo(model, "m", "1.1.0", plan=(1, 5, 50), requests=10_000, seed=SEED)
    assert (demo.baseline, demo.canary, demo.production) == ("1.0.0", "1.1.0", "1.1.0")
    assert [s.weight for s in demo.steps] == [1, 5, 50]
    for s in demo.steps:
        p = s.weight / 100
        assert abs(s.share / 100 - p) < 5 * math.sqrt(p * (1 - p) / s.open_requests) + 0.02
        assert s.testers_on_canary == 3 and s.held_on_baseline > 0 and s.moved_back == 0
        assert s.canary >= s.open_canary
    lines = demo.commands()
    assert lines[0][0].startswith("mreg release start m --canary 1.1.0 --weight 1 --steps 1,5,50")
    assert [c for c, _ in lines[1:]] == [
        "mreg release step m",
        "mreg release step m",
        "mreg release promote m",
    ]
    assert "router now sends every request to 1.1.0" in lines[-1][1]
    assert demo.to_dict()["steps"][2]["weight"] == 50
    assert ops.status(model, "m").state == "promoted"
    assert model.verify().ok


def test_canary_demo_can_end_with_an_abort(model):
    demo = run_canary_demo(model, "m", "1.1.0", plan=(5,), requests=2000, promote=False)
    assert demo.production == "1.0.0" and demo.commands()[-1][0] == "mreg release abort m"
    assert ops.status(model, "m").state == "aborted"
