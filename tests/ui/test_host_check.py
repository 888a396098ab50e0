"""The web view answers only its own Host and Origin (DNS rebinding; issue 15, item 10).

A real server (uvicorn, in a thread, over `create_app` with the policy `serve()` builds) on
127.0.0.1 or 0.0.0.0, and raw requests through http.client with forged Host and Origin
headers. Then the real CLI in a subprocess, for the options' wiring and the startup line,
and `serve()` itself, checked by default.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput
from modelreg.ui.app import bind, create_app
from modelreg.ui.hosts import HostPolicy, split_host
from modelreg.ui.views import LocalView
from tests.conftest import snapshot
from tests.ui.conftest import stop

MODEL = "tiny"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hosts")
    store = Store.init(work)
    art = work / "model.bin"
    art.write_bytes(b"weights")
    store.register(MODEL, [art], version="1.0.0", detect_code=False, author="a <a@b.c>")
    return work


class Served:
    """A running server: its port, and the lines it logged."""

    def __init__(self, port: int, log: list[str]) -> None:
        self.port = port
        self.log = log


@pytest.fixture(scope="module")
def serve_in_thread(store_dir: Path) -> Iterator[Callable[..., Served]]:
    """Start a real uvicorn server over the app, with the policy of its bound socket."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(host: str = "127.0.0.1", **policy: Any) -> Served:
        sock = bind(host, 0)
        log: list[str] = []
        app = create_app(
            LocalView(Store.open(store_dir)), log.append, HostPolicy.for_socket(sock, **policy)
        )
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        servers.append((server, thread))
        return Served(sock.getsockname()[1], log)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def loopback(serve_in_thread: Callable[..., Served]) -> Served:
    return serve_in_thread("127.0.0.1")


def request(
    port: int,
    host: str | None,
    *,
    origin: str | None = None,
    method: str = "GET",
    path: str = "/",
    http10: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:`port` with exactly these headers (host None: no Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if http10:
        conn._http_vsn = 10  # type: ignore[attr-defined]
        conn._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host is not None:
        conn.putheader("Host", host)
    if origin is not None:
        conn.putheader("Origin", origin)
    for k, v in extra:
        conn.putheader(k, v)
    body = b"x=1" if method == "POST" else None
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def assert_refused(got: tuple[int, bytes], status: int, *words: str) -> str:
    """A refusal: `status`, a body of exactly one line (no page, no traceback)."""
    code, body = got
    assert code == status, (code, body[:300])
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert text.startswith(f"{status} refused: "), text
    assert "Traceback" not in text
    for w in words:
        assert w in text, (w, text)
    return text


def assert_page(got: tuple[int, bytes]) -> None:
    code, body = got
    assert code == 200, (code, body[:300])
    assert body.startswith(b"<!doctype html>") and MODEL.encode() in body


# -- Host, bound to 127.0.0.1 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example", "evil.example:{port}", "EVIL.example:{port}",
        "localhost.evil.example:{port}", "127.0.0.1.evil.example:{port}",
        "127.0.0.1.nip.io:{port}", "localhost.:{port}", "0.0.0.0:{port}", "10.0.0.1:{port}",
        "[::2]:{port}", "[::ffff:7f00:2]:{port}", "evil.example@localhost:{port}",
        "localhost:{port}@evil.example", "", " ", "localhost:{port}:{port}", "::1",
        "[::1", "local host:{port}", "localhost/x:{port}", "\u00e9vil.example",
    ],
)  # fmt: skip
def test_a_foreign_host_is_421(loopback, host):
    text = assert_refused(request(loopback.port, host.format(port=loopback.port)), 421, "Host")
    assert "is not an address this server answers" in text


@pytest.mark.parametrize(
    "host",
    [
        "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LocalHost:{port}",
        "localhost", "127.0.0.1", "[::1]", "[0:0:0:0:0:0:0:1]:{port}",
    ],
)  # fmt: skip
def test_loopback_names_with_the_bound_port_are_answered(loopback, host):
    assert_page(request(loopback.port, host.format(port=loopback.port)))
    assert_page(request(loopback.port, host.format(port=loopback.port), http10=True))


@pytest.mark.parametrize(
    "host", ["localhost:1", "127.0.0.1:{other}", "[::1]:80", "localhost:0", "localhost:99999",
             "localhost:abc", "localhost:", "127.0.0.1:+{port}", "localhost:0{port}1"],
)  # fmt: skip
def test_a_wrong_port_is_421(loopback, host):
    other = loopback.port + 1 if loopback.port < 65535 else 1
    assert_refused(request(loopback.port, host.format(port=loopback.port, other=other)), 421)


def test_no_host_or_two_hosts_is_refused(loopback):
    assert_refused(request(loopback.port, None, http10=True), 421, "no Host header")
    assert_refused(request(loopback.port, None, http10=True, path="/audit"), 421)
    # HTTP/1.1 with no Host: refused by the HTTP parser itself (h11: 400), before the app.
    code, body = request(loopback.port, None)
    assert code in (400, 421) and body.count(b"\n") <= 1, (code, body)
    two = (("Host", "evil.example"),)
    code, body = request(loopback.port, f"localhost:{loopback.port}", extra=two)
    assert code in (400, 421) and body.count(b"\n") <= 1, (code, body)


# -- Origin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example", "http://evil.example:{port}", "https://localhost:{port}",
        "null", "http://localhost:1", "http://localhost:{port}/", "file://",
        "http://localhost.evil.example:{port}", "ws://localhost:{port}", "localhost:{port}",
        "http://", "",
    ],
)  # fmt: skip
def test_a_foreign_origin_is_403(loopback, origin):
    got = request(loopback.port, f"localhost:{loopback.port}",
                  origin=origin.format(port=loopback.port))  # fmt: skip
    assert_refused(got, 403, "Origin", "cross-site requests are refused")


@pytest.mark.parametrize(
    "origin", ["http://localhost:{port}", "http://127.0.0.1:{port}", "http://[::1]:{port}",
               "HTTP://LOCALHOST:{port}"],
)  # fmt: skip
def test_a_matching_origin_is_answered(loopback, origin):
    o = origin.format(port=loopback.port)
    assert_page(request(loopback.port, f"127.0.0.1:{loopback.port}", origin=o))
    # what the live release page fetches (a browser may send Origin with it)
    code, body = request(loopback.port, f"127.0.0.1:{loopback.port}", origin=o,
                         path=f"/models/{MODEL}/-/release/state")  # fmt: skip
    assert code == 200 and b'"state":"none"' in body


def test_no_request_with_a_foreign_origin_or_host_reaches_a_route(loopback, store_dir):
    """No route writes (only GET and HEAD are routed); a cross-site POST stops even earlier."""
    before = snapshot(store_dir / ".modelreg")
    ours = f"localhost:{loopback.port}"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", f"/models/{MODEL}", "/audit"):
            got = request(loopback.port, ours, origin="http://evil.example", method=method,
                          path=path)  # fmt: skip
            assert_refused(got, 403)
            assert_refused(request(loopback.port, "evil.example", method=method, path=path), 421)
            code, _ = request(loopback.port, ours, origin=f"http://{ours}", method=method,
                              path=path)  # fmt: skip
            assert code == 405, (method, path)
    assert snapshot(store_dir / ".modelreg") == before


def test_each_refusal_is_logged_once(serve_in_thread):
    s = serve_in_thread("127.0.0.1")
    assert_refused(request(s.port, "evil.example:1234", path="/audit"), 421)
    assert_refused(request(s.port, f"localhost:{s.port}", origin="http://evil.example"), 403)
    assert_refused(request(s.port, None, http10=True, path="/models/x"), 421)
    assert_page(request(s.port, f"localhost:{s.port}"))
    assert s.log == [
        "GET /audit: 421 refused: Host 'evil.example:1234' is not an address this server "
        f"answers (Host 127.0.0.1, [::1], localhost, with no port or :{s.port}); "
        "mreg ui --allowed-host NAME accepts another name",
        "GET /: 403 refused: Origin 'http://evil.example' is not this server: cross-site "
        "requests are refused",
        "GET /models/x: 421 refused: the request has no Host header",
    ]


def test_a_long_hostile_host_is_cut_in_the_reply(loopback):
    text = assert_refused(request(loopback.port, "a" * 5000 + ".example"), 421)
    assert len(text) < 600


# -- the opt-out, a wildcard bind, an explicit address ---------------------------------------


def test_allow_any_host_answers_anything(serve_in_thread):
    s = serve_in_thread("127.0.0.1", allow_any_host=True)
    for host in ("evil.example", f"evil.example:{s.port}", "localhost:1"):
        assert_page(request(s.port, host))
    assert_page(request(s.port, "evil.example", origin="http://evil.example"))
    assert_page(request(s.port, None, http10=True))
    assert s.log == []


def test_a_wildcard_bind_answers_the_names_it_was_given(serve_in_thread):
    s = serve_in_thread("0.0.0.0", allowed_hosts=["reg.example", "proxy.example:8443"])
    hostname = socket.gethostname()
    for host in ("reg.example", f"reg.example:{s.port}", "REG.example", "proxy.example:8443",
                 hostname, f"{hostname}:{s.port}", f"localhost:{s.port}", f"[::1]:{s.port}",
                 f"127.0.0.1:{s.port}"):  # fmt: skip
        assert_page(request(s.port, host))
    assert_page(request(s.port, "reg.example", origin=f"http://reg.example:{s.port}"))
    for host in ("evil.example", f"evil.example:{s.port}", "reg.example:1",
                 "proxy.example", f"proxy.example:{s.port}", "sub.reg.example",
                 f"10.1.2.3:{s.port}", f"0.0.0.0:{s.port}"):  # fmt: skip
        assert_refused(request(s.port, host), 421)
    assert_refused(request(s.port, "reg.example", origin="http://evil.example"), 403)


def test_an_explicit_address_answers_that_address_only():
    policy = HostPolicy.for_address("192.0.2.10", 8765)
    for host in ("192.0.2.10:8765", "192.0.2.10"):
        assert policy.accepts(host)
    for host in ("192.0.2.10:1", "localhost:8765", "127.0.0.1:8765", "evil.example:8765"):
        assert not policy.accepts(host)
    # a name given to --host is what the browser sends
    named = HostPolicy.for_address("192.0.2.10", 8765, bound_name="reg.lan")
    assert named.accepts("reg.lan:8765") and not named.accepts("evil.example")
    v6 = HostPolicy.for_address("2001:db8::5", 80)
    assert v6.accepts("[2001:db8::5]") and v6.accepts("[2001:DB8:0::5]:80")
    assert not v6.accepts("2001:db8::5") and not v6.accepts("[::1]")
    # a wildcard takes the IP literal a request arrived on, never a name it resolves to
    wild = HostPolicy.for_address("::", 8765)
    assert wild.accepts("192.0.2.7:8765", local="::ffff:192.0.2.7")
    assert not wild.accepts("192.0.2.8:8765", local="::ffff:192.0.2.7")
    assert not wild.accepts("evil.example:8765", local="::ffff:192.0.2.7")


def test_allowed_host_must_be_a_host():
    for bad in ("http://reg.example", "reg.example/x", "reg example", "reg.example:port",
                "[::1", "", "*"):  # fmt: skip
        with pytest.raises(InvalidInput, match="--allowed-host"):
            HostPolicy.for_address("0.0.0.0", 8765, [bad])
    assert split_host("Reg.Example:8443") == ("reg.example", 8443)
    assert split_host("[::1]") == ("[::1]", None)


# -- the CLI and serve() ---------------------------------------------------------------------


def launch(*args: str, cwd: Path) -> tuple[int, list[str], subprocess.Popen[str]]:
    """`python -m modelreg ui --port 0 ARGS`: its port and its three startup lines."""
    env = {**os.environ, "HOME": str(cwd), "MREG_CACHE_DIR": str(cwd / "cache")}
    env.pop("MREG_STORE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "ui", "--port", "0", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    if "http://" not in lines[0]:
        proc.kill()
        raise AssertionError(f"mreg ui did not start: {lines} {proc.communicate()}")
    port = int(lines[0].rsplit(":", 1)[1].strip().rstrip("/"))
    return port, [line.rstrip("\n") for line in lines], proc


def stderr_of(proc: subprocess.Popen[str]) -> list[str]:
    stop(proc)
    assert proc.stderr is not None
    return [line for line in proc.stderr.read().splitlines() if line != "mreg: interrupted"]


def test_the_cli_checks_host_and_origin_by_default(store_dir, tmp_path):
    port, lines, proc = launch("--store", str(store_dir), cwd=tmp_path)
    try:
        assert "this machine only" in lines[1]
        assert lines[2] == (f"mreg ui: answering only Host 127.0.0.1, [::1], localhost, with no "
                            f"port or :{port} (others: 421)")  # fmt: skip
        assert_refused(request(port, "evil.example"), 421)
        assert_refused(request(port, f"localhost:{port + 1 if port < 65535 else 1}"), 421)
        assert_refused(request(port, f"localhost:{port}", origin="http://evil.example"), 403)
        assert_page(request(port, f"localhost:{port}"))
        assert_page(request(port, f"127.0.0.1:{port}", origin=f"http://127.0.0.1:{port}"))
    finally:
        err = stderr_of(proc)
    assert len(err) == 3 and all(line.startswith("mreg ui: GET /: 4") for line in err), err


def test_the_cli_allow_any_host(store_dir, tmp_path):
    port, lines, proc = launch("--store", str(store_dir), "--allow-any-host", cwd=tmp_path)
    try:
        assert "--allow-any-host" in lines[2] and "any web page" in lines[2]
        assert_page(request(port, "evil.example"))
        assert_page(request(port, "evil.example", origin="http://evil.example"))
    finally:
        assert stderr_of(proc) == []


def test_the_cli_wildcard_with_allowed_host(store_dir, tmp_path):
    port, lines, proc = launch("--store", str(store_dir), "--host", "0.0.0.0",
                               "--allowed-host", "reg.example", "--allowed-host",
                               "other.example:8080", cwd=tmp_path)  # fmt: skip
    try:
        assert "every client that can reach 0.0.0.0" in lines[1]
        for name in ("reg.example", "other.example:8080", "localhost", socket.gethostname()):
            assert name in lines[2], lines[2]
        assert "or the IP address a request arrived on" in lines[2]
        assert_page(request(port, f"reg.example:{port}"))
        assert_page(request(port, "other.example:8080"))
        assert_page(request(port, f"localhost:{port}"))
        assert_refused(request(port, f"evil.example:{port}"), 421)
        assert_refused(request(port, "other.example"), 421)
    finally:
        stderr_of(proc)


def test_the_cli_refuses_bad_host_options(run_mreg, store_dir):
    from tests.cli.helpers import assert_one_line_error

    store = ("--store", str(store_dir), "--port", "0")
    line = assert_one_line_error(run_mreg("ui", *store, "--allowed-host", "http://x.example"), 2)
    assert "--allowed-host 'http://x.example' is not a host name" in line
    both = run_mreg("ui", *store, "--allowed-host", "x.example", "--allow-any-host")
    assert "contradict" in assert_one_line_error(both, 2)


def test_serve_checks_by_default(store_dir, tmp_path):
    """The library's `serve()`, with no option, answers its own Host only."""
    code = (
        "import sys\n"
        "from modelreg import Store\n"
        "from modelreg.ui.app import bind, serve\n"
        "from modelreg.ui.views import LocalView\n"
        "sock = bind('127.0.0.1', 0)\n"
        "def ready():\n"
        "    print(sock.getsockname()[1], flush=True)\n"
        f"serve(LocalView(Store.open({str(store_dir)!r})), sock, ready)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert_refused(request(port, "evil.example"), 421)
        assert_refused(request(port, f"localhost:{port}", origin="http://evil.example"), 403)
        assert_page(request(port, f"localhost:{port}"))
    finally:
        stop(proc)
