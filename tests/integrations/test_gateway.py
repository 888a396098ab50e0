"""The nginx-njs API gateway, for real: nginx with njs, two model servers, mreg's own Router.

Every test starts nginx on 127.0.0.1 with the directory `mreg release export --format
nginx-njs` wrote, and checks the gateway's side of each request against `Router.route()`
for the same user, attributes, weight and rules (issue 17).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.release import ops
from modelreg.serving import Router
from tests.integrations.nginx import (
    AVAILABLE,
    WHY_MISSING,
    Client,
    Nginx,
    address,
    model_servers,
)
from tests.release.util import make_model
from tests.tools import free_port

pytestmark = pytest.mark.skipif(not AVAILABLE, reason=WHY_MISSING)

ROOT = Path(__file__).resolve().parents[2]
RULES = [
    "testers: user_id in qa-1,qa-2,qa-3 -> canary",
    "region=eu and device in ios,android -> 50%",
    "app_version^=2. -> baseline",
    "beta: user_id^=beta- -> canary",
    "region=cn-north -> 10%",
]
REGIONS = (None, "eu", "us", "cn-north", "")
DEVICES = (None, "ios", "android", "web")
APPS = (None, "2.1.0", "1.9", "2.")


def mreg(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real CLI, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "modelreg", *args], capture_output=True, text=True, check=check,
        cwd=ROOT,
    )  # fmt: skip


class Gateway:
    """A store with model `m`, its exported gateway directory, nginx and two model servers."""

    def __init__(self, store: Store, tmp: Path, servers: dict[str, Any]) -> None:
        self.store, self.servers = store, servers
        self.dir = tmp / "gateway"
        self.port = free_port()
        self.nginx = Nginx(tmp / "nginx", self.dir)
        self.args = [
            "release", "export", "m", "-f", "nginx-njs", "-o", str(self.dir),
            "--listen", f"127.0.0.1:{self.port}", "--store", str(store.root),
        ]  # fmt: skip
        for version, server in servers.items():
            self.args += ["--upstream", f"{version}={address(server)}"]

    def export(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return mreg(*self.args, *extra)

    def client(self) -> Client:
        return Client(self.port)


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Iterator[Gateway]:
    make_model(store, tmp_path)
    with model_servers(("1.0.0", "1.1.0", "1.2.0")) as servers:
        gw = Gateway(store, tmp_path, servers)
        yield gw
        gw.nginx.stop()


def headers_of(uid: str | None, attrs: dict[str, str]) -> dict[str, str]:
    h = {f"x-{k.replace('_', '-')}": v for k, v in attrs.items()}
    if uid is not None:
        h["x-user-id"] = uid
    return h


def requests_grid(n: int, seed: int = 7) -> list[tuple[str | None, dict[str, str]]]:
    rng = random.Random(seed)
    out: list[tuple[str | None, dict[str, str]]] = []
    for i in range(n):
        uid = rng.choice([f"u-{i}", f"qa-{i % 5}", f"beta-{i}", f"ü-{i}-日本"])
        attrs = {}
        for key, values in (("region", REGIONS), ("device", DEVICES), ("app_version", APPS)):
            v = rng.choice(values)
            if v is not None:
                attrs[key] = v
        out.append((uid, attrs))
    return out


def check_agreement(gw: Gateway, n: int, key: str | None = None) -> dict[str, int]:
    """Send `n` requests through the gateway; each must land where Router.route() says.

    With `key` (a stickiness attribute other than the user ID), requests without it are
    split at random by both, so they are only checked for landing on a side's server.
    """
    router = Router.open("m", store=gw.store.root, materialize=False, check_interval_ms=60_000)
    client = gw.client()
    wrong: list[str] = []
    sides = {"canary": 0, "baseline": 0}
    try:
        for uid, attrs in requests_grid(n):
            want = router.route(user_id=uid, attributes=attrs)
            code, h, body = client.get("/predict", headers_of(uid, attrs))
            got = (h.get("x-mreg-variant"), h.get("x-mreg-version"), body and body["server"])
            expected = (want.variant, want.version, want.version)
            if key is not None and key not in attrs and want.reason == "weight":
                expected = got if got[1] == got[2] and got[1] in ("1.0.0", "1.1.0") else expected
            if code != 200 or got != expected or body["variant"] != expected[0]:
                wrong.append(f"{uid} {attrs}: router {expected}, gateway {code} {got} {body}")
            sides[want.variant] += 1
    finally:
        client.close()
        router.close()
    assert not wrong, f"{len(wrong)} of {n} differ, e.g.\n" + "\n".join(wrong[:5])
    return sides


def test_every_request_lands_where_the_router_routes_it(gateway: Gateway) -> None:
    ops.start(gateway.store, "m", "1.1.0", weight=30, rules=RULES)
    gateway.export()
    gateway.nginx.start(gateway.port)
    sides = check_agreement(gateway, 2500)
    assert sides["canary"] > 300 and sides["baseline"] > 800  # both sides are exercised
    status = gateway.client().status()
    assert status["table"] == "routing" and status["generation"] == 1


def test_stickiness_by_another_attribute_and_a_decimal_weight(gateway: Gateway) -> None:
    ops.start(gateway.store, "m", "1.1.0", weight="12.34", stick_by="device", rules=RULES[:2])
    gateway.export()
    gateway.nginx.start(gateway.port)
    check_agreement(gateway, 600, key="device")


def test_ended_releases_and_production(gateway: Gateway) -> None:
    """Promoted, aborted, production moved: one version answers, reported as the router does."""
    st = gateway.store
    ops.start(st, "m", "1.1.0", weight=50)
    ops.promote(st, "m")
    gateway.export()
    gateway.nginx.start(gateway.port)
    check_agreement(gateway, 100)
    st.promote("m@1.2.0", "production")
    gateway.export()
    assert gateway.nginx.reload() == 0
    time.sleep(0.5)
    check_agreement(gateway, 100)


def test_shadow_mode_mirrors_to_the_canary(gateway: Gateway) -> None:
    ops.start(gateway.store, "m", "1.1.0", shadow=True)
    gateway.export()
    gateway.nginx.start(gateway.port)
    client = gateway.client()
    for i in range(20):
        code, h, body = client.get(f"/predict?i={i}", {"x-user-id": f"u-{i}"})
        assert (code, h["x-mreg-variant"], body["server"]) == (200, "baseline", "1.0.0")
    deadline = time.monotonic() + 5
    canary = gateway.servers["1.1.0"]
    while len(canary.seen) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(canary.seen) == sorted(("shadow", f"/predict?i={i}") for i in range(20))


def test_a_release_without_an_upstream_for_its_canary_exports_nothing(
    store: Store, tmp_path: Path
) -> None:
    make_model(store, tmp_path)
    ops.start(store, "m", "1.1.0", weight=10)
    out = tmp_path / "gw"
    r = mreg("release", "export", "m", "-f", "nginx-njs", "-o", str(out), "--upstream",
             "1.0.0=127.0.0.1:9", "--store", str(store.root), check=False)  # fmt: skip
    assert r.returncode == 2 and "no upstream for m@1.1.0" in r.stderr
    assert not out.exists()
    r = mreg("release", "export", "m", "-f", "nginx-njs", "-o", str(out), "--upstream",
             "1.0.0=127.0.0.1:9; evil", "--upstream", "1.1.0=h:1", "--store", str(store.root),
             check=False)  # fmt: skip
    assert r.returncode == 2 and "invalid --upstream" in r.stderr
    r = mreg("release", "export", "m", "-f", "nginx-njs", "--upstream", "*=h:1", "--store",
             str(store.root), check=False)  # fmt: skip
    assert r.returncode == 2 and "give --output DIR" in r.stderr


def test_garbage_in_the_table_keeps_the_last_good_one(gateway: Gateway) -> None:
    ops.start(gateway.store, "m", "1.1.0", weight=40, rules=RULES)
    gateway.export()
    gateway.nginx.start(gateway.port)
    table = gateway.dir / "routing.json"
    good = table.read_bytes()
    # bytes that are not JSON: nginx refuses the new configuration, the workers keep theirs
    for garbage in (b"\x00\xff garbage {", good[: len(good) // 2], b""):
        table.write_bytes(garbage)
        assert gateway.nginx.reload() != 0
        check_agreement(gateway, 150)
    # JSON that is not a routing table (or one naming an unknown upstream): the fallback table
    bad_tables: list[Any] = [
        [1, 2], {"mreg": 1}, None,
        {**json.loads(good), "seed": "xyz"},
        {**json.loads(good), "threshold": "30%"},
        {**json.loads(good), "canary": {"version": "6.6.6", "upstream": "evil.example:80"}},
        {**json.loads(good), "rules": [{"label": "1", "pin": "canary"}]},
    ]  # fmt: skip
    for bad in bad_tables:
        table.write_text(json.dumps(bad))
        assert gateway.nginx.reload() == 0
        deadline = time.monotonic() + 5
        while gateway.client().status()["table"] != "fallback":
            assert time.monotonic() < deadline, f"the gateway never fell back for {bad}"
            time.sleep(0.05)
        check_agreement(gateway, 150)
    # both tables damaged: the stable version the configuration was written for answers
    (gateway.dir / "fallback.json").write_text("{}")
    assert gateway.nginx.reload() == 0
    time.sleep(0.5)
    client = gateway.client()
    assert client.status()["table"] == "default"
    code, h, body = client.get("/predict", {"x-user-id": "qa-1"})
    assert (code, h["x-mreg-variant"], body["server"]) == (200, "baseline", "1.0.0")
    # the next export repairs both files
    gateway.export()
    assert gateway.nginx.reload() == 0
    time.sleep(0.5)
    assert gateway.client().status()["table"] == "routing"
    check_agreement(gateway, 150)


class Load:
    """Requests on fresh connections in a thread, counting failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/predict", headers={"x-user-id": f"u-{i}"}
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200
                    self.ok += 1
            except Exception as exc:  # every failure counts
                self.failed.append(repr(exc))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_watch_exec_reaches_the_gateway_within_two_seconds_without_dropping_requests(
    gateway: Gateway,
) -> None:
    st = gateway.store
    ops.start(st, "m", "1.1.0", weight=5, steps="5,25,50", rules=RULES[:1])
    gateway.export()
    gateway.nginx.start(gateway.port)
    reload = " ".join(gateway.nginx.command("-s", "reload"))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "modelreg", *gateway.args, "--watch", "--interval", "200ms",
         "--exec", reload, "--max-duration", "60s"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = gateway.client()
    try:
        with Load(gateway.port) as load:
            time.sleep(0.5)
            for change in (
                lambda: ops.step(st, "m"),
                lambda: ops.update(st, "m", rules=RULES),
                lambda: ops.pause(st, "m"),
                lambda: ops.resume(st, "m"),
                lambda: ops.abort(st, "m", reason="test"),
            ):
                change()
                want = ops.read_rollout(st, "m")
                assert want is not None
                t0 = time.monotonic()
                while client.status()["generation"] != want.generation:
                    assert time.monotonic() - t0 < 2.0, f"generation {want.generation} late"
                    time.sleep(0.02)
                check_agreement(gateway, 100)
        assert load.ok > 50 and not load.failed, load.failed[:3]
        # the abort reached the gateway: everyone is on the baseline
        for i in range(50):
            _, h, body = client.get("/predict", {"x-user-id": f"qa-{i % 3 + 1}"})
            assert (h["x-mreg-variant"], body["server"]) == ("baseline", "1.0.0")
    finally:
        watcher.terminate()
        watcher.wait(10)
        client.close()


def test_a_failing_exec_is_reported_and_retried(store: Store, tmp_path: Path) -> None:
    make_model(store, tmp_path)
    ops.start(store, "m", "1.1.0", weight=10)
    marker = tmp_path / "calls"
    cmd = f"echo x >> {marker}; test $(wc -l < {marker}) -ge 3"  # fails twice, then works
    r = mreg("release", "export", "m", "-f", "istio", "-o", str(tmp_path / "vs.yaml"), "--watch",
             "--interval", "100ms", "--exec", cmd, "--max-duration", "1s", "--store",
             str(store.root))  # fmt: skip
    assert r.stderr.count("apply failed (retrying)") == 2
    assert marker.read_text().count("x") == 3
