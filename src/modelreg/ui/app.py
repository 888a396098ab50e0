"""The read-only web server: a Starlette app over a `View`, served by uvicorn.

URLs (docs/ui.md)::

    /                                          the models
    /models/NAME                               versions, aliases and their history
    /models/NAME/-/versions/VERSION            the identity card
    /models/NAME/-/versions/VERSION/files/PATH a file, as a download
    /models/NAME/-/release                     the release page (refreshes while live)
    /models/NAME/-/release/state               {"token": ...}: changes when the page would
    /diff?a=NAME@REF&b=NAME@REF                two versions side by side
    /audit[?model=NAME]                        the audit log and its hash-chain check

`-` separates the model name (which may hold one `/`) from the rest: no name segment can
start with `-`. Only GET and HEAD are routed (anything else is 405), no handler calls a
method that writes, and a file is found only through its version's manifest.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.ui import pages
from modelreg.ui.release import Memo
from modelreg.ui.render import ServerLinks, compile_templates, csp, render
from modelreg.ui.views import View

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["POLL_MS", "bind", "create_app", "serve"]

POLL_MS = 2000
"""How often a live release page asks whether it changed."""
_LINKS = ServerLinks()
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _html(template: str, status: int = 200, **ctx: Any) -> Response:
    from starlette.responses import HTMLResponse

    html, nonce = render(template, _LINKS, **ctx)
    return HTMLResponse(html, status, headers={**_HEADERS, "Content-Security-Policy": csp(nonce)})


def _split(rest: str) -> tuple[str, list[str]]:
    """`NAME/-/a/b` → ("NAME", ["a", "b"]); `NAME` → ("NAME", [])."""
    parts = rest.split("/")
    if "-" in parts:
        i = parts.index("-")
        return "/".join(parts[:i]), parts[i + 1 :]
    return rest.rstrip("/"), []


def create_app(view: View) -> Starlette:
    """The app serving `view` read-only."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    source = view.label
    memo = Memo()
    compile_templates()
    # Warm the view's parse cache before the first visitor (a store of 1,000 versions: ~150
    # ms once, at start); a damaged store is reported by the page that meets it instead.
    with contextlib.suppress(MregError):
        pages.models_page(view)

    def not_found(what: str) -> Response:
        return _html("page.html", 404, title="not found", missing=what, source=source)

    def home(request: Request) -> Response:
        return _html("page.html", title="models", models=pages.models_page(view), source=source)

    def model(request: Request) -> Response:
        # The server decoded the path once already: decoding again would let `%252e` become
        # `.`; nothing here is joined to a file path anyway (files go through manifests).
        name, rest = _split(request.path_params["rest"])
        if not rest:
            ctx = pages.model_page(view, name)
            return _html("page.html", title=name, model=ctx, source=source)
        if rest == ["release"]:
            rel = pages.release_page(view, name, time.time(), memo)
            live = rel["rollout"] is not None and rel["rollout"].live
            poll = {"token": rel["token"], "url": _LINKS.release(name) + "/state",
                    "every_ms": POLL_MS} if live else None  # fmt: skip
            return _html("page.html", title=f"{name} release", rel=rel, poll=poll, source=source)
        if rest == ["release", "state"]:
            view.require_model(name)
            r = view.rollout(name)
            return JSONResponse(
                {"token": view.release_token(name), "state": r.state if r else "none"},
                headers=_HEADERS,
            )
        if len(rest) == 2 and rest[0] == "versions":
            card = pages.version_page(view, name, rest[1])
            return _html("page.html", title=f"{name}@{rest[1]}", card=card, source=source)
        if len(rest) >= 4 and rest[0] == "versions" and rest[2] == "files":
            mv = view.require_version(name, rest[1])
            wanted = "/".join(rest[3:])
            entry = next((f for f in mv.files if f.path == wanted), None)
            if entry is None:
                raise NotFound(f"{name}@{mv.version} has no file {wanted!r}")
            filename = wanted.rsplit("/", 1)[-1]
            return FileResponse(
                view.object_path(entry),
                media_type="application/octet-stream",
                filename=filename,
                headers={**_HEADERS, "Content-Security-Policy": "default-src 'none'"},
            )
        raise NotFound(f"no page {request.url.path!r}")

    def diff(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            raise NotFound("a diff needs two versions: /diff?a=NAME@REF&b=NAME@REF")
        ctx = pages.diff_page(view, a, b)
        return _html("page.html", title=f"{a} vs {b}", diff=ctx, source=source)

    def audit(request: Request) -> Response:
        ctx = pages.audit_page(view, request.query_params.get("model") or None)
        return _html("page.html", title="audit log", audit=ctx, source=source)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return not_found(str(exc) if isinstance(exc, InvalidInput) else "no such page")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return not_found("no such page")
        from starlette.responses import PlainTextResponse

        return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)

    async def on_damaged(request: Request, exc: Exception) -> Response:
        return _html(
            "page.html", 500, title="damaged store", source=source,
            missing=f"the store holds a damaged file: {exc} (run mreg verify)",
        )  # fmt: skip

    get = ["GET", "HEAD"]
    return Starlette(
        routes=[
            Route("/", home, methods=get),
            Route("/models/{rest:path}", model, methods=get),
            Route("/diff", diff, methods=get),
            Route("/audit", audit, methods=get),
        ],
        exception_handlers={
            NotFound: on_not_found,
            InvalidInput: on_not_found,
            HTTPException: on_http,
            IntegrityError: on_damaged,
        },
    )


def bind(host: str = "127.0.0.1", port: int = 8765) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free port), bound before serving.

    Binding here, not inside uvicorn, lets the caller say where it serves (with the port
    actually chosen) before serving starts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle's algorithm holds a response's
    # body behind its headers until the client's delayed ACK, adding ~40 ms on keep-alive.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(view: View, sock: socket.socket, ready: Callable[[], None] | None = None) -> None:
    """Serve `view` on a bound socket until interrupted; `ready()` once the app is built."""
    import uvicorn

    config = uvicorn.Config(create_app(view), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        ready()  # the caller says "serving" only now: the first visitor waits for no start-up
    server.run(sockets=[sock])


def now_iso() -> str:
    """The current UTC time, as reports show it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
