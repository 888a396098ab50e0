"""ingress-nginx: the main Ingress and its canary Ingress, driven by annotations.

The main Ingress sends the model's host and path (`/`) to the stable version's Service; the
canary Ingress, `<service>-canary`, has the same host and path, the annotation
`nginx.ingress.kubernetes.io/canary: "true"` and:

- `canary-weight` (with `canary-weight-total: "10000"` when the weight has decimals, which
  needs ingress-nginx 1.1.2 or later);
- `canary-by-header` with `canary-by-header-value` (one value) or `canary-by-header-pattern`
  (several values, or a prefix), for one rule that pins a group to the canary.

ingress-nginx checks the header before the weight, so that one rule keeps mreg's meaning.
Anything else (several rules, a rule with several conditions, a rule that pins a group to
the baseline or sends it a percentage) is a loss. Shadow mode mirrors requests with the
`mirror-target` annotation. The canary Ingress is written even when no canary is live (weight
0, pointing at the stable version), so applying the export always replaces a stale one.

With `--sticky`, while a canary is live (not in shadow mode), the canary Ingress routes on
the variant header instead: `canary-by-header: x-mreg-variant` with `canary-by-header-value:
canary`, so a request the edge sent to the canary stays on it. Only half is sticky:
ingress-nginx gives a header only the power to send a request to the canary (`never` turns a
header away from the canary only without a value, and mreg's edge sends `baseline`), so a
request whose header says `baseline` falls through to the weight like one without it: a loss
while the weight is above 0. The one header a canary Ingress routes on is then taken, so
every rule is a loss (requests without the header would ignore it).
"""

from __future__ import annotations

from typing import Any

from modelreg.release.export.gateway_api import DEFAULT_PORT
from modelreg.release.export.matching import describe, header_matches, sticky, variant_header
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan, metadata

__all__ = ["render"]

PREFIX = "nginx.ingress.kubernetes.io/"


def _ingress(
    plan: TrafficPlan, opts: ExportOptions, name: str, b: Backend, annotations: dict[str, str]
) -> dict[str, Any]:
    port = opts.port or DEFAULT_PORT
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {
                        "service": {
                            "name": opts.backend_service(plan, b),
                            "port": {"number": port},
                        }
                    },
                }
            ]
        }
    }
    if opts.host:
        rule["host"] = opts.host
    meta = metadata(plan, opts, name)
    meta["annotations"].update(annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {"ingressClassName": "nginx", "rules": [rule]},
    }


def _header_annotations(plan: TrafficPlan, opts: ExportOptions, draft: Draft) -> dict[str, str]:
    if len(plan.rules) > 1:
        draft.losses.append(
            f"ingress-nginx routes on one header: the release has {len(plan.rules)} rules "
            "(only a single rule that pins a group to the canary can be expressed)"
        )
        return {}
    if not plan.rules:
        return {}
    rule = plan.rules[0]
    what = describe(1, rule)
    if rule.variant != "canary":
        outcome = "a percentage of" if rule.weight is not None else "pin to the baseline"
        draft.losses.append(
            f"{what}: ingress-nginx cannot {outcome} a group of requests; a header can only "
            "send requests to the canary"
        )
        return {}
    alts = header_matches(rule, opts, prefix=False, regex=True, max_alternatives=1)
    if isinstance(alts, str):
        draft.losses.append(f"{what}: {alts}")
        return {}
    if len(alts[0]) != 1:
        draft.losses.append(f"{what}: ingress-nginx tests one header, the rule tests several")
        return {}
    test = alts[0][0]
    out = {PREFIX + "canary-by-header": test.header}
    if test.op == "exact":
        out[PREFIX + "canary-by-header-value"] = test.value
    else:
        out[PREFIX + "canary-by-header-pattern"] = test.value
    return out


def _sticky_annotations(plan: TrafficPlan, opts: ExportOptions, draft: Draft) -> dict[str, str]:
    """`canary-by-header` on the variant header: only the canary side can be kept."""
    header = variant_header(opts)
    for i, rule in enumerate(plan.rules, 1):
        draft.losses.append(
            f"{describe(i, rule)}: ingress-nginx routes on one header, which --sticky gives to "
            f"{header}: requests without it would not follow the rule"
        )
    if plan.weight > 0:
        draft.losses.append(
            f"requests whose {header} is baseline: ingress-nginx can only send a request to the "
            f"canary by a header ('never' works only without a value), so they are split by the "
            f"weight like the others and {plan.weight / 100:g}% of them reach the canary"
        )
    return {PREFIX + "canary-by-header": header, PREFIX + "canary-by-header-value": "canary"}


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """The main and canary Ingresses for the plan."""
    draft = Draft()
    service = opts.service_for(plan)
    main: dict[str, str] = {}
    if plan.mirror and plan.canary is not None:
        ns = opts.namespace or "default"
        target = f"{opts.backend_service(plan, plan.canary)}.{ns}.svc.cluster.local"
        main[PREFIX + "mirror-target"] = f"http://{target}:{opts.port or DEFAULT_PORT}$request_uri"
        if not opts.namespace:
            draft.notes.append("the mirror target assumes the namespace 'default' (--namespace)")
    canary: dict[str, str] = {PREFIX + "canary": "true"}
    weight = 0 if plan.canary is None else plan.weight
    if weight % 100:
        canary[PREFIX + "canary-weight"] = str(weight)
        canary[PREFIX + "canary-weight-total"] = "10000"
        draft.notes.append("a weight with decimals needs canary-weight-total: ingress-nginx 1.1.2+")
    else:
        canary[PREFIX + "canary-weight"] = str(weight // 100)
    if sticky(plan, opts):
        canary.update(_sticky_annotations(plan, opts, draft))
    elif plan.canary is not None:
        canary.update(_header_annotations(plan, opts, draft))
    draft.documents.append(_ingress(plan, opts, service, plan.stable, main))
    draft.documents.append(
        _ingress(plan, opts, f"{service}-canary", plan.canary or plan.stable, canary)
    )
    return draft
