"""`mreg fsck` and `mreg gc` (issue 8): one call each of `Store.fsck` and `Store.gc`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, human_size

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]


def fsck(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Remove leftover temp files, cut a torn audit line, restore missing or corrupt "
            "objects from a remote (corrupt ones go to lost+found/). Never deletes a "
            "referenced object.",
        ),
    ] = False,
    remote: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--remote",
            help="Remote to restore objects from with --repair (default: the default remote).",
            show_default=False,
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Do not re-hash objects: check presence and size only."),
    ] = False,
    temp_age: Annotated[
        str,
        typer.Option(
            "--temp-age",
            help="With --repair, remove temp files at least this old: 0, 90s, 30m, 1h...",
        ),
    ] = "1h",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every manifest, object, alias, rollout and the audit chain; exit 1 on errors."""
    from modelreg.gc import parse_duration

    report = open_store(store).fsck(
        quick=quick,
        repair=repair,
        remote=remote,
        temp_age=parse_duration(temp_age),
    )

    def render(c: Console) -> None:
        for r in report.repairs:
            c.print(f"repair: {r.action} {r.path}" + (f" ({r.detail})" if r.detail else ""))
        for f in report.findings:
            c.print(f"{f.severity}: {f.kind}: {f.path}: {f.message}", markup=False)
        hashed = f"{report.hashed} hashed ({human_size(report.bytes_hashed)})"
        c.print(
            f"{'ok' if report.ok else 'damaged'}: {report.versions} version(s), "
            f"{report.objects} object(s), {hashed}, {report.audit_entries} audit entries; "
            f"{len(report.errors)} error(s), {len(report.warnings)} warning(s) "
            f"in {report.seconds:.2f}s"
        )

    Output(as_json).result(report.to_dict(), render)
    report.raise_for_problems()


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List what would be removed; remove nothing.")
    ] = False,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="Keep unreferenced objects younger than this: 24h, 30m, 7d, 0 (0: only when "
            "no other mreg is writing).",
        ),
    ] = "24h",
    remote: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--remote",
            help="Collect on this configured remote instead of the local store (objects this "
            "store names are kept too).",
            show_default=False,
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove objects no manifest names, older than a grace period (here, or on --remote)."""
    from modelreg.gc import parse_duration

    st = open_store(store)
    report = st.gc(grace=parse_duration(grace), dry_run=dry_run, remote=remote)

    def render(c: Console) -> None:
        verb = "would remove" if report.dry_run else "removed"
        for digest, size in report.removed:
            c.print(f"{verb} {digest[:12]} ({human_size(size)})")
        where = report.url or "the store"
        c.print(
            f"{where}: {verb} {len(report.removed)} of {report.objects} object(s), "
            f"{human_size(report.bytes_freed)}; kept {report.referenced} referenced, "
            f"{report.kept_recent} younger than the grace period"
            + (f", {report.kept_unknown_age} of unknown age" if report.kept_unknown_age else "")
            + (f"; {report.temps_removed} temp file(s)" if report.temps_removed else "")
            + (f"; re-sent {len(report.resent)} named meanwhile" if report.resent else "")
        )

    Output(as_json).result(report.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add `fsck` and `gc` to the app."""
    app.command()(fsck)
    app.command()(gc)
