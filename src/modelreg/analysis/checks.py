"""Analysis checks and the watch policy: the grammar, the manifest form, validation. Pure.

A check is one line, `[NAME:] METRIC OP LIMIT [within TOL] [min N]`:

    error_rate <= baseline + 0.5pt          the canary's error rate, relative to the baseline's
    latency.p99 <= 1.2x baseline            a latency quantile, as a ratio (ms for absolutes)
    conversion >= baseline                  a business outcome per request, not lower
    revenue.mean >= 0.95x baseline          an outcome per observation (sum / count)
    guard: error_rate < 2%                  an absolute guard
    latency.mwu <= 0.55                     Mann-Whitney: P(canary slower) at most 0.55
    agreement >= 99% within 0.01            shadow answers equal within 0.01 (shadow mode)
    drift.psi <= 0.2                        population stability index of the scores
    drift.ks <= 0.1                         Kolmogorov-Smirnov distance of the scores
    drift.feature.age.psi <= 0.1            an input's drift (`drift.features.*`: every input)

`<` and `<=` mean higher is worse, `>` and `>=` lower is worse. A relative limit is
`[R x] baseline [+|- D]` (`pt` and `%` are percentage points: 0.5pt = 0.005); an absolute
one a number with an optional unit (`%`, `ms`, `s`). The manifest stores each check as a
mapping (`Check.to_dict`), the policy as one entry `{policy: {...}}`, and the PromQL
templates of mesh and gateway metrics, if any, as one entry `{queries: ...}`
(`modelreg.analysis.queries`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelreg.analysis.queries import QuerySet, queries_of
from modelreg.errors import InvalidInput, NotFound
from modelreg.serving.aggregate import EXPOSURE_S

__all__ = [
    "DEFAULT_CHECKS",
    "OPS",
    "Check",
    "Policy",
    "checks_from_list",
    "format_window",
    "normalize",
    "parse_window",
    "plan_of",
    "queries_of",
    "read_checks_file",
]

OPS = ("<=", "<", ">=", ">")
DEFAULT_CHECKS = ("error_rate <= baseline + 0.5pt", "latency.p99 <= 1.2x baseline")
"""What a release without configured checks is judged on."""

_NUM = r"[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?"
_LINE = re.compile(
    r"^\s*(?:(?P<name>[A-Za-z0-9][A-Za-z0-9 _.-]*?)\s*:\s*)?"
    r"(?P<metric>[a-z][a-z0-9_]*(?:\.[a-z0-9_.]+)?)\s*(?P<op><=|>=|<|>)\s*(?P<limit>.+?)"
    rf"(?:\s+within\s+(?P<tol>{_NUM}(?:%|s|m|h|d)?))?(?:\s+min\s+(?P<min>[0-9]+))?\s*$"
)
_RELATIVE = re.compile(
    rf"^(?:(?P<ratio>{_NUM})\s*[x*]\s*)?baseline(?:\s*(?P<sign>[+-])\s*(?P<delta>{_NUM})\s*"
    r"(?P<unit>pt|%)?)?$"
)
_ABSOLUTE = re.compile(rf"^(?P<value>-?{_NUM})\s*(?P<unit>%|pt|ms|s)?$")
_QUANTILE = re.compile(r"^latency\.p(?P<q>[0-9]{1,2}(?:\.[0-9]+)?)$")
_OUTCOME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?P<mean>\.mean)?$")
_FEATURE_DRIFT = re.compile(r"^drift\.(?:features|feature\.[a-z0-9_.]+)\.(?:psi|distance|ks|tv)$")
_RESERVED = {"error_rate", "latency", "agreement", "drift"}
_POLICY_KEYS = {
    "alpha", "passes", "promote", "min_samples", "stratum_s", "outcome_window", "hold_z",
}  # fmt: skip
_DURATION = re.compile(rf"^(?P<n>{_NUM})(?P<unit>s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str | float) -> float:
    """An attribution window in seconds from `10m`, `90s`, `2h`, `1d` or a number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text).strip())
        if not m:
            raise InvalidInput(f"invalid window {text!r}: use e.g. 30s, 10m, 2h or 1d")
        seconds = float(m.group("n")) * _SECONDS[m.group("unit")]
    if not 0 <= seconds <= 90 * 86400:
        raise InvalidInput(f"invalid window {text!r}: between 0s and 90d")
    return seconds


def format_window(seconds: float) -> str:
    """`600` as `10m`, `90` as `90s` (the form `parse_window` reads back)."""
    for unit in ("d", "h", "m"):
        n = seconds / _SECONDS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{seconds:g}s"


def _unit(value: float, unit: str | None) -> float:
    # Rounded to 12 digits, so that a limit printed and parsed again is the same number.
    if unit in ("%", "pt"):
        return float(f"{value / 100:.12g}")
    if unit == "s":
        return float(f"{value * 1000:.12g}")
    return value


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class Check:
    """One check: the canary's `metric` held to a limit, absolute (`value`) or relative.

    A relative limit is `ratio` x the baseline's value + `delta`.
    """

    metric: str
    op: str
    value: float | None = None
    ratio: float | None = None
    delta: float = 0.0
    name: str = ""
    tolerance: float = 0.0
    min_samples: int | None = None
    window: float | None = None
    """Outcome checks: seconds an outcome may take after its request (`within 10m`)."""

    @property
    def kind(self) -> str:
        """The evaluation: rate, quantile, mwu, agreement, psi, ks, outcome or outcome_mean."""
        m = self.metric
        if m == "error_rate":
            return "rate"
        if _QUANTILE.match(m):
            return "quantile"
        fixed = {"latency.mwu": "mwu", "agreement": "agreement", "drift.psi": "psi",
                 "drift.ks": "ks"}  # fmt: skip
        if m in fixed or m.startswith("drift.feature"):  # inputs' drift: issue 21
            return fixed.get(m, "feature_drift")
        return "outcome_mean" if m.endswith(".mean") else "outcome"

    @property
    def higher_is_worse(self) -> bool:
        """`<`/`<=`: the canary fails by being above its limit; `>`/`>=`: below it."""
        return self.op in ("<", "<=")

    @property
    def relative(self) -> bool:
        """True when the limit follows the baseline's value."""
        return self.ratio is not None

    @property
    def q(self) -> float:
        """The quantile of a `latency.pNN` check (0.99 for p99)."""
        m = _QUANTILE.match(self.metric)
        return float(m.group("q")) / 100 if m else 0.0

    @property
    def outcome(self) -> str:
        """The business outcome's name (`conversion` for `conversion` or `conversion.mean`)."""
        return self.metric.removesuffix(".mean")

    @property
    def label(self) -> str:
        """The name, else the metric."""
        return self.name or self.metric

    def limit_text(self) -> str:
        """The limit as written in the one-line form."""
        if self.ratio is None:
            assert self.value is not None
            if self.kind in ("rate", "agreement"):
                return f"{_fmt(self.value * 100)}%"
            return _fmt(self.value) + ("ms" if self.kind == "quantile" else "")
        text = "baseline" if self.ratio == 1 else f"{_fmt(self.ratio)}x baseline"
        if self.delta:
            sign = "+" if self.delta > 0 else "-"
            text += f" {sign} {_fmt(abs(self.delta) * 100)}pt"
        return text

    def text(self) -> str:
        """The one-line form (parses back to an equal check)."""
        out = f"{self.name}: " if self.name else ""
        out += f"{self.metric} {self.op} {self.limit_text()}"
        if self.tolerance:
            out += f" within {_fmt(self.tolerance)}"
        if self.window is not None:
            out += f" within {format_window(self.window)}"
        if self.min_samples is not None:
            out += f" min {self.min_samples}"
        return out

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (also in `release status --json` and `analyze --json`)."""
        doc: dict[str, Any] = {"metric": self.metric, "op": self.op}
        if self.name:
            doc["name"] = self.name
        if self.ratio is None:
            doc["value"] = self.value
        else:
            doc["baseline"] = {"ratio": self.ratio, "delta": self.delta}
        if self.tolerance:
            doc["tolerance"] = self.tolerance
        if self.min_samples is not None:
            doc["min_samples"] = self.min_samples
        if self.window is not None:
            doc["window"] = self.window
        return doc

    @classmethod
    def parse(cls, text: str) -> Check:
        """Parse the one-line form; raise InvalidInput saying what is wrong."""
        m = _LINE.match(text)
        if not m:
            raise InvalidInput(
                f"cannot parse check {text!r}: expected '[NAME:] METRIC OP LIMIT', e.g. "
                "'error_rate <= baseline + 0.5pt' or 'latency.p99 <= 1.2x baseline'"
            )
        limit = m.group("limit").strip()
        value = ratio = None
        delta = 0.0
        rel = _RELATIVE.match(limit)
        if rel:
            ratio = float(rel.group("ratio") or 1)
            if rel.group("delta"):
                delta = _unit(float(rel.group("delta")), rel.group("unit") or None)
                delta = -delta if rel.group("sign") == "-" else delta
        else:
            ab = _ABSOLUTE.match(limit)
            if not ab:
                raise InvalidInput(
                    f"check {text!r}: cannot read the limit {limit!r}: use a number (2%, "
                    "250ms, 0.2) or 'baseline', '1.2x baseline', 'baseline + 0.5pt'"
                )
            value = _unit(float(ab.group("value")), ab.group("unit"))
        tol = m.group("tol")
        tolerance = 0.0
        window = None
        if tol is not None and tol[-1] in _SECONDS:
            window = parse_window(tol)
        elif tol is not None:
            tolerance = _unit(float(tol.rstrip("%")), "%" if tol.endswith("%") else None)
        check = cls(
            metric=m.group("metric"),
            op=m.group("op"),
            value=value,
            ratio=ratio,
            delta=delta,
            name=(m.group("name") or "").strip(),
            tolerance=tolerance,
            min_samples=None if m.group("min") is None else int(m.group("min")),
            window=window,
        )  # fmt: skip
        return check.validated()

    @classmethod
    def from_dict(cls, doc: Any) -> Check:
        """Parse the manifest form (or a one-line text); raise InvalidInput if malformed."""
        if isinstance(doc, str):
            return cls.parse(doc)
        if not isinstance(doc, Mapping):
            raise InvalidInput(f"a check must be a mapping or a text, not {doc!r}")
        known = {"metric", "op", "name", "value", "baseline", "tolerance", "min_samples", "window"}
        extra = set(doc) - known
        if extra:
            raise InvalidInput(f"check {dict(doc)!r}: unknown field(s) {sorted(extra)}")
        try:
            base = doc.get("baseline")
            if base is not None and not isinstance(base, Mapping):
                raise InvalidInput("baseline must be a mapping {ratio, delta}")
            min_samples = doc.get("min_samples")
            check = cls(
                metric=str(doc["metric"]),
                op=str(doc["op"]),
                value=None if doc.get("value") is None else float(doc["value"]),
                ratio=None if base is None else float(base.get("ratio", 1)),
                delta=0.0 if base is None else float(base.get("delta", 0)),
                name=str(doc.get("name") or ""),
                tolerance=float(doc.get("tolerance") or 0),
                min_samples=None if min_samples is None else int(min_samples),
                window=None if doc.get("window") is None else parse_window(doc["window"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed check {dict(doc)!r}: {exc}") from None
        return check.validated()

    def validated(self) -> Check:
        """This check, or InvalidInput saying why it cannot be evaluated."""
        where = f"check {self.text()!r}"
        if self.op not in OPS:
            raise InvalidInput(f"{where}: the operator must be one of {', '.join(OPS)}")
        if (self.value is None) == (self.ratio is None):
            raise InvalidInput(f"{where}: give either an absolute value or a baseline limit")
        kind = self.kind
        if kind in ("outcome", "outcome_mean"):
            m = _OUTCOME.match(self.metric)
            if not m or m.group("name") in _RESERVED:
                raise InvalidInput(
                    f"{where}: unknown metric {self.metric!r}: use error_rate, latency.pNN, "
                    "latency.mwu, agreement, drift.psi, drift.ks, or a business outcome "
                    "name (conversion, or conversion.mean for the mean per observation)"
                )
        if kind == "feature_drift" and not _FEATURE_DRIFT.match(self.metric):
            raise InvalidInput(f"{where}: use drift.features.STAT or drift.feature.NAME.STAT")
        if kind == "quantile" and not 0 < self.q < 1:
            raise InvalidInput(f"{where}: the quantile must be between p0 and p100")
        if kind in ("mwu", "agreement", "psi", "ks", "feature_drift") and self.relative:
            raise InvalidInput(f"{where}: {self.metric} takes an absolute limit, e.g. 0.2")
        if kind == "quantile" and self.relative and self.delta:
            raise InvalidInput(f"{where}: latency limits are ratios, e.g. '1.2x baseline'")
        if self.ratio is not None and self.ratio <= 0:
            raise InvalidInput(f"{where}: the ratio must be above 0")
        if self.tolerance < 0 or (self.tolerance and kind != "agreement"):
            raise InvalidInput(f"{where}: 'within' is a tolerance of agreement checks only")
        if self.window is not None and kind not in ("outcome", "outcome_mean"):
            raise InvalidInput(
                f"{where}: 'within DURATION' is the attribution window of outcome checks only"
            )
        if self.min_samples is not None and self.min_samples < 1:
            raise InvalidInput(f"{where}: min must be at least 1")
        return self


@dataclass(frozen=True)
class Policy:
    """How `watch` judges: family-wise alpha, passes per step, promotion, sample sizes."""

    alpha: float = 0.05
    """False-alarm budget of a whole release, shared by its checks (Bonferroni)."""
    passes: int = 3
    """Passing analyses needed at a weight before stepping to the next."""
    promote: str = "auto"
    """After the last step: `auto` promotes, `manual` stops for a person's judgment."""
    min_samples: int = 500
    """Requests (or observations) each side needs before a check can pass or fail."""
    stratum_s: int = 60
    """Width of the exposure windows that rate and mean checks are stratified by."""
    outcome_window: float = 0.0
    """Default attribution window (seconds) of outcome checks without `within`; 0: none."""
    hold_z: float = 1.645
    """A check whose single-look z exceeds this holds the canary (inconclusive); 0: off."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (stored as `{policy: ...}` in the manifest's `analysis`)."""
        doc: dict[str, Any] = {
            "alpha": self.alpha,
            "passes": self.passes,
            "promote": self.promote,
            "min_samples": self.min_samples,
            "stratum_s": self.stratum_s,
        }
        # written only when set, so manifests stay readable by earlier versions
        if self.outcome_window:
            doc["outcome_window"] = self.outcome_window
        if self.hold_z != Policy.hold_z:
            doc["hold_z"] = self.hold_z
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> Policy:
        """Parse and check; raise InvalidInput if malformed."""
        if not isinstance(doc, Mapping) or set(doc) - _POLICY_KEYS:
            raise InvalidInput(f"the analysis policy takes only {sorted(_POLICY_KEYS)}")
        try:
            plain = {k: v for k, v in doc.items() if k != "outcome_window"}
            values = {k: type(getattr(cls(), k))(v) for k, v in plain.items()}
            if "outcome_window" in doc:
                values["outcome_window"] = parse_window(doc["outcome_window"])
            p = replace(cls(), **values)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed analysis policy: {exc}") from None
        if p.hold_z < 0:
            raise InvalidInput("policy hold_z must be 0 (no hold) or above")
        if p.stratum_s % EXPOSURE_S:
            # late outcomes are attributed to 10 s exposure buckets, which must tile a window
            raise InvalidInput(f"policy stratum_s must be a multiple of {EXPOSURE_S} seconds")
        if not 0 < p.alpha < 0.5:
            raise InvalidInput("policy alpha must be between 0 and 0.5")
        if p.passes < 1 or p.min_samples < 1 or p.stratum_s < 1:
            raise InvalidInput("policy passes, min_samples and stratum_s must be at least 1")
        if p.promote not in ("auto", "manual"):
            raise InvalidInput("policy promote must be auto or manual")
        return p


def checks_from_list(items: Any) -> tuple[tuple[Check, ...], Policy]:
    """Checks and policy from the manifest's `analysis` list (or a checks file).

    A file may also be `{checks: [...], policy: {...}, queries: ...}`. An empty list means
    the default checks (`DEFAULT_CHECKS`) and the default policy. A `{queries: ...}` entry
    is validated here and read by `queries_of`.
    """
    if isinstance(items, Mapping):
        items = _as_list(items)
    if not isinstance(items, (list, tuple)):
        raise InvalidInput("analysis checks must be a list")
    checks: list[Check] = []
    policy = Policy()
    queries_of(items)  # validated: one entry at most, well formed
    for i, item in enumerate(items, 1):
        if isinstance(item, Mapping) and set(item) == {"policy"}:
            policy = Policy.from_dict(item["policy"])
            continue
        if isinstance(item, Mapping) and set(item) == {"queries"}:
            continue
        try:
            checks.append(Check.from_dict(item))
        except InvalidInput as exc:
            raise InvalidInput(f"check {i}: {exc}") from None
    names = [c.label for c in checks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InvalidInput(
            f"two checks are named {sorted(dup)[0]!r}: name them apart ('NAME: ...')"
        )
    return tuple(checks), policy


def normalize(items: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """The manifest form of checks given as texts, mappings, `Check`s, `Policy`s or `QuerySet`s.

    The checks come first, then the policy, then the queries entry (when given).
    """
    raw: list[Any] = []
    for x in items:
        if isinstance(x, Check):
            raw.append(x.to_dict())
        elif isinstance(x, Policy):
            raw.append({"policy": x.to_dict()})
        elif isinstance(x, QuerySet):
            raw.append({"queries": x.to_dict()})
        else:
            raw.append(x)
    checks, policy = checks_from_list(raw)
    out = [c.to_dict() for c in checks]
    if any(isinstance(x, Mapping) and "policy" in x for x in raw) or policy != Policy():
        out.append({"policy": policy.to_dict()})
    queries = queries_of(raw)
    if queries is not None:
        out.append({"queries": queries.to_dict()})
    return tuple(out)


def plan_of(analysis: Iterable[Mapping[str, Any]]) -> tuple[tuple[Check, ...], Policy]:
    """The checks (the defaults when none are set) and policy of a rollout's `analysis`.

    Its PromQL templates, if any, are `queries_of(analysis)`.
    """
    checks, policy = checks_from_list(list(analysis))
    if not checks:
        checks = tuple(Check.parse(t) for t in DEFAULT_CHECKS)
    return checks, policy


def read_checks_file(path: str | os.PathLike[str]) -> list[Any]:
    """Checks (and a policy) from a YAML or JSON file, in the manifest form.

    The file holds a list of one-line texts or mappings (with at most one `{policy: ...}`
    and one `{queries: ...}`), or `{checks: [...], policy: {...}, queries: ...}`.

    Raises:
        NotFound: no such file.
        InvalidInput: the file is unreadable, unparsable, or holds an invalid check.
    """
    from modelreg import yamlio

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{p}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{p}: cannot read ({exc.strerror})") from None
    doc = yamlio.loads_data(data, str(p))
    try:
        return list(normalize(_as_list(doc)))
    except InvalidInput as exc:
        raise InvalidInput(f"{p}: {exc}") from None


def _as_list(doc: Any) -> list[Any]:
    if isinstance(doc, Mapping) and set(doc) <= {"checks", "policy", "queries"}:
        out = list(doc.get("checks") or [])
        for key in ("policy", "queries"):
            if doc.get(key) is not None:
                out.append({key: doc[key]})
        return out
    if not isinstance(doc, list):
        raise InvalidInput(
            "expected a list of checks, or {checks: [...], policy: {...}, queries: ...}"
        )
    return doc
