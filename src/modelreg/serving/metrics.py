"""Per-version metrics recorded by serving processes, for canary analysis (issue 6).

    d = router.route(user_id=uid)
    with router.timer(d) as t:               # latency, and error=True if the block raises
        y = router.model_for(d).predict(x)
    router.record(d, latency_ms=12.5, error=False, converted=0)   # or record by hand
    router.record_outcome(d.to_dict(), converted=1)               # a click, minutes later

Recording is in-memory aggregation per decision group (generation, variant, version): a
request count, an error count, a mergeable log-bucketed latency histogram with bounded
relative error (`LogHistogram`, DDSketch's idea), count/sum/sum of squares per business
outcome, a histogram of prediction scores (for drift) and, for shadow calls, the
agreement between the canary's and the baseline's answers. Counters only ever grow; a flush
appends the *change* since the previous flush as one JSON line per group to a file that
belongs to this process alone:

    .modelreg/metrics/NAME/<release>/<host>-<pid>-<token>-<segment>.jsonl

so any number of processes and hosts sharing a store never write the same file; the
analysis merges the files (`modelreg.analysis.sources`), and compacts sealed segments. A
flush happens at most every `flush_interval_s` on the recording thread (or, with
`background=True`, in a daemon thread), at `close()` and at interpreter exit. The release
of a generation is read from the rollout manifest's history at flush time, off the hot path.

Nothing here imports typer, rich, git, s3fs, fsspec, filelock or semver; `prometheus_client`
is imported only by `expose()` (the `prometheus` extra).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelreg.errors import MregError
from modelreg.metricsfile import (
    FORMAT,  # noqa: F401 (importable from here, as before #16)
    SEGMENT_S,
    encode_line,
    metrics_dir,
    process_name,
    segment_file,
    segment_of,
)
from modelreg.serving import process
from modelreg.serving.aggregate import (
    EXPOSURE_S,
    INV_LOG_GAMMA,
    MIN_VALUE,
    Group,
    accumulate,
    delta,
    difference,
    forget_written,
)
from modelreg.serving.decision import Decision, RouterStats
from modelreg.serving.reload import Source, parse_rollout
from modelreg.serving.timer import Timer

__all__ = ["FLUSH_INTERVAL_S", "SEGMENT_S", "Metrics", "Timer"]

log = logging.getLogger("modelreg.serving")

_log, _ceil = math.log, math.ceil
FLUSH_INTERVAL_S = 10.0
"""Seconds between two flushes (at most; files change every `SEGMENT_S`, see metricsfile)."""


class Metrics:
    """The recorder of one model's serving process (normally `router.metrics`).

    Args:
        source: The model's files in the store (the router's `Source`).
        route: Routes a key (for `record_outcome(key)`); the router's `route`.
        flush_interval_s: Flush at most this often (0: on every call, for tests).
        clock: Monotonic seconds, for scheduling flushes (tests inject one).
        wall: Epoch seconds, stamped on the flushed lines (tests inject one).
        health: The router's `stats` (its configuration checks and their failures), exposed
            to Prometheus beside the request series.
    """

    def __init__(
        self,
        source: Source,
        *,
        route: Callable[..., Decision] | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        health: Callable[[], RouterStats] | None = None,
    ) -> None:
        self._source = source
        self._route = route
        self.health = health
        self._interval = flush_interval_s
        self._clock, self._wall = clock, wall
        self._by_decision: dict[int, Group] = {}
        self._keep: dict[int, Decision] = {}  # keeps decisions alive, so their ids stay unique
        self._groups: dict[tuple[int, str, str, bool], Group] = {}
        self._retired: dict[tuple[str, str, bool], dict[str, Any]] = {}
        self._releases: dict[int, int] = {0: 0}
        self._flush_lock = threading.Lock()
        self._slow_lock = threading.Lock()
        self._since = wall()
        self._pid = -1
        self._name = ""
        self.flushes = self.lines = self.errors = 0
        self.last_error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._next = clock() + self._until_boundary()
        self._exposed: Any = None
        self.on_outcome: Callable[[Mapping[str, Any], Mapping[str, float]], None] | None = None
        """Also given the outcomes of a captured request (`request` in its dict; issue 21)."""
        process.register(self)

    def _forked(self) -> None:
        """In a forked child: the parent flushes what it recorded, so count from zero here.

        Locks are new (another thread of the parent may have held one at the fork); the
        parent's flush thread did not survive the fork, so recording threads flush instead.
        """
        self._flush_lock = threading.Lock()
        self._slow_lock = threading.Lock()
        for g in self._groups.values():
            g.lock = threading.Lock()
            g.oe = {}  # the parent writes its pending late outcomes
            g.flushed = g.snapshot()
        self._since = self._wall()
        self._pid = -1  # a file of its own at the next flush
        self.flushes = self.lines = self.errors = 0
        if self._thread is not None:
            self._thread, self._stop = None, threading.Event()
            self._next = self._clock() + self._until_boundary()

    def start_thread(self) -> None:
        """Flush from a daemon thread from now on, instead of from the recording threads."""
        if self._thread is None:
            self._next = math.inf
            self._thread = threading.Thread(
                target=self._loop, name=f"mreg-metrics-{self._source.name}", daemon=True
            )
            self._thread.start()

    # -- the hot path ---------------------------------------------------------------------

    def record(
        self,
        d: Decision,
        latency_ms: float | None = None,
        error: bool = False,
        score: float | None = None,
        **outcomes: float,
    ) -> None:
        """Record one request answered as `d` decided.

        Args:
            d: The router's decision for the request.
            latency_ms: How long the model took, in milliseconds.
            error: The request failed.
            score: The prediction's score (for drift checks).
            **outcomes: Business outcomes of the request (`converted=1`, `revenue=9.5`).
        """
        if self._clock() >= self._next:
            self._tick()
        g = self._by_decision.get(id(d))
        if g is None:
            g = self._for_decision(d)
        with g.lock:  # the bucket arithmetic is inlined: this is the hot path
            g.n += 1
            if error:
                g.errors += 1
            if latency_ms is not None:
                g.lat_sum += latency_ms
                if latency_ms > MIN_VALUE:
                    i = _ceil(_log(latency_ms) * INV_LOG_GAMMA)
                    lat = g.lat
                    lat[i] = lat.get(i, 0) + 1
                else:
                    g.lat_zero += 1
            if score is not None:
                sc = g.scores
                if score > MIN_VALUE:
                    j = _ceil(_log(score) * INV_LOG_GAMMA)
                    pos = sc.pos
                    pos[j] = pos.get(j, 0) + 1
                    sc.count += 1
                else:
                    sc.add(score)
            if outcomes:
                out, omin = g.out, g.omin
                for k, v in outcomes.items():
                    o = out.get(k)
                    if o is None:
                        o = out[k] = [0, 0.0, 0.0]
                        omin[k] = v
                    elif v < omin[k]:
                        omin[k] = v
                    o[0] += 1
                    o[1] += v
                    o[2] += v * v

    @staticmethod
    def _outcomes(g: Group, outcomes: Mapping[str, float], bucket: int) -> None:
        """Add late outcomes to the totals and to their exposure bucket (caller holds g.lock)."""
        late = g.oe.get(bucket)
        if late is None:
            late = g.oe[bucket] = {}
        for k, v in outcomes.items():
            v = float(v)
            o = g.out.get(k)
            if o is None:
                o = g.out[k] = [0, 0.0, 0.0]
                g.omin[k] = v
            elif v < g.omin[k]:
                g.omin[k] = v
            o[0] += 1
            o[1] += v
            o[2] += v * v
            e = late.get(k)
            if e is None:
                e = late[k] = [0, 0.0, 0.0]
            e[0] += 1
            e[1] += v
            e[2] += v * v

    def timer(self, d: Decision) -> Timer:
        """A context manager that records the block's latency (and an error if it raises)."""
        return Timer(self, d)

    def record_outcome(
        self,
        ref: Decision | Mapping[str, Any] | str,
        exposed_at: float | None = None,
        **outcomes: float,
    ) -> None:
        """Record outcomes that arrive after the request (a click minutes later).

        The outcomes are attributed to the request that produced them (issue 14): its
        generation, its side and its *exposure*, the time it was answered, to within
        `EXPOSURE_S` (10 s). The analysis then compares the canary's and the baseline's
        requests exposed in the same window of the same generation, so outcomes that arrive
        late, or across a step-up, bias neither side.

        Args:
            ref: What answered the request. Best: the decision's `to_dict()` logged with the
                request, whose `time` is the exposure. Or the `Decision` itself, or the
                request's key (user ID), routed again now (sticky: it lands on the side that
                answered it unless the release changed); both are exposed *now* unless
                `exposed_at` says when.
            exposed_at: The exposure, in epoch seconds (overrides the dict's `time`).
            **outcomes: The outcomes (`clicked=1`). They count towards the same requests:
                a metric's per-request value divides its sum by the requests of the version.
        """
        if self._clock() >= self._next:  # a flush first: the line's t0 bounds the arrival
            self._tick()
        if isinstance(ref, str):
            if self._route is None:
                raise MregError("record_outcome(key) needs a router to route the key")
            ref = self._route(user_id=ref)
        if isinstance(ref, Mapping):
            g = self._group(
                int(ref["generation"]), str(ref["variant"]), str(ref["version"]),
                str(ref.get("id") or ""), False,
            )  # fmt: skip
            if exposed_at is None and ref.get("time") is not None:
                exposed_at = float(ref["time"])
            if "request" in ref and self.on_outcome is not None:
                self.on_outcome(ref, outcomes)
        else:
            g = self._by_decision.get(id(ref)) or self._for_decision(ref)
        when = self._wall() if exposed_at is None else exposed_at
        bucket = int(when // EXPOSURE_S) * EXPOSURE_S
        with g.lock:
            self._outcomes(g, outcomes, bucket)

    def record_shadow(
        self,
        d: Decision,
        baseline_output: Any,
        canary_output: Any,
        *,
        latency_ms: float | None = None,
        error: bool = False,
        score: float | None = None,
    ) -> None:
        """Record the canary's answer to a mirrored request in shadow mode.

        The two answers are compared: numbers by their absolute difference (kept in a
        histogram, so the agreement check chooses its tolerance at analysis time), anything
        else by equality. `latency_ms`, `error` and `score` are the canary's own.
        """
        if d.shadow is None:
            raise MregError("record_shadow needs a decision made in shadow mode (d.shadow)")
        t = d.shadow
        g = self._group(d.generation, "canary", t.version, t.id, True)
        diff = difference(baseline_output, canary_output)
        with g.lock:
            g.n += 1
            if error:
                g.errors += 1
            if latency_ms is not None:
                g.lat_sum += latency_ms
                if latency_ms > MIN_VALUE:
                    i = math.ceil(math.log(latency_ms) * INV_LOG_GAMMA)
                    g.lat[i] = g.lat.get(i, 0) + 1
                else:
                    g.lat_zero += 1
            if score is not None:
                g.scores.add(score)
            g.agree_n += 1
            if diff is None:
                g.agree_ne += 1
            else:
                g.diffs.add(diff)

    # -- groups -----------------------------------------------------------------------------

    def _for_decision(self, d: Decision) -> Group:
        g = self._group(d.generation, d.variant, d.version, d.id, False)
        with self._slow_lock:
            self._keep[id(d)] = d
            self._by_decision[id(d)] = g
        return g

    def _group(self, generation: int, variant: str, version: str, id: str, shadow: bool) -> Group:
        key = (generation, variant, version, shadow)
        g = self._groups.get(key)
        if g is None:
            with self._slow_lock:
                g = self._groups.get(key)
                if g is None:
                    g = self._groups[key] = Group(generation, variant, version, id, shadow)
        return g

    def groups(self) -> list[Group]:
        """The groups recorded so far (for exposition and tests)."""
        return list(self._groups.values())

    def retired(self) -> dict[tuple[str, str, bool], dict[str, Any]]:
        """Totals of groups dropped after they went idle, by (version, variant, shadow)."""
        return self._retired

    # -- flushing ---------------------------------------------------------------------------

    def _until_boundary(self) -> float:
        """Seconds to the next multiple of the flush interval on the wall clock.

        Flushes fall on those boundaries, so a line's requests lie within one interval and
        the analysis puts each in its exposure window exactly (issue 14).
        """
        if self._interval <= 0:
            return 0.0
        return self._interval - self._wall() % self._interval

    def _tick(self) -> None:
        self._next = self._clock() + self._until_boundary()
        try:
            self.flush()
        except Exception as exc:  # a flush must never break serving: count, log, retry later
            self._failed(exc)

    def _loop(self) -> None:
        while not self._stop.wait(max(self._until_boundary(), 0.01)):
            self._tick()

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        msg = str(exc) if isinstance(exc, MregError) else f"{type(exc).__name__}: {exc}"
        if msg != self.last_error:
            log.warning("mreg metrics %s: flush failed, will retry: %s", self._source.name, msg)
        self.last_error = msg

    def _release_of(self, generations: set[int]) -> dict[int, int]:
        missing = generations - self._releases.keys()
        if missing:
            raw = self._source.read()[0]
            if raw is not None:
                r = parse_rollout(raw, self._source.rollout_where, self._source.name)
                for e in r.history:
                    self._releases[e.generation] = e.release
        return {g: self._releases[g] for g in generations if g in self._releases}

    def path(self, release: int, now: float | None = None) -> Path:
        """The file this process appends to for `release` (at wall time `now`)."""
        segment = segment_of(self._wall() if now is None else now)
        if self._pid != os.getpid():  # first flush, or a forked worker: a file of its own
            self._pid = os.getpid()
            self._name = process_name(socket.gethostname(), self._pid, secrets.token_hex(3))
        directory = metrics_dir(self._source.root, self._source.name, release)
        return segment_file(directory, self._name, segment)

    def flush(self) -> int:
        """Append what changed since the last flush; return the number of lines written.

        Raises:
            MregError: the rollout manifest is unreadable (nothing is lost: retried later).
            OSError: the store cannot be written (nothing is lost: retried later).
        """
        with self._flush_lock:
            now = self._wall()
            pending = []
            for g in list(self._groups.values()):
                snap = g.snapshot()
                body = delta(snap, g.flushed)
                if body is None:
                    g.idle += 1
                    continue
                g.idle = 0
                pending.append((g, snap, body))
            if pending:
                releases = self._release_of({g.generation for g, _, _ in pending})
                by_release: dict[int, list[str]] = {}
                done = []
                for g, snap, body in pending:
                    if g.generation not in releases:
                        continue  # a generation the manifest does not show yet: next flush
                    line = encode_line(
                        self._since, now, g.generation, g.variant, g.version, g.id, g.shadow, body
                    )
                    by_release.setdefault(releases[g.generation], []).append(line)
                    done.append((g, snap))
                for release, lines in by_release.items():
                    process.append(self.path(release, now), "".join(x + "\n" for x in lines))
                    self.lines += len(lines)
                for g, snap in done:
                    g.flushed = snap
                    if snap["oe"]:
                        forget_written(g, snap["oe"])
                written = len(done)
            else:
                written = 0
            self._since = now
            self.flushes += 1
            self._prune()
            return written

    def _prune(self) -> None:
        """Drop groups of older generations idle for 3 flushes (their totals are kept)."""
        if len(self._groups) <= 8:
            return
        newest = max(k[0] for k in self._groups)
        with self._slow_lock:
            for key, g in list(self._groups.items()):
                if g.generation < newest and g.idle >= 3 and g.flushed is not None:
                    del self._groups[key]
                    for k in [k for k, v in self._by_decision.items() if v is g]:
                        del self._by_decision[k]
                        self._keep.pop(k, None)
                    acc = self._retired.setdefault((g.version, g.variant, g.shadow), {})
                    accumulate(acc, g.flushed)

    def close(self) -> None:
        """Stop the flush thread (if any), flush what is left and stop exposing."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush()
        except Exception as exc:  # closing must not raise from a serving process's shutdown
            self._failed(exc)
        process.unregister(self)

    # -- Prometheus ---------------------------------------------------------------------------

    def expose(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve these metrics for Prometheus on `addr:port` (0: any free port); return the port.

        Needs the `prometheus` extra (`prometheus_client`). Series: `mreg_requests_total`,
        `mreg_errors_total`, `mreg_latency_seconds` (histogram), `mreg_outcome_count`,
        `mreg_outcome_sum`, `mreg_outcome_sumsq`, `mreg_score` (histogram),
        `mreg_shadow_pairs_total`, `mreg_shadow_diff` (histogram), labelled `model`,
        `version`, `variant` (`baseline`, `canary`, or `shadow` for mirrored canary calls);
        and the router's health, labelled `model`: `mreg_config_checks_total`,
        `mreg_config_reloads_total`, `mreg_config_reload_failures_total`,
        `mreg_config_generation` and `mreg_config_failing` (1 while the last good
        configuration is kept because the latest check failed).
        """
        from modelreg.serving.prometheus import serve

        self._exposed = serve(self, self._source.name, port, addr)
        return int(self._exposed.server_port)
