"""In-memory aggregates of serving metrics: the log-bucketed histogram and per-group totals.

`LogHistogram` is a mergeable histogram with bounded relative error (the DDSketch idea);
`Group` holds the running totals of one decision group; `delta` turns two snapshots into
the body of a metrics line. Pure: no I/O except `iter_lines`, which reads a metrics file.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EXPOSURE_S",
    "GAMMA",
    "MIN_VALUE",
    "REL_ACCURACY",
    "Group",
    "LogHistogram",
    "accumulate",
    "delta",
    "difference",
    "forget_written",
    "iter_lines",
]

REL_ACCURACY = 0.01
"""Relative accuracy of `LogHistogram`: any quantile is within 1% of the true value."""
GAMMA = (1 + REL_ACCURACY) / (1 - REL_ACCURACY)
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
MIN_VALUE = 1e-9
"""Values closer to zero than this go to the zero bucket."""


class LogHistogram:
    """A mergeable histogram with bounded relative error (the DDSketch idea).

    A value x > 0 goes to bucket i = ceil(log_gamma(x)), covering (gamma^(i-1), gamma^i];
    negative values to a mirrored set of buckets, values within `MIN_VALUE` of zero to a
    zero bucket. With gamma = 1.0202 every bucket's midpoint 2 gamma^i / (gamma + 1) is
    within 1% of any value in it, so quantiles have 1% relative error, whatever the range.
    Merging is adding counts. Memory: one dict entry per occupied bucket (about 230 cover
    a factor of 100: 1 ms to 100 ms).
    """

    __slots__ = ("count", "neg", "pos", "zero")

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zero = 0
        self.count = 0

    def add(self, x: float, k: int = 1) -> None:
        """Count `x` (`k` times)."""
        self.count += k
        if x > MIN_VALUE:
            i = math.ceil(math.log(x) * INV_LOG_GAMMA)
            self.pos[i] = self.pos.get(i, 0) + k
        elif x < -MIN_VALUE:
            i = math.ceil(math.log(-x) * INV_LOG_GAMMA)
            self.neg[i] = self.neg.get(i, 0) + k
        else:
            self.zero += k

    def merge(self, other: LogHistogram) -> None:
        """Add another histogram's counts to this one."""
        self.count += other.count
        self.zero += other.zero
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for i, c in theirs.items():
                mine[i] = mine.get(i, 0) + c

    def copy(self) -> LogHistogram:
        """An independent copy."""
        h = LogHistogram()
        h.pos, h.neg, h.zero, h.count = dict(self.pos), dict(self.neg), self.zero, self.count
        return h

    def minus(self, earlier: LogHistogram) -> LogHistogram:
        """The counts added since `earlier` (a copy taken before)."""
        h = LogHistogram()
        h.zero, h.count = self.zero - earlier.zero, self.count - earlier.count
        for out, now, before in ((h.pos, self.pos, earlier.pos), (h.neg, self.neg, earlier.neg)):
            for i, c in now.items():
                d = c - before.get(i, 0)
                if d:
                    out[i] = d
        return h

    def bins(self) -> list[tuple[float, float, int]]:
        """(low, high, count) for every occupied bucket, in increasing order of value."""
        out = [
            (-(GAMMA**i), -(GAMMA ** (i - 1)), c) for i, c in sorted(self.neg.items(), reverse=True)
        ]
        if self.zero:
            out.append((0.0, 0.0, self.zero))
        out.extend((GAMMA ** (i - 1), GAMMA**i, c) for i, c in sorted(self.pos.items()))
        return out

    def quantile(self, q: float) -> float | None:
        """The value at quantile q (0-1), within 1% relative error; None when empty."""
        if self.count <= 0:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for low, high, c in self.bins():
            seen += c
            if seen > rank:
                return 0.0 if low == high == 0.0 else 2 * low * high / (low + high)
        return None  # pragma: no cover (counts are consistent)

    def to_dict(self) -> dict[str, Any]:
        """Compact plain-data form (the `lat`, `score` and `diff` fields of a metrics line)."""
        doc: dict[str, Any] = {"n": self.count}
        if self.zero:
            doc["z"] = self.zero
        if self.pos:
            doc["p"] = {str(i): c for i, c in self.pos.items()}
        if self.neg:
            doc["m"] = {str(i): c for i, c in self.neg.items()}
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LogHistogram:
        """Parse `to_dict()`'s form (ValueError/TypeError/AttributeError when malformed)."""
        h = cls()
        h.count = int(doc.get("n", 0))
        h.zero = int(doc.get("z", 0))
        h.pos = {int(i): int(c) for i, c in (doc.get("p") or {}).items()}
        h.neg = {int(i): int(c) for i, c in (doc.get("m") or {}).items()}
        return h


EXPOSURE_S = 10
"""Late outcomes are attributed to their request's exposure to within this many seconds."""


class Group:
    """The running totals of one (generation, variant, version, shadow) group. Counters grow."""

    __slots__ = (
        "agree_n",
        "agree_ne",
        "diffs",
        "errors",
        "flushed",
        "generation",
        "id",
        "idle",
        "lat",
        "lat_sum",
        "lat_zero",
        "lock",
        "n",
        "oe",
        "omin",
        "out",
        "scores",
        "shadow",
        "variant",
        "version",
    )

    def __init__(self, generation: int, variant: str, version: str, id: str, shadow: bool) -> None:
        self.generation, self.variant, self.version = generation, variant, version
        self.id, self.shadow = id, shadow
        self.lock = threading.Lock()
        self.n = self.errors = self.lat_zero = 0
        self.lat: dict[int, int] = {}
        self.lat_sum = 0.0
        self.out: dict[str, list[float]] = {}
        self.oe: dict[int, dict[str, list[float]]] = {}
        """Late outcomes not yet flushed, by exposure bucket (`EXPOSURE_S` seconds)."""
        self.omin: dict[str, float] = {}
        """The smallest value seen of each outcome (a rate's bounds, a mean's floor)."""
        self.scores = LogHistogram()
        self.agree_n = self.agree_ne = 0
        self.diffs = LogHistogram()
        self.flushed: dict[str, Any] | None = None
        self.idle = 0

    def latency(self) -> LogHistogram:
        """The latency histogram (milliseconds) as a `LogHistogram` (a copy)."""
        h = LogHistogram()
        h.pos, h.zero = dict(self.lat), self.lat_zero
        h.count = sum(self.lat.values()) + self.lat_zero
        return h

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the totals (taken under the group's lock)."""
        with self.lock:
            return {
                "n": self.n,
                "err": self.errors,
                "lat": self.latency(),
                "lsum": self.lat_sum,
                "out": {k: list(v) for k, v in self.out.items()},
                "oe": {b: {k: list(v) for k, v in o.items()} for b, o in self.oe.items()},
                "omin": dict(self.omin),
                "score": self.scores.copy(),
                "pairs": self.agree_n,
                "ne": self.agree_ne,
                "diff": self.diffs.copy(),
            }


def delta(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON body of what changed between two snapshots (None: nothing)."""
    if before is None:
        before = {"n": 0, "err": 0, "lsum": 0.0, "out": {}, "pairs": 0, "ne": 0}
        empty = LogHistogram()
        before.update(lat=empty, score=empty, diff=empty)
    body: dict[str, Any] = {}
    if now["n"] != before["n"]:
        body["n"] = now["n"] - before["n"]
        body["err"] = now["err"] - before["err"]
    lat = now["lat"].minus(before["lat"])
    if lat.count:
        body["lat"] = lat.to_dict()
        body["lsum"] = now["lsum"] - before["lsum"]
    out = {}
    for k, (c, s, ss) in now["out"].items():
        c0, s0, ss0 = before["out"].get(k, (0, 0.0, 0.0))
        if c != c0:
            out[k] = [c - c0, s - s0, ss - ss0]
    if out:
        body["out"] = out
    if now.get("oe"):  # pending late outcomes (cleared once written: see Metrics.flush)
        body["oe"] = {str(b): o for b, o in sorted(now["oe"].items())}
    omin = {k: v for k, v in (now.get("omin") or {}).items() if k in out}
    if omin:
        body["omin"] = omin
    score = now["score"].minus(before["score"])
    if score.count:
        body["score"] = score.to_dict()
    if now["pairs"] != before["pairs"]:
        body["agree"] = {
            "pairs": now["pairs"] - before["pairs"],
            "ne": now["ne"] - before["ne"],
            "diff": now["diff"].minus(before["diff"]).to_dict(),
        }
    return body or None


def accumulate(acc: dict[str, Any], snap: dict[str, Any]) -> None:
    """Add a group snapshot's totals to `acc` (the totals of retired groups)."""
    for k in ("n", "err", "lsum", "pairs", "ne"):
        acc[k] = acc.get(k, 0) + snap[k]
    for k in ("lat", "score", "diff"):
        acc.setdefault(k, LogHistogram()).merge(snap[k])
    out = acc.setdefault("out", {})
    for name, (c, s, ss) in snap["out"].items():
        o = out.setdefault(name, [0, 0.0, 0.0])
        o[0], o[1], o[2] = o[0] + c, o[1] + s, o[2] + ss


def forget_written(g: Group, written: Mapping[int, Mapping[str, list[float]]]) -> None:
    """Take the late outcomes just written out of the group's pending ones."""
    with g.lock:
        for bucket, outcomes in written.items():
            pending = g.oe.get(bucket)
            if pending is None:
                continue
            for name, (c, s, sq) in outcomes.items():
                o = pending.get(name)
                if o is None:
                    continue
                o[0] -= c
                o[1] -= s
                o[2] -= sq
                if o[0] <= 0:
                    del pending[name]
            if not pending:
                del g.oe[bucket]


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


def difference(a: Any, b: Any) -> float | None:
    """|a - b| for two numbers; otherwise 0.0 when equal, None when not."""
    if _number(a) and _number(b):
        return abs(float(a) - float(b))
    return 0.0 if a == b else None


def iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The complete, parsable lines of a metrics file (a torn last line is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n")[:-1]:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):  # torn, or nested too deeply: not ours
            continue
        if isinstance(doc, dict):
            yield doc
