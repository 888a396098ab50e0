"""A real OCI registry for tests and bench/: Debian's `docker-registry` (CNCF distribution).

`Registry(root)` serves filesystem storage under `root` on 127.0.0.1 until `stop()`; with
`htpasswd`, basic authentication; `auth` is any other `auth:` section of its config.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.tools import free_port

REGISTRY = "/usr/bin/docker-registry"


class Registry:
    """`docker-registry serve` on 127.0.0.1 with filesystem storage under `root`."""

    def __init__(self, root: Path, htpasswd: Path | None = None, auth: str = "") -> None:
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
        config = root / "config.yml"
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self.log = (root / "log").open("wb")
        self.proc = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:  # 401: up, with auth
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((root / "log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()

    def blob_file(self, digest: str) -> Path:
        return self.root / f"data/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data"
