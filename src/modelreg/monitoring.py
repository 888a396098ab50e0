"""`mreg monitor`: drift of a version's production inputs against its training profile.

Domain layer (docs/architecture.md), issue 21; docs/monitoring.md is the guide. Reads the
version's stored training-data profile (`trainingdata.read_profile`), the rows its routers
captured in a time window (`dataexport.read_rows`, the export's reader and merger), and
computes per feature PSI and a distance (`analysis.drift.against_profile`), held to limits:

    drift.features.psi <= auto          the default: PSI <= max(0.1, psi_limit(bins, n_ref, n))
    drift.features.psi <= 0.2           every captured feature
    drift.feature.age.psi <= 0.1        one feature
    drift.feature.age.ks <= 0.1         the KS distance of a number (`.tv`: a category's total
                                        variation; `.distance`: whichever the feature has)

`auto` (PSI only) is the sample-size-aware rule docs/monitoring.md recommends: significant
at alpha 0.01 *and* at least the customary 0.1 (bench/drift.py measures its false alarms).

The verdict: `crossed` when a limit is crossed on a feature with at least `min_rows`
values; otherwise `inconclusive` when a feature held to a limit has fewer (or the version
has no profile, or nothing was captured); otherwise `ok`. A profiled feature the routers
never captured (absent from every row) is `not captured`, outside the verdict, unless a
limit names it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelreg.catalog import resolve
from modelreg.errors import InvalidInput
from modelreg.exportrecords import format_time, parse_time
from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.analysis.sources import Sample
    from modelreg.dataprofile import Profile
    from modelreg.manifest import ModelVersion
    from modelreg.release.rollout import Rollout

__all__ = [
    "DEFAULT_LIMITS",
    "MIN_ROWS",
    "DriftLimit",
    "DriftReport",
    "DriftSeries",
    "FeatureReport",
    "drift_report",
    "drift_series",
    "with_features",
]

MIN_ROWS = 100
"""Values of a feature below which its drift is inconclusive (PSI is mostly noise there)."""
DEFAULT_LIMITS = ("drift.features.psi <= auto",)
FLOOR = 0.1
"""`auto`'s fixed part: the customary PSI threshold."""
MAX_BUCKETS = 2000
_STATISTICS = ("psi", "distance", "ks", "tv")
_LIMIT = re.compile(
    r"^\s*drift\.(?:features|feature\.(?P<feature>[^\s<>=]+))\.(?P<stat>psi|distance|ks|tv)"
    r"\s*(?P<op><=|<)\s*(?P<value>auto|[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*$"
)


@dataclass(frozen=True)
class DriftLimit:
    """One drift limit: `drift.features.STAT OP V` or `drift.feature.NAME.STAT OP V`.

    Attributes:
        text: The limit as written.
        feature: The feature named, None for every feature.
        statistic: psi, distance, ks (numbers) or tv (categories).
        op: `<=` or `<`.
        value: The limit; None for `auto` (PSI's sample-size-aware limit).
    """

    text: str
    feature: str | None
    statistic: str
    op: str
    value: float | None

    @classmethod
    def parse(cls, text: str) -> DriftLimit:
        """Parse one limit; InvalidInput saying what is expected."""
        m = _LIMIT.match(text)
        if not m:
            raise InvalidInput(
                f"cannot parse drift check {text!r}: expected 'drift.features.psi <= 0.2' or "
                "'drift.feature.NAME.STAT <= V' (STAT psi, distance, ks or tv; V a number, "
                "or auto for psi)"
            )
        stat, raw = m.group("stat"), m.group("value")
        if raw == "auto" and stat != "psi":
            raise InvalidInput(f"drift check {text!r}: auto is a limit of psi only")
        value = None if raw == "auto" else float(raw)
        return cls(text.strip(), m.group("feature"), stat, m.group("op"), value)

    def applies(self, name: str, method: str) -> bool:
        """Whether this limit holds `name` (a feature whose distance is `method`)."""
        if self.feature is not None and self.feature != name:
            return False
        return self.statistic in ("psi", "distance") or self.statistic == method

    def limit(self, bins: int, n_reference: int, n_production: int) -> float:
        """The number a value is held to (`auto`: max(0.1, psi_limit))."""
        if self.value is not None:
            return self.value
        from modelreg.analysis.drift import psi_limit

        return max(FLOOR, psi_limit(bins, n_reference, n_production))

    def holds(self, value: float, limit: float) -> bool:
        """Whether `value` is within `limit`."""
        return value <= limit if self.op == "<=" else value < limit


@dataclass(frozen=True)
class FeatureReport:
    """The drift of one feature and its status: ok, crossed, inconclusive or not captured."""

    feature: str
    type: str
    psi: float
    distance: float
    method: str
    n_reference: int
    n_production: int
    bins: int
    psi_limit: float
    """The sample-size-aware limit max(0.1, psi_limit) (what `auto` means), for reference."""
    status: str
    crossed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (`--json`)."""
        return {
            "feature": self.feature, "type": self.type, "psi": self.psi,
            "distance": self.distance, "method": self.method,
            "n_reference": self.n_reference, "n_production": self.n_production,
            "bins": self.bins, "psi_limit": _finite(self.psi_limit), "status": self.status,
            "crossed": list(self.crossed),
        }  # fmt: skip


@dataclass(frozen=True)
class DriftReport:
    """What `mreg monitor` found: per-feature drift against the profile, and the verdict."""

    model: str
    version: str
    data: str | None
    """The `--data` entry whose profile is the reference (None: the version has none)."""
    since: str | None
    until: str | None
    rows: int
    reference_rows: int
    verdict: str
    """ok, crossed or inconclusive."""
    reason: str
    limits: tuple[str, ...]
    features: tuple[FeatureReport, ...] = ()
    crossed: tuple[str, ...] = ()
    """One line per limit crossed: feature, statistic, value, limit, n."""
    skipped: int = 0
    problems: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for people and logs."""
        window = f"{self.since or '...'}..{self.until or 'now'}"
        window = "all captured rows" if self.since is None and self.until is None else window
        return f"{self.model}@{self.version}: {self.verdict}: {self.reason} ({window})"

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape (docs/cli.md)."""
        return {
            "model": self.model, "version": self.version, "data": self.data,
            "since": self.since, "until": self.until, "rows": self.rows,
            "reference_rows": self.reference_rows, "verdict": self.verdict,
            "reason": self.reason, "limits": list(self.limits),
            "features": [f.to_dict() for f in self.features], "crossed": list(self.crossed),
            "skipped": self.skipped, "problems": list(self.problems),
        }  # fmt: skip


@dataclass(frozen=True)
class DriftSeries:
    """Per-feature drift per time bucket (the web view's charts over time).

    `buckets`: each `{start, end, rows, features: {name: {psi, distance, method,
    n_production, psi_limit}}}`, in time order; a feature with no value in a bucket is left
    out of it.
    """

    model: str
    version: str
    data: str
    step: float
    buckets: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"model": self.model, "version": self.version, "data": self.data,
                "step": self.step, "buckets": list(self.buckets)}  # fmt: skip


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _window(
    store: StoreHandle, since: float | None, until: float | None, window: float | None
) -> tuple[float | None, float | None]:
    if window is not None:
        if since is not None:
            raise InvalidInput("give --since or --window, not both")
        if not window > 0:
            raise InvalidInput("--window must be above 0")
        until = store.clock().timestamp() if until is None else until
        since = until - window
    if since is not None and until is not None and since >= until:
        raise InvalidInput("--since must be before --until")
    return since, until


def _profile(store: StoreHandle, mv: ModelVersion, data: str | None) -> Profile | None:
    """The reference profile: of the data entry named, else of the first profiled one."""
    from modelreg.trainingdata import read_profile

    profiled = [d.uri for d in mv.data if d.profile is not None]
    if data is not None and data not in profiled:
        raise InvalidInput(f"{mv.name}@{mv.version} has no profiled data entry {data!r}")
    if not profiled:
        return None
    return read_profile(store, mv, data or profiled[0])


def _columns(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row["features"].items():
            columns.setdefault(key, []).append(value)
    return columns


def _feature(
    f: Any, psi: Any, dist: Any, limits: Sequence[DriftLimit], captured: bool, min_rows: int
) -> FeatureReport:
    from modelreg.analysis.drift import psi_limit

    auto = max(FLOOR, psi_limit(psi.bins, psi.n_reference, psi.n_production))
    held = [lim for lim in limits if lim.applies(f.name, dist.method)]
    crossed: list[str] = []
    if not held or (not captured and all(lim.feature is None for lim in held)):
        status = "not captured" if not captured else "ok"
    elif psi.n_production < min_rows:
        status = "inconclusive"
    else:
        for lim in held:
            value = psi.value if lim.statistic == "psi" else dist.value
            bound = lim.limit(psi.bins, psi.n_reference, psi.n_production)
            if not lim.holds(value, bound):
                stat = "psi" if lim.statistic == "psi" else dist.method
                crossed.append(
                    f"{f.name}: {stat} {value:.4g} crosses {lim.op} {bound:.4g} "
                    f"({lim.text}; n={psi.n_production})"
                )
        status = "crossed" if crossed else "ok"
    return FeatureReport(
        f.name, f.type, psi.value, dist.value, dist.method, psi.n_reference,
        psi.n_production, psi.bins, auto, status, tuple(crossed),
    )  # fmt: skip


def drift_report(
    store: StoreHandle,
    spec: str,
    *,
    since: float | None = None,
    until: float | None = None,
    window: float | None = None,
    limits: Sequence[str | DriftLimit] | None = None,
    data: str | None = None,
    min_rows: int = MIN_ROWS,
) -> DriftReport:
    """The drift of `NAME@REF`'s captured inputs in a window against its training profile.

    Args:
        store: The store.
        spec: `NAME@VERSION` or `NAME@ALIAS`.
        since: Rows captured at or after this time (epoch seconds).
        until: Rows captured before this time (epoch seconds; default: no end, or now
            with `window`).
        window: Seconds before `until` (or now); instead of `since`.
        limits: Drift limits (`DriftLimit` or its text); default `DEFAULT_LIMITS`.
        data: The `--data` entry whose profile is the reference (default: the first
            profiled one).
        min_rows: Values of a feature below which its drift is inconclusive.

    Raises:
        NotFound: no such model, version or alias.
        InvalidInput: a bad limit or window, a limit naming a feature the profile does not
            have, or `data` not a profiled entry.
    """
    from modelreg.analysis.drift import against_profile
    from modelreg.dataexport import read_rows

    if min_rows < 1:
        raise InvalidInput("--min-rows must be at least 1")
    parsed = [x if isinstance(x, DriftLimit) else DriftLimit.parse(x) for x in limits or ()]
    parsed = parsed or [DriftLimit.parse(x) for x in DEFAULT_LIMITS]
    since, until = _window(store, since, until, window)
    mv = resolve(store, spec)
    texts = tuple(lim.text for lim in parsed)
    ends = (None if since is None else format_time(since),
            None if until is None else format_time(until))  # fmt: skip
    profile = _profile(store, mv, data)
    if profile is None:
        why = f"{mv.name}@{mv.version} has no stored profile (register with --data FILE --profile)"
        return DriftReport(mv.name, mv.version, None, *ends, 0, 0, "inconclusive", why, texts)
    by_name = {f.name: f for f in profile.features}
    for lim in parsed:
        f = by_name.get(lim.feature or "") if lim.feature else None
        if lim.feature is not None and f is None:
            raise InvalidInput(
                f"drift check {lim.text!r}: the profile has no feature {lim.feature!r}"
            )
        if (
            f is not None
            and lim.statistic in ("ks", "tv")
            and (lim.statistic == "ks") != (f.type == "number")
        ):
            raise InvalidInput(
                f"drift check {lim.text!r}: {f.name} is a {f.type}: use ks for numbers, tv for "
                "categories and booleans (or distance)"
            )
    sample = read_rows(store, mv.name, mv.version, since=since, until=until)
    columns = _columns(sample.rows)
    results = against_profile(profile, {f.name: columns.get(f.name, []) for f in profile.features})
    features = tuple(
        _feature(by_name[psi.feature], psi, dist, parsed, psi.feature in columns, min_rows)
        for psi, dist in zip(results[::2], results[1::2], strict=True)
    )
    crossed = tuple(line for f in features for line in f.crossed)
    held = [f for f in features if f.status != "not captured"]
    low = [f.feature for f in held if f.status == "inconclusive"]
    if crossed:
        verdict = "crossed"
        names = sorted({f.feature for f in features if f.status == "crossed"})
        reason = f"drift on {len(names)} of {len(held)} features ({', '.join(names)})"
    elif not sample.rows or not held:
        verdict = "inconclusive"
        reason = f"no captured rows of the profiled features ({len(sample.rows)} rows)"
    elif low:
        verdict = "inconclusive"
        reason = f"fewer than {min_rows} values of {', '.join(low)}"
    else:
        verdict, reason = "ok", f"no limit crossed on {len(held)} features"
    reason += f", {len(sample.rows)} rows against {profile.rows} training rows"
    return DriftReport(
        mv.name, mv.version, data or next(d.uri for d in mv.data if d.profile), *ends,
        len(sample.rows), profile.rows, verdict, reason, texts, features, crossed,
        sample.skipped, sample.problems,
    )  # fmt: skip


def _bucket(results: Sequence[Any]) -> dict[str, dict[str, Any]]:
    from modelreg.analysis.drift import psi_limit

    out = {}
    for p, d in zip(results[::2], results[1::2], strict=True):
        if p.n_production:
            auto = max(FLOOR, psi_limit(p.bins, p.n_reference, p.n_production))
            out[p.feature] = {
                "psi": p.value,
                "distance": d.value,
                "method": d.method,
                "n_production": p.n_production,
                "psi_limit": _finite(auto),
            }
    return out


def drift_series(
    store: StoreHandle,
    spec: str,
    *,
    since: float | None = None,
    until: float | None = None,
    step: float = 3600.0,
    data: str | None = None,
) -> DriftSeries:
    """Per-feature PSI and distance of `NAME@REF`'s captured inputs per time bucket.

    Buckets are `[since + i*step, since + (i+1)*step)`; `since` defaults to the first
    captured row's time rounded down to a multiple of `step`, `until` to now.

    Raises:
        NotFound: no such model or version, or it has no stored profile.
        InvalidInput: a bad window or step, or more than `MAX_BUCKETS` buckets.
    """
    from modelreg.analysis.drift import against_profile
    from modelreg.dataexport import read_rows
    from modelreg.errors import NotFound

    if not step > 0:
        raise InvalidInput("step must be above 0 seconds")
    mv = resolve(store, spec)
    profile = _profile(store, mv, data)
    if profile is None:
        raise NotFound(f"{mv.name}@{mv.version} has no stored profile")
    sample = read_rows(store, mv.name, mv.version, since=since, until=until)
    times = [parse_time(r["time"]) for r in sample.rows]
    if since is None:
        since = math.floor(times[0] / step) * step if times else store.clock().timestamp()
    until = store.clock().timestamp() if until is None else until
    if since >= until:
        raise InvalidInput("since must be before until")
    count = math.ceil((until - since) / step)
    if count > MAX_BUCKETS:
        raise InvalidInput(f"{count} buckets: at most {MAX_BUCKETS} (use a larger step)")
    groups: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for t, row in zip(times, sample.rows, strict=True):
        if since <= t < until:
            groups[int((t - since) // step)].append(row)
    buckets = []
    for i, rows in enumerate(groups):
        columns = _columns(rows)
        feats = _bucket(against_profile(profile, columns))
        start = since + i * step
        buckets.append({"start": format_time(start), "end": format_time(min(start + step, until)),
                        "rows": len(rows), "features": feats})  # fmt: skip
    uri = data or next(d.uri for d in mv.data if d.profile)
    return DriftSeries(mv.name, mv.version, uri, step, tuple(buckets))


def with_features(store: StoreHandle, rollout: Rollout, sample: Sample) -> Sample:
    """`sample` with each side's captured inputs since the release's current phase began.

    What `release analyze` and `release watch` judge `drift.feature*` checks on (the
    canary's inputs against the baseline's, `analysis.judge`): the rows the routers
    captured of each version (`dataexport.read_rows`), from `sources.live_since`.
    """
    from dataclasses import replace

    from modelreg.analysis.sources import live_since
    from modelreg.dataexport import read_rows

    since = live_since(rollout)
    base, can = (
        replace(side, features=_columns(read_rows(store, rollout.model, v, since=since).rows))
        for side, v in ((sample.baseline, rollout.baseline.version),
                        (sample.canary, rollout.canary.version))
    )  # fmt: skip
    return replace(sample, baseline=base, canary=can)
