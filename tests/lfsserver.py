"""A real Git LFS server for tests and bench/: giftless under gunicorn on 127.0.0.1.

giftless (installed by .ci/tools in its own virtualenv) serves its local storage backend;
requests are counted from gunicorn's access log, so "a second push sends nothing" is
measured, not assumed. `giftless(root, ANON)` runs it until the generator is closed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import free_port, require_tool

ANON = "  - giftless.auth.allow_anon:read_write"
JWT_KEY = "mreg-test-signing-key"
JWT = f"""\
  - factory: giftless.auth.jwt:factory
    options:
      algorithm: HS256
      private_key: {JWT_KEY}"""
_CONFIG = """\
AUTH_PROVIDERS:
{auth}
LEGACY_ENDPOINTS: false
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: {storage}
"""


@dataclass
class LfsServer:
    base: str
    storage: Path
    log: Path

    def repo(self) -> tuple[str, str]:
        """A fresh repository path on the server: (org/name, its LFS endpoint URL)."""
        path = f"org/r{uuid.uuid4().hex[:8]}"
        return path, f"{self.base}/{path}.git/info/lfs"

    def requests(self, path: str) -> dict[str, int]:
        """Requests so far on a repository, by kind: batch, put, get, verify.

        Answers of 500 are left out: giftless's local storage answers 500 when two uploads
        create the repository's directory at once, and mreg then sends the object again.
        """
        out = {"batch": 0, "put": 0, "get": 0, "verify": 0}
        for line in self.log.read_text().splitlines():
            if f"/{path}.git/info/lfs/" not in line or '" 500 ' in line:
                continue
            if "/objects/batch" in line:
                out["batch"] += 1
            elif "/objects/storage/verify" in line:
                out["verify"] += 1
            elif '"PUT ' in line:
                out["put"] += 1
            elif '"GET ' in line:
                out["get"] += 1
        return out


def giftless(root: Path, auth: str) -> Iterator[LfsServer]:
    """Run giftless under gunicorn on 127.0.0.1 until the generator is closed."""
    gunicorn = require_tool("giftless", "gunicorn")
    (root / "storage").mkdir()
    (root / "giftless.yaml").write_text(_CONFIG.format(storage=root / "storage", auth=auth))
    log = root / "access.log"
    log.touch()
    port = free_port()
    env = {
        **os.environ,
        "GIFTLESS_CONFIG_FILE": str(root / "giftless.yaml"),
        "HOME": str(root),
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.Popen(
        [
            str(gunicorn), "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "8",
            "--no-control-socket", "--access-logfile", str(log),
            "giftless.wsgi_entrypoint:app",
        ],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=(root / "server.log").open("wb"),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"giftless did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
    try:
        yield LfsServer(f"http://127.0.0.1:{port}", root / "storage", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
