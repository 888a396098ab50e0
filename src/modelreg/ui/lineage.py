"""The lineage page of a model: which version was trained on production data of which (issue 21).

A version registered with `--data` pointing at a `mreg data export` file records the link
in its manifest (`manifest.ProductionRef`: the exported model and version, the window, the
rows; `trainingdata.production_link`). This page collects those links over a model's
versions, newest first, as a table and as a chain drawn in SVG: one box per version, an
arrow from the version that served the data to the version trained on it. Reads a `View`;
never writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from modelreg.names import Version
from modelreg.ui.charts import COLORS
from modelreg.ui.views import View

__all__ = ["MAX_CHAIN_NODES", "MAX_LINEAGE_VERSIONS", "chain_svg", "lineage_page"]

MAX_LINEAGE_VERSIONS = 1000
"""The lineage page reads this many of a model's newest versions (one manifest each)."""
MAX_CHAIN_NODES = 60
"""The chain is drawn for at most this many versions; the table lists every link."""

_NODE_W, _NODE_H, _GAP = 96.0, 26.0, 34.0


def _window(since: str | None, until: str | None) -> str:
    if since is None and until is None:
        return "every sample"
    return f"{since or 'first sample'}..{until or 'last sample'}"


def lineage_page(view: View, name: str, href: Callable[[str, str], str]) -> dict[str, Any]:
    """The production-data links of a model's newest versions, and their chain as SVG.

    `href(model, version)` is where a box of the chain links ('' for no link).
    """
    found = view.version_page(name, limit=MAX_LINEAGE_VERSIONS)
    links: list[dict[str, Any]] = []
    trained = 0
    for info in found:
        mv = info.version
        here = [d for d in mv.data if d.from_production is not None]
        trained += bool(here)
        for d in here:
            p = d.from_production
            assert p is not None
            links.append(
                {
                    "version": mv.version,
                    "created": mv.created,
                    "model": p.model,
                    "source": p.version,
                    "since": p.since,
                    "until": p.until,
                    "window": _window(p.since, p.until),
                    "rows": p.rows,
                    "uri": d.uri,
                    "describe": f"{mv.name}@{mv.version} trained on {p.describe()}",
                }
            )
    nodes = {(name, link["version"]) for link in links}
    nodes |= {(link["model"], link["source"]) for link in links}
    edges = [((link["model"], link["source"]), (name, link["version"]), link) for link in links]
    chart = chain_svg(name, sorted(nodes, key=_order(name)), edges, href) if links else ""
    return {
        "name": name,
        "links": links,
        "trained": trained,
        "read": len(found),
        "total": found.total,
        "chart": chart if len(nodes) <= MAX_CHAIN_NODES else "",
        "nodes": len(nodes),
    }


def _order(name: str) -> Callable[[tuple[str, str]], tuple[bool, str, Version | str]]:
    """This model's versions first, in SemVer order; then other models' by name and version."""

    def key(node: tuple[str, str]) -> tuple[bool, str, Version | str]:
        model, version = node
        v: Version | str = Version(version) if Version.is_version(version) else version
        return (model != name, model, v)

    return key


def chain_svg(
    name: str,
    nodes: Sequence[tuple[str, str]],
    edges: Sequence[tuple[tuple[str, str], tuple[str, str], dict[str, Any]]],
    href: Callable[[str, str], str],
) -> str:
    """The chain as SVG: the versions as boxes left to right, an arc per link, source to target.

    Each box is a `g.node` (`data-node` "model@version"), each arc a `path.edge`
    (`data-from`, `data-to`, `data-rows`) with a tooltip saying the window and rows.
    """
    index = {n: i for i, n in enumerate(nodes)}
    spans = [abs(index[b] - index[a]) for a, b, _ in edges]
    lift = 28.0 + 16.0 * min(max(spans, default=1), 6)
    top = 22.0 + lift
    width = int(16 + len(nodes) * (_NODE_W + _GAP))
    height = int(top + _NODE_H + 16)

    def cx(i: int) -> float:
        return 16 + i * (_NODE_W + _GAP) + _NODE_W / 2

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chain" data-chart="lineage" '
        f'data-nodes="{len(nodes)}" data-edges="{len(edges)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(f"lineage of {name}")}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(f'production data lineage of {name}')}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        f'fill="{COLORS["production"]}"/></marker></defs>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for a, b, link in edges:
        i, j = index[a], index[b]
        # leave a box on its right, arrive on its left: arcs meeting at a box do not touch
        side = 1 if j >= i else -1  # i == j (its own production data): a loop above the box
        x1, x2 = cx(i) + 14 * side, cx(j) - 14 * side
        h = 20.0 + 16.0 * min(abs(j - i), 6)
        d = f"M{x1:.1f},{top:.1f}C{x1:.1f},{top - h:.1f} {x2:.1f},{top - h:.1f} {x2:.1f},{top:.1f}"
        mid_y = top - h * 0.75
        out.append(
            f'<path class="edge" data-from="{escape(f"{a[0]}@{a[1]}")}" '
            f'data-to="{escape(f"{b[0]}@{b[1]}")}" data-rows="{link["rows"]}" d="{d}" '
            f'fill="none" stroke="{COLORS["production"]}" stroke-width="1.8" '
            f'marker-end="url(#arrow)"><title>{escape(link["describe"])}</title></path>'
            f'<text x="{(x1 + x2) / 2:.1f}" y="{mid_y - 3:.1f}" text-anchor="middle" '
            f'fill="#555">{link["rows"]:,} rows<title>{escape(link["describe"])}</title></text>'
        )
    for i, (model, version) in enumerate(nodes):
        label = version if model == name else f"{model}@{version}"
        short = label if len(label) <= 15 else label[:14] + "…"
        x = cx(i) - _NODE_W / 2
        box = (
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{_NODE_W}" height="{_NODE_H}" rx="4" '
            f'fill="#eef4fb" stroke="{COLORS["reference"]}"/>'
            f'<text x="{cx(i):.1f}" y="{top + 17:.1f}" text-anchor="middle" fill="#1f2a37">'
            f"{escape(short)}</text><title>{escape(f'{model}@{version}')}</title>"
        )
        link_to = href(model, version)
        if link_to:
            box = f'<a href="{escape(link_to)}">{box}</a>'
        out.append(f'<g class="node" data-node="{escape(f"{model}@{version}")}">{box}</g>')
    out.append("</svg>")
    return "".join(out)
