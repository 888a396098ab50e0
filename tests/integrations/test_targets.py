"""Release targets (issue 17): GitOps with real git, apply commands, and a watch that waits.

`mreg release export ... --as-target NAME` saves a target in config.yaml; `mreg release
apply` and `mreg release watch` apply every change to it, record what it applied (`mreg
release status`), and the watch judges and steps only once every target runs the
generation in force.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from modelreg import Store, yamlio
from modelreg.analysis.demo import Behaviour
from modelreg.analysis.watch import judgments
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.release import ops
from modelreg.release.export import ExportOptions
from modelreg.release.targets import applied
from modelreg.release.targetspec import TargetSpec
from tests.analysis.conftest import simulate_release
from tests.integrations.test_gateway import mreg
from tests.release.util import make_model

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    return make_model(store, tmp_path)


@pytest.fixture
def gitops(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote and a clone of it with one commit (what a GitOps repository is)."""
    if GIT is None:
        pytest.skip("git is not installed")
    remote, clone = tmp_path / "deploy.git", tmp_path / "deploy"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True,
                   capture_output=True)  # fmt: skip
    git(clone, "config", "user.email", "ci@example.com")
    git(clone, "config", "user.name", "CI")
    (clone / "README").write_text("deploy\n")
    git(clone, "add", "README")
    git(clone, "commit", "-q", "-m", "init")
    git(clone, "push", "-q", "-u", "origin", "main")
    return remote, clone


def test_gitops_one_commit_per_change_named_after_the_release_and_the_step(
    model: Store, gitops: tuple[Path, Path]
) -> None:
    remote, clone = gitops
    out = clone / "apps" / "m.yaml"
    out.parent.mkdir()
    r = mreg("release", "export", "m", "-f", "istio", "-o", str(out), "--git", "--as-target",
             "gitops", "--store", str(model.root))  # fmt: skip
    assert "saved release target gitops" in r.stdout
    ops.start(model, "m", "1.1.0", steps="5,25,50")
    apply = ["release", "apply", "m", "--store", str(model.root)]
    mreg(*apply)
    ops.step(model, "m")
    mreg(*apply)
    mreg(*apply)  # nothing changed: no commit
    ops.abort(model, "m", reason="bad")
    mreg(*apply, "--json")
    log = git(remote, "log", "--format=%s", "main").splitlines()
    assert len(log) == 4 and log[-1] == "init"
    assert log[2].startswith("m: generation 1: release 1 start -> progressing, canary 1.1.0 at 5%")
    assert log[1].startswith("m: generation 2: release 1 step -> progressing, canary 1.1.0 at 25%")
    assert log[0].startswith("m: generation 3: release 1 abort -> aborted")
    # each commit holds that generation's export; the working file is the last one
    for i, gen in ((2, "1"), (1, "2"), (0, "3")):
        doc = yamlio.load(git(remote, "show", f"main~{i}:apps/m.yaml").split("---\n")[0].encode())
        assert doc["metadata"]["annotations"]["mreg/generation"] == gen
    head = git(remote, "rev-parse", "main")
    status = json.loads(mreg("release", "status", "m", "--json", "--store", str(model.root)).stdout)
    assert status["targets"] == [{
        "target": "gitops", "generation": 3, "ok": True, "time": status["targets"][0]["time"],
        "error": None, "attempted": None, "commit": head, "format": "istio",
    }]  # fmt: skip


def test_a_rejected_push_is_a_failed_apply_and_is_retried(
    model: Store, gitops: tuple[Path, Path], tmp_path: Path
) -> None:
    remote, clone = gitops
    # someone else pushed: the clone is behind, its push is refused
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(remote), str(other)], check=True)
    git(other, "-c", "user.email=o@x", "-c", "user.name=o", "commit", "-q", "--allow-empty",
        "-m", "theirs")  # fmt: skip
    git(other, "push", "-q")
    model.release_target_add("m", TargetSpec("gitops", "istio", output=str(clone / "m.yaml"),
                                             git=True))  # fmt: skip
    ops.start(model, "m", "1.1.0", weight=10)
    r = mreg("release", "apply", "m", "--store", str(model.root), check=False)
    assert r.returncode == 1 and "target gitops failed: git push" in r.stderr
    a = applied(model, "m")["gitops"]
    assert (a.ok, a.generation, a.attempted) == (False, 0, 1)
    git(clone, "pull", "-q", "--rebase")
    mreg("release", "apply", "m", "--store", str(model.root))
    assert applied(model, "m")["gitops"].ok
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("m: generation 1")


def test_the_apply_command_gets_the_export_and_the_change(model: Store, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    cmd = f'cat > {seen}.yaml; echo "$MREG_MODEL $MREG_GENERATION $MREG_TARGET" >> {seen}'
    mreg("release", "export", "m", "-f", "istio", "--exec", cmd, "--as-target", "mesh",
         "--store", str(model.root))  # fmt: skip
    ops.start(model, "m", "1.1.0", weight=7)
    mreg("release", "apply", "m", "--store", str(model.root))
    assert seen.read_text() == "m 1 mesh\n"
    docs = [yamlio.load(d.encode()) for d in Path(f"{seen}.yaml").read_text().split("---\n")]
    assert docs[0]["kind"] == "VirtualService"
    # a target that cannot express the release fails its apply, naming the loss
    with pytest.raises(InvalidInput, match="storage-uri"):  # checked when it is saved
        model.release_target_add("m", TargetSpec("kserve", "kserve", exec="true"))
    opts = ExportOptions(storage_uri="s3://models/{model}/{version}", model_format="onnx")
    model.release_target_add("m", TargetSpec("kserve", "kserve", opts, exec="true"))
    ops.update(model, "m", rules=["region=eu -> canary"])
    r = mreg("release", "apply", "m", "--store", str(model.root), check=False)
    assert r.returncode == 1 and "target kserve failed" in r.stderr
    assert seen.read_text() == "m 1 mesh\nm 2 mesh\n"
    # removing it
    mreg("release", "targets", "m", "--remove", "kserve", "--store", str(model.root))
    assert [t.name for t in Store.open(model.root).config.targets["m"]] == ["mesh"]
    r = mreg("release", "targets", "m", "--remove", "kserve", "--store", str(model.root),
             check=False)  # fmt: skip
    assert r.returncode == 2 and "no release target 'kserve'" in r.stderr


def test_watch_waits_for_a_target_that_fails_then_goes_on(model: Store, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    log = tmp_path / "applied"
    cmd = f"test -e {ok} && echo $MREG_GENERATION >> {log}"
    model.release_target_add("m", TargetSpec("mesh", "istio", exec=cmd))
    better = Behaviour(error_rate=0.005, latency_ms=17, conversion=0.11)
    report, _ = simulate_release(model, better, max_duration_s=600)
    assert report.outcome == "max-duration"
    assert {e.action for e in report.events} == {"wait"}  # never judged, never stepped
    assert "target mesh did not apply generation 1" in report.events[0].summary
    assert ops.status(model, "m").rollout.weight == 500  # still 5%
    assert judgments(model, "m", 1) == []
    st = model.release_status("m")
    assert st.targets[0]["ok"] is False and st.targets[0]["attempted"] == 1
    r = mreg("release", "watch", "m", "--once", "--store", str(model.root), check=False)
    assert r.returncode == 1 and "not judged: target mesh did not apply" in r.stderr
    # the target recovers: the watch applies each step before judging it, to the end
    ok.touch()
    ops.abort(model, "m", reason="restart")
    report, _ = simulate_release(model, better)
    assert report.outcome == "promoted"
    gens = [int(x) for x in log.read_text().split()]
    judged = {j["generation"] for j in judgments(model, "m", 2)}
    final = ops.read_rollout(model, "m")
    assert final is not None and gens[-1] == final.generation  # the promotion reached it
    assert judged <= set(gens) and gens == sorted(gens)


def test_an_nginx_target_is_applied_when_the_gateway_serves_the_generation(
    model: Store, tmp_path: Path
) -> None:
    from tests.integrations.nginx import AVAILABLE, WHY_MISSING, Nginx
    from tests.tools import free_port

    if not AVAILABLE:
        pytest.skip(WHY_MISSING)
    gw, port = tmp_path / "gw", free_port()
    ops.start(model, "m", "1.1.0", weight=10)
    nginx = Nginx(tmp_path / "nginx", gw)
    base = ["release", "export", "m", "-f", "nginx-njs", "-o", str(gw), "--upstream",
            "*=127.0.0.1:9", "--listen", f"127.0.0.1:{port}", "--store", str(model.root)]  # fmt: skip
    mreg(*base)
    nginx.start(port)
    try:
        reload = " ".join(nginx.command("-s", "reload"))
        mreg(*base, "--exec", reload, "--as-target", "edge")
        ops.step(model, "m")
        mreg("release", "apply", "m", "--store", str(model.root))
        assert applied(model, "m")["edge"].generation == 2
        # a reload that does not happen: the gateway keeps reporting generation 2
        mreg(*base, "--exec", "true", "--apply-timeout", "1s", "--as-target", "edge")
        ops.step(model, "m")
        r = mreg("release", "apply", "m", "--store", str(model.root), check=False)
        assert r.returncode == 1 and "reports generation 2, not 3" in r.stderr
    finally:
        nginx.stop()


def test_targets_in_config_are_validated(model: Store) -> None:
    with pytest.raises(InvalidInput, match="give --output, --exec or both"):
        TargetSpec("t", "istio")
    with pytest.raises(InvalidInput, match="invalid target name"):
        TargetSpec("Bad Name", "istio", exec="true")
    with pytest.raises(InvalidInput, match="unknown export format"):
        model.release_target_add("m", TargetSpec("t", "nope", exec="true"))
    with pytest.raises(NotFound):
        model.release_target_remove("m", "absent")
    spec = TargetSpec("t", "istio", ExportOptions(namespace="ml", headers={"region": "x-geo"}),
                      exec="kubectl apply -f -", timeout_s=5)  # fmt: skip
    model.release_target_add("m", spec)
    assert Store.open(model.root).config.targets["m"] == (spec,)
    config = model.root / "config.yaml"
    doc = yamlio.load(config.read_bytes())
    assert doc["targets"]["m"] == [{"name": "t", "format": "istio", "options": {
        "namespace": "ml", "headers": {"region": "x-geo"}}, "exec": "kubectl apply -f -",
        "timeout_s": 5.0}]  # fmt: skip
    assert mreg("validate", str(config), "--store", str(model.root)).returncode == 0
    for bad in ({"name": "t", "format": "istio"}, {"name": "t", "format": "istio", "exec": 1},
                {"name": "t", "format": "istio", "exec": "x", "options": {"port": "80"}},
                {"name": "t", "format": "istio", "exec": "x", "color": "red"}):  # fmt: skip
        doc["targets"]["m"] = [bad]
        config.write_bytes(yamlio.dump(doc))
        with pytest.raises(IntegrityError, match=r"targets\.m"):
            Store.open(model.root)
