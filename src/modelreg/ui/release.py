"""The release page's numbers and charts: weights, per-interval metrics, verdicts. Pure.

`release_charts` turns a rollout manifest, its metrics lines (as the serving processes
flushed them, `modelreg.serving.metrics`) and its analysis log (`release watch`) into SVG
charts: the canary weight over time against the step plan; canary versus baseline per
interval for the error rate, latency percentiles and each business outcome, each with a
95% confidence interval; each check's estimate with its always-valid interval, limit and
verdict at every analysis; and the moment of a rollback marked on all of them.

Intervals: per-interval values use the flushed lines whose end (`t1`) falls in the
interval. Error rate: Wilson score interval. Latency quantiles: the distribution-free
order-statistic interval (`analysis.stats.quantile_log_se`). Outcomes per request: the
normal interval of the mean (`analysis.stats.mean_var`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelreg.analysis import stats
from modelreg.release.bucketing import FULL, format_weight
from modelreg.release.rollout import SHADOW, Event, Rollout
from modelreg.serving.aggregate import LogHistogram
from modelreg.ui.charts import COLORS, Band, Dot, Marker, Series, line_chart

__all__ = ["Chart", "Memo", "ReleaseCharts", "epoch", "release_charts"]

Z95 = 1.959964
QUANTILES = (0.5, 0.95, 0.99)
_NICE_S = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def epoch(iso: str) -> float | None:
    """Epoch seconds of an ISO-8601 time (None if it does not parse)."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class Chart:
    """One rendered chart and what it shows."""

    key: str
    title: str
    svg: str


@dataclass(frozen=True)
class ReleaseCharts:
    """Every chart of a release page, and the facts shown beside them."""

    weight: Chart
    metrics: tuple[Chart, ...]
    checks: tuple[Chart, ...]
    interval_s: int
    requests: dict[str, int]
    rollback: dict[str, Any] | None
    lines: int


@dataclass
class _Cell:
    n: int = 0
    err: int = 0
    lat: LogHistogram = field(default_factory=LogHistogram)
    out: dict[str, list[float]] = field(default_factory=dict)


def _side(doc: Mapping[str, Any], r: Rollout) -> str:
    version, variant = doc.get("version"), doc.get("variant")
    if version == r.canary.version and (variant == "canary" or doc.get("shadow")):
        return "canary"
    if version == r.baseline.version and variant == "baseline" and not doc.get("shadow"):
        return "baseline"
    return ""


def _interval(span: float) -> int:
    want = max(span / 40, 1)
    return next((s for s in _NICE_S if s >= want), _NICE_S[-1])


def _wilson(x: int, n: int) -> tuple[float, float]:
    p = x / n
    denom = 1 + Z95 * Z95 / n
    mid = (p + Z95 * Z95 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / denom
    return max(mid - half, 0.0), min(mid + half, 1.0)


def _events(r: Rollout) -> list[tuple[float, Event]]:
    out = []
    for e in r.history:
        t = epoch(e.time)
        if e.release == r.release and t is not None:
            out.append((t, e))
    return out


def _rollback(r: Rollout) -> tuple[float, Event] | None:
    for t, e in _events(r):
        if e.action == "abort":
            return t, e
    return None


def _markers(r: Rollout) -> list[Marker]:
    out = []
    for t, e in _events(r):
        if e.action == "abort":
            automatic = e.reason.startswith("analysis:")
            label = "automatic rollback" if automatic else "aborted"
            out.append(Marker(t, label, COLORS["rollback"], strong=True))
        elif e.action == "promote":
            out.append(Marker(t, "promoted", COLORS["pass"], strong=True))
        elif e.action in ("start", "step", "set"):
            label = "shadow" if e.shadow else f"{format_weight(e.weight)}%"
            out.append(Marker(t, label, COLORS["step"]))
        elif e.action in ("pause", "resume"):
            out.append(Marker(t, e.action + "d", COLORS["limit"]))
    return out


def _weight_chart(r: Rollout, end: float, x_range: tuple[float, float]) -> Chart:
    pts: list[tuple[float, float | None]] = []
    for t, e in _events(r):
        if e.state == "promoted":
            share = 100.0
        elif e.state in ("progressing", "paused") and not e.shadow:
            share = e.weight / 100
        else:
            share = 0.0
        pts.append((t, share))
    if pts:
        pts.append((max(end, pts[-1][0]), pts[-1][1]))
    plan = [(s / 100, f"step {format_weight(s)}%") for s in r.steps if isinstance(s, int)]
    plan += [(0.0, "shadow")] if SHADOW in r.steps else []
    svg = line_chart(
        "weight", "Canary weight (% of requests) and the step plan",
        [Series("canary weight", pts, COLORS["canary"], step=True)],
        markers=_markers(r), hlines=plan, x_range=x_range, y_min=0,
        y_max=max(100.0, FULL / 100), y_fmt=lambda y: f"{y:g}%",
    )  # fmt: skip
    return Chart("weight", "Canary weight", svg)


class Memo:
    """Per-file aggregates kept between requests (one per server; never shared globally).

    Metrics files are append-only and most are sealed, so what a file contributes to each
    interval is computed once per (file contents, interval width, versions): a release page
    re-reads only the files that grew since the last request.
    """

    def __init__(self) -> None:
        self._files: dict[tuple[Any, ...], tuple[list[Any], _FileAgg]] = {}

    def get(self, key: tuple[Any, ...], docs: list[Any]) -> _FileAgg | None:
        """The aggregate of `docs` under `key`, if computed from this very list."""
        hit = self._files.get(key)
        # The same list object means the same unchanged file (views keep parsed files);
        # holding the list keeps its identity from being reused.
        return hit[1] if hit is not None and hit[0] is docs else None

    def put(self, key: tuple[Any, ...], docs: list[Any], agg: _FileAgg) -> None:
        """Keep `agg`, computed from `docs` (bounded: starts again when full)."""
        if len(self._files) >= 20_000:
            self._files.clear()
        self._files[key] = (docs, agg)


@dataclass
class _FileAgg:
    cells: dict[str, dict[int, _Cell]]
    lines: int


def _span(docs: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    t0, t1 = math.inf, -math.inf
    for d in docs:
        if "t1" in d:
            end = float(d["t1"])
            t0, t1 = min(t0, float(d.get("t0", end))), max(t1, end)
    return t0, t1


def _file_cells(r: Rollout, docs: Sequence[Mapping[str, Any]], step: int) -> _FileAgg:
    cells: dict[str, dict[int, _Cell]] = {"baseline": {}, "canary": {}}
    # Latency buckets summed with the keys as written (text): converted once per cell below,
    # not once per line (the release page merges every line of a release).
    raw: dict[tuple[str, int], tuple[dict[str, int], dict[str, int], list[int]]] = {}
    lines = 0
    for d in docs:
        side = _side(d, r)
        if not side or "t1" not in d:
            continue
        lines += 1
        cell_key = int(float(d["t1"]) // step)
        cell = cells[side].setdefault(cell_key, _Cell())
        cell.n += int(d.get("n", 0))
        cell.err += int(d.get("err", 0))
        if "lat" in d:
            _add_raw(raw.setdefault((side, cell_key), ({}, {}, [0, 0])), d["lat"])
        for name, (c, total, sq) in (d.get("out") or {}).items():
            o = cell.out.setdefault(str(name), [0, 0.0, 0.0])
            o[0], o[1], o[2] = o[0] + c, o[1] + total, o[2] + sq
    for (side, cell_key), (pos, neg, nz) in raw.items():
        lat = cells[side][cell_key].lat
        lat.count, lat.zero = nz
        lat.pos = {int(k): c for k, c in pos.items()}
        lat.neg = {int(k): c for k, c in neg.items()}
    return _FileAgg(cells, lines)


def _add_raw(
    into: tuple[dict[str, int], dict[str, int], list[int]], doc: Mapping[str, Any]
) -> None:
    """Add a line's latency histogram (`LogHistogram.to_dict` form) to text-keyed sums."""
    pos, neg, nz = into
    nz[0] += int(doc.get("n", 0))
    nz[1] += int(doc.get("z", 0))
    for field_, target in (("p", pos), ("m", neg)):
        for i, c in (doc.get(field_) or {}).items():
            target[i] = target.get(i, 0) + c


def _aggregate(
    r: Rollout, files: Mapping[str, list[Any]], memo: Memo | None
) -> tuple[dict[str, dict[int, _Cell]], float, float, int, int]:
    """Cells per side and interval over every file; (cells, start, end, interval, lines)."""
    t0, t1 = math.inf, -math.inf
    for docs in files.values():
        a, b = _span(docs)
        t0, t1 = min(t0, a), max(t1, b)
    if math.isinf(t0):
        return {"baseline": {}, "canary": {}}, math.nan, math.nan, 0, 0
    step = _interval(t1 - t0)
    total: dict[str, dict[int, _Cell]] = {"baseline": {}, "canary": {}}
    lines = 0
    for name, docs in files.items():
        key = (r.model, r.release, name, step, r.baseline.version, r.canary.version)
        agg = memo.get(key, docs) if memo is not None else None
        if agg is None:
            agg = _file_cells(r, docs, step)
            if memo is not None:
                memo.put(key, docs, agg)
        lines += agg.lines
        for side, by_bucket in agg.cells.items():
            for k, c in by_bucket.items():
                into = total[side].get(k)
                if into is None:
                    into = total[side][k] = _Cell()
                into.n += c.n
                into.err += c.err
                into.lat.merge(c.lat)
                for o_name, (cnt, tot, sq) in c.out.items():
                    o = into.out.setdefault(o_name, [0, 0.0, 0.0])
                    o[0], o[1], o[2] = o[0] + cnt, o[1] + tot, o[2] + sq
    return total, t0, t1, step, lines


def _series(cells: dict[str, dict[int, _Cell]], step: int, value: Any, band: Any) -> list[Series]:
    out = []
    for side in ("baseline", "canary"):
        pts: list[tuple[float, float | None]] = []
        bpts: list[tuple[float, float, float]] = []
        for k in sorted(cells[side]):
            x = (k + 0.5) * step
            c = cells[side][k]
            y = value(c) if c.n else None
            pts.append((x, y))
            b = band(c) if y is not None else None
            if b is not None:
                bpts.append((x, b[0], b[1]))
        out.append(Series(side, pts, COLORS[side], band=Band(bpts)))
    return out


def _dots(judgments: Sequence[Mapping[str, Any]], match: Any, scale: float) -> list[Dot]:
    out = []
    for j in judgments:
        t = epoch(str(j.get("time", "")))
        for c in j.get("checks") or ():
            if t is None or not match(str(c.get("metric", ""))) or c.get("canary") is None:
                continue
            verdict = str(c.get("verdict"))
            title = f"analysis at {j.get('time')}: {c.get('name')}: {verdict}: {c.get('reason')}"
            out.append(Dot(t, float(c["canary"]) * scale, COLORS.get(verdict, "#888"), title))
    return out


def _metric_charts(
    r: Rollout, cells: dict[str, dict[int, _Cell]], step: int,
    judgments: Sequence[Mapping[str, Any]], x_range: tuple[float, float],
) -> list[Chart]:  # fmt: skip
    markers = _markers(r)
    charts = []

    def err_band(c: _Cell) -> tuple[float, float]:
        lo, hi = _wilson(c.err, c.n)
        return lo * 100, hi * 100

    svg = line_chart(
        "error-rate", f"Error rate per {step}s interval (95% CI)",
        _series(cells, step, lambda c: c.err / c.n * 100, err_band),
        markers=markers, dots=_dots(judgments, lambda m: m == "error_rate", 100),
        x_range=x_range, y_min=0, y_fmt=lambda y: f"{y:.3g}%",
    )  # fmt: skip
    charts.append(Chart("error-rate", "Error rate", svg))
    quantiles = list(QUANTILES)
    for a in r.analysis:
        m = str(a.get("metric", ""))
        if m.startswith("latency.p") and m[9:].replace(".", "", 1).isdigit():
            q = float(m[9:]) / 100
            if 0 < q < 1 and q not in quantiles:
                quantiles.append(q)
    for q in sorted(quantiles):
        label = f"p{q * 100:g}"

        def value(c: _Cell, q: float = q) -> float | None:
            return c.lat.quantile(q) if c.lat.count else None

        def band(c: _Cell, q: float = q) -> tuple[float, float] | None:
            v, se = c.lat.quantile(q), stats.quantile_log_se(c.lat.bins(), q)
            if v is None or se is None:
                return None
            return v * math.exp(-Z95 * se), v * math.exp(Z95 * se)

        svg = line_chart(
            f"latency-{label}", f"Latency {label} (ms) per {step}s interval (95% CI)",
            _series(cells, step, value, band), markers=markers,
            dots=_dots(judgments, lambda m, label=label: m == f"latency.{label}", 1),
            x_range=x_range, y_fmt=lambda y: f"{y:.3g}",
        )  # fmt: skip
        charts.append(Chart(f"latency-{label}", f"Latency {label}", svg))
    outcomes = sorted({n for side in cells.values() for c in side.values() for n in c.out})
    for name in outcomes:

        def mean(c: _Cell, name: str = name) -> float | None:
            o = c.out.get(name)
            return o[1] / c.n if o and c.n else (0.0 if c.n else None)

        def mband(c: _Cell, name: str = name) -> tuple[float, float] | None:
            o = c.out.get(name, [0, 0.0, 0.0])
            if c.n < 2:
                return None
            m, half = o[1] / c.n, Z95 * math.sqrt(stats.mean_var(c.n, o[1], o[2]) / c.n)
            return m - half, m + half

        key = "outcome-" + "".join(ch if ch.isalnum() else "-" for ch in name)
        svg = line_chart(
            key, f"{name} per request, per {step}s interval (95% CI)",
            _series(cells, step, mean, mband), markers=markers,
            dots=_dots(judgments, lambda m, name=name: m.removesuffix(".mean") == name, 1),
            x_range=x_range,
        )  # fmt: skip
        charts.append(Chart(key, name, svg))
    return charts


def _check_charts(
    r: Rollout, judgments: Sequence[Mapping[str, Any]], x_range: tuple[float, float] | None
) -> list[Chart]:
    by_name: dict[str, list[tuple[float, Mapping[str, Any]]]] = {}
    for j in judgments:
        t = epoch(str(j.get("time", "")))
        if t is None:
            continue
        for c in j.get("checks") or ():
            by_name.setdefault(str(c.get("name")), []).append((t, c))
    charts = []
    for i, (name, items) in enumerate(by_name.items(), 1):
        metric = str(items[-1][1].get("metric", ""))
        scale = 100.0 if metric in ("error_rate", "agreement") else 1.0

        def val(c: Mapping[str, Any], k: str, scale: float = scale) -> float | None:
            v = c.get(k)
            return None if v is None else float(v) * scale

        canary = [(t, val(c, "canary")) for t, c in items]
        base = [(t, val(c, "baseline")) for t, c in items]
        limit = [(t, val(c, "limit")) for t, c in items]
        band = [
            (t, float(c["interval"][0]) * scale, float(c["interval"][1]) * scale)
            for t, c in items
            if c.get("interval")
        ]
        dots = [
            Dot(t, y, COLORS.get(str(c.get("verdict")), "#888"),
                f"{name}: {c.get('verdict')}: {c.get('reason')}")
            for (t, c), (_, y) in zip(items, canary, strict=True) if y is not None
        ]  # fmt: skip
        svg = line_chart(
            f"check-{i}", f"Check {items[-1][1].get('check') or name}",
            [
                Series("baseline", base, COLORS["baseline"]),
                Series("canary (always-valid interval)", canary, COLORS["canary"], band=Band(band)),
                Series("limit", limit, COLORS["limit"], dash="5 4", width=1.5),
            ],
            markers=[m for m in _markers(r) if m.strong], dots=dots, x_range=x_range,
            height=180, y_fmt=(lambda y: f"{y:.3g}%") if scale == 100 else (lambda y: f"{y:.3g}"),
        )  # fmt: skip
        charts.append(Chart(f"check-{i}", name, svg))
    return charts


def release_charts(
    r: Rollout,
    files: Mapping[str, list[Any]],
    judgments: Sequence[Mapping[str, Any]],
    now: float,
    memo: Memo | None = None,
) -> ReleaseCharts:
    """Every chart of the release page (`now`: where a live release's weight line ends).

    Args:
        r: The rollout manifest.
        files: The release's metrics lines per file (`View.metric_files`).
        judgments: The release's analysis log.
        now: The current time (epoch seconds).
        memo: Per-file aggregates kept from earlier calls (the server keeps one).
    """
    cells, t0, t1, step, n_lines = _aggregate(r, files, memo)
    times = [t for t, _ in _events(r)]
    times += [t for j in judgments if (t := epoch(str(j.get("time", "")))) is not None]
    if not math.isnan(t0):
        times += [t0, t1]
    end = max(times) if times else now
    if r.live:
        end = max(end, min(now, end + 3600))
    x_range = (min(times), end) if times else (now - 60, now)
    weight = _weight_chart(r, end, x_range)
    metrics = _metric_charts(r, cells, step or 60, judgments, x_range)
    checks = _check_charts(r, judgments, x_range)
    requests = {s: sum(c.n for c in cells[s].values()) for s in ("baseline", "canary")}
    rb = _rollback(r)
    rollback = None
    if rb is not None:
        rollback = {
            "time": rb[1].time,
            "actor": rb[1].actor,
            "reason": rb[1].reason,
            "automatic": rb[1].reason.startswith("analysis:"),
        }
    return ReleaseCharts(
        weight, tuple(metrics), tuple(checks), int(step or 0), requests, rollback, n_lines
    )
