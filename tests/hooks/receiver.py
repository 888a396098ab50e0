"""A real webhook receiver on 127.0.0.1 for the tests: records every POST, checks signatures.

It runs `http.server` in a thread, answers `status` (200 by default) after `delay` seconds,
and can be stopped and started again on the same port (a receiver that is down, then up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> Any:
        return json.loads(self.body)

    @property
    def action(self) -> str:
        return str(self.headers["X-Mreg-Event"])

    @property
    def delivery(self) -> str:
        return str(self.headers["X-Mreg-Delivery"])


def verify(secret: bytes, r: Received, *, tolerance: float = 300) -> bool:
    """The receiver's check of docs/hooks.md: both signatures, and a recent timestamp."""
    github = "sha256=" + hmac.new(secret, r.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(github, r.headers.get("X-Mreg-Signature-256", "")):
        return False
    parts = dict(p.split("=", 1) for p in r.headers.get("X-Mreg-Signature", "").split(","))
    t = parts.get("t", "0")
    stamped = hmac.new(secret, t.encode() + b"." + r.body, hashlib.sha256).hexdigest()
    return (
        hmac.compare_digest(stamped, parts.get("v1", "")) and abs(time.time() - int(t)) < tolerance
    )


class Receiver:
    """An HTTP server recording POSTs; `status` and `delay` shape its answers."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.received.append(Received(self.path, dict(self.headers), data))
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def actions(self) -> list[str]:
        with self.lock:
            return [r.action for r in self.received]

    def entries(self) -> list[dict[str, Any]]:
        """The audit entries received, first copy of each delivery id, in arrival order."""
        seen: set[str] = set()
        out = []
        with self.lock:
            for r in self.received:
                if r.delivery not in seen:
                    seen.add(r.delivery)
                    out.append(r.doc["entry"])
        return out
