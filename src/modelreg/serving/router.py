"""The serving-side router: which version answers a request, following every release change.

    router = Router.open("fraud-detector", store=".modelreg")
    d = router.route(user_id="u-42", attributes={"region": "eu"})
    d.variant, d.version, d.path        # "canary" or "baseline", "1.3.0", the version's files

`route()` does no I/O: every configuration is compiled once into a plan whose decisions are
preallocated, so a call costs one SHA-256 of the key and a few comparisons. At most every
`check_interval_ms` a call (or, with `background=True`, a thread) runs the cheap check of
`reload.Source`; a changed, valid manifest swaps the plan in, and anything wrong with it
(missing, half-written, unparsable, invalid, naming a missing version, a failing loader)
keeps the last good plan, logs a warning on the `modelreg.serving` logger and counts an
error in `stats()`. See docs/release.md ("The Router").

The decisions are in `serving.decision`, the compiled plans in `serving.plan`, the recorder
behind `router.record` in `serving.metrics`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.release.bucketing import BUCKETS, FULL, unpack_u64
from modelreg.release.rollout import ABORTED, LIVE, PROMOTED, Rollout, Side
from modelreg.release.rules import USER_ID
from modelreg.serving.capture import Sampler
from modelreg.serving.decision import Decision, RouterStats, Target
from modelreg.serving.metrics import FLUSH_INTERVAL_S, Metrics
from modelreg.serving.plan import Config, Fast, Fixed, Split
from modelreg.serving.reload import (
    ProductionRef,
    Source,
    parse_production,
    parse_rollout,
    store_root,
)
from modelreg.serving.signed import load_trusted, require_signature

__all__ = ["Decision", "Router", "RouterStats", "Target"]

log = logging.getLogger("modelreg.serving")

Loader = Callable[["Target"], Any]
Releaser = Callable[["Target", Any], None]


# -- the router -------------------------------------------------------------------------------


class Router:
    """Routes requests of one model between the versions its rollout manifest names.

    Use `Router.open`. Thread-safe: `route` reads one reference; reloads swap it.
    """

    def __init__(
        self,
        source: Source,
        *,
        check_interval_ms: float = 1000.0,
        loader: Loader | None = None,
        on_release: Releaser | None = None,
        cache_dir: Path | None = None,
        materialize: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        trusted_keys: Sequence[str] = (),
    ) -> None:
        if not check_interval_ms >= 0:
            raise InvalidInput("check_interval_ms must be 0 or more")
        self._trusted = load_trusted(trusted_keys, materialize)
        self.name = source.name
        self._source = source
        self._interval = check_interval_ms / 1000.0
        self._loader = loader
        self._on_release = on_release
        self._cache_dir = cache_dir if cache_dir is not None else source.cache_dir
        self._materialize = materialize
        self._clock = clock
        self._rand = random.Random(os.urandom(16)).random
        self._check_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._known: dict[str, Target] = {}
        self._sig: tuple[Any, ...] | None = None
        self._racy = False
        self._attempted: tuple[bytes | None, bytes | None] | None = None
        self._checks = self._reloads = self._errors = 0
        self._last_error: str | None = None
        self._unparsable: tuple[bytes, type[MregError], str] | None = None
        self._failing = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._next_check = math.inf
        self._config = self._initial()
        self._known = dict(self._config.targets)
        self._decide = self._config.plan.decide
        self._fast = self._config.fast
        self._next_check = clock() + self._interval
        # Metrics for canary analysis (issue 6, metrics.py, docs/analysis.md), and a sample of
        # requests and outcomes, off until `sampler.configure` (issue 21, capture.py).
        self.metrics = m = Metrics(
            source, route=self.route, flush_interval_s=flush_interval_s, clock=clock, wall=wall,
            health=self.stats,
        )  # fmt: skip
        self.record, self.timer = m.record, m.timer
        self.record_outcome, self.record_shadow = m.record_outcome, m.record_shadow
        self.sampler = Sampler(source.root, self.name, flush_interval_s, clock, wall)
        self.capture, m.on_outcome = self.sampler.capture, self.sampler.outcome

    @classmethod
    def open(
        cls,
        name: str,
        *,
        store: str | os.PathLike[str] = ".modelreg",
        check_interval_ms: float = 1000.0,
        loader: Loader | None = None,
        on_release: Releaser | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        materialize: bool = True,
        background: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        options: Mapping[str, Any] | None = None,
        trusted_keys: Sequence[str] = (),
    ) -> Router:
        """Open a router for model `name` in a local store, or on a remote one.

        Args:
            name: The model.
            store: The `.modelreg` directory or the directory holding it; or a remote's URL
                (`s3://bucket/registry`, `file:///mnt/registry`...), read through a local
                cache (see `modelreg.serving.remote`; prefer `background=True` there, so
                that no request waits for the network).
            check_interval_ms: The cheap change check runs at most this often (0: every call).
            loader: Called once per version with its `Target` to load the artifact; the
                result is cached for `model_for` and dropped once the version is no longer
                routed to. A loader that raises keeps the last good configuration.
            on_release: Called with `(target, model)` when a loaded version is dropped.
            cache_dir: Where versions' files are materialised (default
                `<store>/cache/versions`). For a remote store: the local cache (objects and
                versions), default `$MREG_CACHE_DIR`, else `$XDG_CACHE_HOME/mreg`.
            materialize: Set False to skip materialising files (`Decision.path` is None).
            background: Run the checks in a daemon thread instead of inside `route`.
            clock: Monotonic clock in seconds (tests inject one).
            wall: Epoch clock in seconds, stamped on recorded metrics (tests inject one).
            flush_interval_s: Recorded metrics are flushed to the store at most this often
                (for a remote store: under the local cache).
            options: Driver options of a remote store (`endpoint_url`, `region`...), as
                `mreg remote add --option`; never credentials.
            trusted_keys: Public keys (`NAME=PEM` or `PEM`): serve only versions signed by
                one of them (see `modelreg.serving.signed`).

        Raises:
            NotFound: no store, no such model, or nothing to route to (no release and no
                `production` alias).
            IntegrityError: the store's files for this model are unusable.
            RemoteError: the remote store cannot be reached.
        """
        source: Source
        if "://" in os.fspath(store):
            from modelreg.serving.remote import RemoteSource

            source = RemoteSource(os.fspath(store), name, options, cache_dir)
            cache_dir = None  # the remote source materialises under its own cache
        elif options:
            raise InvalidInput("options are for a remote store URL")
        else:
            source = Source(store_root(store), name)
        router = cls(
            source,
            check_interval_ms=check_interval_ms,
            loader=loader,
            on_release=on_release,
            cache_dir=None if cache_dir is None else Path(cache_dir),
            materialize=materialize,
            clock=clock,
            wall=wall,
            flush_interval_s=flush_interval_s,
            trusted_keys=trusted_keys,
        )
        if background:
            router._start_thread()
            router.metrics.start_thread()
        return router

    # -- the hot path ---------------------------------------------------------------------------

    def route(self, user_id: Any = None, attributes: Mapping[str, Any] | None = None) -> Decision:
        """Decide which version answers a request.

        Args:
            user_id: The request's user ID (the default stickiness key); a string.
            attributes: What else the request carries (`region`, `device`...), for rules and
                for a stickiness key other than `user_id`.

        Returns:
            The decision; sticky for a key within one release. It never raises for a user ID
            of any printable type and a mapping (or None) of attributes: a failed reload is
            counted in `stats()` and the last good configuration answers.
        """
        if self._clock() >= self._next_check:
            self._tick()
        fast = self._fast
        if fast is not None and user_id.__class__ is str:
            # The common case inlined (a weight split by user ID, no rules): see bucketing.py.
            prefix, t, canary, baseline = fast
            h = prefix.copy()
            try:
                h.update(user_id.encode())
            except UnicodeEncodeError:
                h.update(user_id.encode("utf-8", "surrogatepass"))
            return canary if unpack_u64(h.digest())[0] % BUCKETS < t else baseline
        return self._decide(user_id, attributes)

    def model_for(self, decision: Decision | Target) -> Any:
        """The loaded artifact of a decision's version (or of a `Target`, e.g. `d.shadow`)."""
        target = decision.target if isinstance(decision, Decision) else decision
        model = self._models.get(target.id, _MISSING)
        if model is not _MISSING:
            return model
        if self._loader is None:
            raise InvalidInput("this router has no loader: pass loader= to Router.open")
        with self._load_lock:
            model = self._models.get(target.id, _MISSING)
            if model is not _MISSING:
                return model
            model = self._loader(target)
            if target.id in self._config.targets:
                self._models[target.id] = model
            return model

    # -- checks and reloads -----------------------------------------------------------------------

    def check(self) -> bool:
        """Run the change check now; True when a new configuration was installed.

        Raises:
            MregError: the changed files are unusable (the last good configuration stays).
        """
        with self._check_lock:
            self._next_check = self._clock() + self._interval
            try:
                changed = self._check()
            except Exception as exc:  # the reload loop: count and report, then re-raise
                self._failed(exc)
                raise
            self._failing = False
            return changed

    def _tick(self) -> None:
        if not self._check_lock.acquire(blocking=False):
            return  # another thread is checking
        try:
            self._next_check = self._clock() + self._interval
            self._check()
            self._failing = False
        except Exception as exc:  # serving must never break: keep the last good config
            self._failed(exc)
        finally:
            self._check_lock.release()

    def _failed(self, exc: BaseException) -> None:
        """Count a failed reload; log it unless it repeats the last error; retry next check."""
        self._errors += 1
        self._failing = True
        self._sig = self._attempted = None  # retry at the next check: the cause may be transient
        msg = str(exc) if isinstance(exc, MregError) else f"{type(exc).__name__}: {exc}"
        if msg != self._last_error:
            log.warning(
                "mreg router %s: keeping the configuration of generation %d: %s",
                self.name,
                self._config.generation,
                msg,
            )
        self._last_error = msg

    def _check(self) -> bool:
        self._checks += 1
        sig = self._source.signature()
        if sig == self._sig and not self._racy:
            return False
        data = self._source.read()
        self._sig, self._racy = sig, Source.is_racy(sig)
        if data == self._attempted:
            return False
        self._attempted = data
        config = self._build(data, self._config.from_rollout)
        self._install(config)
        return True

    def _initial(self) -> Config:
        self._sig = self._source.signature()
        self._racy = Source.is_racy(self._sig)
        self._attempted = None
        try:
            data = self._source.read()
            self._attempted = data
            config = self._build(data, False)
        except MregError as exc:
            if not self._source.has_rollout():
                raise
            # A damaged or unreadable rollout manifest at start-up: serve production if it
            # can, and report.
            try:
                config = self._build((None, self._source.read_production()), False)
            except MregError:
                raise exc from None
            self._errors += 1
            self._failing = True
            self._last_error = str(exc)
            log.warning("mreg router %s: serving production: %s", self.name, exc)
        self._reloads += 1
        return config

    def _target(self, name: str, version: str, digest: str) -> Target:
        known = self._known.get(digest)
        if known is not None and known.version == version:
            return known
        try:
            files = self._source.files(name, version, digest)
            path = None
            if self._materialize:
                path = self._source.prepare(self._cache_dir, digest, files)
        except OSError as exc:  # unreadable store, read-only cache directory, disk full...
            raise IntegrityError(f"{name}@{version}: cannot prepare its files ({exc})") from None
        if self._trusted and path is not None:
            require_signature(self._source, self._trusted, name, version, path)
        return Target(version, digest, path, tuple(f.path for f in files))

    def _build(self, data: tuple[bytes | None, bytes | None], had_rollout: bool) -> Config:
        raw_rollout, raw_alias = data
        src = self._source
        rollout = None
        if raw_rollout is not None:
            rollout = self._parse_rollout(raw_rollout)
        elif had_rollout:
            raise IntegrityError(f"{src.rollout_where}: the rollout manifest is missing")
        prod: ProductionRef | MregError | None = None
        if raw_alias is not None:
            try:
                prod = parse_production(raw_alias, src.alias_where)
            except MregError as exc:  # only an error if the alias is needed (no live release)
                prod = exc
        return self._compile(rollout, prod)

    def _parse_rollout(self, raw: bytes) -> Rollout:
        """Parse the rollout manifest; bytes that failed to parse fail again without parsing.

        Parsing depends on the bytes alone, so while a damaged manifest stays as it is, each
        check re-reads it but does not parse it again (a deeply nested or 16 MiB one costs
        about 0.1 s to refuse: at every check of a busy router, that was most of its time).
        """
        bad = self._unparsable
        if bad is not None and bad[0] == raw:
            raise bad[1](bad[2])
        try:
            return parse_rollout(raw, self._source.rollout_where, self.name)
        except MregError as exc:
            self._unparsable = (raw, type(exc), str(exc))
            raise

    def _compile(
        self, rollout: Rollout | None, maybe_prod: ProductionRef | MregError | None
    ) -> Config:
        name = self.name
        fast: Fast | None = None
        if isinstance(maybe_prod, MregError) and (rollout is None or rollout.state not in LIVE):
            raise maybe_prod
        prod = maybe_prod if isinstance(maybe_prod, ProductionRef) else None

        def side(s: Side | ProductionRef) -> Target:
            return self._target(name, s.version, s.id)

        if rollout is not None and rollout.state in LIVE:
            base, can = side(rollout.baseline), side(rollout.canary)
            gen = rollout.generation
            plan: Fixed | Split
            if rollout.shadow:
                plan = Fixed(Decision("baseline", base, "shadow", None, can, gen))
            elif not rollout.rules and rollout.weight in (0, FULL):
                variant, t = ("canary", can) if rollout.weight == FULL else ("baseline", base)
                plan = Fixed(Decision(variant, t, "weight", None, None, gen))
            else:
                plan = Split(rollout, base, can, self._rand)
                if not rollout.rules and rollout.stick_by == USER_ID:
                    fast = (plan.prefix, plan.threshold, plan.canary, plan.baseline)
            targets = {base.id: base, can.id: can}
        elif rollout is not None and (
            prod is None or prod.generation <= (rollout.production_generation or 0)
        ):
            ended = rollout.state == PROMOTED
            t = side(rollout.canary if ended else rollout.baseline)
            reason = PROMOTED if ended else ABORTED
            plan = Fixed(
                Decision(
                    "canary" if ended else "baseline", t, reason, None, None, rollout.generation
                )
            )
            targets = {t.id: t}
        elif prod is not None:  # no release, or production moved after the release ended
            t = side(prod)
            gen = rollout.generation if rollout else 0
            plan = Fixed(Decision("baseline", t, "production", None, None, gen))
            targets = {t.id: t}
        else:
            raise NotFound(f"{name} has no release and no production alias: nothing to route to")
        if self._loader is not None:
            self._preload(targets)
        state = rollout.state if rollout else "none"
        generation = rollout.generation if rollout else 0
        return Config(plan, fast, state, generation, targets, rollout is not None)

    def _preload(self, targets: dict[str, Target]) -> None:
        assert self._loader is not None
        with self._load_lock:
            for digest, t in targets.items():
                if digest not in self._models:
                    self._models[digest] = self._loader(t)

    def _install(self, config: Config) -> None:
        old = self._config
        self._config = config
        self._known = dict(config.targets)
        self._decide = config.plan.decide
        self._fast = config.fast
        self._reloads += 1
        log.info(
            "mreg router %s: generation %d (%s) in force",
            self.name,
            config.generation,
            config.state,
        )
        self._release_unrouted(old)

    def _release_unrouted(self, old: Config | None) -> None:
        with self._load_lock:
            gone = [d for d in self._models if d not in self._config.targets]
            released = [(d, self._models.pop(d)) for d in gone]
        for digest, model in released:
            target = old.targets.get(digest) if old else None
            if self._on_release is not None and target is not None:
                try:
                    self._on_release(target, model)
                except Exception as exc:  # a user callback must not break serving
                    log.warning("mreg router %s: on_release failed: %s", self.name, exc)

    # -- background checks, stats, closing ------------------------------------------------------

    def _start_thread(self) -> None:
        self._next_check = math.inf  # `route` no longer checks
        interval = max(self._interval, 0.001)

        def loop() -> None:
            while not self._stop.wait(interval):
                self._tick()

        self._thread = threading.Thread(target=loop, name=f"mreg-router-{self.name}", daemon=True)
        self._thread.start()

    def stats(self) -> RouterStats:
        """Counters (checks, reloads, errors) and the configuration in force."""
        c = self._config
        return RouterStats(
            self._checks, self._reloads, self._errors, self._last_error, c.state, c.generation,
            tuple(sorted(t.version for t in c.targets.values())), self._failing,
        )  # fmt: skip

    def close(self) -> None:
        """Stop the background thread (if any), flush metrics, release every loaded version."""
        self._stop.set()
        self.metrics.close()
        self.sampler.close()
        if self._thread is not None:
            self._thread.join()
        old = self._config
        self._config = Config(old.plan, old.fast, old.state, old.generation, {}, old.from_rollout)
        self._release_unrouted(old)

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_MISSING: Any = object()
