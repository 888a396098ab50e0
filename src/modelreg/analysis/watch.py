"""`analyze` and `watch`: judge a live release, then step it up, promote it or roll it back.

`analyze(store, name)` reads the release's checks and policy from its rollout manifest,
its metrics from a source (the store by default, or Prometheus), and judges.

`watch(store, name)` loops: analyze; on **fail**, abort the release at once (an audited
`release.abort` whose reason names the failing check); after `policy.passes` passing
analyses at the current weight, `step`; after the last step, `promote` (or stop for a
person's judgment when the policy says `promote: manual`). A plan's final 100% step *is*
the promotion: at 100% no baseline traffic is left to compare the canary with. Each
judgment is appended to `analysis/NAME/<release>.jsonl`; passes are counted there for the
manifest's current generation, so a restarted watch continues where the last one stopped.
It is bounded by `max_duration_s` and `once`, and its clock and sleep are injectable
(tests run it with simulated time, no sleeping).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelreg import layout
from modelreg.analysis.checks import Policy, plan_of
from modelreg.analysis.judge import FAIL, INCONCLUSIVE, PASS, CheckResult, judge
from modelreg.analysis.sources import Sample, StoreSource, compact
from modelreg.errors import Conflict, InvalidInput, LockTimeout, MregError, TransitionRefused
from modelreg.release import ops
from modelreg.release.bucketing import FULL, format_weight
from modelreg.release.rollout import PAUSED, Rollout
from modelreg.serving.aggregate import iter_lines

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "Analysis",
    "CheckFailed",
    "Inconclusive",
    "Source",
    "WatchEvent",
    "WatchReport",
    "analyze",
    "judgments",
    "parse_duration",
    "watch",
]

COMPACT_EVERY_S = 300.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from `30s`, `5m`, `2h`, `1d` or a plain number of seconds.

    Raises:
        InvalidInput: anything else, or a duration that is not above 0.
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise InvalidInput(f"invalid duration {text!r}: use e.g. 30s, 5m, 2h")
    return float(m.group(1)) * _UNITS[m.group(2)]


class CheckFailed(MregError):
    """The analysis found the canary worse than a check allows (exit 1)."""


class Inconclusive(MregError):
    """The analysis cannot judge yet: too few samples, or not yet confident (exit 3)."""

    exit_code = 3


class Source(Protocol):
    """Where metrics come from: `StoreSource` or `PrometheusSource`."""

    def read(self, rollout: Rollout, stratum_s: int) -> Sample:
        """The sample of the rollout's current phase."""
        ...  # pragma: no cover (protocol)


@dataclass(frozen=True)
class Analysis:
    """The judgment of one release at one moment: every check's result and the verdict."""

    model: str
    release: int
    generation: int
    state: str
    weight: float
    mode: str
    verdict: str
    results: tuple[CheckResult, ...]
    policy: Policy
    baseline: str
    canary: str
    source: str
    n_baseline: int = 0
    n_canary: int = 0

    def failing(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.verdict == FAIL]

    def summary(self) -> str:
        """One line: the verdict and why."""
        pick = self.failing() or [r for r in self.results if r.verdict == INCONCLUSIVE]
        why = "; ".join(f"{r.check.label}: {r.reason}" for r in pick)
        if self.verdict == PASS:
            why = f"{len([r for r in self.results if r.verdict == PASS])} checks pass"
        return f"{self.verdict}: {why}"

    def raise_for_verdict(self) -> None:
        """Raise `CheckFailed` (exit 1) or `Inconclusive` (exit 3) unless the verdict is pass."""
        if self.verdict == FAIL:
            raise CheckFailed(f"{self.model} release {self.release}: {self.summary()}")
        if self.verdict == INCONCLUSIVE:
            raise Inconclusive(f"{self.model} release {self.release}: {self.summary()}")

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release analyze`."""
        return {
            "model": self.model,
            "release": self.release,
            "generation": self.generation,
            "state": self.state,
            "weight": self.weight,
            "mode": self.mode,
            "verdict": self.verdict,
            "baseline": {"version": self.baseline, "requests": self.n_baseline},
            "canary": {"version": self.canary, "requests": self.n_canary},
            "policy": self.policy.to_dict(),
            "source": self.source,
            "checks": [r.to_dict() for r in self.results],
        }


def _rollout(store: StoreHandle, name: str) -> Rollout:
    rollout = ops.read_rollout(store, name)
    if rollout is None:
        ops.status(store, name)  # NotFound for an unknown model
        raise TransitionRefused(
            f"{name} has no release to analyze; start one with 'mreg release start {name}'"
        )
    return rollout


def analyze(store: StoreHandle, name: str, *, source: Source | None = None) -> Analysis:
    """Judge the model's release (its current phase) on its checks and policy.

    Raises:
        TransitionRefused: the model has no release.
        InvalidInput: the release has ended (promoted or aborted): nothing to analyze.
        NotFound: no such model.
        IntegrityError: the manifest or a metrics file is damaged.
        SourceError: Prometheus could not be queried.
    """
    ops.check_analyzable(store, name)  # an ended release: nothing to analyze (exit 2)
    rollout = _rollout(store, name)
    return _analyze(store, rollout, source)


def _analyze(store: StoreHandle, rollout: Rollout, source: Source | None) -> Analysis:
    checks, policy = plan_of(rollout.analysis)
    src = source if source is not None else StoreSource(store.root, now=store.clock().timestamp())
    sample = src.read(rollout, policy.stratum_s)
    if any(c.kind == "feature_drift" for c in checks):  # the inputs routers captured
        from modelreg.monitoring import with_features

        sample = with_features(store, rollout, sample)
    verdict, results = judge(checks, policy, sample)
    return Analysis(
        rollout.model, rollout.release, rollout.generation, rollout.state,
        format_weight(rollout.canary_share), sample.mode, verdict, tuple(results), policy,
        rollout.baseline.version, rollout.canary.version, sample.source,
        sample.baseline.n, sample.canary.n,
    )  # fmt: skip


# -- watch ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    """One analysis of a watch and what the watch did about it."""

    time: str
    generation: int
    weight: float
    verdict: str
    action: str
    """none, step, promote, abort, hold (last step, manual promotion), paused, or wait (a
    release target has not applied the generation: nothing was judged)."""
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (also a line of the judgment log)."""
        return {
            "time": self.time,
            "generation": self.generation,
            "weight": self.weight,
            "verdict": self.verdict,
            "action": self.action,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class WatchReport:
    """What a watch did, and why it stopped."""

    model: str
    release: int
    outcome: str
    """aborted, promoted, awaiting-promotion, ended (before the watch), max-duration, once."""
    state: str
    events: tuple[WatchEvent, ...] = field(default_factory=tuple)

    @property
    def aborted(self) -> bool:
        """True when this watch rolled the release back."""
        return self.outcome == "aborted"

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release watch`."""
        return {
            "model": self.model,
            "release": self.release,
            "outcome": self.outcome,
            "state": self.state,
            "events": [e.to_dict() for e in self.events],
        }


def log_path(store: StoreHandle, name: str, release: int) -> Path:
    """`analysis/NAME/<release>.jsonl`: the judgments of one release (name checked first)."""
    return layout.analysis_log(store.root, name, release)


def judgments(store: StoreHandle, name: str, release: int) -> list[dict[str, Any]]:
    """The judgment log of a release, oldest first."""
    return list(iter_lines(log_path(store, name, release)))


def _log(
    store: StoreHandle, name: str, release: int, event: WatchEvent, analysis: Analysis
) -> None:
    path = log_path(store, name, release)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**event.to_dict(), "checks": [r.to_dict() for r in analysis.results]}
    line = (json.dumps(doc, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _passes(store: StoreHandle, rollout: Rollout) -> int:
    return sum(
        1
        for j in judgments(store, rollout.model, rollout.release)
        if j.get("generation") == rollout.generation and j.get("verdict") == PASS
    )


def _act(store: StoreHandle, r: Rollout, a: Analysis, promote: bool, actor: str | None) -> str:
    """Abort, step, promote, or nothing, for one analysis; return the action taken."""
    name = r.model
    if a.verdict == FAIL:
        failed = a.failing()[0]
        ops.abort(
            store, name, reason=f"analysis: {failed.check.label}: {failed.reason}", actor=actor
        )
        return "abort"
    if r.state == PAUSED:
        return "paused"
    if r.canary_share == FULL:
        # No baseline traffic is left to compare with: only a failure could stop promotion.
        why = "analysis: the canary takes all traffic and no check fails"
    else:
        if a.verdict != PASS:
            return "none"
        passes = _passes(store, r) + 1
        if passes < a.policy.passes:
            return "none"
        why = f"analysis: {passes} passing analyses at {format_weight(r.canary_share)}%"
        nxt = r.next_step()
        if nxt is not None and nxt < FULL:
            ops.step(store, name, reason=why, actor=actor)
            return "step"
    # The plan's last weight was reached, or its next one is 100%: promotion is that step.
    if promote and a.policy.promote == "auto":
        ops.promote(store, name, reason=why, actor=actor)
        return "promote"
    return "hold"


def _apply_targets(
    store: StoreHandle,
    rollout: Rollout,
    events: list[WatchEvent],
    on_event: Callable[[WatchEvent], None] | None,
) -> bool:
    """Apply the rollout's generation to every configured target that does not run it yet.

    True when every target runs it; else a `wait` event says which target failed and why
    (`mreg release status` shows it too).
    """
    if not store.config.targets.get(rollout.model):
        return True
    from modelreg.release.targets import sync

    failed = [a for a in sync(store, rollout.model, rollout.generation) if not a.ok]
    if not failed:
        return True
    why = "; ".join(f"target {a.target} did not apply generation {a.attempted}: {a.error}"
                    for a in failed)  # fmt: skip
    event = WatchEvent(store.now(), rollout.generation, format_weight(rollout.canary_share),
                       "waiting", "wait", why)  # fmt: skip
    events.append(event)
    if on_event is not None:
        on_event(event)
    return False


def watch(
    store: StoreHandle,
    name: str,
    *,
    interval_s: float = 30.0,
    max_duration_s: float | None = None,
    once: bool = False,
    promote: bool = True,
    source: Source | None = None,
    actor: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_event: Callable[[WatchEvent], None] | None = None,
) -> WatchReport:
    """Watch a release until it ends, up to `max_duration_s`, or for one analysis (`once`).

    Args:
        store: The store.
        name: The model.
        interval_s: Seconds between analyses.
        max_duration_s: Stop (leaving the release as it is) before exceeding this.
        once: Analyze and act once, then stop (cron and CI jobs).
        promote: Promote after the last step when the policy says `auto`; False stops for
            a manual judgment instead.
        source: Where metrics come from (default: the store).
        actor: Who acts (default: the usual author lookup).
        clock: Monotonic seconds (tests inject one).
        sleep: Waits between analyses (tests inject one that simulates traffic).
        on_event: Called after each analysis (the CLI prints progress).

    Raises:
        Conflict: another watch of this model is running.
        TransitionRefused: the model has no release.
        GateFailed: promotion was refused by a production gate (the release stays live).
    """
    from modelreg.locking import hold

    if not interval_s > 0:
        raise InvalidInput("the watch interval must be above 0 seconds")
    lock = layout.watch_lock(store.root, name)
    try:
        with hold(lock, timeout=0):
            return _watch(store, name, interval_s, max_duration_s, once, promote, source, actor,
                          clock, sleep, on_event)  # fmt: skip
    except LockTimeout:
        raise Conflict(f"another 'mreg release watch {name}' is running") from None


def _watch(
    store: StoreHandle, name: str, interval_s: float, max_duration_s: float | None, once: bool,
    promote: bool, source: Source | None, actor: str | None, clock: Callable[[], float],
    sleep: Callable[[float], None], on_event: Callable[[WatchEvent], None] | None,
) -> WatchReport:  # fmt: skip
    started = clock()
    events: list[WatchEvent] = []
    last_compact = -COMPACT_EVERY_S
    rollout = _rollout(store, name)
    while True:
        rollout = _rollout(store, name)
        if not rollout.live:
            outcome = "ended" if not events else rollout.state
            _apply_targets(store, rollout, events, on_event)  # the end reaches every target
            return WatchReport(name, rollout.release, outcome, rollout.state, tuple(events))
        if not _apply_targets(store, rollout, events, on_event):
            # A target does not run this generation yet: judging now would judge (and step
            # up) a weight the traffic does not have. Retry at the next interval.
            if once:
                return WatchReport(name, rollout.release, "once", rollout.state, tuple(events))
            if max_duration_s is not None and clock() - started + interval_s > max_duration_s:
                return WatchReport(
                    name, rollout.release, "max-duration", rollout.state, tuple(events)
                )
            sleep(interval_s)
            continue
        if source is None and clock() - last_compact >= COMPACT_EVERY_S:
            last_compact = clock()
            _, policy = plan_of(rollout.analysis)
            with store.locked():
                now = store.clock().timestamp()
                compact(store.root, name, rollout.release, now, stratum_s=policy.stratum_s)
        a = _analyze(store, rollout, source)
        action = _act(store, rollout, a, promote, actor)
        event = WatchEvent(store.now(), rollout.generation, format_weight(rollout.canary_share),
                           a.verdict, action, a.summary())  # fmt: skip
        _log(store, name, rollout.release, event, a)
        events.append(event)
        if on_event is not None:
            on_event(event)
        ends = {"abort": "aborted", "promote": "promoted", "hold": "awaiting-promotion"}
        if action in ends:
            after = _rollout(store, name)
            _apply_targets(store, after, events, on_event)  # the abort or promotion, at once
            return WatchReport(name, rollout.release, ends[action], after.state, tuple(events))
        if action == "step":
            _apply_targets(store, _rollout(store, name), events, on_event)
        if once:
            return WatchReport(name, rollout.release, "once", rollout.state, tuple(events))
        if max_duration_s is not None and clock() - started + interval_s > max_duration_s:
            return WatchReport(name, rollout.release, "max-duration", rollout.state, tuple(events))
        sleep(interval_s)
