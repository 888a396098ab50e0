"""Where the analysis gets its numbers: the store's metrics files, or Prometheus. Issue 6.

Both providers return a `Sample`: the baseline's and the canary's totals over the release's
live generations (or its shadow generations, while it is in shadow mode), binned
distributions (latency, scores, shadow differences) and, from the store, the same totals
per time window (`stratum_s`) for stratified comparisons.

`StoreSource` merges `metrics/NAME/<release>/*.jsonl` (one file per process and segment,
written by `modelreg.serving.metrics` in the format of `modelreg.metricsfile`) and
`compact()` folds sealed segments into one file of per-window totals. `PrometheusSource`
asks Prometheus's HTTP API (`/api/v1/query`) for `increase(...)` of the series
`modelreg.serving.prometheus` exposes, over the release's live window (totals, not
stratified).
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput, MregError
from modelreg.fsutil import atomic_write, tmp_name
from modelreg.metricsfile import (
    COMPACT_PREFIX,
    COMPACTED,
    GROUP,
    SEGMENT_S,
    absorbed,
    compact_file,
    compaction_line,
    encode,
    group_of,
    metrics_dir,
    read_lines,
    segment_in,
)
from modelreg.release.rollout import LIVE, Rollout
from modelreg.serving.aggregate import EXPOSURE_S, LogHistogram, iter_lines

__all__ = [
    "COMPACT_GRACE_S",
    "PrometheusSource",
    "Sample",
    "Side",
    "SourceError",
    "StoreSource",
    "compact",
    "metrics_dir",
]

COMPACT_GRACE_S = 600
"""A segment is compacted once its period ended and it was last written this long ago."""


class SourceError(MregError):
    """The metrics could not be read (Prometheus unreachable, a query refused)."""


Bins = list[tuple[float, float, int]]


@dataclass
class Side:
    """One side's totals: requests, errors, outcomes, per-window totals, distributions."""

    n: int = 0
    errors: int = 0
    out: dict[str, list[float]] = field(default_factory=dict)
    """Outcome name -> [observations, sum, sum of squares] (every outcome recorded)."""
    strata: dict[Any, list[Any]] = field(default_factory=dict)
    """(exposure window, generation) -> [requests, errors, {outcome: [observations, sum,
    sum of squares]}, {outcome: {delay: [observations, sum, sum of squares]}}].

    Requests count in the window they were answered in; outcomes in the window of the
    request that produced them (issue 14), whenever they arrived; `delay` is how late they
    arrived at least, in whole `EXPOSURE_S` (10 s) units. Within one window of one
    generation the weights were constant, so both sides' requests are exposed alike and
    equally far from complete: comparing them stratum by stratum is unbiased however late
    outcomes arrive and however often the weight changed."""
    omin: dict[str, float] = field(default_factory=dict)
    """The smallest value recorded of each outcome (bounds the estimates' range)."""
    latency: Bins = field(default_factory=list)
    scores: Bins = field(default_factory=list)
    pairs: int = 0
    unequal: int = 0
    diffs: Bins = field(default_factory=list)
    features: dict[str, list[Any]] = field(default_factory=dict)
    """Captured inputs, feature -> values (`drift.feature*` checks; `monitoring`, issue 21)."""


@dataclass(frozen=True)
class Sample:
    """What the checks judge: both sides over the same window."""

    baseline: Side
    canary: Side
    mode: str
    """`live`, or `shadow` (the canary's side holds its mirrored calls)."""
    source: str
    start: float | None = None
    end: float | None = None
    now: float | None = None
    """When the sample was read (epoch seconds): which exposure windows are complete."""
    stratum_s: int = 60
    """The width of the exposure windows of `Side.strata`."""
    attributed: bool = True
    """Whether late outcomes count in their request's window (False: Prometheus totals)."""


def _phases(rollout: Rollout) -> tuple[set[int], set[int]]:
    """The release's live generations without shadow mode, and its shadow generations."""
    live: set[int] = set()
    shadow: set[int] = set()
    for e in rollout.history:
        if e.release == rollout.release and e.state in LIVE:
            (shadow if e.shadow else live).add(e.generation)
    return live, shadow


def _side_of(doc: Mapping[str, Any], rollout: Rollout, gens: tuple[set[int], set[int]]) -> str:
    """`baseline`, `canary` or '' (not part of the sample) for one metrics line."""
    live, shadow = gens
    gen, variant, version, mirrored = group_of(doc)
    mirrored = bool(mirrored)
    if rollout.shadow:
        if gen not in shadow:
            return ""
        if variant == "baseline" and not mirrored and version == rollout.baseline.version:
            return "baseline"
        if variant == "canary" and mirrored and version == rollout.canary.version:
            return "canary"
        return ""
    if gen not in live or mirrored:
        return ""
    if variant == "baseline" and version == rollout.baseline.version:
        return "baseline"
    if variant == "canary" and version == rollout.canary.version:
        return "canary"
    return ""


def _add_outcome(cell: list[Any], name: str, delay: int, vals: Sequence[float]) -> None:
    o = cell[2].setdefault(name, [0, 0.0, 0.0])
    d = cell[3].setdefault(name, {}).setdefault(delay, [0, 0.0, 0.0])
    for target in (o, d):
        target[0] += vals[0]
        target[1] += vals[1]
        target[2] += vals[2]


class _Acc:
    """Accumulates metrics lines into a `Side`."""

    def __init__(self) -> None:
        self.side = Side()
        self.lat = LogHistogram()
        self.scores = LogHistogram()
        self.diffs = LogHistogram()

    def add(self, doc: Mapping[str, Any], stratum_s: int) -> None:
        s = self.side
        n, err = int(doc.get("n", 0)), int(doc.get("err", 0))
        gen = int(doc.get("gen") or 0)
        t0 = float(doc.get("t0", doc.get("t1", 0.0)))
        s.n += n
        s.errors += err
        cell = self._cell((int(t0 // stratum_s), gen))
        cell[0] += n
        cell[1] += err
        out = doc.get("out") or {}
        late = {int(b): o for b, o in (doc.get("oe") or {}).items()}
        inline = {k: list(v) for k, v in out.items()}
        for outcomes in late.values():  # what came by record_outcome is attributed below
            for name, (c, total, sq) in outcomes.items():
                o = inline.get(name)
                if o is not None:
                    o[0], o[1], o[2] = o[0] - c, o[1] - total, o[2] - sq
        for name, (c, total, sq) in out.items():
            o = s.out.setdefault(name, [0, 0.0, 0.0])
            o[0] += c
            o[1] += total
            o[2] += sq
        for name, vals in inline.items():
            if vals[0] > 0:
                _add_outcome(cell, name, 0, vals)
        for bucket, outcomes in late.items():
            where = self._cell((int(bucket // stratum_s), gen))
            delay = int(max(0.0, t0 - bucket - EXPOSURE_S) // EXPOSURE_S)
            for name, vals in outcomes.items():
                _add_outcome(where, name, delay, vals)
        for name, low in (doc.get("omin") or {}).items():
            s.omin[name] = min(s.omin.get(name, low), low)
        if "lat" in doc:
            self.lat.merge(LogHistogram.from_dict(doc["lat"]))
        if "score" in doc:
            self.scores.merge(LogHistogram.from_dict(doc["score"]))
        agree = doc.get("agree")
        if agree:
            self.side.pairs += int(agree.get("pairs", 0))
            self.side.unequal += int(agree.get("ne", 0))
            self.diffs.merge(LogHistogram.from_dict(agree.get("diff") or {}))

    def _cell(self, key: tuple[int, int]) -> list[Any]:
        cell = self.side.strata.get(key)
        if cell is None:
            cell = self.side.strata[key] = [0, 0, {}, {}]
        return cell

    def done(self) -> Side:
        self.side.latency = self.lat.bins()
        self.side.scores = self.scores.bins()
        self.side.diffs = self.diffs.bins()
        if self.side.unequal:
            self.side.diffs.append((math.inf, math.inf, self.side.unequal))
        return self.side


def _files(directory: Path) -> list[Path]:
    """The files to read: every compacted file, and the segments none of them has absorbed."""
    try:
        names = sorted(p.name for p in directory.iterdir() if p.name.endswith(".jsonl"))
    except FileNotFoundError:
        return []
    gone: set[str] = set()
    for name in names:
        if name.startswith(COMPACT_PREFIX):
            for doc in iter_lines(directory / name):
                gone.update(absorbed(doc))
                break
    return [directory / n for n in names if n not in gone]


class StoreSource:
    """Metrics from the store's append-only files (the embedded default)."""

    def __init__(self, root: Path, *, now: float | None = None) -> None:
        self.root = root
        self.now = now

    def read(self, rollout: Rollout, stratum_s: int) -> Sample:
        """Merge every process's lines of the release into a `Sample`.

        Raises:
            IntegrityError: a metrics file is unreadable or holds malformed lines.
        """
        directory = metrics_dir(self.root, rollout.model, rollout.release)
        gens = _phases(rollout)
        acc = {"baseline": _Acc(), "canary": _Acc()}
        start, end = math.inf, -math.inf
        for path in _files(directory):
            try:
                for doc in read_lines(path):
                    if COMPACTED in doc:
                        continue
                    side = _side_of(doc, rollout, gens)
                    if not side:
                        continue
                    t1 = float(doc.get("t1", 0.0))
                    start, end = min(start, float(doc.get("t0", t1))), max(end, t1)
                    acc[side].add(doc, stratum_s)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise IntegrityError(f"{path}: malformed metrics line ({exc})") from None
            except OSError as exc:
                raise IntegrityError(f"{path}: cannot read ({exc.strerror})") from None
        import time

        return Sample(
            acc["baseline"].done(), acc["canary"].done(),
            "shadow" if rollout.shadow else "live", str(directory),
            None if math.isinf(start) else start, None if math.isinf(end) else end,
            # now, or the newest line's time when the lines run ahead of this clock (a
            # simulation's clock, or a host whose clock is behind a router's)
            max(time.time() if self.now is None else self.now, end),
            stratum_s,
        )  # fmt: skip


def _merge_line(into: dict[str, Any], doc: Mapping[str, Any]) -> None:
    into["t0"] = min(into.get("t0", doc["t0"]), doc["t0"])
    into["t1"] = max(into.get("t1", doc["t1"]), doc["t1"])
    for k in ("n", "err", "lsum"):
        if k in doc:
            into[k] = into.get(k, 0) + doc[k]
    for k in ("lat", "score"):
        if k in doc:
            h = LogHistogram.from_dict(into[k]) if k in into else LogHistogram()
            h.merge(LogHistogram.from_dict(doc[k]))
            into[k] = h.to_dict()
    for name, vals in (doc.get("out") or {}).items():
        o = into.setdefault("out", {}).setdefault(name, [0, 0.0, 0.0])
        for i in range(3):
            o[i] += vals[i]
    for bucket, outcomes in (doc.get("oe") or {}).items():
        into_b = into.setdefault("oe", {}).setdefault(str(bucket), {})
        for name, vals in outcomes.items():
            o = into_b.setdefault(name, [0, 0.0, 0.0])
            for i in range(3):
                o[i] += vals[i]
    for name, low in (doc.get("omin") or {}).items():
        om = into.setdefault("omin", {})
        om[name] = min(om.get(name, low), low)
    if "agree" in doc:
        a = into.setdefault("agree", {"pairs": 0, "ne": 0, "diff": {}})
        a["pairs"] += doc["agree"]["pairs"]
        a["ne"] += doc["agree"]["ne"]
        h = LogHistogram.from_dict(a["diff"])
        h.merge(LogHistogram.from_dict(doc["agree"].get("diff") or {}))
        a["diff"] = h.to_dict()


def compact(
    root: Path, name: str, release: int, now: float, *, stratum_s: int = 60,
    grace_s: float = COMPACT_GRACE_S,
) -> int:  # fmt: skip
    """Fold sealed segments (and earlier compacted files) into one file of per-window totals.

    The caller holds the store lock, so only one compaction runs at a time. The new file is
    written atomically and names every file it absorbed in its first line; readers skip
    absorbed files, so deleting them afterwards (or a crash before that) never double counts.

    Returns:
        How many files were absorbed (0: nothing sealed yet).
    """
    directory = metrics_dir(root, name, release)
    sealed: list[Path] = []
    gone: set[str] = set()
    for path in _files(directory):
        if path.name.startswith(COMPACT_PREFIX):
            sealed.append(path)
            for doc in iter_lines(path):
                gone.update(absorbed(doc))
                break
            continue
        try:
            segment = segment_in(path.name)
            mtime = path.stat().st_mtime
        except (IndexError, ValueError, OSError):
            continue
        if (segment + 1) * SEGMENT_S + grace_s <= now and mtime + grace_s <= now:
            sealed.append(path)
    raw = [p for p in sealed if not p.name.startswith(COMPACT_PREFIX)]
    if not raw:
        return 0
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in sealed:
        for doc in read_lines(path):
            if COMPACTED in doc or "t1" not in doc:
                continue
            # by the window the requests were answered in (t0: flushes fall on interval
            # boundaries); merging widens t0..t1, so a compacted late outcome's delay is
            # known to within the window's width (docs/analysis.md)
            key = (int(doc.get("t0", doc["t1"]) // stratum_s), *group_of(doc))
            head = {k: doc.get(k) for k in GROUP}
            _merge_line(merged.setdefault(key, head), doc)
    names = sorted(gone | {p.name for p in sealed})
    lines = [compaction_line(names)]
    lines += [encode(merged[k]) for k in sorted(merged, key=repr)]
    first = min(segment_in(p.name) for p in raw)
    target = compact_file(directory, first, tmp_name()[-12:].strip("-"))
    atomic_write(target, ("\n".join(lines) + "\n").encode())
    for path in sealed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return len(sealed)


# -- Prometheus -------------------------------------------------------------------------------


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def live_since(rollout: Rollout) -> float | None:
    """Epoch seconds when the current phase (shadow or live) of the release began."""
    live, shadow = _phases(rollout)
    gens = shadow if rollout.shadow else live
    times = [_epoch(e.time) for e in rollout.history if e.generation in gens and e.time]
    return min(times) if times else None


def _bins_from_buckets(buckets: Iterable[tuple[float, float]], scale: float = 1.0) -> Bins:
    """Cumulative Prometheus buckets (le, count) as (low, high, count) bins."""
    out: Bins = []
    prev_le, prev_count = 0.0, 0.0
    for le, count in sorted(buckets):
        c = round(count - prev_count)
        if c > 0:
            low = prev_le * scale
            out.append((low, low, c) if le == 0 else (low, le * scale, c))
        prev_le, prev_count = le, max(count, prev_count)
    return out


class PrometheusSource:
    """Metrics from a Prometheus server that scrapes the serving processes (scale-out)."""

    def __init__(self, url: str, *, timeout: float = 10.0, now: float | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"{url}: a Prometheus URL starts with http:// or https://")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.now = now

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Run an instant query; the result vector.

        Raises:
            SourceError: Prometheus is unreachable or refused the query.
        """
        qs = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=self.timeout) as r:
                doc = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError, RecursionError) as exc:
            raise SourceError(f"Prometheus at {self.url}: {exc}") from None
        if doc.get("status") != "success":
            raise SourceError(f"Prometheus at {self.url} refused {expr!r}: {doc.get('error')}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def read(self, rollout: Rollout, stratum_s: int) -> Sample:
        """The release's totals over its live (or shadow) window, from `increase(...)`."""
        import time

        end = self.now if self.now is not None else time.time()
        start = live_since(rollout) or end
        rng = f"{max(math.ceil(end - start), 1)}s"
        sel = f'{{model="{rollout.model}"}}'
        variants = {("baseline", rollout.baseline.version): "baseline"}
        variants[("shadow" if rollout.shadow else "canary", rollout.canary.version)] = "canary"
        sides = {"baseline": Side(), "canary": Side()}
        buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}

        def each(expr: str) -> Iterable[tuple[Side, dict[str, str], float]]:
            for item in self.query(expr, end):
                labels = item["metric"]
                which = variants.get((labels.get("variant", ""), labels.get("version", "")))
                if which is not None:
                    yield sides[which], labels, float(item["value"][1])

        def inc(series: str, by: str = "") -> str:
            return f"sum by (variant, version{by}) (increase({series}{sel}[{rng}]))"

        for side, _, v in each(inc("mreg_requests_total")):
            side.n = round(v)
        for side, _, v in each(inc("mreg_errors_total")):
            side.errors = round(v)
        for i, series in enumerate(("mreg_outcomes_total", "mreg_outcome_value_total",
                                    "mreg_outcome_square_total")):  # fmt: skip
            for side, labels, v in each(inc(series, ", metric")):
                side.out.setdefault(labels["metric"], [0, 0.0, 0.0])[i] = round(v) if i == 0 else v
        for hist in ("latency", "scores", "diffs"):
            series = {"latency": "mreg_latency_seconds_bucket", "scores": "mreg_score_bucket",
                      "diffs": "mreg_shadow_diff_bucket"}[hist]  # fmt: skip
            buckets.clear()
            for side, labels, v in each(inc(series, ", le")):
                key = ("baseline" if side is sides["baseline"] else "canary", hist)
                buckets.setdefault(key, []).append((float(labels["le"]), v))
            for (which, _), items in buckets.items():
                setattr(
                    sides[which],
                    hist,
                    _bins_from_buckets(items, 1000.0 if hist == "latency" else 1.0),
                )
        for side, _, v in each(inc("mreg_shadow_pairs_total")):
            side.pairs = round(v)
        for side in sides.values():
            outcomes = {k: list(o) for k, o in side.out.items()}
            delays = {k: {0: list(o)} for k, o in side.out.items()}
            side.strata = {(0, 0): [side.n, side.errors, outcomes, delays]}
            inf = [b for b in side.diffs if math.isinf(b[1])]
            side.unequal = sum(c for _, _, c in inf)
        return Sample(sides["baseline"], sides["canary"], "shadow" if rollout.shadow else "live",
                      self.url, start, end, end, stratum_s, attributed=False)  # fmt: skip
