"""Read commands: `mreg list`, `show`, `diff`, `get`, `log`, `verify`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, stderr_line

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

__all__ = ["install"]


def list_(
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="A model: list its versions. Omit to list models."),
    ] = None,
    tag: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--tag", "-t", help="Only versions with this tag (repeatable: all of them)."),
    ] = None,
    alias: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--alias", help="Only the version this alias points at."),
    ] = None,
    where: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--where",
            "-w",
            help="Filter such as 'test.f1 >= 0.9 and params.lr < 0.1' or 'tags.candidate' "
            "(MLflow's metrics./params./tags. prefixes work; repeatable: all must hold).",
        ),
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="Sort by version, created, or a metric SPLIT.NAME.")
    ] = "version",
    desc: Annotated[bool, typer.Option("--desc", help="Sort in descending order.")] = False,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=0, help="Show at most N versions (0: all of them)."),
    ] = 100,
    offset: Annotated[
        int, typer.Option("--offset", min=0, help="Skip the first N matching versions.")
    ] = 0,
    count_limit: Annotated[
        int,
        typer.Option(
            "--count-limit",
            min=0,
            help="Count the versions a filter matches up to N, then say 'over N' (0: all).",
        ),
    ] = 10_000,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List models, or the versions of NAME; with filters, search versions of every model.

    Versions come a page at a time: the first 100 unless --limit says otherwise (--limit 0
    for every one); the line after the page says how many more match and how to see them,
    a filter's matches counted up to 10,000 (--count-limit): a page costs the same in any store.
    """
    from modelreg.cli._cards import render_models, render_versions

    s = open_store(store)
    out = Output(as_json)
    if name is None and not (tag or alias or where) and sort == "version" and not desc:
        models = s.models()
        out.result([m.to_dict() for m in models], lambda c: render_models(c, models))
        return
    from modelreg.conditions import parse_filter

    conditions = [c for w in where or [] for c in parse_filter(w)]
    rows = s.versions(
        name, tags=tag or [], alias=alias, where=conditions, sort=sort, descending=desc,
        limit=limit, offset=offset, count_limit=count_limit or None,
    )  # fmt: skip
    metric_cols = [  # the metrics a filter tests get a column (not name, created, tags...)
        c.field
        for c in conditions
        if "." in c.field and not c.field.startswith(("params.", "tags.", "declared."))
    ]
    sort_col = sort.removeprefix("metrics.") if sort.count(".") == 2 else sort
    if "." in sort_col and sort_col not in metric_cols:
        metric_cols.append(sort_col)
    out.result([r.to_dict() for r in rows], lambda c: render_versions(c, rows, metric_cols))
    if rows.more:
        more, total = (
            (f"{rows.more}", f"{rows.total}") if rows.exact
            else (f"at least {rows.more}", f"over {rows.total - 1}")
        )  # fmt: skip
        stderr_line(
            f"{more} more of {total} matching version(s): --offset "
            f"{rows.offset + len(rows)} for the next page, --limit 0 for all"
        )


KeyOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--key",
        metavar="[NAME=]PUBLIC_KEY",
        help="A trusted public key or root certificate (PEM), named NAME or after its file "
        "(repeatable).",
    ),
]

_TIME_HELP = "a date (2026-11-01), a timestamp (2026-11-01T12:00:00Z) or a duration ago (2h, 7d)"


def _time(option: str, text: str | None) -> datetime | None:
    """The time an option names (None when not given); exit 2 with one line when malformed."""
    if text is None:
        return None
    from modelreg.auditquery import parse_time
    from modelreg.errors import InvalidInput
    from modelreg.handle import utc_now

    try:
        return parse_time(text, utc_now())
    except InvalidInput as exc:
        raise InvalidInput(f"{option} {exc}") from None


def show(
    ref: Annotated[str, typer.Argument(help="NAME[@REF]; REF is a version, alias or latest.")],
    at: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--at",
            metavar="TIME",
            help="With NAME@ALIAS: which version the alias pointed at, at TIME "
            f"({_TIME_HELP}), from its history checked against the audit trail.",
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also print the stored profile of each profiled data file, per feature "
            "(--json: under profiles, by data uri).",
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a version's identity card: who, when, data, code, metrics, files, aliases."""
    if at is not None:
        _show_at(ref, at, store, as_json)
        return
    from modelreg.cli._cards import render_card, render_profile

    s = open_store(store)
    info = s.info(ref)
    if not profile:
        Output(as_json).result(info.to_dict(), lambda c: render_card(c, info))
        return
    mv = info.version
    spec = f"{mv.name}@{mv.version}"
    profiles = {d.uri: s.profile(spec, d.uri) for d in mv.data if d.profile is not None}

    def render(c: Console) -> None:
        render_card(c, info)
        for uri, p in profiles.items():
            render_profile(c, uri, p)

    doc = {**info.to_dict(), "profiles": {u: p.to_dict() for u, p in profiles.items()}}
    Output(as_json).result(doc, render)


def _show_at(spec: str, at: str, store: Path | None, as_json: bool) -> None:
    from modelreg.errors import InvalidInput
    from modelreg.names import parse_ref

    ref = parse_ref(spec)
    if ref.kind != "alias":
        named = "latest" if ref.kind == "latest" else f"version {ref.ref}"
        raise InvalidInput(
            f"--at needs NAME@ALIAS (which version an alias named at a time); {spec!r} names "
            f"{named}, which does not move"
        )
    when = _time("--at", at)
    assert when is not None
    found = open_store(store).alias_at(ref.name, ref.ref, when)

    def render(c: Console) -> None:
        from rich.markup import escape

        m = found.move
        c.print(f"[bold]{found.model}@{found.alias}[/] at {found.at}: [bold]{m.version}[/]")
        forced = " (forced past a failed gate)" if m.forced else ""
        c.print(f"  since  {m.time}, {m.action} by {escape(m.actor)}{forced}")
        c.print(f"  why    {escape(m.reason) if m.reason else '(no reason given)'}")
        if found.next is None:
            c.print("  until  now: it still points there")
        else:
            n = found.next
            c.print(f"  until  {n.time}, {n.action} to {n.version} by {escape(n.actor)}")
        c.print(
            f"  record generation {m.generation}, audit entry {found.audit_seq}, id {m.id[:12]}"
        )

    Output(as_json).result(found.to_dict(), render)


def diff(
    a: Annotated[str, typer.Argument(help="First NAME@REF.")],
    b: Annotated[str, typer.Argument(help="Second NAME@REF.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare two versions: params, metrics, files, data and code."""
    from modelreg.cli._cards import render_diff

    d = open_store(store).diff(a, b)
    Output(as_json).result(d.to_dict(), lambda c: render_diff(c, d))


def get(
    ref: Annotated[str, typer.Argument(help="NAME@REF to materialise.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the files into.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that exist with other content.")
    ] = False,
    signature: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--signature",
            metavar="FILE",
            help="Also write the version's OMS signature to FILE (model_signing verify "
            "accepts it on --out).",
        ),
    ] = None,
    key: KeyOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version's files into a directory, verifying every byte against its digest."""
    result = open_store(store).get(ref, out, force=force, signature=signature, keys=key or [])
    mv, n = result.version, len(result.written)

    def render(c: Console) -> None:
        c.print(
            f"{mv.name}@{mv.version}: {n} file(s) written, "
            f"{len(mv.files) - n} already up to date, in {out}"
        )
        if signature is not None:
            c.print(f"signature written to {signature}")

    Output(as_json).result(result.to_dict(), render)


def log(
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="Only entries of this model."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-n", min=0, help="Only the newest N entries of those that match (0: all)."
        ),
    ] = 100,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--since", metavar="TIME", help=f"Only entries at or after TIME: {_TIME_HELP}."
        ),
    ] = None,
    until: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--until", metavar="TIME", help="Only entries before TIME (same forms)."),
    ] = None,
    actor: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--actor", help="Only entries by this actor (the exact string)."),
    ] = None,
    action: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--action",
            help="Only this action (promote), or actions with a prefix ending in * (release.*).",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit trail: who changed what, when, and why (the newest 100 entries unless -n)."""
    from modelreg.cli._cards import render_log

    lo, hi = _time("--since", since), _time("--until", until)
    entries = open_store(store).log(
        name, limit or None, since=lo, until=hi, actor=actor, action=action
    )
    filtered = any(x is not None for x in (lo, hi, actor, action))

    def render(c: Console) -> None:
        if filtered and not entries:
            c.print("No audit entry matches.")
        else:
            render_log(c, entries)

    Output(as_json).result([e.to_dict() for e in entries], render)
    if limit and len(entries) == limit:
        stderr_line(f"the newest {limit} matching entries; older ones: -n 0 for all, or --until")


def verify(
    objects: Annotated[
        bool, typer.Option("--objects/--no-objects", help="Re-hash every object.")
    ] = True,
    signatures: Annotated[
        bool,
        typer.Option(
            "--signatures", help="Also check every version's signatures against the --key(s)."
        ),
    ] = False,
    key: KeyOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit chain, manifests, aliases and every object's digest (exit 1 if bad).

    With --signatures, every OMS signature of every version is verified with model-signing
    against the trusted public keys (--key ci=ci.pub, repeatable): one that does not hold is
    a problem; one made with a key not given is listed as untrusted.
    """
    report = open_store(store).verify(objects=objects, signatures=signatures, keys=key or [])

    def render(c: Console) -> None:
        from rich.markup import escape

        for check in report.signatures or ():
            marks = {"valid": "[green]✓[/]", "invalid": "[red]✗[/]"}
            mark = marks.get(check.status, "[yellow]?[/]")
            detail = f": {check.detail}" if check.detail else ""
            c.print(
                escape(f"{check.name}@{check.version} signature {check.signature.digest[:12]} ")
                + f"{mark} {check.status} ({escape(check.signer)}){escape(detail)}"
            )
        for p in report.problems:
            c.print(f"[red]✗[/] {escape(p)}")
        status = "[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
        c.print(
            f"{status}: {report.versions} version(s), {report.objects} object(s) re-hashed, "
            f"{report.audit_entries} audit entries"
        )

    Output(as_json).result(report.to_dict(), render)
    if not report.ok:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("list")(list_)
    app.command()(show)
    app.command()(diff)
    app.command()(get)
    app.command()(log)
    app.command()(verify)
