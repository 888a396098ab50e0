"""A bounded, uniform sample of the requests a router answered, per version (issue 21).

    router.sampler.configure(rate=0.05, size=1000, features=("age", "country"),
                             identifiers=("user_id",))          # key: $MREG_CAPTURE_KEY
    d = router.route(user_id=uid)
    ref = router.capture(d, features=request_fields, prediction=y)   # None: not sampled
    ...
    router.record_outcome(ref or d.to_dict(), converted=1)            # minutes later

Off until configured. A call draws one random number and returns None unless it falls below
`rate`; a sampled request enters the reservoir of its version and time window (Algorithm R,
`size` rows: every sampled request of the window is kept with the same probability), so the
rows kept are a uniform sample of the window's requests, whatever the traffic.

Privacy: only the fields named in `features` are kept, as given; the fields named in
`identifiers` are kept as HMAC-SHA-256 of their text under a key from `key=` or the
environment variable `MREG_CAPTURE_KEY` (never stored in the store: without the key, no
identifier can be captured); every other field the caller passes is dropped. The prediction
is kept as given.

Files, one per process and window, so processes never write the same file::

    .modelreg/samples/NAME/VERSION/<host>-<pid>-<token>-<window start>.jsonl
    .modelreg/samples/NAME/VERSION/<host>-<pid>-<token>-<window start>.outcomes.jsonl

A sample file holds the window's reservoir, rewritten whole at each flush (temp, fsync,
rename: a reader sees the old or the new one); an outcomes file is appended to (one write
per flush, as metrics are), one line per `record_outcome` of a captured request, in the
process that received the outcome. A flush runs at most every `flush_interval_s` from a
sampled call or an outcome, at `close()` and at interpreter exit. For a router on a remote
store the files go under its local cache, as the metrics do (not uploaded yet).

A line (`FORMAT` 1) is one JSON object: a sample `{"v", "request", "t", "version",
"variant", "gen", "features", "prediction"}`; an outcome `{"v", "request", "t", "outcomes"}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.errors import InvalidInput
from modelreg.fsutil import atomic_write
from modelreg.metricsfile import process_name
from modelreg.serving import process
from modelreg.serving.decision import Decision

__all__ = [
    "FORMAT",
    "KEY_ENV",
    "MAX_LINE",
    "OUTCOMES_SUFFIX",
    "Sampler",
    "hash_identifier",
]

FORMAT = 1
KEY_ENV = "MREG_CAPTURE_KEY"
"""The environment variable holding the key identifiers are hashed with."""
MAX_LINE = 64 * 1024
"""The largest line kept (a bigger request is counted in `too_large` and not kept)."""
OUTCOMES_SUFFIX = ".outcomes.jsonl"
MAX_OUTCOMES = 100_000
"""Outcome lines held between two flushes at most (more are counted in `dropped`)."""


def hash_identifier(key: bytes, value: Any) -> str:
    """The HMAC-SHA-256 (hex) of an identifier's text under `key`."""
    return hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


def _encode(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str, allow_nan=False)


class _Reservoir:
    """Algorithm R over one version's window: `size` rows, each sampled request equally likely."""

    __slots__ = ("dirty", "rows", "seen")

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.seen = 0
        self.dirty = False


class Sampler:
    """Captures a sample of requests and their outcomes (normally `router.sampler`).

    Args:
        root: The store's root (`.modelreg`).
        name: The model.
        flush_interval_s: Flush at most this often (0: at every sampled call).
        clock: Monotonic seconds, for scheduling flushes.
        wall: Epoch seconds, stamped on rows (the window they fall in).
    """

    def __init__(
        self,
        root: Path,
        name: str,
        flush_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._root, self.name = root, name
        self._interval = flush_interval_s
        self._clock, self._wall = clock, wall
        self.rate = 0.0
        self.size = 1000
        self.window_s = 600.0
        self._features: frozenset[str] = frozenset()
        self._identifiers: frozenset[str] = frozenset()
        self._key = b""
        self._draw = random.Random(os.urandom(16)).random
        self._rng = random.Random(os.urandom(16))
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._windows: dict[tuple[str, int], _Reservoir] = {}
        self._outcomes: dict[tuple[str, int], list[str]] = {}
        self._next = clock() + flush_interval_s
        self._pid = -1
        self._proc = ""
        self.sampled = self.too_large = self.dropped = self.flushes = self.errors = 0
        self.last_error: str | None = None
        self._closed = False
        process.register(self)

    def configure(
        self,
        *,
        rate: float,
        size: int = 1000,
        features: Iterable[str] = (),
        identifiers: Iterable[str] = (),
        window_s: float = 600.0,
        key: bytes | str | None = None,
        seed: int | None = None,
    ) -> None:
        """Start (or change, or stop with rate 0) capturing.

        Args:
            rate: The probability that a request is sampled (0 to 1).
            size: The most rows kept per version and window (the reservoir).
            features: The request fields kept as given (the allow-list; default none).
            identifiers: The request fields kept as HMAC-SHA-256 of their text.
            window_s: The length of a window in seconds (a file per window and process).
            key: The identifiers' key (default: `$MREG_CAPTURE_KEY`); needed for identifiers.
            seed: Seed the random draws (tests and benchmarks only).

        Raises:
            InvalidInput: a value out of range, or identifiers without a key.
        """
        if not 0.0 <= rate <= 1.0:
            raise InvalidInput("capture rate must be between 0 and 1")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1_000_000:
            raise InvalidInput("capture size must be between 1 and 1000000 rows")
        if not 1.0 <= window_s <= 86_400.0:
            raise InvalidInput("capture window must be between 1 s and 1 day")
        feats, ids = frozenset(map(str, features)), frozenset(map(str, identifiers))
        if key is None:
            key = os.environ.get(KEY_ENV, "")
        secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if ids and len(secret) < 16:
            raise InvalidInput(
                f"hashing identifiers needs a key of 16 bytes or more in ${KEY_ENV} (or key=)"
            )
        with self._lock:
            self.size, self.window_s = size, float(window_s)
            self._features, self._identifiers, self._key = feats - ids, ids, secret
            if seed is not None:
                self._draw = random.Random(seed).random
                self._rng = random.Random(seed + 1)
            self.rate = float(rate)

    # -- the hot path ---------------------------------------------------------------------------

    def capture(
        self,
        d: Decision,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        *,
        request_id: str | None = None,
    ) -> dict[str, Any] | None:
        """Maybe keep this request; return its decision dict with its `request` id if sampled.

        Pass the returned dict to `record_outcome` when the request's outcome arrives. Not
        sampled (the usual case): one random draw, and None.
        """
        if self._draw() >= self.rate:
            return None
        return self._sample(d, features or {}, prediction, request_id)

    def _sample(
        self, d: Decision, features: Mapping[str, Any], prediction: Any, request_id: str | None
    ) -> dict[str, Any] | None:
        now = self._wall()
        rid = request_id if request_id is not None else secrets.token_hex(8)
        kept: dict[str, Any] = {k: v for k, v in features.items() if k in self._features}
        for k in self._identifiers.intersection(features):
            kept[k] = hash_identifier(self._key, features[k])
        line = _encode(
            {
                "v": FORMAT, "request": str(rid), "t": now, "version": d.version,
                "variant": d.variant, "gen": d.generation, "features": kept,
                "prediction": prediction,
            }
        )  # fmt: skip
        if len(line) >= MAX_LINE:
            self.too_large += 1
            return None
        key = (d.version, int(now // self.window_s))
        with self._lock:
            r = self._windows.get(key)
            if r is None:
                r = self._windows[key] = _Reservoir()
            r.seen += 1
            self.sampled += 1
            if len(r.rows) < self.size:
                r.rows.append(line)
                r.dirty = True
            else:
                j = self._rng.randrange(r.seen)
                if j < self.size:
                    r.rows[j] = line
                    r.dirty = True
        if self._clock() >= self._next:
            self._tick()
        out = d.to_dict(now)
        out["request"] = str(rid)
        return out

    def outcome(self, ref: Mapping[str, Any], outcomes: Mapping[str, Any]) -> None:
        """Keep the outcomes of a captured request (`ref`: the dict `capture` returned)."""
        rid, version = ref.get("request"), ref.get("version")
        if not isinstance(rid, str) or not isinstance(version, str) or not outcomes:
            return
        now = self._wall()
        line = _encode({"v": FORMAT, "request": rid, "t": now, "outcomes": dict(outcomes)})
        with self._lock:
            pending = self._outcomes.setdefault((version, int(now // self.window_s)), [])
            if len(line) >= MAX_LINE or sum(map(len, self._outcomes.values())) >= MAX_OUTCOMES:
                self.dropped += 1
            else:
                pending.append(line)
        if self._clock() >= self._next:
            self._tick()

    # -- flushing ---------------------------------------------------------------------------

    def _tick(self) -> None:
        self._next = self._clock() + self._interval
        try:
            self.flush()
        except Exception as exc:  # a flush must never break serving: count, retry later
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    def _file(self, version: str, window: int, suffix: str) -> Path:
        if self._pid != os.getpid():  # first flush, or a forked worker: files of its own
            self._pid = os.getpid()
            self._proc = process_name(socket.gethostname(), self._pid, secrets.token_hex(3))
        start = int(window * self.window_s)
        return layout.samples_dir(self._root, self.name, version) / f"{self._proc}-{start}{suffix}"

    def flush(self) -> int:
        """Write the changed reservoirs and the pending outcomes; return the files written.

        Raises:
            OSError: the store cannot be written (the rows stay in memory: retried later).
        """
        with self._flush_lock:
            current = int(self._wall() // self.window_s)
            with self._lock:
                todo = [(k, list(r.rows)) for k, r in self._windows.items() if r.dirty]
                for k, _ in todo:
                    self._windows[k].dirty = False
                outcomes, self._outcomes = self._outcomes, {}
            written = 0
            try:
                for (version, window), rows in todo:
                    data = "".join(x + "\n" for x in rows).encode()
                    atomic_write(self._file(version, window, ".jsonl"), data)
                    written += 1
                for (version, window), lines in list(outcomes.items()):
                    if lines:
                        path = self._file(version, window, OUTCOMES_SUFFIX)
                        process.append(path, "".join(x + "\n" for x in lines))
                        written += 1
                    del outcomes[(version, window)]
            except BaseException:
                with self._lock:  # nothing is lost: written again at the next flush
                    for k, _ in todo:
                        if k in self._windows:
                            self._windows[k].dirty = True
                    for k, lines in outcomes.items():
                        self._outcomes.setdefault(k, [])[:0] = lines
                raise
            with self._lock:  # windows that are over and written are dropped from memory
                for k in [k for k, r in self._windows.items() if k[1] < current and not r.dirty]:
                    del self._windows[k]
            self.flushes += 1
            return written

    def close(self) -> None:
        """Flush what is left and stop capturing."""
        if self._closed:
            return
        self._closed = True
        self.rate = 0.0
        self._tick()
        process.unregister(self)

    def _forked(self) -> None:
        """In a forked child: the parent writes what it sampled; start empty here."""
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()
        self._windows, self._outcomes = {}, {}
        self._pid = -1
        self._draw = random.Random(os.urandom(16)).random
        self._rng = random.Random(os.urandom(16))
        self.sampled = self.too_large = self.dropped = self.flushes = self.errors = 0
