"""Istio: a VirtualService (rules as header matches, then the weights) and a DestinationRule.

The DestinationRule has one subset per version, selected by the `version` pod label (the
version string, e.g. `version: 1.3.0`), named after the version (`v1-3-0`). The
VirtualService lists one HTTP route per rule, in order (Istio takes the first match, as mreg
does), then the default route split by the weight; shadow mode mirrors every request to the
canary. Weights are relative in `networking.istio.io/v1` (Istio 1.22+; since 1.15 they need not
sum to 100), so they are written in hundredths of a percent and express every mreg weight
exactly: 5% is 9500 for the baseline and 500 for the canary.

With `--sticky`, while a canary is live (not in shadow mode), two routes come first: a request
whose variant header (`x-mreg-variant`) is exactly `canary` goes to the canary, `baseline` to
the baseline. Istio takes the first matching route, so the edge's decision always wins over
the rules and the weight; a request without the header (or with another value) is routed by
the routes that follow, as without `--sticky`.
"""

from __future__ import annotations

from typing import Any

from modelreg.release.bucketing import FULL
from modelreg.release.export.matching import (
    VARIANTS,
    describe,
    header_matches,
    sticky,
    variant_header,
)
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan, metadata

__all__ = ["render"]

MAX_MATCHES = 1000
"""The most header-match alternatives written for one rule (beyond: a loss)."""


def _destination(plan: TrafficPlan, opts: ExportOptions, b: Backend) -> dict[str, Any]:
    dest: dict[str, Any] = {"host": opts.service_for(plan), "subset": b.slug}
    if opts.port:
        dest["port"] = {"number": opts.port}
    return dest


def _split(plan: TrafficPlan, opts: ExportOptions, weight: int) -> Any:
    """Route entries sending `weight` (hundredths of a percent) to the canary, the rest on."""
    if plan.canary is None or weight <= 0:
        return [{"destination": _destination(plan, opts, plan.stable)}]
    if weight >= FULL:
        return [{"destination": _destination(plan, opts, plan.canary)}]
    return [
        {"destination": _destination(plan, opts, plan.stable), "weight": FULL - weight},
        {"destination": _destination(plan, opts, plan.canary), "weight": weight},
    ]


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """A VirtualService and a DestinationRule for the plan."""
    draft = Draft()
    service = opts.service_for(plan)
    routes: list[dict[str, Any]] = []
    if sticky(plan, opts) and plan.canary is not None:
        header = variant_header(opts)
        for variant, side in zip(VARIANTS, (plan.canary, plan.stable), strict=True):
            routes.append(
                {
                    "name": f"sticky-{variant}",
                    "match": [{"headers": {header: {"exact": variant}}}],
                    "route": [{"destination": _destination(plan, opts, side)}],
                }
            )
    for i, rule in enumerate(plan.rules, 1):
        what = describe(i, rule)
        alts = header_matches(rule, opts, prefix=True, regex=False, max_alternatives=MAX_MATCHES)
        if isinstance(alts, str):
            draft.losses.append(f"{what}: {alts}")
            continue
        match = [{"headers": {t.header: {t.op: t.value} for t in alt}} for alt in alts]
        weight = FULL if rule.variant == "canary" else 0 if rule.variant else rule.weight or 0
        name = f"rule-{i}" + (f"-{rule.name}" if rule.name else "")
        routes.append({"name": name.lower(), "match": match, "route": _split(plan, opts, weight)})
    default: dict[str, Any] = {
        "name": "default",
        "route": _split(plan, opts, plan.weight),
    }
    if plan.mirror and plan.canary is not None:
        default["mirror"] = _destination(plan, opts, plan.canary)
        default["mirrorPercentage"] = {"value": 100.0}
    routes.append(default)
    spec: dict[str, Any] = {"hosts": [service, *([opts.host] if opts.host else [])], "http": routes}
    if opts.gateway:  # the edge gateway and the mesh both follow the release
        spec["gateways"] = [opts.gateway, "mesh"]
    draft.documents.append(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": metadata(plan, opts, service),
            "spec": spec,
        }
    )
    versions = [plan.stable] + ([plan.canary] if plan.canary is not None else [])
    subsets = [{"name": b.slug, "labels": {opts.version_label: b.version}} for b in versions]
    draft.documents.append(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": metadata(plan, opts, service),
            "spec": {"host": service, "subsets": subsets},
        }
    )
    return draft
