"""`mreg hook add|list|remove|test|deliver`: webhooks on audit events (issue 19).

One library call each (`Store.hook_add`, `hook_list`, `hook_remove`, `hook_test`,
`hook_deliver`); docs/hooks.md is the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, raw

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.hookdelivery import DeliveryReport

__all__ = ["install"]


def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    event: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--event",
            "-e",
            help="Audit action to send, exact or a prefix ending in * (repeatable). Default: "
            "promote, rollback, release.*, delete*, policy*.",
        ),
    ] = None,
    secret_env: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--secret-env",
            help="NAME of the environment variable holding the signing secret (HMAC-SHA256); "
            "the secret itself is never written.",
        ),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="json (event and audit entry) or slack ({text}).")
    ] = "json",
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", help="Hook name (default: from the URL's host)."),
    ] = None,
    from_start: Annotated[
        bool,
        typer.Option("--from-start", help="Deliver the whole audit trail, not only new events."),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a webhook: POST each new audit event it wants to URL, signed, at least once."""
    info = open_store(store).hook_add(
        url, name=name, events=event or (), secret_env=secret_env, format=format,
        from_start=from_start,
    )  # fmt: skip
    Output(as_json).result(
        info.to_dict(),
        lambda c: c.print(f"Added hook {info.spec.name}: {', '.join(info.spec.events)}"),
    )


def list_(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the webhooks with what each has waiting and its last delivery or error."""
    rows = [h.to_dict() for h in open_store(store).hook_list()]

    def render(c: Console) -> None:
        from rich.markup import escape

        if not rows:
            c.print("no hooks (mreg hook add URL)")
        for r in rows:
            secret = "" if r["secret_env"] is None else f" signed with ${r['secret_env']}"
            if r["secret_set"] is False:
                secret += " [red](not set here)[/]"
            c.print(f"{r['name']}\t{escape(r['url'])}\t{r['format']}{secret}")
            c.print(f"  events: {', '.join(r['events'])}")
            state = f"  {r['backlog']} waiting, {r['delivered']} delivered"
            if r["last_ok"]:
                state += f", last at {r['last_ok']}"
            c.print(state)
            if r["failing"]:
                c.print(
                    f"  [red]failing since {r['last_error_time']}: {escape(r['last_error'])}[/]"
                    f", next try in {r['next_try_in']:.0f}s"
                )

    Output(as_json).result(rows, render)


def remove(
    name: Annotated[str, typer.Argument(help="Hook to remove.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a webhook; events it had not delivered are dropped for it."""
    spec = open_store(store).hook_remove(name)
    Output(as_json).result(
        {"name": spec.name, "url": spec.url, "removed": True},
        lambda c: c.print(f"Removed hook {name}"),
    )


def test(
    name: Annotated[str, typer.Argument(help="Hook to send a test message to.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 10.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a signed ping event to a webhook now. Exit 1 if it does not answer 2xx."""
    result = open_store(store).hook_test(name, timeout=timeout)
    Output(as_json).result(result.to_dict(), lambda c: c.print(f"hook {name} answered"))


def deliver(
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep delivering every --interval seconds (a daemon).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between rounds with --loop.")
    ] = 5.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 10.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deliver the webhook events that wait now. Exit 1 if some could not be delivered."""
    import json

    st = open_store(store)
    out = Output(as_json)

    def render(report: DeliveryReport) -> None:
        if loop and as_json:  # one JSON object per round, a line each
            raw(json.dumps(report.to_dict(), sort_keys=True) + "\n")
            return
        if loop and not any(h.delivered or h.error for h in report.hooks):
            return

        def draw(c: Console) -> None:
            from rich.markup import escape

            if not report.hooks:
                c.print("no hooks (mreg hook add URL)")
            for h in report.hooks:
                error = f", [red]failed: {escape(h.error)}[/]" if h.error else ""
                c.print(f"{h.hook}: {h.delivered} delivered, {h.backlog} waiting{error}")

        out.result(report.to_dict(), draw)

    st.hook_deliver(loop=loop, interval=interval, timeout=timeout, on_round=render)


def install(app: typer.Typer) -> None:
    """Add the `hook` command group to the app."""
    hook_app = typer.Typer(
        help="Webhooks on audit events: POST promotions, rollbacks, releases to a URL, signed.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    hook_app.command()(add)
    hook_app.command("list")(list_)
    hook_app.command()(remove)
    hook_app.command()(test)
    hook_app.command()(deliver)
    app.add_typer(hook_app, name="hook")
