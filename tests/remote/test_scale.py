"""Remotes at scale (issue 18): push, pull, fetch and status send O(changed) requests.

Every request the remote driver sends is counted at the HTTP level, by a WSGI wrapper around
moto's own server application on 127.0.0.1 (nothing of mreg or of s3fs is mocked). The
remotes are built fast but honestly: the versions are registered by `Store.register` and
pushed by `Store.push` (so every manifest, ref and audit file is what mreg writes); only the
bytes of the objects are put straight into moto's in-process S3 backend instead of through
N HTTP PUTs, and the local objects are written without the copy thread and fsync of the
durable path (their content and names are the same).
"""

from __future__ import annotations

import collections
import hashlib
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from modelreg import Store
from modelreg.objects import ObjectStore

FILES_PER_VERSION = 1000
NEW_FILES = 20
SHARED_FILES = 5  # of the new version's files, this many hold content the remote already has


class CountingS3:
    """moto's S3 server on a free port of 127.0.0.1, counting every HTTP request it answers."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
            query = unquote(environ.get("QUERY_STRING", ""))
            method = environ["REQUEST_METHOD"]
            kind = "LIST" if method == "GET" and "list-type" in query else method
            with self._lock:
                self.requests.append((kind, f"{unquote(environ['PATH_INFO'])}?{query}"))
            return app(environ, start)

        self._server = make_server(
            "127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def take(self) -> list[tuple[str, str]]:
        """The requests since the last call."""
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


@pytest.fixture(scope="module")
def counting_s3(s3_endpoint: str) -> Iterator[CountingS3]:  # s3_endpoint: credentials set
    server = CountingS3()
    yield server
    server.stop()


def _fast_put_file(self: ObjectStore, src: Path, progress: Any = None) -> tuple[str, int]:
    data = Path(src).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = self.path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest, len(data)


def _write_files(src: Path, count: int, tag: str) -> None:
    src.mkdir(parents=True)
    for i in range(count):
        (src / f"shard-{i:05d}.bin").write_bytes(f"{tag}-{i}-{uuid.uuid4()}".encode())


def _remote_with(
    n: int, server: CountingS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Store, Store]:
    """Store `a` with `n` objects (versions of 1,000 files), pushed; `b`, a clone in sync."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    root = tmp_path / f"n{n}"
    bucket = f"scale-{uuid.uuid4().hex[:12]}"
    a = Store.init(root / "a")
    with monkeypatch.context() as mp:
        mp.setattr(ObjectStore, "put_file", _fast_put_file)
        for v in range(n // FILES_PER_VERSION):
            _write_files(root / f"src-{v}", FILES_PER_VERSION, f"{n}-{v}")
            a.register("ranker", [root / f"src-{v}"], version=f"1.{v}.0", detect_code=False)
    a.promote(f"ranker@1.{n // FILES_PER_VERSION - 1}.0", "production")
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    s3.create_bucket(bucket, "us-east-1")
    objects = [p for p in (a.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == n
    for p in objects:  # the bytes mreg would PUT, under the key it would use
        s3.put_object(bucket, f"reg/objects/{p.parent.name}/{p.name}", p.read_bytes())
    a.remotes.add("origin", f"s3://{bucket}/reg", {"endpoint_url": server.url})
    first = a.push()
    assert first.objects_sent == 0 and first.objects_present == n
    shutil.copytree(root / "a", root / "b")  # a clone that has pulled everything
    return a, Store.open(root / "b")


def _count(requests: list[tuple[str, str]]) -> collections.Counter[str]:
    return collections.Counter(kind for kind, _ in requests)


def _lists_objects(requests: list[tuple[str, str]]) -> list[str]:
    return [where for kind, where in requests if kind == "LIST" and "reg/objects" in where]


def test_push_pull_fetch_status_send_requests_that_grow_with_the_change_not_the_remote(
    counting_s3: CountingS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[int, dict[str, collections.Counter[str]]] = {}
    for n in (1_000, 10_000):
        a, b = _remote_with(n, counting_s3, tmp_path, monkeypatch)
        got: dict[str, collections.Counter[str]] = {}
        counting_s3.take()

        status = a.remote_status()
        req = counting_s3.take()
        assert status.in_sync and not _lists_objects(req)
        got["status, nothing changed"] = _count(req)

        # one new version: NEW_FILES files, SHARED_FILES of them with content already there
        src = tmp_path / f"n{n}" / "new"
        _write_files(src, NEW_FILES - SHARED_FILES, "new")
        old = sorted((tmp_path / f"n{n}" / "src-0").iterdir())[:SHARED_FILES]
        for i, p in enumerate(old):
            shutil.copyfile(p, src / f"copy-{i}.bin")
        a.register("ranker", [src], version="2.0.0", detect_code=False)
        status = a.remote_status()
        req = counting_s3.take()
        assert status.versions_to_push == ("ranker@2.0.0",)
        assert status.objects_to_push == NEW_FILES - SHARED_FILES
        assert not _lists_objects(req)
        got["status, one version to push"] = _count(req)

        pushed = a.push()
        req = counting_s3.take()
        assert pushed.manifests_sent == ("ranker@2.0.0",)
        assert (pushed.objects_sent, pushed.objects_present) == (
            NEW_FILES - SHARED_FILES,
            SHARED_FILES,
        )
        assert not _lists_objects(req)
        got["push, one new version"] = _count(req)

        fetched = b.fetch()
        req = counting_s3.take()
        assert fetched.remote_versions == ("ranker@2.0.0",)
        got["fetch, one new version"] = _count(req)

        pulled = b.pull()
        req = counting_s3.take()
        assert pulled.ok and pulled.manifests_received == ("ranker@2.0.0",)
        assert pulled.objects_received == NEW_FILES - SHARED_FILES
        assert not _lists_objects(req)
        got["pull, one new version"] = _count(req)

        pulled = b.pull()
        req = counting_s3.take()
        assert pulled.ok and not pulled.manifests_received and not pulled.objects_received
        got["pull, nothing new"] = _count(req)

        status = b.remote_status()  # its own `pull` entry is the only difference (remotes.md)
        assert status.audit.local_only == 1 and not status.refs and not status.versions_to_pull
        got["status of the clone, nothing changed"] = _count(counting_s3.take())
        assert b.verify().ok
        seen[n] = got

    small, large = seen[1_000], seen[10_000]
    for what, counts in large.items():
        # the same requests at 10,000 objects as at 1,000, kind by kind
        assert counts == small[what], (what, dict(small[what]), dict(counts))
    sent = NEW_FILES - SHARED_FILES
    push = large["push, one new version"]
    # a HEAD per object of the new version, a PUT per missing one, then the manifest, the
    # audit log and its head; a few listings of the metadata
    assert push["HEAD"] == NEW_FILES and push["PUT"] == sent + 3
    assert sum(push.values()) <= 2 * NEW_FILES + 8
    pull = large["pull, one new version"]
    assert pull["GET"] <= sent + 3 and sum(pull.values()) <= sent + 8
    assert sum(large["pull, nothing new"].values()) <= 4
    assert sum(large["status, nothing changed"].values()) <= 4
    assert large["status, one version to push"]["HEAD"] == NEW_FILES


@pytest.mark.parametrize("share", [8, 300])
def test_many_objects_are_looked_for_in_a_listing_cut_short_then_with_heads(
    counting_s3: CountingS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: int
) -> None:
    """More than HEAD_MAX objects: at most one LIST page per LIST_SHARE of them, then HEADs."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from modelreg.remote import session as session_mod
    from modelreg.remote.session import Session

    monkeypatch.setattr(session_mod, "LIST_SHARE", share)
    bucket = f"scale-{uuid.uuid4().hex[:12]}"
    s3 = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    s3.create_bucket(bucket, "us-east-1")
    digests = sorted(hashlib.sha256(str(i).encode()).hexdigest() for i in range(3300))
    on_remote, absent = digests[:3000], digests[3000:]
    for d in on_remote:
        s3.put_object(bucket, f"reg/objects/{d[:2]}/{d}", d.encode())
    store = Store.init(tmp_path / "s")
    store.remotes.add("origin", f"s3://{bucket}/reg", {"endpoint_url": counting_s3.url})
    s = Session.open(store, "origin")
    wanted = on_remote[::10] + absent  # 300 there, spread over the key range, 300 not
    counting_s3.take()
    found = s.objects(wanted)
    req = _count(counting_s3.take())
    assert found == {d: 64 for d in on_remote[::10]}
    if share == 8:  # 75 pages allowed: the whole listing (3 pages), no HEAD
        assert req == {"LIST": 3}
    else:  # 2 pages allowed (2,000 keys): the wanted digests past them get a HEAD each
        past = [d for d in wanted if d > on_remote[1999]]
        assert req == {"LIST": 2, "HEAD": len(past)}
