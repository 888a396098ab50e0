import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_script_runs(tmp_path):
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "production runs 1.0.0" in out.stdout
    assert "ok: 2 version(s)" in out.stdout


def test_library_example_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "library.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "refused: churn@1.1.0 fails the production gate: test.f1 >= 0.9 (has 0.85)" in out.stdout
    assert "production runs churn@1.0.0" in out.stdout


def test_demo_runs_in_a_temporary_store(run_mreg, tmp_path):
    res = run_mreg("demo", "--json", cwd=tmp_path)
    assert res.returncode == 0, res
    doc = res.json()
    assert not doc["kept"] and not Path(doc["store"]).exists()
    summaries = [s["summary"] for s in doc["steps"]]
    assert any(s.startswith("registered churn-classifier@1.0.0") for s in summaries)
    assert any("production → 1.0.0 (was 1.1.0)" in s for s in summaries)
    assert summaries[-1].startswith("ok:")
    kept = run_mreg("demo", "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert kept.returncode == 0 and "churn-classifier@1.0.0" in kept.stdout
    assert (tmp_path / "d" / ".modelreg" / "config.yaml").exists()
