"""Server-side SVG charts: lines with confidence bands, step lines, markers. Pure, no I/O.

The web view draws its charts here rather than with a JavaScript library, so a page and
a self-contained report render with no network access and no script at all, and the same
SVG becomes the `--png` image (cairosvg). Every text that reaches the SVG is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape

__all__ = [
    "COLORS",
    "Band",
    "Bars",
    "Dot",
    "Marker",
    "Series",
    "bar_chart",
    "line_chart",
    "nice_ticks",
]

COLORS = {
    "baseline": "#4c72b0",
    "canary": "#dd8452",
    "limit": "#8c8c8c",
    "pass": "#2ca02c",
    "fail": "#d62728",
    "inconclusive": "#e0a800",
    "skipped": "#8c8c8c",
    "rollback": "#d62728",
    "step": "#9467bd",
    "reference": "#4c72b0",
    "production": "#dd8452",
}

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Band:
    """A confidence band: (x, low, high) triples."""

    points: Sequence[tuple[float, float, float]]


@dataclass(frozen=True)
class Series:
    """One line: (x, y) points (y None: a gap), an optional band, drawn as steps or lines."""

    name: str
    points: Sequence[Point]
    color: str
    band: Band | None = None
    step: bool = False
    dash: str = ""
    width: float = 2.0


@dataclass(frozen=True)
class Marker:
    """A vertical line at `x` with a label (a step, a rollback)."""

    x: float
    label: str
    color: str
    strong: bool = False


@dataclass(frozen=True)
class Dot:
    """A point with a tooltip (an analysis verdict)."""

    x: float
    y: float
    color: str
    title: str


@dataclass
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float
    left: float = 62.0
    right: float = 16.0
    top: float = 40.0
    bottom: float = 30.0
    width: float = 720.0
    height: float = 220.0
    extra: list[str] = field(default_factory=list)

    def sx(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def sy(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (y - self.y0) / span * (self.height - self.top - self.bottom)
        )


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_time(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else "%m-%d %H:%M")


def _default_fmt(y: float) -> str:
    return f"{y:.3g}"


def _path(frame: _Frame, points: Sequence[Point], step: bool) -> str:
    d: list[str] = []
    pen_up = True
    last_y: float | None = None
    alone = False  # the segment so far is one point
    for x, y in points:
        if y is None or not math.isfinite(y):
            if alone:
                d.append(_TICK)
            pen_up, alone = True, False
            continue
        px, py = frame.sx(x), frame.sy(y)
        if pen_up:
            d.append(f"M{px:.1f},{py:.1f}")
            alone = True
        elif step and last_y is not None:
            d.append(f"H{px:.1f}V{py:.1f}")
            alone = False
        else:
            d.append(f"L{px:.1f},{py:.1f}")
            alone = False
        pen_up, last_y = False, py
    if alone:
        d.append(_TICK)
    return "".join(d)


_TICK = "m-6,0h12"
"""A value known at one point only (a check judged once) is drawn as a short level tick."""


def line_chart(
    key: str,
    title: str,
    series: Sequence[Series],
    *,
    markers: Sequence[Marker] = (),
    dots: Sequence[Dot] = (),
    hlines: Sequence[tuple[float, str]] = (),
    x_range: tuple[float, float] | None = None,
    y_min: float | None = None,
    y_max: float | None = None,
    y_fmt: Callable[[float], str] = _default_fmt,
    width: int = 640,
    height: int = 220,
) -> str:
    """An SVG line chart over time (x: epoch seconds) with bands, markers and dots.

    Args:
        key: A stable identifier (`data-chart`), used by tests and anchors.
        title: The chart's title.
        series: The lines.
        markers: Vertical lines (steps, a rollback).
        dots: Points with tooltips (analysis verdicts).
        hlines: Horizontal reference lines (y, label), e.g. the step plan.
        x_range: The time range (default: the data's).
        y_min: Lowest y shown (default: from the data, 0 if the data are positive).
        y_max: Highest y shown (default: from the data).
        y_fmt: Formats y tick labels.
        width: Width in pixels.
        height: Height in pixels.
    """
    xs = [x for s in series for x, y in s.points if y is not None]
    xs += [m.x for m in markers] + [d.x for d in dots]
    ys = [y for s in series for _, y in s.points if y is not None and math.isfinite(y)]
    for s in series:
        if s.band:
            ys += [v for _, lo, hi in s.band.points for v in (lo, hi) if math.isfinite(v)]
    ys += [d.y for d in dots] + [y for y, _ in hlines]
    n_points = sum(1 for s in series for _, y in s.points if y is not None)
    if x_range is None:
        x_range = (min(xs), max(xs)) if xs else (0.0, 1.0)
    lo_y = y_min if y_min is not None else (min(0.0, min(ys)) if ys else 0.0)
    hi_y = y_max if y_max is not None else (max(ys) if ys else 1.0)
    if hi_y <= lo_y:
        hi_y = lo_y + (abs(lo_y) or 1.0)
    hi_y += (hi_y - lo_y) * 0.05
    f = _Frame(x_range[0], x_range[1], lo_y, hi_y, width=width, height=height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(key)}" '
        f'data-points="{n_points}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{f.left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    plot_w = width - f.left - f.right
    for t in nice_ticks(lo_y, hi_y, 4):
        y = f.sy(t)
        out.append(
            f'<line x1="{f.left}" x2="{f.left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#eeeeee"/>'
            f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(y_fmt(t))}</text>"
        )
    span = x_range[1] - x_range[0]
    if span > 0:
        for t in nice_ticks(x_range[0], x_range[1], 6):
            x = f.sx(t)
            out.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#555">'
                f"{escape(_fmt_time(t, span))}</text>"
            )
    out.append(
        f'<line x1="{f.left}" x2="{f.left}" y1="{f.top}" y2="{height - f.bottom}" stroke="#999"/>'
        f'<line x1="{f.left}" x2="{f.left + plot_w}" y1="{height - f.bottom}" '
        f'y2="{height - f.bottom}" stroke="#999"/>'
    )
    for y, label in hlines:
        py = f.sy(y)
        out.append(
            f'<line class="hline" x1="{f.left}" x2="{f.left + plot_w}" y1="{py:.1f}" '
            f'y2="{py:.1f}" stroke="#bbbbbb" stroke-dasharray="4 3"/>'
            f'<text x="{f.left + plot_w - 2}" y="{py - 3:.1f}" text-anchor="end" fill="#888">'
            f"{escape(label)}</text>"
        )
    for s in series:
        if s.band and s.band.points:
            pts = [p for p in s.band.points if math.isfinite(p[1]) and math.isfinite(p[2])]
            if pts:
                upper = " ".join(f"{f.sx(x):.1f},{f.sy(hi):.1f}" for x, _, hi in pts)
                lower = " ".join(f"{f.sx(x):.1f},{f.sy(lo):.1f}" for x, lo, _ in reversed(pts))
                out.append(
                    f'<polygon class="band" data-series="{escape(s.name)}" '
                    f'points="{upper} {lower}" fill="{s.color}" fill-opacity="0.18" '
                    'stroke="none"><title>'
                    f"{escape(s.name)}: 95% confidence interval</title></polygon>"
                )
    for s in series:
        d = _path(f, s.points, s.step)
        if d:
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            out.append(
                f'<path class="line" data-series="{escape(s.name)}" d="{d}" fill="none" '
                f'stroke="{s.color}" stroke-width="{s.width}"{dash}>'
                f"<title>{escape(s.name)}</title></path>"
            )
    for m in markers:
        x = f.sx(m.x)
        cls = "marker rollback" if m.strong else "marker"
        out.append(
            f'<g class="{cls}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" '
            f'y2="{height - f.bottom}" stroke="{m.color}" '
            f'stroke-width="{2.5 if m.strong else 1}" '
            f'stroke-dasharray="{"" if m.strong else "3 3"}"/>'
            f'<text x="{x + 3:.1f}" y="{f.top + 10}" fill="{m.color}" '
            f'font-weight="{"bold" if m.strong else "normal"}">{escape(m.label)}</text>'
            f"<title>{escape(m.label)}</title></g>"
        )
    severity = {"#d62728": 2, "#e0a800": 1}  # draw failures last, on top
    for dot in sorted(dots, key=lambda d: severity.get(d.color, 0)):
        out.append(
            f'<circle class="verdict" cx="{f.sx(dot.x):.1f}" cy="{f.sy(dot.y):.1f}" r="4" '
            f'fill="{dot.color}" stroke="#fff"><title>{escape(dot.title)}</title></circle>'
        )
    _close(out, series, f.left, 4, empty=not n_points, width=width, height=height)
    return "".join(out)


@dataclass(frozen=True)
class Bars:
    """One series of a bar chart: a value per group (None: no bar)."""

    name: str
    values: Sequence[float | None]
    color: str


_CHAR_W = 6.0
"""About how wide a character of a group's label is (10 px sans-serif)."""


def bar_chart(
    key: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Bars],
    *,
    y_fmt: Callable[[float], str] = _default_fmt,
    width: int = 640,
    height: int = 220,
) -> str:
    """An SVG bar chart: one group of bars per label, one bar per series (side by side).

    Each bar is a `rect.bar` with `data-series`, `data-label` and `data-value`, and a
    tooltip giving the three; a label under its group is cut to the group's width (whole in
    its tooltip).

    Args:
        key: A stable identifier (`data-chart`), used by tests and anchors.
        title: The chart's title.
        labels: The groups, left to right (a histogram's bins, a category's values).
        series: The bars of each group, in this order.
        y_fmt: Formats y tick labels and tooltips.
        width: Width in pixels.
        height: Height in pixels.
    """
    ys = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    hi_y = max(ys, default=0.0) or 1.0
    f = _Frame(0.0, float(len(labels) or 1), 0.0, hi_y * 1.05, width=width, height=height)
    f.bottom = 44.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" data-chart="{escape(key)}" '
        f'data-groups="{len(labels)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{f.left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    plot_w = width - f.left - f.right
    base = f.sy(0.0)
    for t in nice_ticks(0.0, f.y1, 4):
        y = f.sy(t)
        out.append(
            f'<line x1="{f.left}" x2="{f.left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#eeeeee"/>'
            f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(y_fmt(t))}</text>"
        )
    group_w = plot_w / (len(labels) or 1)
    bar_w = group_w * 0.8 / (len(series) or 1)
    fit = max(3, int(group_w / _CHAR_W))
    for i, label in enumerate(labels):
        x0 = f.sx(float(i)) + group_w * 0.1
        for j, s in enumerate(series):
            v = s.values[i] if i < len(s.values) else None
            if v is None or not math.isfinite(v):
                continue
            top = f.sy(v)
            tip = f"{s.name}, {label}: {y_fmt(v)}"
            out.append(
                f'<rect class="bar" data-series="{escape(s.name)}" data-label="{escape(label)}" '
                f'data-value="{v:.6g}" x="{x0 + j * bar_w:.1f}" y="{top:.1f}" '
                f'width="{max(bar_w - 1, 1):.1f}" height="{max(base - top, 0):.1f}" '
                f'fill="{s.color}"><title>{escape(tip)}</title></rect>'
            )
        short = label if len(label) <= fit else label[: fit - 1] + "…"
        out.append(
            f'<text x="{f.sx(i + 0.5):.1f}" y="{height - f.bottom + 14}" text-anchor="middle" '
            f'fill="#555" font-size="10">{escape(short)}<title>{escape(label)}</title></text>'
        )
    out.append(
        f'<line x1="{f.left}" x2="{f.left}" y1="{f.top}" y2="{base:.1f}" stroke="#999"/>'
        f'<line x1="{f.left}" x2="{f.left + plot_w}" y1="{base:.1f}" y2="{base:.1f}" '
        'stroke="#999"/>'
    )
    _close(out, series, f.left, 8, empty=not ys, width=width, height=height)
    return "".join(out)


def _close(
    out: list[str],
    series: Sequence[Series] | Sequence[Bars],
    left: float,
    swatch: int,
    *,
    empty: bool,
    width: int,
    height: int,
) -> None:
    """End a chart: the legend, the note of an empty chart, the closing tag.

    Each series' legend mark is `swatch` pixels high (a line's 4, a bar's 8).
    """
    x = left
    for s in series:
        out.append(
            f'<rect x="{x:.0f}" y="25" width="12" height="{swatch}" fill="{s.color}"/>'
            f'<text x="{x + 16:.0f}" y="{29 + swatch // 2}" fill="#333">{escape(s.name)}</text>'
        )
        x += 30 + 6.5 * len(s.name)
    if empty:
        out.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">'
            "no data recorded yet</text>"
        )
    out.append("</svg>")
