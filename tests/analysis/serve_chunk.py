"""One serving process of the multi-process late-outcome test (issue 14).

    python serve_chunk.py STORE START SECONDS STATE SEED CANARY_CONVERSION DELAY_S

Opens a real `Router` on STORE with a simulated clock starting at START (epoch seconds),
serves SECONDS of simulated traffic (200 requests per simulated second), records each
request, and reports each conversion DELAY_S seconds later with `record_outcome` and the
decision dict logged with the request. Conversions not yet due when the chunk ends are kept
in STATE (JSON) for the next chunk, as a real service keeps them in its queue.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from modelreg.serving import Router

RPS = 200
BASE_CONVERSION = 0.10


def main() -> None:
    store, start, seconds, state, seed, canary_conv, delay = sys.argv[1:8]
    t = [float(start)]
    pending = json.loads(Path(state).read_text()) if Path(state).exists() else []
    rng = random.Random(f"{seed}-{start}")
    router = Router.open(
        "m", store=store, materialize=False, clock=lambda: t[0], wall=lambda: t[0],
        flush_interval_s=10, check_interval_ms=0,
    )  # fmt: skip
    conversion = {"1.0.0": BASE_CONVERSION, "1.1.0": float(canary_conv)}
    for _ in range(int(float(seconds))):
        for _ in range(RPS):
            d = router.route(user_id=f"user-{seed}-{rng.randrange(20_000)}")
            router.record(d, latency_ms=20.0 * rng.lognormvariate(0, 0.3), error=False)
            if rng.random() < conversion[d.version]:
                pending.append([t[0] + float(delay), d.to_dict(at=t[0])])
        t[0] += 1.0
        due = [p for p in pending if p[0] <= t[0]]
        pending = [p for p in pending if p[0] > t[0]]
        for _, logged in due:
            router.record_outcome(logged, conversion=1)
    router.close()
    Path(state).write_text(json.dumps(pending))


if __name__ == "__main__":
    main()
