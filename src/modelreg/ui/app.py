"""The read-only web server: a Starlette app over a `View`, served by uvicorn.

URLs (docs/ui.md)::

    /                                          the models
    /models/NAME[?page=N|?offset=N][&limit=N]  versions (100 a page), aliases, their history
    /models/NAME/-/versions/VERSION            the identity card
    /models/NAME/-/versions/VERSION/files/PATH a file, as a download
    /models/NAME/-/versions/VERSION/drift      drift against the training profile (?since=&until=
                                               or ?window=24h), PSI over time, histograms
    /models/NAME/-/at/REF[/files/PATH|/drift]  redirects to the version REF names now
    /models/NAME/-/lineage                     which version was trained on whose production data
    /models/NAME@REF                           the same (REF: a version, an alias, latest)
    /models/NAME/-/release                     the release page (refreshes while live)
    /models/NAME/-/release/state               {"token": ...}: changes when the page would
    /diff?a=NAME@REF&b=NAME@REF                two versions side by side
    /audit[?model=NAME]                        the audit log and its hash-chain check

`-` separates the model name (which may hold one `/`) from the rest: no name segment can
start with `-`. Only GET and HEAD are routed (anything else is 405), no handler calls a
method that writes, and a file is found only through its version's manifest.

No page shows a traceback: an unknown thing is a 404 page; a remote that cannot be read a
502 page, a damaged store or any other failure a 500 page, each with one line of reason,
and the server logs each failure as one line (`MREG_DEBUG=1` adds the traceback of a bug).

Before any of that, a request whose `Host` is not the server's (DNS rebinding) gets 421 and
one whose `Origin` is foreign 403, each a one-line plain-text body and one log line
(`modelreg.ui.hosts`; `serve()` applies it by default, `allow_any_host=True` turns it off).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.remote.backend import RemoteError
from modelreg.ui import pages
from modelreg.ui.drift import DRIFT_QUERY, drift_page
from modelreg.ui.hosts import HostPolicy
from modelreg.ui.lineage import lineage_page
from modelreg.ui.release import Memo
from modelreg.ui.render import ServerLinks, compile_templates, csp, render
from modelreg.ui.views import View, failure_reason, one_line

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["POLL_MS", "HostPolicy", "bind", "create_app", "log_line", "serve"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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


def log_line(line: str) -> None:
    """Write one line of the server's log to stderr (`mreg ui: ...`)."""
    sys.stderr.write(f"mreg ui: {one_line(line)}\n")
    sys.stderr.flush()


class _Guard:
    """ASGI middleware: an exception no handler took becomes a 500 page and one log line.

    Starlette's own last-resort handler re-raises, and uvicorn then prints the traceback;
    this one answers the request and logs one line (the traceback too with MREG_DEBUG=1).
    """

    def __init__(self, app: Any, on_error: Callable[[Scope, Exception], Response | None]) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            response = self.on_error(scope, exc)
            if response is not None and not started and scope["type"] == "http":
                await response(scope, receive, send)


class _HostCheck:
    """ASGI middleware: refuse a request whose Host or Origin is not this server's.

    The refusal is a plain-text response of one line (421 for the Host, 403 for the
    Origin), sent before routing, and one line of log.
    """

    def __init__(self, app: Any, policy: HostPolicy, log: Callable[[str], None]) -> None:
        self.app = app
        self.policy = policy
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            server = scope.get("server")
            local = str(server[0]) if server else None
            refusal = self.policy.check(scope.get("headers") or [], local)
            if refusal is not None:
                request = f"{scope.get('method', 'GET')} {scope.get('path', '-')}"
                self.log(one_line(f"{request}: {refusal.status} refused: {refusal.reason}"))
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                from starlette.responses import PlainTextResponse

                body = one_line(f"{refusal.status} refused: {refusal.reason}") + "\n"
                headers = {**_HEADERS, "Content-Security-Policy": "default-src 'none'"}
                response = PlainTextResponse(body, refusal.status, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _split(rest: str) -> tuple[str, list[str]]:
    """`NAME/-/a/b` → ("NAME", ["a", "b"]); `NAME` → ("NAME", [])."""
    parts = rest.split("/")
    if "-" in parts:
        i = parts.index("-")
        return "/".join(parts[:i]), parts[i + 1 :]
    return rest.rstrip("/"), []


def create_app(
    view: View, log: Callable[[str], None] = log_line, hosts: HostPolicy | None = None
) -> Starlette:
    """The app serving `view` read-only; `log` takes one line per failed request.

    `hosts`: the Host and Origin headers it answers (`HostPolicy.for_socket`); None checks
    none, since the app alone does not know where it is served: `serve()` passes the
    policy of its socket.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse
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

    def failed(scope: Scope, status: int, title: str, reason: str) -> Response:
        """An error page with one line of reason; the same line goes to the log."""
        reason = one_line(reason)
        request = f"{scope.get('method', '-')} {scope.get('path', '-')}"
        log(one_line(f"{request}: {status} {title}: {reason}"))
        failure = {"status": status, "title": title, "reason": reason}
        return _html("page.html", status, title=title, failure=failure, source=source)

    def redirect(url: str) -> Response:
        return RedirectResponse(url, 307, headers=_HEADERS)

    def home(request: Request) -> Response:
        return _html("page.html", title="models", models=pages.models_page(view), source=source)

    def model(request: Request) -> Response:
        # The server decoded the path once already: decoding again would let `%252e` become
        # `.`; nothing here is joined to a file path anyway (files go through manifests).
        name, rest = _split(request.path_params["rest"])
        if not rest and "@" in name:  # /models/NAME@REF: the version REF names now
            mv = pages.resolve(view, name)
            return redirect(_LINKS.version(mv.name, mv.version))
        if len(rest) >= 2 and rest[0] == "at":  # /models/NAME/-/at/REF[/files/PATH|/drift]
            mv = pages.resolve(view, f"{name}@{rest[1]}")
            if len(rest) == 2:
                return redirect(_LINKS.version(mv.name, mv.version))
            if rest[2:] == ["drift"]:  # the window's query goes along
                kept = {k: v for k, v in request.query_params.items() if k in DRIFT_QUERY}
                return redirect(_LINKS.drift(mv.name, mv.version, **kept))
            wanted = "/".join(rest[3:])
            if rest[2] != "files" or not any(f.path == wanted for f in mv.files):
                raise NotFound(f"{name}@{mv.version} has no file {wanted!r}")
            return redirect(_LINKS.file(mv.name, mv.version, wanted))
        if not rest:
            q = request.query_params
            offset, limit = pages.page_window(q.get("page"), q.get("offset"), q.get("limit"))
            ctx = pages.model_page(view, name, offset, limit)
            return _html("page.html", title=name, model=ctx, source=source)
        if rest == ["release"]:
            rel = pages.release_page(view, name, time.time(), memo)
            live = rel["rollout"] is not None and rel["rollout"].live
            poll = {"token": rel["token"], "url": _LINKS.release(name) + "/state",
                    "every_ms": POLL_MS} if live else None  # fmt: skip
            return _html("page.html", title=f"{name} release", rel=rel, poll=poll, source=source)
        if rest == ["release", "state"]:
            view.check_model(name)
            r = view.rollout(name)
            return JSONResponse(
                {"token": view.release_token(name), "state": r.state if r else "none"},
                headers=_HEADERS,
            )
        if len(rest) == 2 and rest[0] == "versions":
            card = pages.version_page(view, name, rest[1])
            return _html("page.html", title=f"{name}@{rest[1]}", card=card, source=source)
        if len(rest) == 3 and rest[0] == "versions" and rest[2] == "drift":
            q = request.query_params
            ctx = drift_page(view, name, rest[1], _LINKS, since=q.get("since"),
                             until=q.get("until"), window=q.get("window"),
                             data=q.get("data"))  # fmt: skip
            return _html("page.html", title=f"{name}@{rest[1]} drift", drift=ctx, source=source)
        if rest == ["lineage"]:
            view.check_model(name)
            lin = lineage_page(view, name, _LINKS.version)
            return _html("page.html", title=f"{name} lineage", lin=lin, source=source)
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
        return failed(request.scope, 500, "damaged store",
                      f"the store holds a damaged file: {exc} (run mreg verify)")  # fmt: skip

    async def on_remote(request: Request, exc: Exception) -> Response:
        return failed(request.scope, 502, "remote unavailable",
                      f"cannot read {source}: {failure_reason(exc)}")  # fmt: skip

    async def on_error(request: Request, exc: Exception) -> Response:
        return failed(request.scope, 500, "error", str(exc))

    def on_bug(scope: Scope, exc: Exception) -> Response | None:
        if os.environ.get("MREG_DEBUG", "") not in ("", "0"):
            traceback.print_exception(exc)
        if scope.get("type") != "http":
            return None
        bug = f"{type(exc).__name__}: {exc} (a bug: MREG_DEBUG=1 logs its traceback)"
        return failed(scope, 500, "internal error", bug)

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
            RemoteError: on_remote,
            MregError: on_error,
        },
        middleware=[
            Middleware(_Guard, on_error=on_bug),
            *([Middleware(_HostCheck, policy=hosts, log=log)] if hosts is not None else []),
        ],
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


def serve(
    view: View,
    sock: socket.socket,
    ready: Callable[[], None] | None = None,
    *,
    allowed_hosts: Iterable[str] = (),
    allow_any_host: bool = False,
    bound_name: str | None = None,
) -> None:
    """Serve `view` on a bound socket until interrupted; `ready()` once the app is built.

    Only requests whose Host names the socket's address (or a loopback name when it is a
    loopback address; `allowed_hosts`, the hostname and loopback names when it is a
    wildcard) are answered, and only from the same origin: `HostPolicy.for_socket`.
    `allow_any_host=True` answers any (dangerous: only behind a proxy that rewrites Host).
    """
    import uvicorn

    policy = HostPolicy.for_socket(sock, allowed_hosts, allow_any_host, bound_name)
    app = create_app(view, hosts=policy)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        ready()  # the caller says "serving" only now: the first visitor waits for no start-up
    server.run(sockets=[sock])


def now_iso() -> str:
    """The current UTC time, as reports show it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
