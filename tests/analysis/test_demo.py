"""The automatic-rollback part of `mreg demo`."""

from __future__ import annotations

from modelreg.analysis.demo import run_analysis_demo
from modelreg.release import ops


def test_the_demo_rolls_a_faulty_canary_back(model, tmp_path):
    demo = run_analysis_demo(model, "m", tmp_path, version="1.3.0", actor="demo <d@example.com>")
    assert demo.report.outcome == "aborted"
    commands = demo.commands()
    assert commands[0][0].startswith("mreg release start m --canary 1.3.0")
    assert "rolled back automatically" in commands[1][1] and "errors" in commands[1][1]
    assert ops.read_rollout(model, "m").state == "aborted"
    assert model.resolve("m@production").version == "1.0.0"
    assert demo.to_dict()["watch"]["outcome"] == "aborted"
    assert model.verify().ok
