"""`mreg ui` (a read-only web view) and `mreg report` (the same pages as one HTML file)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, raw

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.ui.views import View

__all__ = ["install"]

RemoteOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--remote",
        help="Read a remote instead, read-only: a configured remote's name (mreg remote add) "
        "or a URL (s3://bucket/registry, file:///path...).",
        show_default=False,
    ),
]
OptionOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--option",
        "-o",
        help="Driver option KEY=VALUE for --remote (repeatable, as mreg remote add takes "
        "them): endpoint_url, region, profile, path_style=true. Never secrets.",
        show_default=False,
    ),
]


def _view(store: Path | None, remote: str | None, option: list[str] | None) -> View:
    """The local store, or the remote checked to be readable (before anything is served)."""
    from modelreg.errors import InvalidInput
    from modelreg.remote.config import parse_option
    from modelreg.ui.views import LocalView, open_remote

    options = dict(parse_option(o) for o in option or [])
    if remote is None:
        if options:
            raise InvalidInput("--option applies to --remote only")
        return LocalView(open_store(store))
    return open_remote(remote, options, store=store)


def ui(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (default: this machine only)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free port).", min=0)
    ] = 8765,
    allowed_host: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--allowed-host",
            help="Also answer requests whose Host header is NAME (or NAME:PORT; repeatable). "
            "Needed with a wildcard --host (0.0.0.0, ::) for any name but this machine's "
            "hostname, the loopback names and the address a request arrived on.",
            show_default=False,
        ),
    ] = None,
    allow_any_host: Annotated[
        bool,
        typer.Option(
            "--allow-any-host",
            help="Dangerous: answer any Host and Origin header, which lets a web page on any "
            "site read the registry through a visitor's browser (DNS rebinding). Only "
            "behind a reverse proxy that checks Host itself.",
        ),
    ] = False,
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    option: OptionOpt = None,
) -> None:
    """Serve a read-only web view of the store (or a remote): models, cards, diffs, releases."""
    from modelreg.errors import InvalidInput
    from modelreg.ui import require_extra

    require_extra()
    from modelreg.ui.app import bind, serve
    from modelreg.ui.hosts import HostPolicy

    if allow_any_host and allowed_host:
        raise InvalidInput("--allowed-host and --allow-any-host contradict: give one of them")
    view = _view(store, remote, option)
    # A name given to --host (not an address) is what a browser will send in Host.
    bound_name = host if host and not _is_address(host) else None
    sock = bind(host, port)
    policy = HostPolicy.for_socket(sock, allowed_host or (), allow_any_host, bound_name)
    actual = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    scope = (
        "this machine only; pass --host 0.0.0.0 to listen on every interface"
        if host in ("127.0.0.1", "localhost", "::1")
        else f"every client that can reach {host}: the view has no authentication"
    )

    def ready() -> None:
        lines = [
            f"mreg ui: serving {view.label} read-only at http://{where}:{actual}/",
            f"mreg ui: listening on {host} ({scope}); Ctrl-C stops",
            "mreg ui: answering any Host and Origin (--allow-any-host): any web page a visitor "
            "opens can read this registry through their browser unless a proxy in front "
            "checks Host"
            if allow_any_host
            else f"mreg ui: answering only {policy.describe()} (others: 421)",
        ]
        raw("".join(f"{line}\n" for line in lines))

    serve(view, sock, ready, allowed_hosts=allowed_host or (), allow_any_host=allow_any_host,
          bound_name=bound_name)  # fmt: skip


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in ("", "::", "0.0.0.0")
    return True


def report(
    ref: Annotated[
        str, typer.Argument(help="NAME[@REF]: the model, and the version to show (default latest).")
    ],
    html: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--html", help="Write the report as one self-contained HTML file here."),
    ] = None,
    release: Annotated[
        bool, typer.Option("--release", help="Report the model's release instead of a version.")
    ] = False,
    png: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--png", help="Write the release's charts as one PNG image here."),
    ] = None,
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the web view's pages as one HTML file (CI artifacts, PR comments), or PNG charts."""
    from modelreg.ui import require_extra

    require_extra("jinja2")
    from modelreg.ui.app import now_iso
    from modelreg.ui.report import write_report

    result = write_report(
        _view(store, remote, option), ref, html=html, png=png, release=release, generated=now_iso()
    )

    def render(c: Console) -> None:
        from rich.markup import escape

        what = f"release of {result.model}" if release else f"{result.model}@{result.version}"
        if result.html:
            c.print(
                f"wrote {escape(str(result.html))} ({escape(what)}, {result.html_bytes:,} bytes)"
            )
        if result.png:
            c.print(f"wrote {escape(str(result.png))} (release charts, {result.png_bytes:,} bytes)")

    Output(as_json).result(result.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(ui)
    app.command()(report)
