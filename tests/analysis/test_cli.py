"""`mreg release analyze|watch` and `start --check` end to end, with exit codes 0, 1 and 3."""

from __future__ import annotations

from modelreg.analysis.demo import Behaviour, Clock, Simulation
from modelreg.release import ops


def traffic(model, canary: Behaviour, seconds: int = 240) -> None:
    clock = Clock()
    sim = Simulation(model, "m", {"1.0.0": Behaviour(), "1.1.0": canary}, rps=500, clock=clock)
    for _ in range(seconds // 30):
        sim.sleep(30)
    sim.close()


def test_start_with_checks_then_analyze_exits_3_0_or_1(model, run_mreg, tmp_path):
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks: ['guard: error_rate < 5%']\npolicy: {min_samples: 300}\n")
    started = run_mreg(
        "release", "start", "m", "--canary", "1.1.0", "--weight", "20", "--check",
        "errors: error_rate <= baseline + 0.5pt", "--checks-file", str(checks), "--json",
    )  # fmt: skip
    assert started.returncode == 0, started
    analysis = started.json()["status"]["analysis"]
    assert [a.get("name") for a in analysis] == ["errors", "guard", None]
    empty = run_mreg("release", "analyze", "m")
    assert empty.returncode == 3, empty  # no data yet: inconclusive
    assert "needs 300 requests per side" in empty.stdout + empty.stderr

    traffic(model, Behaviour())
    ok = run_mreg("release", "analyze", "m", "--json")
    assert ok.returncode == 0, ok
    doc = ok.json()
    assert doc["verdict"] == "pass" and doc["canary"]["requests"] > 10_000
    assert [c["verdict"] for c in doc["checks"]] == ["pass", "pass"]
    table = run_mreg("release", "analyze", "m")
    assert table.returncode == 0 and "error_rate <= baseline + 0.5pt" in table.stdout

    traffic(model, Behaviour(error_rate=0.04))
    bad = run_mreg("release", "analyze", "m")
    assert bad.returncode == 1, bad
    assert "mreg: error:" in bad.stderr and "errors" in bad.stderr and "fail" in bad.stdout


def test_watch_once_rolls_back_and_exits_1(model, run_mreg):
    ops.start(model, "m", "1.1.0", weight=20, analysis=["error_rate <= baseline + 0.5pt"])
    traffic(model, Behaviour(error_rate=0.05))
    out = run_mreg("release", "watch", "m", "--once", "--json")
    assert out.returncode == 1, out
    assert out.json()["outcome"] == "aborted" and "rolled back" in out.stderr
    assert ops.read_rollout(model, "m").state == "aborted"
    again = run_mreg("release", "watch", "m", "--once")
    assert again.returncode == 0 and "ended" in again.stdout
    bad = run_mreg("release", "watch", "m", "--interval", "soon")
    assert bad.returncode == 2
