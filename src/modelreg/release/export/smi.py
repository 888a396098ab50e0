"""SMI: a TrafficSplit of the model's Service over one Service per version.

For the meshes that read SMI (Linkerd through linkerd-smi, Open Service Mesh). Written as
`split.smi-spec.io/v1alpha2`, the version both support; weights are relative, so they are
hundredths of a percent and exact. A TrafficSplit splits by weight only: rules and shadow
mode cannot be expressed.
"""

from __future__ import annotations

from typing import Any

from modelreg.release.bucketing import FULL
from modelreg.release.export.matching import describe
from modelreg.release.export.plan import Draft, ExportOptions, TrafficPlan, metadata

__all__ = ["render"]


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """A TrafficSplit for the plan."""
    draft = Draft()
    for i, rule in enumerate(plan.rules, 1):
        draft.losses.append(
            f"{describe(i, rule)}: an SMI TrafficSplit splits by weight only, it cannot route "
            "a group of requests (use the istio or gateway-api format for rules)"
        )
    if plan.mirror:
        draft.losses.append(
            "shadow mode: an SMI TrafficSplit cannot mirror requests to the canary "
            "(--lossy exports all traffic to the baseline and no mirror)"
        )
    stable = {"service": opts.backend_service(plan, plan.stable), "weight": FULL}
    backends: list[dict[str, Any]] = [stable]
    if plan.canary is not None:
        stable["weight"] = FULL - plan.weight
        backends.append({"service": opts.backend_service(plan, plan.canary), "weight": plan.weight})
    service = opts.service_for(plan)
    draft.documents.append(
        {
            "apiVersion": "split.smi-spec.io/v1alpha2",
            "kind": "TrafficSplit",
            "metadata": metadata(plan, opts, service),
            "spec": {"service": service, "backends": backends},
        }
    )
    return draft
