"""`mreg policy`: the policy that travels with the store (issue 19).

Gates, trusted signing keys and who may move which alias, in `policy.yaml`: every change is
a new generation and an audited `policy.*` entry, pushed and pulled like an alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.policy_format import Policy

__all__ = ["install"]

AliasArg = Annotated[str, typer.Argument(help="The alias (production, staging...).")]


def _render(policy: Policy) -> object:
    def render(c: Console) -> None:
        from rich.markup import escape

        c.print(f"policy generation {policy.generation}")
        if not (policy.gates or policy.keys or policy.movers):
            c.print("  no gates, no trusted keys, anyone may move any alias")
        for alias, gates in sorted(policy.gates.items()):
            c.print(escape(f"  gate    {alias}: {'; '.join(gates)}"))
        for name in sorted(policy.keys):
            c.print(escape(f"  trusts  {name}"))
        for alias, movers in sorted(policy.movers.items()):
            c.print(escape(f"  movers  {alias}: {', '.join(movers)}"))

    return render


def show(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show the policy: gates, trusted keys, who may move which alias, and its history."""
    policy = open_store(store).policy_show()
    Output(as_json).result(policy.to_dict(), _render(policy))  # type: ignore[arg-type]


def gate(
    alias: AliasArg,
    conditions: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            help="Conditions ('test.f1 >= 0.9'), 'signed-by: KEY' or 'interface == ALIAS' to add."
        ),
    ] = None,
    remove: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--remove", help="A gate to remove (repeatable)."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every gate of the alias.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add gates a version must pass to be promoted to ALIAS (or --remove, --clear)."""
    policy = open_store(store).policy_gate(
        alias, conditions or [], remove=remove or [], clear=clear
    )
    Output(as_json).result(policy.to_dict(), _render(policy))  # type: ignore[arg-type]


def trust(
    name: Annotated[str, typer.Argument(help="The key's name, as gates say it (signed-by: NAME).")],
    key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="A PEM public key, or a root certificate."),
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop trusting the key.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trust a signing key (or a root certificate) under NAME, or stop trusting it."""
    policy = open_store(store).policy_trust(name, key, remove=remove)
    Output(as_json).result(policy.to_dict(), _render(policy))  # type: ignore[arg-type]


def allow(
    alias: AliasArg,
    actors: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="Actors, as the audit trail names them ('CI <ci@example.com>')."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Anyone may move the alias again.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say who may move ALIAS (promote, rollback); by default anyone may."""
    policy = open_store(store).policy_allow(alias, actors or [], clear=clear)
    Output(as_json).result(policy.to_dict(), _render(policy))  # type: ignore[arg-type]


def install(app: typer.Typer) -> None:
    """Add the `policy` group to the app (built once per app, as `remote`)."""
    policy_app = typer.Typer(
        help="The policy that travels with the store: gates, trusted keys, who may move aliases.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    policy_app.command()(show)
    policy_app.command()(gate)
    policy_app.command()(trust)
    policy_app.command()(allow)
    app.add_typer(policy_app, name="policy")
