"""`mreg ui --remote` and `mreg report --remote` (issue 13): names, options, checks, failures.

A configured remote's name resolves with its options (as `mreg push NAME` uses it), a URL
takes `--option`, and a remote that cannot be read, or holds no mreg store, is one error
line before anything is served. A remote that fails mid-session gives a 502 page and one
log line, never a traceback. Remotes are moto's S3 server on 127.0.0.1 and file:// paths.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import IntegrityError, NotFound
from modelreg.remote import Remote
from modelreg.remote.backend import RemoteError
from modelreg.ui.app import create_app
from modelreg.ui.views import RemoteView, open_remote
from tests.cli.helpers import assert_one_line_error, ok
from tests.remote.conftest import AWS_ENV, Target
from tests.ui.conftest import start_server, stop

MODEL = "fraud"
WEIGHTS = {"1.0.0": b"weights one", "1.1.0": b"weights two"}


def _pushed(project: Path, url: str, options: dict[str, Any]) -> Store:
    """A store with two versions of MODEL (1.0.0 in production), pushed to remote origin."""
    store = Store.init(project)
    for version, data in WEIGHTS.items():
        src = project.parent / f"src-{version}"
        src.mkdir()
        (src / "model.bin").write_bytes(data)
        store.register(MODEL, [src], version=version, detect_code=False)
    store.promote(f"{MODEL}@1.0.0", "production")
    store.remotes.add("origin", url, options)
    store.push("origin")
    return store


def _s3_target(endpoint: str) -> Target:
    bucket = f"ui-{uuid.uuid4().hex[:12]}"
    target = Target("s3", f"s3://{bucket}/reg", {"endpoint_url": endpoint})
    target.backend().fs.mkdir(bucket)
    return target


@pytest.fixture(params=["file", "s3"])
def remote_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "file":
        return Target("file", str(tmp_path / "remote"))
    return _s3_target(request.getfixturevalue("s3_endpoint"))


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _location(url: str) -> tuple[int, str | None]:
    """GET without following a redirect: (status, Location)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", u.path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, resp.getheader("Location")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_configured_name_serves_the_pushed_models(remote_target, tmp_path):
    project = tmp_path / "project"
    _pushed(project, remote_target.url, remote_target.options)
    url, proc = start_server("--remote", "origin", cwd=project, home=tmp_path / "home")
    try:
        status, home = _get(url)
        assert status == 200 and MODEL in home and "production → 1.0.0" in home
        assert "origin (" in home  # the header names the remote
        status, card = _get(f"{url}models/{MODEL}/-/versions/1.1.0")
        assert status == 200 and f"{MODEL}@1.1.0" in card
        assert _location(f"{url}models/{MODEL}/-/at/production") == (
            307, f"/models/{MODEL}/-/versions/1.0.0",
        )  # fmt: skip
        file_url = f"{url}models/{MODEL}/-/at/production/files/model.bin"
        with urllib.request.urlopen(file_url, timeout=60) as resp:
            assert resp.read() == WEIGHTS["1.0.0"]
    finally:
        stop(proc)


def test_a_url_takes_driver_options(s3_endpoint, tmp_path, run_mreg):
    target = _s3_target(s3_endpoint)
    _pushed(tmp_path / "project", target.url, target.options)
    elsewhere = tmp_path / "elsewhere"  # no store here: the URL needs none
    elsewhere.mkdir()
    option = f"endpoint_url={s3_endpoint}"
    url, proc = start_server("--remote", target.url, "--option", option, cwd=elsewhere,
                             home=tmp_path / "home")  # fmt: skip
    try:
        status, home = _get(url)
        assert status == 200 and MODEL in home
    finally:
        stop(proc)
    out = tmp_path / "report.html"
    res = ok(run_mreg("report", f"{MODEL}@production", "--html", str(out), "--remote",
                      target.url, "-o", option, "--json", cwd=elsewhere))  # fmt: skip
    assert res.json()["version"] == "1.0.0" and out.is_file()


def test_unknown_name_or_bad_url_exits_2_before_serving(tmp_path, run_mreg):
    project = tmp_path / "project"
    _pushed(project, str(tmp_path / "remote"), {})
    cases = [
        ("ui", "--port", "0", "--remote", "nope"),  # no remote has that name
        ("ui", "--port", "0", "--remote", "origin", "--store", str(tmp_path / "none")),
        ("ui", "--port", "0", "--remote", "nosuch://bucket/x"),  # no driver
        ("ui", "--port", "0", "--remote", str(tmp_path / "empty")),  # nothing there
        ("ui", "--port", "0", "--remote", "origin", "-o", "secret=x"),  # never secrets
        ("ui", "--port", "0", "--remote", "origin", "-o", "novalue"),
        ("ui", "--port", "0", "-o", "endpoint_url=http://127.0.0.1:1"),  # no --remote
        ("report", MODEL, "--html", str(tmp_path / "r.html"), "--remote", "nope"),
    ]
    for args in cases:
        res = run_mreg(*args, cwd=project)
        assert_one_line_error(res, 2)
        assert "serving" not in res.stdout, args
    line = assert_one_line_error(run_mreg("ui", "--remote", "origin", cwd=tmp_path), 2)
    assert "'origin'" in line  # outside the project, no store configures it
    assert not (tmp_path / "r.html").exists()


def test_unreachable_or_foreign_remote_exits_1_before_serving(tmp_path, run_mreg):
    project = tmp_path / "project"
    store = Store.init(project)
    dead = f"http://127.0.0.1:{_closed_port()}"
    store.remotes.add("dead", "s3://bucket/reg", {"endpoint_url": dead})
    foreign = tmp_path / "foreign"  # files, but no mreg store
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a registry")
    env = dict(AWS_ENV)
    once = ("-o", "config_kwargs.retries.max_attempts=1")  # no retries: a faster failure
    cases = [
        ("ui", "--port", "0", "--remote", "dead"),  # the driver's default retries
        ("ui", "--port", "0", "--remote", "s3://bucket/reg", "-o", f"endpoint_url={dead}", *once),
        ("ui", "--port", "0", "--remote", str(foreign)),
        ("report", "m", "--html", str(tmp_path / "r.html"), "--remote", "dead", *once),
    ]
    for args in cases:
        res = run_mreg(*args, cwd=project, env=env)
        line = assert_one_line_error(res, 1)
        assert "serving" not in res.stdout, args
        if "dead" in args:
            assert line.startswith("mreg: error: cannot read dead (s3://bucket/reg): "), line


def test_a_remote_that_dies_mid_session_gets_an_error_page(tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stopped = False
    try:
        host, port = server.get_host_and_port()
        target = _s3_target(f"http://{host}:{port}")
        # One attempt per request (botocore's option), so that the test does not wait for
        # the driver's retries (~5-10 s a page by default) before each 502.
        target.options["config_kwargs.retries.max_attempts"] = 1
        project = tmp_path / "project"
        _pushed(project, target.url, target.options)
        url, proc = start_server("--remote", "origin", cwd=project, home=tmp_path / "home")
        try:
            assert _get(url)[0] == 200
            server.stop()
            stopped = True
            failing = ["", f"models/{MODEL}/-/versions/1.0.0", f"models/{MODEL}/-/at/production"]
            for path in failing:
                status, body = _get(url + path)
                assert status == 502, (path, body)
                assert "502 — remote unavailable" in body and "cannot read origin" in body
                assert "Traceback" not in body
        finally:
            stop(proc)
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line != "mreg: interrupted"]  # Ctrl-C
        assert len(lines) == len(failing), err  # one line per failed request, nothing else
        for path, line in zip(failing, lines, strict=True):
            assert line.startswith(f"mreg ui: GET /{path}: 502 remote unavailable: "), line
    finally:
        if not stopped:
            server.stop()


# -- in process: the app's error pages --------------------------------------------------------


def _asgi_get(app: Any, path: str) -> tuple[int, str]:
    """One GET through the ASGI app, in process."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode()


class _Broken(RemoteView):
    """A view whose manifests fail as asked."""

    fail: BaseException | None = None

    def manifest(self, name: str, version: str) -> Any:
        if self.fail is not None:
            raise self.fail
        return super().manifest(name, version)


def test_failures_are_one_line_pages_and_one_log_line(tmp_path):
    remote_dir = tmp_path / "remote"
    _pushed(tmp_path / "project", str(remote_dir), {})
    view = _Broken(Remote(str(remote_dir), cache_dir=tmp_path / "cache"), "origin")
    view.check()
    log: list[str] = []
    app = create_app(view, log.append)
    card = f"/models/{MODEL}/-/versions/1.0.0"
    assert _asgi_get(app, card)[0] == 200
    # A file of the file:// remote replaced by a link (a loop here): never followed, so the
    # version is not there (issue 15; it was a 502 from ELOOP when links were followed).
    manifest = remote_dir / "models" / MODEL / "versions" / "1.1.0.yaml"
    data = manifest.read_bytes()
    manifest.unlink()
    manifest.symlink_to(manifest.name)
    status, body = _asgi_get(app, f"/models/{MODEL}/-/versions/1.1.0")
    assert status == 404, body
    manifest.unlink()
    manifest.write_bytes(data)
    for exc, code, title in (
        (RemoteError("remote origin: connection refused\nsecond line"), 502, "remote unavailable"),
        (IntegrityError("bad manifest\nsecond line"), 500, "damaged store"),
        (RuntimeError("boom\nsecond line"), 500, "internal error"),
    ):
        log.clear()
        view.fail = exc
        status, body = _asgi_get(app, card)
        assert status == code and f"{code} — {title}" in body, body
        assert "Traceback" not in body and "second line" in body  # joined on one line
        assert len(log) == 1 and "\n" not in log[0] and title in log[0], log


def test_open_remote_names_and_options(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _pushed(project, str(tmp_path / "remote"), {"mreg.jobs": 2})
    view = open_remote("origin", {"mreg.jobs": 3}, store=project, cache_dir=tmp_path / "c")
    assert view.label == f"origin ({(tmp_path / 'remote').as_uri()})"
    assert view.remote.spec.options == {"mreg.jobs": 3}  # --option overrides the configured one
    assert view.model_names() == [MODEL]
    # A bare word that no remote has but that is a local directory is that directory.
    (tmp_path / "copy").symlink_to(tmp_path / "remote")
    monkeypatch.chdir(tmp_path)
    assert open_remote("copy", cache_dir=tmp_path / "c").model_names() == [MODEL]
    with pytest.raises(NotFound):
        open_remote("nope", cache_dir=tmp_path / "c")
