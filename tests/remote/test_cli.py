"""The remote commands end to end, as a user runs them: output, --json shapes, exit codes."""

from __future__ import annotations

from pathlib import Path

from modelreg import Store

from ..conftest import snapshot
from .conftest import blob


def _setup(tmp_path: Path, run_mreg) -> Path:
    src = tmp_path / "model.onnx"
    src.write_bytes(blob(50_000, 1))
    assert run_mreg("init").returncode == 0
    assert (
        run_mreg("register", "fraud", str(src), "--version", "1.0.0", "--no-code").returncode == 0
    )
    assert run_mreg("promote", "fraud@1.0.0", "--to", "production").returncode == 0
    return tmp_path / "remote"


def test_remote_add_list_remove(run_mreg, tmp_path):
    _setup(tmp_path, run_mreg)
    r = run_mreg("remote", "add", "origin", "../remote", "-o", "mreg.jobs=4", "--json")
    assert r.returncode == 0, r
    assert r.json() == {
        "name": "origin", "url": f"file://{tmp_path / 'remote'}", "options": {"mreg.jobs": 4},
        "default": True,
    }  # fmt: skip
    listed = run_mreg("remote", "list", "--json").json()
    assert [row["name"] for row in listed] == ["origin"]
    assert run_mreg("remote", "remove", "origin").returncode == 0
    assert run_mreg("remote", "list", "--json").json() == []


def test_refused_inputs_exit_2_and_change_nothing(run_mreg, tmp_path):
    _setup(tmp_path, run_mreg)
    store = tmp_path / "work" / ".modelreg"
    before = snapshot(store)
    missing = run_mreg("remote", "add", "g", "gcs://bucket/reg")
    assert missing.returncode == 2 and "pip install gcsfs" in missing.stderr
    secret = run_mreg("remote", "add", "s", "s3://b/p", "--option", "secret=hunter2")
    assert secret.returncode == 2 and "never writes credentials" in secret.stderr
    assert "hunter2" not in secret.stderr + secret.stdout
    assert run_mreg("push").returncode == 2  # no remote configured
    assert run_mreg("status").returncode == 2  # status needs --remote
    assert snapshot(store) == before


def test_push_status_pull_and_refusals(run_mreg, tmp_path):
    _setup(tmp_path, run_mreg)
    assert run_mreg("remote", "add", "origin", "../remote").returncode == 0
    pushed = run_mreg("push", "origin", "fraud@production")
    assert pushed.returncode == 0 and "Pushed to origin: 1 objects" in pushed.stdout
    assert "up to date" in run_mreg("push").stdout
    assert run_mreg("status", "--remote", "--json").json()["in_sync"] is True

    other = tmp_path / "other"
    assert run_mreg("init", cwd=other).returncode == 0
    assert run_mreg("remote", "add", "origin", "../remote", cwd=other).returncode == 0
    st = run_mreg("status", "--remote", cwd=other)
    assert st.returncode == 0 and "fraud@1.0.0" in st.stdout
    pulled = run_mreg("pull", "--json", cwd=other)
    assert pulled.returncode == 0 and pulled.json()["manifests_received"] == ["fraud@1.0.0"]

    # a move here and a move there: the second push is refused (exit 1), nothing lost
    assert run_mreg("promote", "fraud@1.0.0", "--to", "staging", cwd=other).returncode == 0
    assert run_mreg("push", cwd=other).returncode == 0
    assert run_mreg("promote", "fraud@1.0.0", "--to", "canary").returncode == 0
    refused = run_mreg("push")
    assert refused.returncode == 1 and "run mreg pull" in refused.stderr
    merged = run_mreg("pull")
    assert merged.returncode == 0 and "1 local entries rebased" in merged.stdout
    assert run_mreg("push").returncode == 0
    assert Store.open(tmp_path / "work").verify().ok


def test_pull_of_a_tampered_object_exits_1(run_mreg, tmp_path):
    remote = _setup(tmp_path, run_mreg)
    assert run_mreg("remote", "add", "origin", str(remote)).returncode == 0
    assert run_mreg("push").returncode == 0
    obj = next(p for p in (remote / "objects").rglob("*") if p.is_file())
    obj.chmod(0o644)
    obj.write_bytes(b"x" * obj.stat().st_size)
    other = tmp_path / "other"
    run_mreg("init", cwd=other)
    run_mreg("remote", "add", "origin", str(remote), cwd=other)
    r = run_mreg("pull", cwd=other)
    assert r.returncode == 1
    assert "rejected" in r.stdout and obj.name[:12] in r.stdout
    assert not any(p.is_file() for p in (other / ".modelreg" / "objects").rglob("*"))
