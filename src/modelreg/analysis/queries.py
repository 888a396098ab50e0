"""PromQL templates for the judge: the queries of a side's numbers (issue 17). Pure.

Which queries give a side's requests, errors, latency buckets and business outcomes.
A `QuerySet` holds one PromQL template per number the judge needs, with Flagger-style
placeholders filled in per side when it is read: `{{ model }}`, `{{ version }}`,
`{{ variant }}` (`baseline` or `canary`), `{{ service }}`, `{{ namespace }}` (and any other
name set in `vars`) and `{{ window }}` (the release's live window as a Prometheus duration,
e.g. `300s`). Spaces inside the braces are optional. Every query must return one series (a
latency query one series per `le`): aggregate with `sum(...)`.

The rollout manifest's `analysis` list stores it as one entry, `{queries: istio}` or
`{queries: {preset: istio, vars: {service: fraud, namespace: ml}, errors: "..."}}`: a preset
(`mreg`, `istio`, `linkerd`) with single queries overridden, or a complete set of its own.
docs/analysis.md writes the presets' queries out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg.errors import InvalidInput

__all__ = [
    "PLACEHOLDERS",
    "PRESETS",
    "QUERY_FIELDS",
    "QuerySet",
    "escape",
    "placeholders",
    "preset",
    "queries_of",
]

PLACEHOLDERS = ("model", "version", "variant", "service", "namespace", "window")
"""The placeholders every template may use (`vars` may add more)."""
RUNTIME = ("model", "version", "variant", "window")
"""Placeholders filled in from the release at query time (a var cannot be named so)."""
QUERY_FIELDS = ("requests", "errors", "latency")
"""The single-query fields, by the names `QuerySet.render` takes."""
UNITS = ("ms", "s")
MAX_QUERY = 4096
MAX_OUTCOMES = 32
MAX_VARS = 16
MAX_VALUE = 256
_KEYS = {"preset", "vars", "requests", "errors", "latency", "latency_unit", "outcomes"}
_OUTCOME_KEYS = {"count", "sum", "sumsq"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_MREG_SEL = 'model="{{ model }}",variant="{{ variant }}",version="{{ version }}"'
_ISTIO_SEL = (
    'reporter="destination",destination_service_name="{{ service }}",'
    'destination_service_namespace=~"{{ namespace }}",destination_version="{{ version }}"'
)
_LINKERD_SEL = (
    'direction="inbound",namespace=~"{{ namespace }}",deployment="{{ service }}-{{ version }}"'
)


def _sum(series: str, sel: str, by: str = "") -> str:
    return f"sum{by}(increase({series}{{{sel}}}[{{{{ window }}}}]))"


_PRESET_DOCS: dict[str, dict[str, Any]] = {
    "mreg": {
        "requests": _sum("mreg_requests_total", _MREG_SEL),
        "errors": _sum("mreg_errors_total", _MREG_SEL),
        "latency": _sum("mreg_latency_seconds_bucket", _MREG_SEL, " by (le) "),
        "latency_unit": "s",
    },
    "istio": {
        "requests": _sum("istio_requests_total", _ISTIO_SEL),
        "errors": _sum("istio_requests_total", _ISTIO_SEL + ',response_code=~"5.."'),
        "latency": _sum("istio_request_duration_milliseconds_bucket", _ISTIO_SEL, " by (le) "),
        "latency_unit": "ms",
    },
    "linkerd": {
        "requests": _sum("response_total", _LINKERD_SEL),
        "errors": _sum("response_total", _LINKERD_SEL + ',classification="failure"'),
        "latency": _sum("response_latency_ms_bucket", _LINKERD_SEL, " by (le) "),
        "latency_unit": "ms",
    },
}
PRESETS = tuple(_PRESET_DOCS)
"""The presets' names: `mreg`, `istio`, `linkerd`."""
DEFAULT_VARS = {"namespace": ".*"}
"""Vars a template may use without setting them (`service` defaults to the model's name)."""


def escape(value: str) -> str:
    """`value` as the inside of a PromQL double-quoted string (backslash and quote escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def placeholders(template: str) -> list[str]:
    """The placeholder names a template uses, in order (with repeats)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template)]


def _text(value: Any, where: str, limit: int = MAX_QUERY) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"queries: {where} must be a non-empty text")
    if len(value) > limit:
        raise InvalidInput(f"queries: {where} is longer than {limit} characters")
    return value


@dataclass(frozen=True)
class QuerySet:
    """The PromQL templates one release is judged on (see the module's docstring).

    `latency` returns cumulative histogram buckets `by (le)` in `latency_unit` (`ms` or `s`);
    `outcomes` maps an outcome's name to its (count, sum) queries and `sumsq` the outcomes
    that also have a sum-of-squares query (checks of an outcome without one are
    inconclusive: its variance is unknown). `preset` names the preset it started from.
    """

    requests: str
    errors: str
    latency: str | None = None
    latency_unit: str = "ms"
    outcomes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    sumsq: Mapping[str, str] = field(default_factory=dict)
    vars: Mapping[str, str] = field(default_factory=dict)
    preset: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- the templates ---------------------------------------------------------------------

    def templates(self) -> dict[str, str]:
        """Every template by the name `render` takes.

        `requests`, `errors`, `latency` and `outcomes.NAME.count`, `outcomes.NAME.sum`,
        `outcomes.NAME.sumsq`.
        """
        out = {"requests": self.requests, "errors": self.errors}
        if self.latency is not None:
            out["latency"] = self.latency
        for name, (count, total) in self.outcomes.items():
            out[f"outcomes.{name}.count"] = count
            out[f"outcomes.{name}.sum"] = total
            if name in self.sumsq:
                out[f"outcomes.{name}.sumsq"] = self.sumsq[name]
        return out

    def known(self) -> set[str]:
        """The placeholder names the templates may use."""
        return set(PLACEHOLDERS) | set(self.vars)

    def validate(self) -> None:
        """Raise InvalidInput (one line) on an unknown placeholder, unit, name or size."""
        if self.latency_unit not in UNITS:
            raise InvalidInput(f"queries: latency_unit must be ms or s, not {self.latency_unit!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise InvalidInput(f"queries: unknown preset {self.preset!r}: use {', '.join(PRESETS)}")
        if len(self.vars) > MAX_VARS or len(self.outcomes) > MAX_OUTCOMES:
            raise InvalidInput(f"queries: at most {MAX_VARS} vars and {MAX_OUTCOMES} outcomes")
        for k, v in self.vars.items():
            if not isinstance(k, str) or not _NAME.match(k) or k in RUNTIME:
                raise InvalidInput(
                    f"queries: invalid var name {k!r}: lowercase letters, digits and _, "
                    f"not one of {', '.join(RUNTIME)}"
                )
            _text(v, f"var {k}", MAX_VALUE)
            if _CONTROL.search(v):
                raise InvalidInput(f"queries: var {k} holds a control character")
        for name in self.outcomes:
            if not isinstance(name, str) or not _NAME.match(name):
                raise InvalidInput(f"queries: invalid outcome name {name!r}")
        for name in self.sumsq:
            if name not in self.outcomes:
                raise InvalidInput(f"queries: sumsq of {name!r}, which has no count and sum")
        known = self.known()
        for where, template in self.templates().items():
            _text(template, where)
            for p in placeholders(template):
                if p not in known:
                    raise InvalidInput(
                        f"queries: {where}: unknown placeholder {{{{ {p} }}}}: use "
                        f"{', '.join(sorted(known))}"
                    )

    def render(
        self, template_name_or_text: str, *, model: str, version: str, variant: str,
        window_s: float,
    ) -> str:  # fmt: skip
        """One query for one side, with the placeholders filled in and escaped.

        A template by name (`requests`, `errors`, `latency`, `outcomes.NAME.count|sum|sumsq`),
        else the text itself as a template.

        Raises:
            InvalidInput: an unknown placeholder.
        """
        template = self.templates().get(template_name_or_text, template_name_or_text)
        values = {"service": model, **DEFAULT_VARS, **self.vars}
        values.update(model=model, version=version, variant=variant,
                      window=f"{max(math.ceil(window_s), 1)}s")  # fmt: skip

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in values:
                raise InvalidInput(f"queries: unknown placeholder {{{{ {name} }}}}")
            return escape(values[name])

        return _PLACEHOLDER.sub(sub, template)

    # -- the manifest form -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: the preset and what differs from it (everything without one)."""
        base = _PRESET_DOCS.get(self.preset or "", {})
        doc: dict[str, Any] = {}
        if self.preset is not None:
            doc["preset"] = self.preset
        if self.vars:
            doc["vars"] = dict(self.vars)
        for key in ("requests", "errors", "latency", "latency_unit"):
            value = getattr(self, key)
            if self.preset is None or value != base.get(key):
                if value is not None or self.preset is not None:
                    doc[key] = value
        outcomes: dict[str, Any] = {}
        for name, (count, total) in self.outcomes.items():
            outcomes[name] = {"count": count, "sum": total}
            if name in self.sumsq:
                outcomes[name]["sumsq"] = self.sumsq[name]
        if outcomes:
            doc["outcomes"] = outcomes
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> QuerySet:
        """A preset's name, or the mapping form; raise InvalidInput (one line) if malformed."""
        if isinstance(doc, str):
            doc = {"preset": doc}
        if not isinstance(doc, Mapping):
            raise InvalidInput("queries: a preset's name or a mapping")
        extra = set(doc) - _KEYS
        if extra:
            raise InvalidInput(
                f"queries: unknown key(s) {', '.join(sorted(map(str, extra)))}: use "
                f"{', '.join(sorted(_KEYS))}"
            )
        name = doc.get("preset")
        if name is not None and name not in PRESETS:
            raise InvalidInput(f"queries: unknown preset {name!r}: use {', '.join(PRESETS)}")
        fields: dict[str, Any] = dict(_PRESET_DOCS.get(name or "", {}))
        for key in ("requests", "errors", "latency", "latency_unit"):
            if key in doc:
                fields[key] = doc[key]
        for key in ("requests", "errors"):
            if key not in fields:
                raise InvalidInput(f"queries: {key} is required without a preset")
        if fields.get("latency") is not None:
            _text(fields["latency"], "latency")
        if "latency_unit" in fields and not isinstance(fields["latency_unit"], str):
            raise InvalidInput("queries: latency_unit must be ms or s")
        vars_ = doc.get("vars") or {}
        if not isinstance(vars_, Mapping):
            raise InvalidInput("queries: vars must be a mapping of names to texts")
        outcomes, sumsq = _outcomes(doc.get("outcomes") or {})
        return cls(
            requests=_text(fields["requests"], "requests"),
            errors=_text(fields["errors"], "errors"),
            latency=fields.get("latency"),
            latency_unit=fields.get("latency_unit", "ms"),
            outcomes=outcomes, sumsq=sumsq,
            vars={str(k): v for k, v in vars_.items()},
            preset=name,
        )  # fmt: skip

    @property
    def is_plain_mreg(self) -> bool:
        """The `mreg` preset as it is (read by `PrometheusSource` itself: every outcome)."""
        return self == preset("mreg")


def _outcomes(doc: Any) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    if not isinstance(doc, Mapping):
        raise InvalidInput("queries: outcomes must map names to {count, sum[, sumsq]}")
    if len(doc) > MAX_OUTCOMES:
        raise InvalidInput(f"queries: at most {MAX_OUTCOMES} outcomes")
    outcomes: dict[str, tuple[str, str]] = {}
    sumsq: dict[str, str] = {}
    for name, spec in doc.items():
        where = f"outcome {name!r}"
        if isinstance(spec, (list, tuple)) and len(spec) in (2, 3):
            spec = dict(zip(("count", "sum", "sumsq"), spec, strict=False))
        if not isinstance(spec, Mapping) or not {"count", "sum"} <= set(spec):
            raise InvalidInput(f"queries: {where} needs count and sum queries (and may have sumsq)")
        extra = set(spec) - _OUTCOME_KEYS
        if extra:
            raise InvalidInput(f"queries: {where}: unknown key(s) {', '.join(sorted(extra))}")
        outcomes[str(name)] = (_text(spec["count"], f"{where} count"),
                               _text(spec["sum"], f"{where} sum"))  # fmt: skip
        if "sumsq" in spec:
            sumsq[str(name)] = _text(spec["sumsq"], f"{where} sumsq")
    return outcomes, sumsq


def preset(name: str, **vars: str) -> QuerySet:
    """A preset's `QuerySet` (`mreg`, `istio`, `linkerd`), with `vars` set.

    Raises:
        InvalidInput: no such preset.
    """
    return QuerySet.from_dict({"preset": name, "vars": vars} if vars else name)


def queries_of(analysis: Iterable[Any]) -> QuerySet | None:
    """The `{queries: ...}` entry of a rollout's `analysis` list (None: there is none).

    Raises:
        InvalidInput: the entry is malformed, or there are two.
    """
    found = [a["queries"] for a in analysis if isinstance(a, Mapping) and set(a) == {"queries"}]
    if len(found) > 1:
        raise InvalidInput("queries: the analysis holds two queries entries; keep one")
    return QuerySet.from_dict(found[0]) if found else None
