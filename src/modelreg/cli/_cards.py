"""Rich renderings of library results (identity card, tables, diffs). Printing only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from modelreg.cli._output import human_size

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.audit import AuditEntry
    from modelreg.catalog import ModelSummary, VersionDiff, VersionInfo
    from modelreg.dataprofile import Profile
    from modelreg.manifest import ProfileRef

__all__ = [
    "profile_summary",
    "render_card",
    "render_diff",
    "render_log",
    "render_models",
    "render_profile",
    "render_versions",
]


def _fmt(value: Any) -> str:
    from modelreg.hashing import is_digest

    if is_digest(value):
        return str(value)[:12]
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "-"
    return str(value)


def _metric(value: Any) -> str:
    """A metric for a table: four significant digits (0.9885), full precision in --json."""
    if isinstance(value, float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        return f"{value:.4g}"
    return _fmt(value)


def profile_summary(p: ProfileRef) -> str:
    """`10,000 rows, 5 features, 1.2% cells missing` (issue 21)."""
    cells = p.rows * p.features
    share = f"{100 * p.missing / cells:.1f}%" if cells else "0%"
    return f"{p.rows:,} rows, {p.features} features, {share} cells missing"


def render_card(c: Console, info: VersionInfo) -> None:
    """The identity card of a version: who, when, data, code, metrics, files, aliases."""
    from rich import box
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    mv = info.version
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("id", f"[cyan]{mv.short_id}[/]  ({mv.id})")
    head.add_row("author", escape(mv.author))
    head.add_row("created", mv.created)
    if mv.message:
        head.add_row("message", escape(mv.message))
    head.add_row("aliases", ", ".join(info.aliases) or "-")
    for e in info.alias_moves:  # who moved each alias here, and when (issue 13)
        why = f": {e.reason}" if e.reason else ""
        forced = " (forced)" if e.forced else ""
        head.add_row(
            "", escape(f"{e.alias}: {e.action}{forced} by {e.actor} at {e.time}, "
                       f"generation {e.generation}{why}")
        )  # fmt: skip
    head.add_row("tags", escape(", ".join(info.tags)) or "-")
    for sig in info.signatures:  # who signed (issue 19); whether it holds: mreg verify
        head.add_row(
            "signed", escape(f"by {sig.signer}, signature {sig.digest[:12]}, covers its files")
        )
    if info.deprecated:
        head.add_row(
            "[red]deprecated[/]",
            escape(f"{info.deprecated.get('reason', '')} ({info.deprecated.get('actor', '')})"),
        )
    if mv.code:
        dirty = " [yellow](dirty)[/]" if mv.code.dirty else ""
        branch = f" on {escape(mv.code.branch)}" if mv.code.branch else " (detached)"
        head.add_row("code", f"{escape(mv.code.repo)} @ {mv.code.commit[:12]}{branch}{dirty}")
    for d in mv.data:
        extra = f"  sha256 {(d.sha256 or '')[:12]}, {d.files} file(s), {human_size(d.size or 0)}"
        head.add_row("data", escape(d.uri) + (extra if d.sha256 else ""))
        if d.profile is not None:  # issue 21
            head.add_row("", escape(f"profile: {profile_summary(d.profile)}"))
        if d.from_production is not None:
            head.add_row("", escape(f"trained on {d.from_production.describe()}"))
    if mv.dependencies:
        deps = f"python {mv.dependencies.python}"
        if mv.dependencies.packages:
            deps += f"; {len(mv.dependencies.packages)} requirements"
        head.add_row("deps", escape(deps))
    parts: list[Any] = [head]
    if mv.params:
        params = Table(title="params", box=box.SIMPLE, title_justify="left")
        params.add_column("param")
        params.add_column("value")
        from modelreg.catalog import flatten

        for k, v in sorted(flatten(mv.params).items()):
            params.add_row(escape(k), escape(_fmt(v)))
        parts.append(params)
    if mv.metrics:
        conventional = {"train": 0, "validation": 1, "val": 1, "dev": 1, "test": 2}
        splits = sorted(mv.metrics, key=lambda s: (conventional.get(s, 3), s))
        names = sorted({n for s in splits for n in mv.metrics[s]})
        metrics = Table(title="metrics", box=box.SIMPLE, title_justify="left")
        metrics.add_column("metric")
        for s in splits:
            metrics.add_column(escape(s), justify="right")
        for n in names:
            metrics.add_row(escape(n), *(_metric(mv.metrics[s].get(n)) for s in splits))
        parts.append(metrics)
    files = Table(title="files", box=box.SIMPLE, title_justify="left")
    files.add_column("path")
    files.add_column("size", justify="right")
    files.add_column("sha256")
    files.add_column("format")
    for f in mv.files:
        files.add_row(escape(f.path), human_size(f.size), f.sha256[:12], f.format or "-")
    parts.append(files)
    if mv.declared and (mv.declared.files or mv.declared.unread):  # issue 20
        from modelreg.declared import flat

        declared = Table(title="declared by the files", box=box.SIMPLE, title_justify="left")
        declared.add_column("file")
        declared.add_column("declares")
        declared.add_column("value")
        for k, v in flat(mv.declared).items():
            path, _, what = k.rpartition(": ")
            if what != "format":  # the files table says it
                declared.add_row(escape(path), escape(what), escape(_fmt(v)))
        parts.append(declared)
    c.print(Panel(Group(*parts), title=f"[bold]{mv.name}@{mv.version}[/]", expand=False))


def render_models(c: Console, rows: list[ModelSummary]) -> None:
    """The model table of `mreg list`."""
    from rich.table import Table

    if not rows:
        c.print("No models registered yet.")
        return
    t = Table()
    for col in ("model", "versions", "latest", "aliases", "updated"):
        t.add_column(col)
    for m in rows:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        t.add_row(m.name, str(m.versions), m.latest or "-", aliases or "-", m.updated or "-")
    c.print(t)


def render_versions(c: Console, rows: list[VersionInfo], metric_cols: list[str]) -> None:
    """The version table of `mreg list NAME` (and of filtered searches)."""
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        c.print("No matching versions.")
        return
    t = Table()
    for col in ("model", "version", "id", "aliases", "tags", "created", "author", *metric_cols):
        t.add_column(col)
    for i in rows:
        mv = i.version
        # struck through on a terminal, and said in words for pipes and logs (issue 13)
        version = f"[strike]{mv.version}[/] [red](deprecated)[/]" if i.deprecated else mv.version
        t.add_row(
            mv.name,
            version,
            mv.short_id,
            ", ".join(i.aliases) or "-",
            escape(", ".join(i.tags)) or "-",
            mv.created,
            escape(mv.author),
            *(_metric(mv.metric(m)) for m in metric_cols),
        )
    c.print(t)


def render_diff(c: Console, d: VersionDiff) -> None:
    """Side-by-side differences of two versions."""
    from rich.markup import escape
    from rich.table import Table

    a, b = f"{d.a.name}@{d.a.version}", f"{d.b.name}@{d.b.version}"
    if d.identical:
        c.print(
            f"{a} and {b} do not differ in params, metrics, files, what the files declare, "
            "data, code or dependencies."
        )
        for k, (va, vb) in d.identity.items():
            c.print(f"  {k}: {escape(_fmt(va))} -> {escape(_fmt(vb))}")
        return
    for section in d.SECTIONS:
        rows = getattr(d, section)
        if not rows:
            continue
        t = Table(title=section, title_justify="left")
        t.add_column("key")
        t.add_column(a)
        t.add_column(b)
        for k, (va, vb) in rows.items():
            short = section == "files" or k == "requirements"
            fa = _fmt(va)[:12] if short and va else _fmt(va)
            fb = _fmt(vb)[:12] if short and vb else _fmt(vb)
            t.add_row(escape(k), escape(fa), escape(fb))
        c.print(t)


def render_log(c: Console, entries: list[AuditEntry]) -> None:
    """The audit trail, oldest first."""
    from rich.markup import escape
    from rich.table import Table

    if not entries:
        c.print("The audit trail is empty.")
        return
    t = Table()
    for col in ("#", "time", "actor", "action", "model", "details"):
        t.add_column(col)
    for e in entries:
        details = ", ".join(
            f"{k}={_fmt(v)}" for k, v in e.details.items() if v not in ("", None, [], False)
        )
        t.add_row(str(e.seq), e.time, escape(e.actor), e.action, e.model or "-", escape(details))
    c.print(t)


def render_profile(c: Console, spec: str, profile: Profile) -> None:
    """A stored profile, one row per feature (`mreg show NAME@V --profile`, issue 21)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    t = Table(
        title=f"profile of {escape(spec)}: {profile.rows:,} rows ({profile.format})",
        box=box.SIMPLE,
        title_justify="left",
    )
    for col in ("feature", "type", "missing", "distribution"):
        t.add_column(col)
    for f in profile.features:
        if f.type == "number":
            dist = f"min {_fmt(f.min)}, mean {_fmt(f.mean)}, max {_fmt(f.max)}, sd {_fmt(f.std)}"
        else:
            tops = ", ".join(f"{v} {n / f.count:.0%}" for v, n in f.top[:3]) if f.count else ""
            dist = tops + (f" (+{len(f.top) - 3} more)" if len(f.top) > 3 else "")
        t.add_row(escape(f.name), f.type, f"{f.missing_rate:.1%}", escape(dist))
    c.print(t)
