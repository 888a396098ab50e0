"""A real MLflow registry for the import tests; run with the MLflow virtualenv's python.

`python mlflow_registry.py DIR` serves MLflow's own tracking server application
(`mlflow.server:app`, the Flask app `mlflow server` runs under gunicorn or waitress) with a
sqlite backend store (`DIR/mlflow.db`) and proxied artifacts (`DIR/artifacts`, the
`mlflow-artifacts` API), on 127.0.0.1 in this process with werkzeug: `mlflow server` itself
takes 20-30 s to start uvicorn and its job runner on a loaded 2-core machine, this ~5 s. It
then fills the registry through MLflow's own client over HTTP, prints one JSON line (the
port and what it made), and reads commands from stdin: `add` registers one more version,
`quit` stops.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

DIR = Path(sys.argv[1])
os.environ["_MLFLOW_SERVER_FILE_STORE"] = f"sqlite:///{DIR / 'mlflow.db'}"
os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = "mlflow-artifacts:/"
os.environ["_MLFLOW_SERVER_SERVE_ARTIFACTS"] = "true"
os.environ["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] = str(DIR / "artifacts")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

from mlflow.server import app  # noqa: E402  (reads the variables above)
from werkzeug.serving import make_server  # noqa: E402

server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{server.server_port}"

from mlflow import MlflowClient  # noqa: E402

# The client is given the URL, never the global tracking URI: the server's handlers in this
# process set that one to the sqlite store.
client = MlflowClient(URL)


def files(tag: str) -> Path:
    src = DIR / "src" / tag
    (src / "sub").mkdir(parents=True, exist_ok=True)
    (src / "weights.bin").write_bytes(f"weights {tag}".encode() * 50)
    (src / "sub" / "config.json").write_text(json.dumps({"tag": tag}))
    return src


# Version 1: a run's artifact directory (the MLflow 2 way), with params, metrics and tags.
run1 = client.create_run("0", tags={"mlflow.user": "alice"}).info
for key, value in {"lr": "0.01", "layers": "3"}.items():
    client.log_param(run1.run_id, key, value)
for key, num in {"test_f1": 0.9, "val/auc": 0.8, "train.loss": 0.1, "accuracy": 0.7}.items():
    client.log_metric(run1.run_id, key, num)
client.set_tag(run1.run_id, "mlflow.source.git.commit", "0123456789abcdef0123456789abcdef01234567")
client.log_artifacts(run1.run_id, str(files("one")), "model")
client.set_terminated(run1.run_id)
client.create_registered_model("Fraud Detector", description="flags fraud", tags={"owner": "ml"})
v1 = client.create_model_version(
    "Fraud Detector", f"{run1.artifact_uri}/model", run_id=run1.run_id,
    tags={"team": "vision", "note": "has spaces, so not an mreg tag"}, description="first one",
    await_creation_for=0,
)  # fmt: skip


def logged_model_version(tag: str, f1: float) -> str:
    """A version from an MLflow 3 logged model (`models:/m-...`)."""
    run = client.create_run("0", tags={"mlflow.user": "bob"}).info
    client.log_param(run.run_id, "lr", "0.02")
    client.log_metric(run.run_id, "test_f1", f1)
    lm = client.create_logged_model("0", name="model", source_run_id=run.run_id)
    client.log_model_artifacts(lm.model_id, str(files(tag)))
    client.finalize_logged_model(lm.model_id, "READY")
    client.set_terminated(run.run_id)
    mv = client.create_model_version(
        "Fraud Detector", f"models:/{lm.model_id}", run_id=run.run_id, model_id=lm.model_id,
        await_creation_for=0,
    )  # fmt: skip
    return {"version": str(mv.version), "created": mv.creation_timestamp, "model": lm.model_id}


v2 = logged_model_version("two", 0.95)
client.set_registered_model_alias("Fraud Detector", "champion", v1.version)
client.set_registered_model_alias("Fraud Detector", "challenger", v2["version"])
client.transition_model_version_stage("Fraud Detector", v2["version"], "Staging")
client.create_registered_model("other")
# Files the server does not proxy: mreg says so and skips the version.
client.create_registered_model("elsewhere")
client.create_model_version("elsewhere", "s3://bucket/models/elsewhere", await_creation_for=0)
one = {"version": v1.version, "created": v1.creation_timestamp, "run": run1.run_id}
print(json.dumps({"url": URL, "versions": [one, v2]}), flush=True)

for line in sys.stdin:
    if line.strip() == "add":
        v3 = logged_model_version("three", 0.97)
        client.set_registered_model_alias("Fraud Detector", "champion", v3["version"])
        print(json.dumps(v3), flush=True)
    elif line.strip() == "quit":
        break
server.shutdown()
