"""Fixtures for the integrations: a store with a live release, the CRD schemas, in-process CLI runs.

`release_store` is built only through the library, the way the commands build stores, so the
documents it holds are exactly what mreg writes today.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store, yamlio
from modelreg.fsutil import atomic_write
from modelreg.release import ops
from modelreg.store import StoreConfig

# The moto S3 server on 127.0.0.1 (session scope): the remote tests' fixture.
from tests.remote.conftest import AWS_ENV, s3_endpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
# The real CRD schemas, shipped in the repository with their licences (tests/schemas/README.md).
CRD_SCHEMAS = ROOT / "tests" / "schemas"
SEED = "5bd083fc3cca355d3919f43df0a2c630"
RULES = (
    "testers: user_id in qa-1,qa-2 -> canary",
    "region=cn-north -> 10%",
    "device in ios,android and app_version^=2. -> baseline",
)


def register(store: Store, tmp_path: Path, name: str, version: str, f1: float, **kw: Any) -> None:
    """Register `name@version` with one small ONNX-named file and a test.f1 metric."""
    f = tmp_path / "inputs" / name.replace("/", "_") / version / "model.onnx"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(f"weights of {name} {version}".encode())
    kw.setdefault("detect_code", False)
    store.register(name, [f], version=version, metrics={"test": {"f1": f1}}, **kw)


def set_gates(store: Store, gates: dict[str, tuple[str, ...]]) -> Store:
    """Write promotion gates into config.yaml (there is no command for it) and reopen."""
    config = StoreConfig(gates=gates, remotes=store.config.remotes,
                         default_remote=store.config.default_remote)  # fmt: skip
    atomic_write(store.root / "config.yaml", yamlio.dump(config.to_dict()))
    return Store.open(store.root)


@pytest.fixture
def release_store(store: Store, tmp_path: Path) -> Store:
    """Model `fraud`: 1.0.0 (production), 1.1.0, 1.2.0; release 1 of 1.1.0 live at 5% with rules."""
    for version, f1 in (("1.0.0", 0.90), ("1.1.0", 0.93), ("1.2.0", 0.95)):
        register(store, tmp_path, "fraud", version, f1)
    store.promote("fraud@1.0.0", "production")
    ops.start(store, "fraud", "1.1.0", weight=5, rules=RULES, seed=SEED)
    return store


@cache
def crd_schema(name: str) -> dict[str, Any]:
    """One of tests/schemas (the real CRD schemas of the exported resources)."""
    return json.loads((CRD_SCHEMAS / name).read_text())  # type: ignore[no-any-return]


CRD_FILES = {
    ("networking.istio.io/v1", "VirtualService"): "networking.istio.io_virtualservice_v1.json",
    ("networking.istio.io/v1", "DestinationRule"): "networking.istio.io_destinationrule_v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "gateway.networking.k8s.io_httproute_v1.json",
    ("split.smi-spec.io/v1alpha2", "TrafficSplit"): "split.smi-spec.io_trafficsplit_v1alpha3.json",
    (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    ): "serving.kserve.io_inferenceservice_v1beta1.json",
    ("argoproj.io/v1alpha1", "Rollout"): "argoproj.io_rollout_v1alpha1.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "argoproj.io_analysistemplate_v1alpha1.json",
    ("flagger.app/v1beta1", "Canary"): "flagger.app_canary_v1beta1.json",
    ("flagger.app/v1beta1", "MetricTemplate"): "flagger.app_metrictemplate_v1beta1.json",
}


@pytest.fixture(scope="session")
def crd_validate() -> Callable[[dict[str, Any]], list[str]]:
    """Validate one exported document against its project's CRD schema; return the errors."""
    import jsonschema

    def check(doc: dict[str, Any]) -> list[str]:
        schema = crd_schema(CRD_FILES[doc["apiVersion"], doc["kind"]])
        validator = jsonschema.Draft7Validator(schema)
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]

    return check


class Result:
    """A finished in-process `mreg` run: exit code, stdout, stderr."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<mreg exit {self.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


def mreg(*args: str) -> Result:
    """Run `mreg ARGS` in-process through `main()`, the error funnel that sets exit codes."""
    import signal
    import sys

    from typer.testing import CliRunner

    from modelreg.cli import main

    handler = signal.getsignal(signal.SIGINT)
    with CliRunner().isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            signal.signal(signal.SIGINT, handler)
            sys.stdout.flush()
            sys.stderr.flush()
        return Result(code, out.getvalue().decode(), err.getvalue().decode())
