"""A release's checks as single Prometheus queries with a fixed threshold. Pure.

Argo Rollouts' `AnalysisTemplate` and Flagger's `MetricTemplate` judge one number per
measurement against a fixed limit. Each mreg check becomes one query over the release's
query set (`modelreg.analysis.queries`: its `{queries: ...}` entry, else the `mreg` preset)
whose single value is compared with the check's limit:

- `error_rate` is errors / requests of the canary; relative to the baseline
  (`error_rate <= baseline + 0.5pt`) the query computes the canary's rate minus `ratio` x the
  baseline's, compared with the delta (`<= 0.005`);
- `latency.pNN` is `histogram_quantile` of the canary's buckets (the limit in the query set's
  `latency_unit`); relative, the canary's quantile divided by the baseline's, compared with
  the ratio;
- a business outcome per request (`conversion`) is its sum / requests, per observation
  (`revenue.mean`) sum / count, relative as the difference, like the error rate;
- `latency.mwu`, `agreement`, `drift.psi` and `drift.ks` need every observation (ranks,
  paired answers, score distributions), not one number per side: losses.

The placeholders `{{ model }}`, `{{ version }}` and `{{ variant }}` are filled in at export
time for each side (the release's versions), `{{ window }}` with the measurement interval;
`{{ service }}` and `{{ namespace }}` become the format's own (`{{args.service}}`,
`{{args.namespace}}` for Argo; `{{ target }}`, `{{ namespace }}` for Flagger), unless the query
set's `vars` set them. Errors and outcome sums default to 0 where no series exists yet
(`or on() vector(0)`): a canary without a single error has no error series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelreg.analysis.checks import Check, Policy, checks_from_list
from modelreg.analysis.checks import plan_of as checks_plan
from modelreg.analysis.queries import QuerySet, escape, preset, queries_of
from modelreg.errors import InvalidInput
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan, dns_label
from modelreg.release.export.plan import metadata as object_metadata

__all__ = ["Measure", "Sides", "analysis_template", "interval_of", "measures", "policy_of"]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NO_SINGLE_NUMBER = {
    "mwu": "Mann-Whitney compares every latency of both sides (ranks), not one number per side",
    "agreement": "agreement compares the paired answers of shadow requests, one by one",
    "psi": "drift compares the distributions of the scores, not one number per side",
    "ks": "drift compares the distributions of the scores, not one number per side",
}
FIXED_THRESHOLD = (
    "{tool} judges each measurement against a fixed threshold, where mreg judges with "
    "sequential tests whose false alarms are bounded over the whole release (alpha "
    "{alpha:g}): expect more false alarms, or slower detection, than `mreg release watch`"
)


@dataclass(frozen=True)
class Sides:
    """How a format fills in the placeholders mreg does not know at export time."""

    service: str
    namespace: str
    window: str


@dataclass(frozen=True)
class Measure:
    """One check as one query: its value `op` `limit` passes."""

    name: str
    query: str
    op: str
    limit: float
    check: Check

    def condition(self, var: str, *, passed: bool) -> str:
        """`var OP limit` when it passes, the opposite when it fails (expr/Go syntax)."""
        negate = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
        op = self.op if passed else negate[self.op]
        return f"{var} {op} {self.limit:.12g}"


def policy_of(opts: ExportOptions) -> tuple[tuple[Check, ...], Policy, QuerySet]:
    """The release's checks (the defaults without any), policy and query set.

    Raises:
        InvalidInput: the analysis list is malformed.
    """
    address = opts.prometheus_address
    if address is not None and not address.startswith(("http://", "https://")):
        raise InvalidInput(
            f"invalid --prometheus-address {address!r}: a Prometheus URL starts with http:// "
            "or https://"
        )
    items = list(opts.checks)
    checks_from_list(items)  # validates, names the bad entry
    checks, policy = checks_plan(items)
    return checks, policy, queries_of(items) or preset("mreg")


def interval_of(policy: Policy) -> str:
    """The measurement interval: the policy's stratum (`60s` → `1m`)."""
    s = policy.stratum_s
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"


def _fill(template: str, values: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise InvalidInput(f"queries: unknown placeholder {{{{ {name} }}}}")
        return values[name]

    return _PLACEHOLDER.sub(sub, template)


class _Queries:
    """The query set's templates filled in for the canary and the baseline."""

    def __init__(self, qs: QuerySet, plan: TrafficPlan, canary: Backend, sides: Sides) -> None:
        self.qs = qs
        base = {"service": sides.service, "namespace": sides.namespace, "window": sides.window}
        base.update({k: escape(v) for k, v in qs.vars.items()})
        base["model"] = escape(plan.model)
        self.values = {
            "canary": {**base, "version": escape(canary.version), "variant": "canary"},
            "baseline": {**base, "version": escape(plan.stable.version), "variant": "baseline"},
        }

    def get(self, name: str, side: str, *, zero: bool = False) -> str:
        text = _fill(self.qs.templates()[name], self.values[side])
        return f"({text} or on() vector(0))" if zero else f"({text})"


def _measure(check: Check, q: _Queries, draft: Draft) -> Measure | None:
    kind = check.kind
    if kind in _NO_SINGLE_NUMBER:
        draft.losses.append(f"check '{check.text()}': {_NO_SINGLE_NUMBER[kind]}")
        return None
    name = dns_label(check.label)

    def per_side(side: str) -> str:
        if kind == "rate":
            return f"{q.get('errors', side, zero=True)} / {q.get('requests', side)}"
        total = q.get(f"outcomes.{check.outcome}.sum", side, zero=True)
        if kind == "outcome_mean":
            return f"{total} / {q.get(f'outcomes.{check.outcome}.count', side)}"
        return f"{total} / {q.get('requests', side)}"

    if kind == "quantile":
        if q.qs.latency is None:
            draft.losses.append(f"check '{check.text()}': the query set has no latency query")
            return None
        canary = f"histogram_quantile({check.q:g}, {q.get('latency', 'canary')})"
        if check.relative:
            baseline = f"histogram_quantile({check.q:g}, {q.get('latency', 'baseline')})"
            assert check.ratio is not None
            return Measure(name, f"{canary} / {baseline}", check.op, check.ratio, check)
        assert check.value is not None
        scale = 1000 if q.qs.latency_unit == "s" else 1  # limits are in ms
        return Measure(name, canary, check.op, check.value / scale, check)
    if kind in ("outcome", "outcome_mean") and check.outcome not in q.qs.outcomes:
        draft.losses.append(
            f"check '{check.text()}': the query set has no queries for the outcome "
            f"{check.outcome!r} (queries: outcomes: {check.outcome}: {{count, sum}})"
        )
        return None
    canary = per_side("canary")
    if not check.relative:
        assert check.value is not None
        return Measure(name, canary, check.op, check.value, check)
    assert check.ratio is not None
    ratio = "" if check.ratio == 1 else f"{check.ratio:.12g} * "
    query = f"({canary}) - {ratio}({per_side('baseline')})"
    return Measure(name, query, check.op, check.delta, check)


def measures(
    plan: TrafficPlan, checks: tuple[Check, ...], qs: QuerySet, sides: Sides, draft: Draft
) -> list[Measure]:
    """Every check that one query can express, with a loss for each other one."""
    assert plan.canary is not None
    q = _Queries(qs, plan, plan.canary, sides)
    out: list[Measure] = []
    for check in checks:
        m = _measure(check, q, draft)
        if m is not None:
            out.append(m)
    return out


def analysis_template(
    plan: TrafficPlan, opts: ExportOptions, draft: Draft
) -> dict[str, Any] | None:
    """The Argo `AnalysisTemplate` of the release's checks (None: no canary is live)."""
    if plan.canary is None:
        draft.notes.append("no canary is live: no AnalysisTemplate is exported")
        return None
    checks, policy, qs = policy_of(opts)
    interval = interval_of(policy)
    sides = Sides("{{args.service}}", "{{args.namespace}}", interval)
    q = _Queries(qs, plan, plan.canary, sides)
    metrics: list[dict[str, Any]] = []
    for m in measures(plan, checks, qs, sides, draft):
        n = m.check.min_samples or policy.min_samples
        guard = f" and on() ({q.get('requests', 'canary')} >= {n})"
        if m.check.relative:
            guard += f" and on() ({q.get('requests', 'baseline')} >= {n})"
        prometheus = {"address": opts.prometheus_address, "query": f"({m.query}){guard}"}
        metrics.append(
            {
                "name": m.name,
                "interval": interval,
                "successCondition": "len(result) > 0 && " + m.condition("result[0]", passed=True),
                "failureCondition": "len(result) > 0 && " + m.condition("result[0]", passed=False),
                "failureLimit": 0,
                "provider": {"prometheus": prometheus},
            }
        )
    draft.notes.append(FIXED_THRESHOLD.format(tool="Argo Rollouts", alpha=policy.alpha))
    if not metrics:
        return None
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": object_metadata(plan, opts, opts.service_for(plan)),
        "spec": {"args": [{"name": "service"}, {"name": "namespace"}], "metrics": metrics},
    }
