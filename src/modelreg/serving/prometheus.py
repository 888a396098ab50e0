"""Prometheus exposition of a serving process's metrics (the `prometheus` extra, issue 6).

A custom collector reads the recorder's running totals at scrape time, so recording costs
nothing more with Prometheus on. Every series has the labels `model`, `version` and
`variant` (`baseline`, `canary`, or `shadow` for the canary's mirrored calls):

| series | type | what |
|---|---|---|
| `mreg_requests_total` | counter | requests recorded |
| `mreg_errors_total` | counter | of which errors |
| `mreg_latency_seconds` | histogram | latency, buckets `LATENCY_BUCKETS` |
| `mreg_outcomes_total{metric}` | counter | observations of a business outcome |
| `mreg_outcome_value_total{metric}` | counter | their sum (outcomes must be >= 0) |
| `mreg_outcome_square_total{metric}` | counter | the sum of their squares |
| `mreg_score` | histogram | prediction scores, buckets `SCORE_BUCKETS` (0 to 1) |
| `mreg_shadow_pairs_total` | counter | shadow comparisons |
| `mreg_shadow_diff` | histogram | absolute differences of shadow answers (+Inf: unequal) |

and, labelled `model` only, the router's configuration checks (issue 8):
`mreg_config_checks_total`, `mreg_config_reloads_total`, `mreg_config_reload_failures_total`
(counters), `mreg_config_generation` and `mreg_config_failing` (gauges; 1 while the latest
check failed and the last good configuration is served).

`modelreg.analysis.sources.PrometheusSource` reads these back through Prometheus's HTTP API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from modelreg.serving.aggregate import LogHistogram, accumulate
from modelreg.serving.protocols import Totals

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["DIFF_BUCKETS", "LATENCY_BUCKETS", "SCORE_BUCKETS", "MetricsCollector", "serve"]

LATENCY_BUCKETS = tuple(round(1e-4 * 2 ** (i / 4), 7) for i in range(78))
"""Latency bucket bounds in seconds: 0.1 ms to about 70 s, each 19% above the last."""
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))
"""Score bucket bounds: 0.05 to 1.0 (scores below 0 count in the first)."""
DIFF_BUCKETS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
"""Bounds for the absolute difference of shadow answers; unequal non-numbers go to +Inf."""
LABELS = ("model", "version", "variant")


def cumulative(h: LogHistogram, bounds: Iterable[float], scale: float = 1.0) -> list[int]:
    """Counts of `h` at or below each bound (values multiplied by `scale` first)."""
    bins = [(2 * lo * hi / (lo + hi) if lo + hi else 0.0, c) for lo, hi, c in h.bins()]
    out, i, seen = [], 0, 0
    for b in bounds:
        while i < len(bins) and bins[i][0] * scale <= b:
            seen += bins[i][1]
            i += 1
        out.append(seen)
    return out


def _buckets(counts: list[int], bounds: Iterable[float], total: int) -> list[tuple[str, float]]:
    return [*((repr(float(b)), float(c)) for b, c in zip(bounds, counts, strict=True)),
            ("+Inf", float(total))]  # fmt: skip


class MetricsCollector(Collector):
    """Yields the recorder's totals per (version, variant) at every scrape.

    `metrics` is any `protocols.Totals` (normally the router's `Metrics`): the collector
    reads its groups, its retired totals and the router's health, nothing else.
    """

    def __init__(self, metrics: Totals, model: str) -> None:
        self._metrics = metrics
        self._model = model

    def _totals(self) -> dict[tuple[str, str], dict[str, Any]]:
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        for (version, variant, shadow), acc in list(self._metrics.retired().items()):
            key = (version, "shadow" if shadow else variant)
            accumulate(totals.setdefault(key, {}), _copy(acc))
        for g in self._metrics.groups():
            key = (g.version, "shadow" if g.shadow else g.variant)
            accumulate(totals.setdefault(key, {}), g.snapshot())
        return totals

    def collect(self) -> Iterator[Metric]:
        """The metric families (called by prometheus_client at each scrape)."""
        req = CounterMetricFamily("mreg_requests", "Requests recorded.", labels=LABELS)
        err = CounterMetricFamily("mreg_errors", "Requests that failed.", labels=LABELS)
        lat = HistogramMetricFamily("mreg_latency_seconds", "Model latency.", labels=LABELS)
        names = (*LABELS, "metric")
        cnt = CounterMetricFamily("mreg_outcomes", "Business outcomes observed.", labels=names)
        val = CounterMetricFamily("mreg_outcome_value", "Sum of outcome values.", labels=names)
        sq = CounterMetricFamily("mreg_outcome_square", "Sum of squared outcomes.", labels=names)
        score = HistogramMetricFamily("mreg_score", "Prediction scores.", labels=LABELS)
        pairs = CounterMetricFamily("mreg_shadow_pairs", "Shadow comparisons.", labels=LABELS)
        diff = HistogramMetricFamily("mreg_shadow_diff", "Shadow answer gaps.", labels=LABELS)
        for (version, variant), t in sorted(self._totals().items()):
            labels = [self._model, version, variant]
            req.add_metric(labels, t["n"])
            err.add_metric(labels, t["err"])
            h: LogHistogram = t["lat"]
            counts = cumulative(h, LATENCY_BUCKETS, 0.001)
            lat.add_metric(labels, _buckets(counts, LATENCY_BUCKETS, h.count), t["lsum"] / 1000)
            for name, (c, s, ss) in sorted(t["out"].items()):
                cnt.add_metric([*labels, name], c)
                val.add_metric([*labels, name], s)
                sq.add_metric([*labels, name], ss)
            sh: LogHistogram = t["score"]
            if sh.count:
                counts = cumulative(sh, SCORE_BUCKETS)
                score.add_metric(labels, _buckets(counts, SCORE_BUCKETS, sh.count), 0.0)
            if t["pairs"]:
                pairs.add_metric(labels, t["pairs"])
                counts = cumulative(t["diff"], DIFF_BUCKETS)
                diff.add_metric(labels, _buckets(counts, DIFF_BUCKETS, t["pairs"]), 0.0)
        yield from (req, err, lat, cnt, val, sq, score, pairs, diff)
        yield from self._health()

    def _health(self) -> Iterator[Metric]:
        """The router's configuration checks: how many, how many failed, what is in force."""
        health = self._metrics.health
        if health is None:
            return
        st = health()
        labels = [self._model]
        families: list[tuple[type[Any], str, str, float]] = [
            (CounterMetricFamily, "mreg_config_checks", "Configuration checks run.", st.checks),
            (CounterMetricFamily, "mreg_config_reloads", "Configurations installed.", st.reloads),
            (
                CounterMetricFamily, "mreg_config_reload_failures",
                "Checks that failed (the last good configuration was kept).", st.errors,
            ),
            (GaugeMetricFamily, "mreg_config_generation", "Rollout generation in force.",
             st.generation),
            (
                GaugeMetricFamily, "mreg_config_failing",
                "1 while the latest check failed and the last good configuration is served.",
                1.0 if st.failing else 0.0,
            ),
        ]  # fmt: skip
        for kind, name, doc, value in families:
            family = kind(name, doc, labels=["model"])
            family.add_metric(labels, value)
            yield family


def _copy(acc: dict[str, Any]) -> dict[str, Any]:
    out = dict(acc)
    out["out"] = {k: list(v) for k, v in acc.get("out", {}).items()}
    for k in ("lat", "score", "diff"):
        out[k] = acc[k].copy()
    return out


def serve(metrics: Totals, model: str, port: int, addr: str) -> Any:
    """Start an HTTP server for `/metrics` on its own registry; return the server."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics, model))
    server, _thread = start_http_server(port, addr, registry)
    return server
