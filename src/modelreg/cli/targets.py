"""`mreg release targets` and `mreg release apply`: the places a release is applied (issue 17).

A target is saved with `mreg release export ... --as-target NAME` (cli/export.py); these
commands list and remove targets and apply the current routing to them now. One library
call each (`Store.release_status`, `release_target_remove`, `release_apply`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install", "render_targets"]


def render_targets(c: Console, rows: list[dict[str, Any]]) -> None:
    """One line per target: what it last applied, or why its last apply failed."""
    from rich.markup import escape

    if not rows:
        return
    c.print("Targets:")
    for row in rows:
        gen = row.get("generation") or 0
        if row.get("ok") is None:
            state = "[yellow]never applied[/]"
        elif row["ok"]:
            commit = f", commit {row['commit'][:10]}" if row.get("commit") else ""
            state = f"[green]applied generation {gen}[/] at {row.get('time', '')}{commit}"
        else:
            state = (
                f"[red]failed to apply generation {row.get('attempted')}[/] (runs {gen}): "
                f"{escape(str(row.get('error', '')))}"
            )
        c.print(f"  {escape(row['target'])} ({row.get('format', '?')}): {state}")


def targets(
    name: Annotated[str, typer.Argument(help="Model name.")],
    remove: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--remove", help="Remove this target (its saved export and state)."),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the model's release targets and what each applied, or remove one."""
    st = open_store(store)
    out = Output(as_json)
    if remove is not None:
        spec = st.release_target_remove(name, remove)
        out.result(spec.to_dict(), lambda c: c.print(f"removed release target {remove} of {name}"))
        return
    rows = list(st.release_status(name).targets)

    def render(c: Console) -> None:
        if not rows:
            c.print(f"{name} has no release targets (add one: mreg release export ... --as-target)")
        render_targets(c, rows)

    out.result({"model": name, "targets": rows}, render)


def apply(
    name: Annotated[str, typer.Argument(help="Model name.")],
    target: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--target", "-t", help="Only this target (repeatable)."),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the model's current routing to its release targets now. Exit 1 if one failed."""
    from modelreg.release.targets import ApplyFailed

    outcomes = open_store(store).release_apply(name, target or ())
    rows = [a.to_dict() for a in outcomes]
    Output(as_json).result({"model": name, "targets": rows}, lambda c: render_targets(c, rows))
    failed = [a for a in outcomes if not a.ok]
    if failed:
        raise ApplyFailed(f"{name}: target {failed[0].target} failed: {failed[0].error}")


def install(release_app: typer.Typer) -> None:
    """Add `targets` and `apply` to the `mreg release` command group."""
    release_app.command()(targets)
    release_app.command()(apply)
