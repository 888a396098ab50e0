"""Ref commands: `mreg promote`, `rollback`, `history`, `deprecate`, `tag`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, stderr_line

DEFAULT_MOVES = 100
"""The moves `mreg history` shows without `--limit` (the newest)."""

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.aliases import AliasChange

__all__ = ["install"]

ReasonOpt = Annotated[
    str, typer.Option("--reason", "-r", help="Why (recorded in the audit trail).")
]


def _render_change(change: AliasChange) -> object:
    def render(c: Console) -> None:
        from rich.markup import escape

        if not change.changed:
            c.print(
                f"{change.model}@{change.alias} already points at {change.version}; nothing to do"
            )
            return
        verb = "Promoted" if change.action == "promote" else "Rolled back"
        frm = f" (was {change.previous})" if change.previous else ""
        c.print(
            f"{verb} {change.model}@{change.alias} → [bold]{change.version}[/] "
            f"id [cyan]{change.id[:12]}[/]{frm}, generation {change.generation}"
        )
        if change.forced and change.failed_gates:
            c.print(
                f"[yellow]forced past failed gates:[/] {escape('; '.join(change.failed_gates))}"
            )

    return render


def promote(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or any NAME@REF) to promote.")],
    to: Annotated[str, typer.Option("--to", help="Alias to move, e.g. staging or production.")],
    reason: ReasonOpt = "",
    force: Annotated[
        bool, typer.Option("--force", help="Override failed gates (needs --reason).")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version, if the version passes the alias's promotion gates."""
    change = open_store(store).promote(ref, to, reason=reason, force=force)
    Output(as_json).result(change.to_dict(), _render_change(change))  # type: ignore[arg-type]


def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to move back.")] = "production",
    to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--to", help="Version to move to (default: the previous one)."),
    ] = None,
    reason: ReasonOpt = "",
    force: Annotated[
        bool, typer.Option("--force", help="Allow a deprecated target (needs --reason).")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias back to the version it pointed at before (or to --to VERSION)."""
    change = open_store(store).rollback(name, alias, to=to, reason=reason, force=force)
    Output(as_json).result(change.to_dict(), _render_change(change))  # type: ignore[arg-type]


def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--alias", "-a", help="Only this alias."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=0, help="Only the newest N moves (0: all).", show_default=True
        ),
    ] = DEFAULT_MOVES,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the promotions and rollbacks of a model's aliases (the newest 100 unless -n)."""
    events = open_store(store).history(name, alias, limit=limit or None)

    def render(c: Console) -> None:
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=f"{name} alias history")
        for col in ("time", "alias", "action", "version", "from", "actor", "reason"):
            t.add_column(col)
        for e in events:
            action = f"{e.action} (forced)" if e.forced else e.action
            t.add_row(
                e.time, e.alias, action, e.version, e.previous or "-", escape(e.actor),
                escape(e.reason) or "-",
            )  # fmt: skip
        c.print(t)

    Output(as_json).result([e.to_dict() for e in events], render)
    if limit and len(events) == limit:
        stderr_line(f"the newest {limit} moves; older ones: -n 0 for all")


def deprecate(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to deprecate.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (required).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deprecate a version: its files stay, but it can no longer be promoted."""
    d = open_store(store).deprecate(ref, reason=reason)

    def render(c: Console) -> None:
        if d.changed:
            c.print(f"Deprecated {d.model}@{d.version}")
        else:
            c.print(f"{d.model}@{d.version} was already deprecated")
        if d.aliases:
            c.print(
                f"[yellow]note:[/] still pointed at by {', '.join(d.aliases)}; "
                f"promote another version or 'mreg rollback {d.model}'"
            )

    Output(as_json).result(d.to_dict(), render)


def tag(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to tag.")],
    tags: Annotated[list[str], typer.Argument(help="Tags to add (or remove with --remove).")],
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the given tags instead of adding them.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or remove tags of a version (audited; the manifest itself never changes)."""
    s = open_store(store)
    change = s.tag(ref, remove=tags) if remove else s.tag(ref, add=tags)

    def render(c: Console) -> None:
        from rich.markup import escape

        state = "changed" if change.changed else "unchanged"
        c.print(
            f"{change.model}@{change.version} tags ({state}): "
            f"{escape(', '.join(change.tags)) or '-'}"
        )

    Output(as_json).result(change.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(promote)
    app.command()(rollback)
    app.command()(history)
    app.command()(deprecate)
    app.command()(tag)
