"""The drift page of a version: its production inputs against its training profile (issue 21).

Per profiled feature: PSI, distance, sample sizes, limit and status from
`monitoring.drift_report` (what `mreg monitor` says, with its default limit
`drift.features.psi <= auto`); PSI over time from `monitoring.drift_series`; and the
reference's shares against the window's shares per bin (a number's histogram bins, a
category's top values and "other"), counted by `analysis.drift.bin_counts`, the binning
PSI itself uses. The window comes from the query: `?since=T&until=T` (ISO-8601) or
`?window=24h` (before `until`, or now). Reads the store; never writes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelreg.errors import InvalidInput
from modelreg.ui.charts import COLORS, Bars, Series, bar_chart, line_chart
from modelreg.ui.render import Links
from modelreg.ui.views import View

if TYPE_CHECKING:
    from modelreg.dataprofile import Feature
    from modelreg.manifest import ModelVersion
    from modelreg.monitoring import DriftReport
    from modelreg.store import Store

__all__ = ["DRIFT_QUERY", "MAX_POINTS", "WINDOWS", "bin_labels", "drift_page", "series_step"]

DRIFT_QUERY = ("since", "until", "window", "data")
"""The query parameters of the drift page."""
WINDOWS = ("1h", "24h", "7d", "30d")
"""The windows the page offers as links (any `?window=` is accepted)."""
MAX_POINTS = 48
"""PSI over time is drawn in at most about this many buckets."""
_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)


def series_step(span: float, points: int = MAX_POINTS) -> float:
    """The bucket of the PSI-over-time charts: a round duration giving at most `points`."""
    want = max(span, 1.0) / points
    for step in _STEPS:
        if step >= want:
            return float(step)
    return float(math.ceil(want / 86400) * 86400)


def _num(x: float) -> str:
    return f"{x:.4g}"


def bin_labels(feature: Feature) -> list[str]:
    """The labels of a feature's bins, in `bin_counts` order: `≤ e1`, `e1–e2`, ..., `> ek`."""
    if feature.type != "number":
        return [value for value, _ in feature.top] + ["(other)"]
    edges = feature.edges
    if not edges:
        return ["all"]
    inner = [f"{_num(a)}–{_num(b)}" for a, b in itertools.pairwise(edges)]
    return [f"≤ {_num(edges[0])}", *inner, f"> {_num(edges[-1])}"]


def _shares(counts: Sequence[float]) -> list[float | None]:
    total = sum(counts)
    return [c / total if total else None for c in counts]


def _window(
    since: str | None, until: str | None, window: str | None
) -> tuple[float | None, float | None, float | None]:
    from modelreg.exportrecords import parse_time
    from modelreg.gc import parse_duration

    s = parse_time(since, "since") if since else None
    u = parse_time(until, "until") if until else None
    try:
        w = parse_duration(window) if window else None
    except InvalidInput as exc:
        raise InvalidInput(f"window={window!r}: {exc}") from None
    if w is not None and s is not None:
        raise InvalidInput("give since= or window=, not both")
    return s, u, w


def _histograms(
    store: Store, mv: ModelVersion, report: DriftReport, rows: Sequence[Any]
) -> dict[str, str]:
    """Per feature, the bar chart of the reference's and the window's shares per bin."""
    from modelreg.analysis.drift import bin_counts
    from modelreg.trainingdata import read_profile

    profile = read_profile(store, mv, report.data)
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row["features"].items():
            columns.setdefault(key, []).append(value)
    charts = {}
    for f in profile.features:
        ref, prod = bin_counts(f, columns.get(f.name, []))
        title = f"{f.name}: share per {'bin' if f.type == 'number' else 'value'}"
        charts[f.name] = bar_chart(
            f"hist-{f.name}", title, bin_labels(f),
            [Bars("reference", _shares(ref), COLORS["reference"]),
             Bars("production", _shares(prod), COLORS["production"])],
            y_fmt=lambda y: f"{y:.0%}" if y >= 0.1 or y == 0 else f"{y:.1%}",
        )  # fmt: skip
    return charts


def _psi_charts(
    store: Store, report: DriftReport, since: float, until: float
) -> tuple[dict[str, str], float]:
    """Per feature, PSI per bucket with its sample-size-aware limit; and the bucket (s)."""
    from modelreg.exportrecords import parse_time
    from modelreg.monitoring import drift_series

    step = series_step(until - since)
    start = math.floor(since / step) * step
    series = drift_series(store, f"{report.model}@{report.version}", since=start,
                          until=max(until, start + step), step=step, data=report.data)  # fmt: skip
    charts = {}
    for f in report.features:
        psi: list[tuple[float, float | None]] = []
        limit: list[tuple[float, float | None]] = []
        for b in series.buckets:
            x = parse_time(b["start"])
            got = b["features"].get(f.feature)
            psi.append((x, got["psi"] if got else None))
            limit.append((x, got["psi_limit"] if got else None))
        charts[f.feature] = line_chart(
            f"psi-{f.feature}", f"{f.feature}: PSI per {_duration(step)}",
            [Series("PSI", psi, COLORS["production"]),
             Series("limit max(0.1, psi_limit)", limit, COLORS["limit"], dash="4 3", width=1.5,
                    step=True)],
            x_range=(start, start + step * len(series.buckets)),
        )  # fmt: skip
    return charts, step


def _duration(seconds: float) -> str:
    from modelreg.analysis.checks import format_window

    return format_window(seconds)


def drift_page(
    view: View,
    name: str,
    version: str,
    links: Links,
    *,
    since: str | None = None,
    until: str | None = None,
    window: str | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """The drift page's data: the report, a row and two charts per feature, the window links.

    `data`: the profiled `--data` entry to compare with (default: the first one).

    Raises:
        NotFound: no such model or version.
        InvalidInput: a `since`, `until` or `window` that does not parse, an empty window,
            or `data` that is not a profiled entry of the version.
    """
    mv = view.require_version(name, version)
    query = {"since": since or "", "until": until or "", "window": window or "",
             "data": data or ""}  # fmt: skip
    here = {"until": query["until"], "data": query["data"]}
    profiled = [d.uri for d in mv.data if d.profile is not None]
    window_only = {k: query[k] for k in ("since", "until", "window")}
    ctx: dict[str, Any] = {
        "mv": mv,
        "query": query,
        "windows": [(w, links.drift(name, version, window=w, **here)) for w in WINDOWS],
        "all": links.drift(name, version, data=query["data"]),
        # several profiled data files: the page compares with one, the others a click away
        "references": [(u, links.drift(name, version, data=u, **window_only)) for u in profiled]
        if len(profiled) > 1
        else [],
        "report": None,
        "remote": False,
    }
    store = view.local_store()
    if store is None:
        ctx["remote"] = True
        return ctx
    from modelreg.monitoring import drift_report

    s, u, w = _window(since, until, window)
    report = drift_report(store, f"{name}@{version}", since=s, until=u, window=w, data=data)
    ctx["report"] = report
    if report.data is None:
        return ctx
    from modelreg.dataexport import read_rows
    from modelreg.exportrecords import parse_time

    s = parse_time(report.since) if report.since else None
    u = parse_time(report.until) if report.until else None
    rows = read_rows(store, name, version, since=s, until=u).rows
    ctx["histograms"] = _histograms(store, mv, report, rows)
    ctx["psi"], ctx["step"] = {}, None
    if rows:  # an open end of the window ends at its first or last row
        first = parse_time(rows[0]["time"]) if s is None else s
        last = parse_time(rows[-1]["time"]) + 1 if u is None else u
        ctx["psi"], ctx["step"] = _psi_charts(store, report, first, last)
        ctx["step_text"] = _duration(ctx["step"])
    return ctx
