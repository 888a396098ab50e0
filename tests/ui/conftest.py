"""Fixtures of the web-view tests: a demo store, a real `mreg ui` server, a real browser.

The browser is Debian's chromium (installed by .ci/run), driven by Playwright with no
browser download. CI installs it, so a missing browser fails these tests instead of
skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelreg.release import ops
from modelreg.ui.demo import run_release_demo
from tests.remote.conftest import s3_endpoint  # noqa: F401 (moto's S3 server, for --remote)

CHROMIUM = os.environ.get("MREG_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
XSS = "<script>alert(1)</script>"
XSS_MESSAGE = "<img src=x onerror=alert(2)>"
XSS_REASON = "<script>alert(3)</script>"
XSS_RULE = "region=<b>eu</b> -> baseline"
AUTHOR = "Eve <script>alert(4)</script> <eve@example.com>"


class Site:
    """A running `mreg ui` over a demo store."""

    def __init__(self, root: Path, url: str, proc: subprocess.Popen[str]) -> None:
        self.root = root
        self.url = url
        self.proc = proc


def build_store(workdir: Path) -> Path:
    """The demo store (a canary rolled back automatically), plus a hostile model and a live release."""
    demo = run_release_demo(workdir)
    store = demo.store
    art = workdir / "hostile.bin"
    art.write_bytes(b"hostile weights")
    for version in ("1.0.0", "1.1.0"):
        store.register(
            "xss-model", [art] if version == "1.0.0" else [art, workdir / "build/1.0.0/model.json"],
            version=version, params={"payload": XSS, "lr": 0.1}, message=XSS_MESSAGE,
            detect_code=False, author=AUTHOR, tags=["t"],
        )  # fmt: skip
    store.promote("xss-model@1.0.0", "production", actor=AUTHOR, reason=XSS_REASON)
    ops.start(store, "xss-model", "1.1.0", steps="5,25,50", rules=[XSS_RULE],
              reason=XSS_REASON, actor=AUTHOR)  # fmt: skip
    return workdir


def start_server(*args: str, cwd: Path, home: Path) -> tuple[str, subprocess.Popen[str]]:
    """Run `python -m modelreg ui ARGS --port 0`; return its URL (from its first line)."""
    env = {**os.environ, "HOME": str(home), "MREG_CACHE_DIR": str(home / "cache")}
    env.pop("MREG_STORE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "ui", "--port", "0", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if "http://" not in first:
        proc.kill()
        raise AssertionError(
            f"mreg ui did not start: {first}{proc.stderr.read() if proc.stderr else ''}"
        )
    second = proc.stdout.readline()
    assert "127.0.0.1" in second and "this machine only" in second, second
    return first.split("at ", 1)[1].strip(), proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("ui")
    (base / "home").mkdir()
    build_store(base / "work")
    url, proc = start_server("--store", str(base / "work"), cwd=base, home=base / "home")
    try:
        yield Site(base / "work" / ".modelreg", url, proc)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh page that records every dialog (an alert would mean a script ran)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()


def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def get(app: Any, url: str) -> tuple[int, str, dict[str, str]]:
    """One GET through the ASGI app, in process: status, body, headers."""
    path, _, query = url.partition("?")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body.decode(), {k.decode(): v.decode() for k, v in start["headers"]}
