"""Flagger: a Canary whose analysis follows the release's step plan, and its MetricTemplates.

Flagger's `Canary` (`flagger.app/v1beta1`) is a desired-state controller: it watches the
Deployment it targets (named after the model's Service) and, when its pod spec changes, runs
its own canary analysis, stepping the weight through `analysis.stepWeights` (the release's
step plan, whole percents) every `interval` while the metrics pass, and rolling back after
`threshold` failed checks. The export describes that plan; Flagger, not mreg, then drives
the steps. `--traffic-router` sets the Canary's `provider` (`istio`, `nginx`,
`gatewayapi:v1`); without it Flagger uses the provider it was installed with.

What Flagger cannot express:

- rules: Flagger's A/B testing (`analysis.match` with `iterations`) routes header-matched
  requests instead of shifting weights, and cannot be combined with a weighted canary, so every
  rule of a weighted release is a loss;
- shadow (mode or step): `analysis.mirror` with the Istio provider mirrors requests to the
  canary before weights shift; with any other provider it is a loss;
- steps with decimals (stepWeights are whole percents).

With `--prometheus-address`, each check becomes an entry of `analysis.metrics`: Flagger's
built-in `request-success-rate` or `request-duration` for an absolute error-rate or p99
guard when a provider is set (Flagger reads them from the provider's own metrics), else a
`MetricTemplate` (provider `prometheus`) whose query uses Flagger's placeholders
(`{{ target }}`, `{{ namespace }}`, `{{ interval }}`) and a `thresholdRange`.
"""

from __future__ import annotations

from typing import Any

from modelreg.release.bucketing import FULL
from modelreg.release.export.argo import check_router
from modelreg.release.export.gateway_api import DEFAULT_PORT
from modelreg.release.export.matching import describe
from modelreg.release.export.plan import Draft, ExportOptions, TrafficPlan, dns_label, metadata
from modelreg.release.export.prometheus import (
    FIXED_THRESHOLD,
    Measure,
    Sides,
    interval_of,
    measures,
    policy_of,
)
from modelreg.release.rollout import DEFAULT_STEPS, SHADOW

__all__ = ["PROVIDERS", "render"]

PROVIDERS = {"istio": "istio", "nginx": "nginx", "gateway-api": "gatewayapi:v1"}
"""`--traffic-router` → Flagger's `provider`."""
API = "flagger.app/v1beta1"


def _step_weights(plan: TrafficPlan, draft: Draft) -> tuple[list[int], bool]:
    """The plan's weights below 100% as whole percents, and whether it has a shadow step."""
    weights: list[int] = []
    shadow = False
    for s in plan.steps or DEFAULT_STEPS:
        if s == SHADOW:
            shadow = True
            continue
        assert isinstance(s, int)
        if s % 100:
            draft.losses.append(
                f"the step {s / 100:g}%: Flagger's stepWeights are whole percents (--lossy "
                f"rounds it to {round(s / 100)}%)"
            )
        w = round(s / 100)
        if s < FULL and 0 < w < 100 and (not weights or w > weights[-1]):
            weights.append(w)
    return weights, shadow


def _threshold_range(m: Measure) -> dict[str, float]:
    """Flagger fails a metric outside [min, max] (inclusive: `<` is read as `<=`)."""
    key = "max" if m.op in ("<", "<=") else "min"
    return {key: float(f"{m.limit:.12g}")}


def _builtin(m: Measure) -> dict[str, Any] | None:
    """Flagger's own metric for an absolute error-rate or p99 guard, or None."""
    c = m.check
    if c.relative or c.value is None or not c.higher_is_worse:
        return None
    if c.kind == "rate":
        success = float(f"{(1 - c.value) * 100:.12g}")
        return {"name": "request-success-rate", "thresholdRange": {"min": success}}
    if c.kind == "quantile" and c.q == 0.99:
        return {"name": "request-duration", "thresholdRange": {"max": c.value}}
    return None


def _metrics(
    plan: TrafficPlan, opts: ExportOptions, interval: str, draft: Draft
) -> list[dict[str, Any]]:
    """`analysis.metrics`, appending a MetricTemplate for each custom query."""
    checks, policy, qs = policy_of(opts)
    sides = Sides("{{ target }}", "{{ namespace }}", "{{ interval }}")
    service = opts.service_for(plan)
    metrics: list[dict[str, Any]] = []
    for m in measures(plan, checks, qs, sides, draft):
        builtin = _builtin(m) if opts.traffic_router else None
        if builtin is not None:
            metrics.append({**builtin, "interval": interval})
            continue
        name = dns_label(f"{service}-{m.name}")
        meta = metadata(plan, opts, name)
        draft.documents.append(
            {
                "apiVersion": API,
                "kind": "MetricTemplate",
                "metadata": meta,
                "spec": {
                    "provider": {"type": "prometheus", "address": opts.prometheus_address},
                    "query": m.query,
                },
            }
        )
        ref = {"name": name, **({"namespace": meta["namespace"]} if "namespace" in meta else {})}
        metrics.append(
            {
                "name": m.name,
                "templateRef": ref,
                "thresholdRange": _threshold_range(m),
                "interval": interval,
            }
        )
    draft.notes.append(FIXED_THRESHOLD.format(tool="Flagger", alpha=policy.alpha))
    draft.notes.append(
        "Flagger counts a query that returns no data (no requests yet) as a failed check, "
        "where mreg waits for enough requests"
    )
    return metrics


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """A Canary for the plan (and MetricTemplates with --prometheus-address)."""
    draft = Draft()
    router = check_router(opts)
    service = opts.service_for(plan)
    for i, rule in enumerate(plan.rules, 1):
        draft.losses.append(
            f"{describe(i, rule)}: Flagger's A/B testing (analysis.match with iterations) "
            "routes on headers instead of shifting weights and cannot be combined with a "
            "weighted canary"
        )
    weights, shadow = _step_weights(plan, draft)
    _, policy, _ = policy_of(opts)
    interval = interval_of(policy)
    analysis: dict[str, Any] = {
        "interval": interval,
        "threshold": 1,
        "maxWeight": weights[-1] if weights else 50,
        "stepWeights": weights or [50],
    }
    if shadow or plan.mirror:
        if router == "istio":
            analysis["mirror"] = True
            analysis["mirrorWeight"] = 100
        else:
            draft.losses.append(
                "shadow: Flagger mirrors requests to the canary (analysis.mirror) with the "
                "Istio provider only (--traffic-router istio)"
            )
    if opts.prometheus_address and plan.canary is not None:
        analysis["metrics"] = _metrics(plan, opts, interval, draft)
    elif opts.prometheus_address:
        draft.notes.append("no canary is live: no metrics are exported")
    svc: dict[str, Any] = {"port": opts.port or DEFAULT_PORT}
    spec: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
        "service": svc,
        "analysis": analysis,
    }
    if router is not None:
        spec["provider"] = PROVIDERS[router]
    if router == "nginx":
        spec["ingressRef"] = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                              "name": service}  # fmt: skip
    if router == "gateway-api" and opts.gateway:
        svc["gatewayRefs"] = [{"name": opts.gateway}]
    elif router == "gateway-api":
        draft.notes.append("Flagger's Gateway API provider routes through a Gateway (--gateway)")
    if router == "istio" and opts.host:
        svc["hosts"] = [opts.host]
    if router == "istio" and opts.gateway:
        svc["gateways"] = [opts.gateway, "mesh"]
    if plan.paused:
        spec["suspend"] = True
    draft.notes.append(
        "Flagger, not mreg, drives the steps: the Canary starts its analysis when the "
        f"Deployment {service} changes, and steps through {weights or [50]} every {interval} "
        "on its own: `mreg release step` does not move it, a paused release is `suspend`, "
        "and an abort reaches it only as the Deployment going back to the baseline"
    )
    draft.documents.insert(
        0,
        {"apiVersion": API, "kind": "Canary", "metadata": metadata(plan, opts, service),
         "spec": spec},
    )  # fmt: skip
    return draft
