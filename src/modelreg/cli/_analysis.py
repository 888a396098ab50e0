"""How `mreg release analyze` shows a judgment to people: one line, a table, the reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.analysis import Analysis

__all__ = ["render_analysis"]


def render_analysis(c: Console, a: Analysis) -> None:
    """The analysis as a rich table, with each failing or inconclusive check's reason."""
    from rich.markup import escape
    from rich.table import Table

    colour = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim"}
    c.print(
        f"[bold]{a.model}[/] release {a.release} ({a.state}, canary {a.weight:g}%, {a.mode}): "
        f"baseline {a.baseline} ({a.n_baseline:,} requests), canary {a.canary} "
        f"({a.n_canary:,} requests)"
    )
    from modelreg.analysis.judge import format_value

    t = Table(title=f"analysis: [{colour[a.verdict]}]{a.verdict}[/]")
    for col in ("check", "baseline", "canary", "interval", "limit", "difference", "p", "verdict"):
        t.add_column(col)
    for r in a.results:

        def fmt(x: float | None, r: Any = r) -> str:
            return format_value(r.check, x)

        interval = "-" if r.low is None else f"[{fmt(r.low)}, {fmt(r.high)}]"
        diff = r.difference
        if diff is None:
            shown = "-"
        elif r.check.kind == "quantile":
            shown = f"x{diff:.3g}"
        else:
            shown = ("+" if diff >= 0 else "") + fmt(diff)
        t.add_row(
            escape(r.check.text()), fmt(r.baseline), fmt(r.canary), escape(interval),
            fmt(r.limit), shown, "-" if r.p_value is None else f"{r.p_value:.2g}",
            f"[{colour[r.verdict]}]{r.verdict}[/]",
        )  # fmt: skip
    c.print(t)
    c.print(
        f"intervals hold at {1 - a.policy.alpha / max(len(a.results), 1):.2%} confidence at "
        "every look; p: always-valid p-value that the canary is within its limit"
    )
    for r in a.results:
        if r.verdict in ("fail", "inconclusive"):
            c.print(f"  {escape(r.check.label)}: {escape(r.reason)}")
