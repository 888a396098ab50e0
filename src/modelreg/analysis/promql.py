"""Mesh and gateway metrics for the judge: a release's PromQL templates run against Prometheus.

`PromQLSource` reads the same `Sample` as `PrometheusSource`, from the queries of a
`QuerySet` (`modelreg.analysis.queries`): the release's own `{queries: ...}` entry, or one
given for a run (`mreg release analyze/watch --queries FILE|PRESET`). Each query runs once
per side, with `{{ version }}` and `{{ variant }}` set to the baseline's (`baseline`) or the
canary's (`canary`; `shadow` while the release is in shadow mode, as mreg labels it), over
the release's live window. A release without queries, or with the `mreg` preset as it is,
is read by `PrometheusSource` unchanged.

What Prometheus cannot say is left unknown, never guessed: an outcome without a `sumsq`
query has an unknown sum of squares (NaN), so its checks are inconclusive; there are no
scores or shadow comparisons (drift and agreement checks are inconclusive), no
per-window totals (one stratum, as with `PrometheusSource`) and no smallest outcome value.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from modelreg.analysis.queries import PRESETS, QuerySet, queries_of
from modelreg.analysis.sources import (
    PrometheusSource,
    Sample,
    Side,
    SourceError,
    _bins_from_buckets,
    live_since,
)
from modelreg.errors import InvalidInput, NotFound
from modelreg.release.rollout import Rollout

__all__ = ["PromQLSource", "load_queries", "prometheus_source"]


def load_queries(spec: str | QuerySet) -> QuerySet:
    """A `QuerySet` from a preset's name or a YAML/JSON file of the mapping form.

    The file holds the mapping (`{preset: istio, vars: {...}, errors: ...}`), or a preset's
    name, optionally under one key `queries`.

    Raises:
        NotFound: neither a preset nor a file.
        InvalidInput: the file is unreadable or its queries are malformed.
    """
    if isinstance(spec, QuerySet):
        return spec
    if spec in PRESETS:
        return QuerySet.from_dict(spec)
    from modelreg import yamlio

    p = Path(spec)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NotFound(
            f"--queries {spec}: neither a preset ({', '.join(PRESETS)}) nor a file"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read ({exc.strerror})") from None
    doc = yamlio.loads_data(data, str(p))
    if isinstance(doc, dict) and set(doc) == {"queries"}:
        doc = doc["queries"]
    try:
        return QuerySet.from_dict(doc)
    except InvalidInput as exc:
        raise InvalidInput(f"{p}: {exc}") from None


def _number(expr: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SourceError(f"query {expr!r} returned {value!r}, not a number") from None
    if math.isnan(x) or x < 0:
        # a count or sum of counters is never negative; NaN is 0/0 or a missing series
        raise SourceError(f"query {expr!r} returned {x:g}: expected a count or sum >= 0")
    return x


class PromQLSource:
    """Metrics from Prometheus through PromQL templates (mesh, gateway, any exporter).

    `queries` overrides the release's own (`{queries: ...}` in its analysis); without
    either, or with the plain `mreg` preset, `PrometheusSource` reads mreg's own series.
    """

    def __init__(
        self, url: str, queries: QuerySet | None = None, *, timeout: float = 10.0,
        now: float | None = None,
    ) -> None:  # fmt: skip
        self.prometheus = PrometheusSource(url, timeout=timeout, now=now)
        self.url = self.prometheus.url
        self.queries = queries

    def query_set(self, rollout: Rollout) -> QuerySet | None:
        """The queries this source runs for the release (None: mreg's own series)."""
        qs = self.queries if self.queries is not None else queries_of(rollout.analysis)
        return None if qs is None or qs.is_plain_mreg else qs

    def read(self, rollout: Rollout, stratum_s: int) -> Sample:
        """Both sides' totals over the release's live (or shadow) window.

        Raises:
            SourceError: Prometheus is unreachable, refused a query, or a query returned
                more than one series (or, for latency, more than one per `le`).
        """
        qs = self.query_set(rollout)
        if qs is None:
            return self.prometheus.read(rollout, stratum_s)
        now = self.prometheus.now
        end = now if now is not None else time.time()
        start = live_since(rollout) or end
        canary_variant = "shadow" if rollout.shadow else "canary"
        sides = {
            "baseline": self._side(qs, rollout.model, rollout.baseline.version, "baseline",
                                   end - start, end),
            "canary": self._side(qs, rollout.model, rollout.canary.version, canary_variant,
                                 end - start, end),
        }  # fmt: skip
        label = f"{qs.preset} queries" if qs.preset else "queries"
        return Sample(sides["baseline"], sides["canary"], "shadow" if rollout.shadow else "live",
                      f"{self.url} ({label})", start, end, end, stratum_s,
                      attributed=False)  # fmt: skip

    def _side(
        self, qs: QuerySet, model: str, version: str, variant: str, window_s: float, at: float
    ) -> Side:
        def render(name: str) -> str:
            return qs.render(name, model=model, version=version, variant=variant,
                             window_s=window_s)  # fmt: skip

        def one(name: str) -> float | None:
            expr = render(name)
            result = self.prometheus.query(expr, at)
            if result and not isinstance(result[0], dict):  # a scalar: [time, value]
                return _number(expr, result[1])
            if len(result) > 1:
                raise SourceError(
                    f"query {name} ({expr!r}) returned {len(result)} series for {variant} "
                    f"{version}: it must return one; aggregate it with sum(...)"
                )
            return _number(expr, result[0]["value"][1]) if result else None

        side = Side()
        side.n = round(one("requests") or 0.0)
        side.errors = round(one("errors") or 0.0)
        if qs.latency is not None:
            scale = 1000.0 if qs.latency_unit == "s" else 1.0
            side.latency = _bins_from_buckets(self._buckets(render("latency"), at), scale)
        for name in qs.outcomes:
            count = one(f"outcomes.{name}.count")
            if count is None:
                continue  # no series yet: the outcome was not recorded on this side
            total = one(f"outcomes.{name}.sum") or 0.0
            sq = one(f"outcomes.{name}.sumsq") if name in qs.sumsq else math.nan
            side.out[name] = [round(count), total, math.nan if sq is None else sq]
        outcomes = {k: list(o) for k, o in side.out.items()}
        delays = {k: {0: list(o)} for k, o in side.out.items()}
        side.strata = {(0, 0): [side.n, side.errors, outcomes, delays]}
        return side

    def _buckets(self, expr: str, at: float) -> list[tuple[float, float]]:
        """Cumulative (le, count) pairs; exactly one series per `le`."""
        out: dict[float, float] = {}
        for item in self.prometheus.query(expr, at):
            labels = item.get("metric", {}) if isinstance(item, dict) else {}
            if "le" not in labels:
                raise SourceError(
                    f"latency query {expr!r} returned a series without an le label: it must "
                    "return histogram buckets, e.g. sum by (le) (increase(..._bucket[...]))"
                )
            try:
                le = float(labels["le"])
            except ValueError:
                raise SourceError(f"latency query {expr!r}: le {labels['le']!r}") from None
            if le in out:
                raise SourceError(
                    f"latency query {expr!r} returned more than one series with le "
                    f"{labels['le']}: aggregate it with sum by (le) (...)"
                )
            out[le] = _number(expr, item["value"][1])
        return sorted(out.items())


def prometheus_source(url: str, queries: str | QuerySet | None = None) -> PromQLSource:
    """The source of `--prometheus URL [--queries FILE|PRESET]` (one call for the CLI).

    Raises:
        InvalidInput: the URL is not http(s), or the queries are malformed.
        NotFound: `queries` is neither a preset nor a file.
    """
    return PromQLSource(url, None if queries is None else load_queries(queries))
