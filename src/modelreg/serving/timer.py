"""`with router.timer(d) as t:` records the block's latency, and an error if it raises.

Serving layer (docs/architecture.md). A `Timer` records into any `protocols.Recorder`
(normally the router's `Metrics`), so it needs neither the recorder's nor the router's class.
"""

from __future__ import annotations

import time
from types import TracebackType

from modelreg.serving.decision import Decision
from modelreg.serving.protocols import Recorder

__all__ = ["Timer"]


class Timer:
    """`with router.timer(d) as t:` records the block's latency, and an error if it raises.

    `t.fail()` marks an error without an exception; `t.outcome(clicked=1)` adds outcomes;
    `t.score = 0.83` records the prediction score used for drift checks.
    """

    __slots__ = ("_d", "_error", "_metrics", "_outcomes", "_start", "score")

    def __init__(self, metrics: Recorder, d: Decision) -> None:
        self._metrics, self._d = metrics, d
        self._error = False
        self._outcomes: dict[str, float] = {}
        self.score: float | None = None
        self._start = 0.0

    def fail(self) -> None:
        """Count this request as an error."""
        self._error = True

    def outcome(self, **outcomes: float) -> None:
        """Record business outcomes with the request."""
        self._outcomes.update(outcomes)

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ms = (time.perf_counter() - self._start) * 1000.0
        self._metrics.record(
            self._d, ms, self._error or exc_type is not None, self.score, **self._outcomes
        )
