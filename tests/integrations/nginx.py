"""A real nginx with its JavaScript module, and model servers behind it, on 127.0.0.1.

Used by tests/integrations/test_gateway.py and bench/gateway.py. `Nginx` writes a main
configuration that includes the directory `mreg release export --format nginx-njs` wrote,
starts nginx in the foreground (killed on `stop`) and reloads it as `--exec` would.
`ModelServers` answer every request with which server they are and the X-Mreg headers the
gateway sent, so a test sees both sides of the proxy.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
AVAILABLE = NGINX is not None and JS_MODULE.exists()
WHY_MISSING = "nginx and libnginx-mod-http-js are not installed (.ci/run installs them)"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # peer's delayed ACK hold the body back 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "server": self.server.version,
                "variant": self.headers.get("X-Mreg-Variant"),
                "version": self.headers.get("X-Mreg-Version"),
                "path": self.path,
            }
        ).encode()
        self.server.seen.append((self.headers.get("X-Mreg-Variant"), self.path))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, version: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version = version
        self.seen: list[tuple[str | None, str]] = []


@contextmanager
def model_servers(versions: tuple[str, ...]) -> Iterator[dict[str, _Server]]:
    """One HTTP server per version on 127.0.0.1, each in a thread."""
    servers = {v: _Server(v) for v in versions}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def address(server: _Server) -> str:
    """`127.0.0.1:PORT` of a model server."""
    return f"127.0.0.1:{server.server_address[1]}"


class Nginx:
    """nginx in the foreground, including the gateway directory `gateway`."""

    def __init__(self, prefix: Path, gateway: Path, *, extra: str = "") -> None:
        self.prefix = prefix
        self.conf = prefix / "nginx.conf"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {prefix}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            f"load_module {JS_MODULE};\n{user}daemon off;\nworker_processes 1;\n"
            f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log off;\n{temp}\n  include {gateway}/mreg.conf;\n{extra}}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        """The nginx command line for this configuration, e.g. `command("-s", "reload")`."""
        assert NGINX is not None
        return [NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args]

    def start(self, port: int) -> None:
        """Start nginx and wait until `port` accepts connections."""
        self.proc = subprocess.Popen(self.command(), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err}") from None
                time.sleep(0.05)

    def reload(self) -> int:
        """`nginx -s reload`; its exit code (1 when the new configuration is refused)."""
        return subprocess.run(self.command("-s", "reload"), capture_output=True).returncode

    def stop(self) -> None:
        """Stop nginx (quickly)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client:
    """A keep-alive HTTP client of the gateway."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path: str = "/predict", headers: Mapping[str, str] | None = None) -> Any:
        """(status, response headers, JSON body or None); reconnects once if the gateway
        closed an idle keep-alive connection (what a reload does)."""
        for attempt in (0, 1):
            try:
                # values as UTF-8 bytes: a user ID such as "ü-1" travels as its UTF-8
                sent = {k: v.encode("utf-8") for k, v in (headers or {}).items()}
                self.conn.request("GET", path, headers=sent)
                r = self.conn.getresponse()
                data = r.read()
                try:
                    body = json.loads(data)
                except ValueError:
                    body = None
                return r.status, {k.lower(): v for k, v in r.getheaders()}, body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def status(self) -> Any:
        """The gateway's /.mreg/status."""
        code, _, body = self.get("/.mreg/status")
        assert code == 200, code
        return body

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
