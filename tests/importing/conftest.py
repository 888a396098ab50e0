"""The MLflow registry of test_mlflow.py, started as soon as the package's first test runs.

`mlflow_registry.py` takes 5-20 s to import MLflow's server and fill the registry (most of it
CPU in one process); started here, before the GTO tests, it gets ready on the other core
while they run, and test_mlflow.py's `registry` fixture waits for it. It is started only
when a test of test_mlflow.py was collected, and stopped when the package's tests end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools import tool_bin


class Registry:
    """The running `mlflow_registry.py`: its URL, its directory, what it made."""

    def __init__(self, proc: subprocess.Popen[str], root: Path) -> None:
        self.proc, self.root = proc, root
        self.started = time.monotonic()
        self._info: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        """The first JSON line: `{url, versions: [...]}` (waits until the registry is ready)."""
        if self._info is None:
            self._info = self._json_line()
            print(f"MLflow registry ready {time.monotonic() - self.started:.1f}s after start")
        return self._info

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def add_version(self) -> dict[str, Any]:
        """Register one more version (`add`); its `{version, created, model}`."""
        assert self.proc.stdin
        self.info  # noqa: B018 (read the first line first)
        self.proc.stdin.write("add\n")
        self.proc.stdin.flush()
        return self._json_line()

    def _json_line(self) -> dict[str, Any]:
        assert self.proc.stdout
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]
        raise AssertionError(f"the MLflow registry script ended (exit {self.proc.wait()})")


@pytest.fixture(scope="package", autouse=True)
def mlflow_registry_early(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry | None]:
    python = tool_bin("mlflow", "python")
    wanted = any(item.path.name == "test_mlflow.py" for item in request.session.items)
    if python is None or not wanted:
        yield None
        return
    root = tmp_path_factory.mktemp("mlflow")
    env = {
        **os.environ, "HOME": str(root), "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore",
    }  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [str(python), str(Path(__file__).with_name("mlflow_registry.py")), str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=env,
    )  # fmt: skip
    try:
        yield Registry(proc, root)
    finally:
        proc.kill()
        proc.wait()
