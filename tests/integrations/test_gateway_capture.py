"""Capture on the gateway path (issue 21): nginx splits, the model servers capture.

A real nginx with the exported nginx-njs gateway sends each request to one of two model
servers (HTTP servers on 127.0.0.1). Each model server opens a `Router` on the store, turns
the gateway's headers into its decision (`gateway_decision`) and captures the request's
features there. `mreg data export` then holds, per version, exactly the requests the
gateway sent to that version.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput
from modelreg.release import ops
from modelreg.serving import Router, gateway_decision
from tests.integrations.nginx import NGINX, Client, Nginx
from tests.integrations.test_gateway import mreg
from tests.release.util import make_model
from tests.tools import free_port

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


class ModelServer(ThreadingHTTPServer):
    """A model server for one version: captures every request through its router."""

    daemon_threads = True

    def __init__(self, router: Router) -> None:
        self.router = router
        self.refused: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                try:
                    d = gateway_decision(server.router, self.headers)
                except InvalidInput as exc:
                    server.refused.append(str(exc))
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                rid = self.headers.get("x-request-id", "")
                ref = server.router.capture(
                    d, features={"age": int(self.headers.get("x-age", "0"))},
                    prediction=0.5, request_id=rid,
                )  # fmt: skip
                body = json.dumps({"version": d.version, "sampled": ref is not None}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Iterator[tuple[Store, Client, Router]]:
    make_model(store, tmp_path)
    ops.start(store, "m", "1.1.0", weight=40)
    router = Router.open("m", store=store.root, materialize=False, flush_interval_s=3600)
    router.sampler.configure(rate=1.0, size=1000, features=("age",))
    servers = {v: ModelServer(router) for v in ("1.0.0", "1.1.0")}
    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    port = free_port()
    args = ["release", "export", "m", "-f", "nginx-njs", "-o", str(tmp_path / "gw"),
            "--listen", f"127.0.0.1:{port}", "--store", str(store.root)]  # fmt: skip
    for version, s in servers.items():
        args += ["--upstream", f"{version}=127.0.0.1:{s.server_address[1]}"]
    assert mreg(*args).returncode == 0
    nginx = Nginx(tmp_path / "nginx", tmp_path / "gw")
    nginx.start(port)
    client = Client(port)
    try:
        yield store, client, router
    finally:
        client.close()
        nginx.stop()
        router.close()
        for s in servers.values():
            s.shutdown()
            s.server_close()


def test_model_servers_behind_nginx_capture_what_the_gateway_sent_them(gateway, tmp_path):
    store, client, router = gateway
    sent: dict[str, set[str]] = {"1.0.0": set(), "1.1.0": set()}
    for i in range(120):
        code, headers, body = client.get(
            "/predict", {"x-user-id": f"u-{i}", "x-request-id": f"r{i}", "x-age": str(20 + i)}
        )
        assert code == 200 and body["sampled"]
        assert body["version"] == headers["x-mreg-version"]
        sent[headers["x-mreg-version"]].add(f"r{i}")
    assert sent["1.0.0"] and sent["1.1.0"]  # the gateway split them
    router.sampler.flush()
    for version, rids in sent.items():
        out = tmp_path / f"{version}.jsonl"
        result = store.data_export(f"m@{version}", out=out)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert result.rows == len(rids)
        assert {r["request"] for r in rows} == rids
        want = {"canary" if version == "1.1.0" else "baseline"}
        assert {r["variant"] for r in rows} == want
        assert all(r["features"]["age"] == 20 + int(r["request"][1:]) for r in rows)


def test_a_request_without_the_gateways_headers_is_refused(gateway):
    _, _, router = gateway
    with pytest.raises(InvalidInput, match="not a request from the gateway"):
        gateway_decision(router, {"X-Mreg-Variant": "canary"})
    with pytest.raises(InvalidInput, match="does not serve"):
        gateway_decision(router, {"X-Mreg-Variant": "canary", "X-Mreg-Version": "9.9.9"})
    d = gateway_decision(router, {"X-MREG-VARIANT": "baseline", "x-mreg-version": "1.0.0"})
    assert (d.variant, d.version, d.reason) == ("baseline", "1.0.0", "gateway")
