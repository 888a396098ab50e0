"""An LFS server that answers 5xx for a while: mreg asks again, as git-lfs does (issue 20).

A real giftless serves the objects; in front of it, a forwarding proxy on 127.0.0.1 answers
the first request of each object with 503 (`Retry-After: 0`), or every request with 500.
giftless's local storage does answer 500 by itself when two uploads create the same
directory at once, which is how the benchmark found that mreg did not retry.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg import Store
from modelreg.errors import MregError
from tests.conftest import snapshot
from tests.lfsserver import ANON, LfsServer, giftless

pytestmark = pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed")


class Flaky:
    """A proxy to `upstream` that fails the first `fail_first` transfers of each object."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.fail_first = 1
        self.status = 503
        self.seen: dict[tuple[str, str], int] = {}
        self.failed = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = (self.command, self.path)
                n = flaky.seen[key] = flaky.seen.get(key, 0) + 1
                if "/objects/storage/" in self.path and "verify" not in self.path:
                    if n <= flaky.fail_first:
                        flaky.failed += 1
                        self.send_response(flaky.status)
                        self.send_header("Retry-After", "0")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                conn = http.client.HTTPConnection(flaky.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def lfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LfsServer]:
    yield from giftless(tmp_path_factory.mktemp("giftless-retry"), ANON)


@pytest.fixture
def flaky(lfs: LfsServer) -> Iterator[Flaky]:
    proxy = Flaky(lfs.base)
    yield proxy
    proxy.close()


def _store(where: Path, url: str, meta: Path) -> Store:
    where.mkdir()
    store = Store.init(where)
    store.remotes.add("lfs", f"lfs+{url}", {"meta": str(meta)})
    return store


def test_a_transient_5xx_is_asked_again_both_ways(
    lfs: LfsServer, flaky: Flaky, tmp_path: Path
) -> None:
    path, _ = lfs.repo()
    url = f"{flaky.base}/{path}.git/info/lfs"
    a = _store(tmp_path / "a", url, tmp_path / "meta")
    files = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * (1000 + i))
    version = a.register("m", files).version.version
    r = a.push()
    assert r.objects_sent == 3
    assert flaky.failed == 3  # each upload failed once, then went through
    assert lfs.requests(path)["put"] == 3  # giftless saw each object once
    for f in files:
        data = f.read_bytes()
        assert (lfs.storage / path / hashlib.sha256(data).hexdigest()).read_bytes() == data

    b = _store(tmp_path / "b", url, tmp_path / "meta")
    assert b.pull().ok
    assert flaky.failed == 6  # each download failed once too
    mv = b.resolve(f"m@{version}")
    assert sorted(f.size for f in mv.files) == [1000, 1001, 1002]
    assert b.verify().ok


def test_a_server_that_keeps_failing_stops_the_push_and_changes_nothing(
    lfs: LfsServer, flaky: Flaky, tmp_path: Path
) -> None:
    path, _ = lfs.repo()
    flaky.fail_first, flaky.status = 1000, 500
    a = _store(tmp_path / "a", f"{flaky.base}/{path}.git/info/lfs", tmp_path / "meta")
    (tmp_path / "f.bin").write_bytes(b"x" * 100)
    a.register("m", [tmp_path / "f.bin"])
    before = snapshot(a.root)
    with pytest.raises(MregError, match="answered 500"):
        a.push()
    assert flaky.failed == 5  # the first attempt and four more
    assert lfs.requests(path)["put"] == 0
    assert not (tmp_path / "meta" / "models").exists()  # no manifest names a missing object
    after = snapshot(a.root)
    assert {k: v for k, v in after.items() if "remotes/" not in k} == {
        k: v for k, v in before.items() if "remotes/" not in k
    }
