"""Argo Rollouts: a Rollout whose canary `steps` follow the release's step plan.

Each weight of the plan becomes `setWeight` followed by an indefinite `pause`, so the
Rollout waits at each step for `kubectl argo rollouts promote` (the counterpart of
`mreg release step`); the plan's final 100% is Argo's own completion. The pod template runs
the version that should be deployed (the canary while the release is live), labelled with
its version and told which model it serves (`MREG_MODEL`, `MREG_VERSION`, `MREG_MODEL_ID`).
A paused release is a paused Rollout.

Without a traffic router (`--traffic-router`) Argo approximates each weight by the share of
pods: `setWeight` is a whole percent, and rules, a shadow step and weights with decimals are
losses. With one (`istio`, `nginx`, `gateway-api`: `trafficRouting`), every request is split
by the weight, in the resources the `istio`, `nginx` and `gateway-api` exports write, and:

- the steps start from the live weight: the first step is `setWeight` of the release's
  current weight and the steps already passed are not replayed, so applying the Rollout in
  the middle of a release keeps the canary where mreg has it (Argo restarts a Rollout's steps
  when they change, at that first step);
- a rule that pins a header-matchable group to the canary is a `setHeaderRoute` step (Istio,
  the Gateway API plugin) or the canary Ingress's `canary-by-header` annotations (ingress-
  nginx, one rule on one header); shadow mode and a shadow step still ahead are
  `setMirrorRoute` (Istio, the Gateway API plugin).

With `--prometheus-address` the release's checks become an `AnalysisTemplate` that the
Rollout runs as background analysis (`modelreg.release.export.prometheus`).
"""

from __future__ import annotations

from typing import Any

from modelreg.errors import InvalidInput
from modelreg.release.bucketing import FULL
from modelreg.release.export.matching import describe, header_matches
from modelreg.release.export.plan import Draft, ExportOptions, TrafficPlan, metadata
from modelreg.release.export.prometheus import analysis_template
from modelreg.release.rollout import SHADOW
from modelreg.release.rules import Rule

__all__ = ["GATEWAY_PLUGIN", "ROUTERS", "check_router", "render"]

ROUTERS = ("istio", "nginx", "gateway-api")
"""The traffic routers `--traffic-router` names (Argo Rollouts and Flagger)."""
GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"
"""The Argo Rollouts Gateway API plugin's name in `trafficRouting.plugins`."""
MIRROR_ROUTE = "mirror"
"""The managed route that mirrors requests to the canary (shadow)."""
MAX_MATCHES = 1000
NGINX = "nginx.ingress.kubernetes.io/"


def check_router(opts: ExportOptions) -> str | None:
    """The traffic router asked for, or None.

    Raises:
        InvalidInput: an unknown router.
    """
    router = opts.traffic_router
    if router is not None and router not in ROUTERS:
        raise InvalidInput(f"unknown --traffic-router {router!r}: use one of {', '.join(ROUTERS)}")
    return router


def _whole(weight: int, what: str, draft: Draft) -> int:
    """`weight` (hundredths) as the whole percent setWeight takes; a decimal is a loss."""
    if weight % 100:
        draft.losses.append(
            f"{what} {weight / 100:g}%: setWeight is a whole percent (--lossy rounds it to "
            f"{round(weight / 100)}%)"
        )
    return round(weight / 100)


def _plain_steps(plan: TrafficPlan, draft: Draft) -> list[dict[str, Any]]:
    """Without a router: every weight of the plan (today's export, unchanged)."""
    for i, rule in enumerate(plan.rules, 1):
        draft.losses.append(
            f"{describe(i, rule)}: an Argo Rollouts canary without a traffic router cannot "
            "route a group of requests (use the istio or gateway-api format for rules)"
        )
    steps: list[dict[str, Any]] = []
    for s in plan.steps:
        if s == SHADOW:
            draft.losses.append("the shadow step: Argo Rollouts has no mirroring without a router")
            continue
        assert isinstance(s, int)
        if s < FULL:
            steps.extend(({"setWeight": _whole(s, "the step", draft)}, {"pause": {}}))
        elif s % 100:
            _whole(s, "the step", draft)
    if plan.mirror:
        draft.losses.append("shadow mode: Argo Rollouts has no mirroring without a router")
    return steps


def _header_route(
    i: int, rule: Rule, router: str, opts: ExportOptions, draft: Draft
) -> dict[str, Any] | None:
    """A rule as a `setHeaderRoute` step (Istio, Gateway API plugin), or None and a loss."""
    what = describe(i, rule)
    if rule.variant != "canary":
        outcome = "send a percentage of" if rule.weight is not None else "pin to the baseline"
        draft.losses.append(
            f"{what}: an Argo Rollouts header route only sends a group to the canary, it cannot "
            f"{outcome} a group of requests"
        )
        return None
    if router == "istio":
        alts = header_matches(rule, opts, prefix=True, regex=True, max_alternatives=MAX_MATCHES)
        if not isinstance(alts, str) and any(len(alt) != 1 for alt in alts):
            alts = (
                "Argo's Istio header route matches any one of its headers (OR); the rule needs "
                "several headers at once (AND)"
            )
    else:  # the Gateway API plugin ANDs the headers of one route: one alternative, as regexes
        alts = header_matches(rule, opts, prefix=False, regex=True, max_alternatives=1)
    if isinstance(alts, str):
        draft.losses.append(f"{what}: {alts}")
        return None
    match = [{"headerName": t.header, "headerValue": {t.op: t.value}} for alt in alts for t in alt]
    return {"setHeaderRoute": {"name": _route_name(i, rule), "match": match}}


def _route_name(i: int, rule: Rule) -> str:
    return (f"rule-{i}" + (f"-{rule.name}" if rule.name else "")).lower()


def _nginx_header(plan: TrafficPlan, opts: ExportOptions, draft: Draft) -> dict[str, str]:
    """One rule on one header as the canary Ingress's annotations (ingress-nginx)."""
    if not plan.rules:
        return {}
    if len(plan.rules) > 1:
        draft.losses.append(
            f"ingress-nginx routes on one header: the release has {len(plan.rules)} rules "
            "(only a single rule that pins a group to the canary can be expressed)"
        )
        return {}
    rule, what = plan.rules[0], describe(1, plan.rules[0])
    if rule.variant != "canary":
        draft.losses.append(
            f"{what}: ingress-nginx cannot send a group anywhere but to the canary by a header"
        )
        return {}
    alts = header_matches(rule, opts, prefix=False, regex=True, max_alternatives=1)
    if isinstance(alts, str) or len(alts[0]) != 1:
        why = alts if isinstance(alts, str) else "ingress-nginx tests one header, the rule several"
        draft.losses.append(f"{what}: {why}")
        return {}
    (test,) = alts[0]
    kind = "value" if test.op == "exact" else "pattern"
    return {"canary-by-header": test.header, f"canary-by-header-{kind}": test.value}


def _mirror_steps(router: str, draft: Draft) -> list[dict[str, Any]]:
    """Mirror every request to the canary, wait, stop mirroring (a shadow step)."""
    if router == "nginx":
        draft.losses.append(
            "shadow: Argo Rollouts does not mirror through ingress-nginx (use istio or gateway-api)"
        )
        return []
    mirror = {"name": MIRROR_ROUTE, "percentage": 100, "match": [{"path": {"prefix": "/"}}]}
    return [{"setMirrorRoute": mirror}, {"pause": {}}, {"setMirrorRoute": {"name": MIRROR_ROUTE}}]


def _routed_steps(
    plan: TrafficPlan, router: str, opts: ExportOptions, draft: Draft
) -> tuple[list[dict[str, Any]], list[str]]:
    """With a router: the steps from the live weight on, and the managed routes they use."""
    steps: list[dict[str, Any]] = []
    live = plan.canary is not None
    if live:
        steps.append({"setWeight": _whole(plan.weight, "the live weight", draft)})
    if router != "nginx":
        for i, rule in enumerate(plan.rules, 1):
            step = _header_route(i, rule, router, opts, draft)
            if step is not None:
                steps.append(step)
    if plan.mirror:
        steps.extend(_mirror_steps(router, draft))
    elif live:
        steps.append({"pause": {}})
    for s in plan.steps:
        if s == SHADOW:
            if not live or (plan.weight == 0 and not plan.mirror):  # still ahead
                steps.extend(_mirror_steps(router, draft))
            continue
        assert isinstance(s, int)
        if live and not plan.mirror and s <= plan.weight:
            continue  # passed: not replayed
        if s < FULL:
            steps.extend(({"setWeight": _whole(s, "the step", draft)}, {"pause": {}}))
        elif s % 100:
            _whole(s, "the step", draft)
    routes: list[str] = []
    for step in steps:
        for kind in ("setHeaderRoute", "setMirrorRoute"):
            name = step.get(kind, {}).get("name")
            if name is not None and name not in routes:
                routes.append(name)
    return steps, routes


def _traffic_routing(
    plan: TrafficPlan, router: str, opts: ExportOptions, draft: Draft
) -> dict[str, Any]:
    """`trafficRouting` pointing at the resources the router's mreg export writes."""
    service = opts.service_for(plan)
    canary = plan.canary or plan.stable
    if router == "istio":
        return {
            "istio": {
                "virtualService": {"name": service, "routes": ["default"]},
                "destinationRule": {
                    "name": service,
                    "canarySubsetName": canary.slug,
                    "stableSubsetName": plan.stable.slug,
                },
            }
        }
    if router == "nginx":
        nginx: dict[str, Any] = {"stableIngress": service}
        if plan.canary is not None:
            annotations = _nginx_header(plan, opts, draft)
            if annotations:
                nginx["additionalIngressAnnotations"] = annotations
        return {"nginx": nginx}
    if not opts.namespace:
        draft.notes.append(
            "the Gateway API plugin looks the HTTPRoute up in the namespace 'default' (--namespace)"
        )
    config = {"httpRoute": service, "namespace": opts.namespace or "default"}
    return {"plugins": {GATEWAY_PLUGIN: config}}


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """A Rollout for the plan (and an AnalysisTemplate with --prometheus-address)."""
    draft = Draft()
    router = check_router(opts)
    service = opts.service_for(plan)
    canary_spec: dict[str, Any]
    if router is None:
        canary_spec = {"steps": _plain_steps(plan, draft)}
    else:
        steps, routes = _routed_steps(plan, router, opts, draft)
        routing = _traffic_routing(plan, router, opts, draft)
        if routes:
            routing["managedRoutes"] = [{"name": r} for r in routes]
        canary_spec = {"steps": steps, "trafficRouting": routing}
        if router != "istio":  # Services per version, as the nginx and gateway-api exports
            canary_spec["canaryService"] = opts.backend_service(plan, plan.canary or plan.stable)
            canary_spec["stableService"] = opts.backend_service(plan, plan.stable)
        if plan.canary is None:
            draft.notes.append(
                "no canary is live: the router's canary names point at the stable version "
                "until the next release"
            )
    deployed = plan.canary or plan.stable
    labels = {"app": service, opts.version_label: deployed.version}
    env = [
        {"name": "MREG_MODEL", "value": plan.model},
        {"name": "MREG_VERSION", "value": deployed.version},
        {"name": "MREG_MODEL_ID", "value": deployed.id},
    ]
    container = {"name": "model", "image": opts.fill(opts.image, plan, deployed), "env": env}
    if opts.prometheus_address:
        template = analysis_template(plan, opts, draft)
        if template is not None:
            draft.documents.append(template)
            canary_spec["analysis"] = {
                "templates": [{"templateName": template["metadata"]["name"]}],
                "args": [
                    {"name": "service", "value": service},
                    {
                        "name": "namespace",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                ],
            }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": service}},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        "strategy": {"canary": canary_spec},
    }
    if plan.paused:
        spec["paused"] = True
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata(plan, opts, service),
        "spec": spec,
    }
    draft.documents.append(rollout)
    return draft
