"""The CI recipe: examples/ci/pipeline.sh, the script both CI files run, run here as a CI runner
would, against a real S3 endpoint (moto's server on 127.0.0.1). Each run is a fresh runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from modelreg import Store, yamlio
from modelreg.release import ops
from modelreg.validate import validate
from tests.integrations.conftest import AWS_ENV, ROOT

CI = ROOT / "examples" / "ci"


def test_both_ci_files_run_the_pipeline_script():
    github = yamlio.load((CI / "github-actions.yml").read_bytes())
    (job,) = github["jobs"].values()
    runs = [s.get("run", "") for s in job["steps"]]
    assert "bash examples/ci/pipeline.sh" in runs
    assert {"MODEL_VERSION", "REGISTRY_URL", "MREG_AUTHOR"} <= set(job["env"])
    gitlab = yamlio.load((CI / "gitlab-ci.yml").read_bytes())
    assert "bash examples/ci/pipeline.sh" in gitlab["model"]["script"]
    assert {"MODEL_VERSION", "REGISTRY_URL", "MREG_AUTHOR"} <= set(gitlab["model"]["variables"])
    assert validate([CI / "store-config.mreg.yaml"]).ok


@pytest.fixture
def registry(s3_endpoint: str) -> str:
    """A new bucket on the local S3 server; the registry's URL in it."""
    import s3fs

    bucket = f"ci-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, key="testing", secret="testing").mkdir(bucket)
    return f"s3://{bucket}/registry"


def test_the_pipeline_against_s3(registry, s3_endpoint, tmp_path, crd_validate):
    bindir = str(Path(sys.executable).parent)  # mreg and python3 of this environment

    def runner(name: str, version: str, train_args: str = "") -> subprocess.CompletedProcess[str]:
        workdir = tmp_path / name  # a fresh CI runner: empty work tree, no store
        workdir.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MREG_STORE")},
            **AWS_ENV,
            "PATH": f"{bindir}:{os.environ['PATH']}",
            "MODEL_VERSION": version,
            "REGISTRY_URL": registry,
            "S3_ENDPOINT_URL": s3_endpoint,
            "MREG_AUTHOR": "CI <ci@example.com>",
            "TRAIN_ARGS": train_args,
            "MREG_CEILING_DIRS": str(tmp_path),
        }
        return subprocess.run(
            ["bash", str(CI / "pipeline.sh")], cwd=workdir, env=env, capture_output=True,
            text=True, timeout=180,
        )  # fmt: skip

    first = runner("run-1", "1.0.0", "--epochs 50")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no production version yet: 1.0.0 becomes the first" in first.stdout
    second = runner("run-2", "1.1.0")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "release 1: progressing" in second.stdout
    istio = (tmp_path / "run-2" / "build" / "istio.yaml").read_bytes().split(b"---\n")
    for doc in map(yamlio.load, istio):
        assert crd_validate(doc) == []
    rerun = runner("run-2-retry", "1.1.0")  # the same job re-run on a new runner
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Already registered (identical content) fraud-detector@1.1.0" in rerun.stdout
    assert "the canary release of 1.1.0 is already progressing" in rerun.stdout
    assert "origin is up to date" in rerun.stdout
    broken = runner("run-3", "1.2.0", "--epochs 0")  # a training job that did not train
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines()[-1] == (
        "mreg: error: fraud-detector@1.2.0 fails the staging gate: test.f1 >= 0.9 (has 0.6301) "
        "(use --force --reason to override)"
    )

    # What the registry holds, seen from a new store.
    store = Store.init(tmp_path / "check")
    store.remotes.add("origin", registry, {"endpoint_url": s3_endpoint})
    assert store.pull().ok
    assert [v.version.version for v in store.versions("fraud-detector")] == [
        "1.0.0",
        "1.1.0",
        "1.2.0",
    ]
    aliases = {s.name: s.aliases for s in store.models()}["fraud-detector"]
    assert aliases == {"production": "1.0.0", "staging": "1.1.0"}
    status = ops.status(store, "fraud-detector")
    assert (status.state, status.rollout and status.rollout.generation) == ("progressing", 1)
    assert status.to_dict()["canary"]["version"] == "1.1.0"
    assert status.to_dict()["steps"]["plan"] == [5, 25, 50, 100]
    mv = store.resolve("fraud-detector@1.2.0")
    assert mv.metric("test.f1") == 0.6301 and mv.params == {"epochs": 0, "lr": 0.5, "seed": 7}
    assert mv.data[0].uri == "build/data/train.csv" and mv.data[0].sha256
    assert mv.tags == ("ci",) and mv.author == "CI <ci@example.com>"
    assert validate(store=store.root).ok
