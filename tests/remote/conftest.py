"""Fixtures for remotes: a real S3 endpoint (moto's server on 127.0.0.1) and one remote per backend.

`s3_endpoint` starts `moto.server.ThreadedMotoServer` once per session on a free port of
127.0.0.1 and sets dummy AWS credentials, so s3fs talks real HTTP to it; nothing is mocked.
`target` is parametrized over memory://, file:// and s3:// (a fresh bucket per test).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.remote.backend import Backend
from modelreg.remote.config import RemoteSpec, normalize_url

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1 (started once per session)."""
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for key, value in AWS_ENV.items():
        mp.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        mp.delenv(key, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    mp.undo()


@dataclass
class Target:
    """A remote to test against: its URL, driver options and direct access for tampering."""

    kind: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def add(self, store: Store, name: str = "origin") -> None:
        store.remotes.add(name, self.url, self.options)

    def backend(self) -> Backend:
        return Backend(RemoteSpec("t", normalize_url(self.url), self.options))

    def env(self) -> dict[str, str]:
        return dict(AWS_ENV)


@pytest.fixture(params=["memory", "file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """One remote per backend; an S3 remote gets its own bucket on the moto server."""
    tag = uuid.uuid4().hex[:12]
    if request.param == "memory":
        return Target("memory", f"memory://mreg-{tag}/reg")
    if request.param == "file":
        return Target("file", str(tmp_path / "remote"))
    endpoint = request.getfixturevalue("s3_endpoint")
    t = Target("s3", f"s3://bucket-{tag}/reg", {"endpoint_url": endpoint})
    t.backend().fs.mkdir(f"bucket-{tag}")
    return t


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., Store]:
    """make_store('alice', {'model.onnx': b'...'}, version='1.0.0', promote='production')."""

    def make(
        where: str,
        files: dict[str, bytes] | None = None,
        *,
        name: str = "fraud",
        version: str = "1.0.0",
        promote: str | None = None,
    ) -> Store:
        store = Store.init(tmp_path / where)
        if files:
            src = tmp_path / f"{where}-{name.replace('/', '-')}-{version}"
            for rel, data in files.items():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_bytes(data)
            store.register(name, [src], version=version, detect_code=False)
            if promote:
                store.promote(f"{name}@{version}", promote)
        return store

    return make


def register(store: Store, tmp_path: Path, files: dict[str, bytes], **kw: Any) -> None:
    """Register `files` (relative path -> bytes) as one version in `store`."""
    src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    store.register(kw.pop("name", "fraud"), [src], detect_code=False, **kw)


def blob(n: int, seed: int = 0) -> bytes:
    """`n` pseudo-random bytes (distinct per seed, cheap to make)."""
    import random

    return random.Random(seed).randbytes(n)


def subprocess_env() -> dict[str, str]:
    """The environment of an `mreg` subprocess talking to the moto server."""
    return {**os.environ, **AWS_ENV}
