#!/usr/bin/env python3
"""MLflow's side of bench/scale.py: run by the python of a virtualenv holding mlflow.

    scale_mlflow.py build WORK N        # a sqlite registry of N versions of `m` (cached: WORK/DONE)
    scale_mlflow.py queries             # the reads, as JSON: filter strings, or why not
    scale_mlflow.py search WORK READ R  # R timed calls of one read in this process, as JSON

The registry mirrors the mreg store of bench/scale.py as far as MLflow's model registry can
hold it: one registered model `m` with N versions (plus `other` with 20) whose metrics and
parameters are model-version tags (`test_f1`, `lr`, ... as strings: a model version has no
metrics or parameters of its own in MLflow, only tags, or the metrics of the run that logged
it, which `search_model_versions` cannot filter on), tags `nightly` and `region`, the same
aliases moved (`production`, `staging`), the tag `candidate` added 50 versions later and a
`deprecated` tag 10 versions later. Built with `MlflowClient` (sqlite tracking and registry
URI, the setup of bench/register.py), one `create_model_version` per version; an interrupted
build is started again from scratch (it takes minutes, not tens of them).

`search` imports mlflow (timed), creates the client, then times R calls of the read's API
call; bench/scale.py times the whole process as well.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "m"


def version_tags(i: int) -> dict[str, str]:
    """The same values as bench/scale.py's fields_of(i), as MLflow tags (strings)."""
    rng = random.Random(i)
    f1 = round(0.5 + 0.5 * rng.random() ** 0.5, 4)
    auc = round(min(1.0, f1 + rng.random() * 0.05), 4)
    loss = round(rng.uniform(0.01, 1.0), 4)
    lr = rng.choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3])
    layers = rng.randint(2, 12)
    opt = rng.choice(["adam", "sgd", "adamw"])
    return {
        "test_f1": str(f1),
        "test_auc": str(auc),
        "val_loss": str(loss),
        "lr": str(lr),
        "layers": str(layers),
        "optimizer": opt,
        "nightly": "true",
        "region": "eu" if i % 2 else "us",
    }


def client_for(work: Path) -> Any:
    from mlflow import MlflowClient

    uri = "sqlite:///" + str(work / "mlflow.db")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def build(work: Path, n: int) -> dict[str, Any]:
    import mlflow

    if (work / "DONE").exists():
        return json.loads((work / "DONE").read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    artifact = work / "model.bin"
    artifact.write_bytes(random.Random(0).randbytes(1024))
    client = client_for(work)
    source = artifact.as_uri()
    client.create_registered_model("other")
    for _ in range(20):
        client.create_model_version("other", source, tags={"small": "true"})
    client.set_registered_model_alias("other", "production", "20")
    client.create_registered_model(MODEL)
    t0 = time.perf_counter()
    for i in range(n):
        v = str(i + 1)  # MLflow numbers versions 1, 2, ...
        client.create_model_version(MODEL, source, tags=version_tags(i), description=f"run {i}")
        if i % 1000 == 999:
            client.set_registered_model_alias(MODEL, "production", v)
        if i % 250 == 249:
            client.set_registered_model_alias(MODEL, "staging", v)
        if i >= 50 and (i - 50) % 100 == 0:
            client.set_model_version_tag(MODEL, str(i - 50 + 1), "candidate", "true")
        if i >= 10 and (i - 10) % 500 == 0:
            client.set_model_version_tag(MODEL, str(i - 10 + 1), "deprecated", "superseded")
        if i % 1000 == 999:
            print(f"mlflow build: {i + 1:,} versions, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    info = {
        "mlflow": mlflow.__version__,
        "versions": n,
        "build_seconds": round(seconds, 1),
        "ms_per_version": round(seconds / n * 1000, 2),
        "note": "sqlite registry, MlflowClient.create_model_version per version",
    }
    (work / "DONE").write_text(json.dumps(info, indent=1) + "\n")
    return info


# The reads of bench/scale.py (same labels), as MLflow calls. `cannot` says why MLflow's
# registry API cannot answer it; `probe` is a filter string tried to show its error.
QUERIES: list[dict[str, Any]] = [
    {"read": "list m (first page of 100)", "call": "search_model_versions",
     "filter": f"name='{MODEL}'", "max_results": 100},
    {"read": "list m --json", "call": "search_model_versions",
     "filter": f"name='{MODEL}'", "max_results": 100},
    {"read": "list m --limit 10", "call": "search_model_versions",
     "filter": f"name='{MODEL}'", "max_results": 10},
    {"read": "list m --offset N-100 (last page)",
     "cannot": "no offset: paging is by opaque page_token from the previous page"},
    {"read": '--where "test.f1 >= 0.99" --limit 10',
     "probe": f"name='{MODEL}' and metrics.test_f1 >= 0.99",
     "cannot": "no metrics on model versions; tags are strings compared with =, !=, LIKE, ILIKE"},
    {"read": '--where "metrics.test.f1 >= 0.9 and params.lr < 0.1"',
     "probe": f"name='{MODEL}' and tags.test_f1 >= '0.9'",
     "cannot": "no metrics or params on model versions; no numeric comparison of tags"},
    {"read": '--where "tags.candidate" --limit 10', "call": "search_model_versions",
     "filter": f"name='{MODEL}' and tags.candidate = 'true'", "max_results": 10},
    {"read": '--where "created >= 2026-01-01"',
     "probe": f"name='{MODEL}' and creation_timestamp >= 1767225600000",
     "cannot": "creation_timestamp can order the results but not filter them"},
    {"read": "--sort test.f1 --desc",
     "probe": "ORDER BY tags.test_f1 DESC",
     "cannot": "order_by takes name, version_number, creation/last_updated_timestamp only"},
    {"read": "--tag candidate --limit 10", "call": "search_model_versions",
     "filter": f"name='{MODEL}' and tags.candidate = 'true'", "max_results": 10},
    {"read": "--alias production", "call": "get_model_version_by_alias", "alias": "production"},
    {"read": "show m (latest)", "call": "search_model_versions",
     "filter": f"name='{MODEL}'", "max_results": 1, "order_by": ["version_number DESC"]},
    {"read": "show m@production", "call": "get_model_version_by_alias", "alias": "production"},
    {"read": "log m (newest 100)", "cannot": "no audit trail of registry changes"},
    {"read": "log m --action promote -n 10", "cannot": "no audit trail of registry changes"},
    {"read": "history m (newest 100 moves)", "cannot": "an alias keeps only its current version, no history"},
    {"read": "list (models)", "call": "search_registered_models", "max_results": 100},
]  # fmt: skip


def run_query(client: Any, q: dict[str, Any]) -> int:
    if q["call"] == "search_model_versions":
        res = client.search_model_versions(
            q["filter"], max_results=q["max_results"], order_by=q.get("order_by")
        )
        return len(res)
    if q["call"] == "get_model_version_by_alias":
        client.get_model_version_by_alias(MODEL, q["alias"])
        return 1
    return len(client.search_registered_models(max_results=q["max_results"]))


def probe(work: Path | None) -> list[dict[str, Any]]:
    """The queries, each `cannot` with the error MLflow gives for its closest filter string."""
    out = []
    client = client_for(work) if work else None
    for q in QUERIES:
        q = dict(q)
        if client is not None and "probe" in q:
            try:
                if q["probe"].startswith("ORDER BY"):
                    client.search_model_versions(
                        f"name='{MODEL}'", max_results=1, order_by=[q["probe"][9:]]
                    )
                else:
                    client.search_model_versions(q["probe"], max_results=1)
                q["probe_error"] = None
            except Exception as exc:
                q["probe_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.append(q)
    return out


def main() -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    cmd = sys.argv[1]
    if cmd == "build":
        print(json.dumps(build(Path(sys.argv[2]), int(sys.argv[3]))))
    elif cmd == "queries":
        work = Path(sys.argv[2]) if len(sys.argv) > 2 else None
        print(json.dumps(probe(work)))
    elif cmd == "search":
        work, label, repeat = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        q = next(q for q in QUERIES if q["read"] == label)
        t0 = time.perf_counter()
        import mlflow  # noqa: F401

        t1 = time.perf_counter()
        client = client_for(work)
        results = run_query(client, q)  # warm-up (creates the engine, checks the schema)
        calls = []
        for _ in range(repeat):
            t = time.perf_counter()
            results = run_query(client, q)
            calls.append(time.perf_counter() - t)
        print(json.dumps({"import": t1 - t0, "calls": calls, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
