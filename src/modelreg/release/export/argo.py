"""Argo Rollouts: a Rollout whose canary `steps` follow the release's step plan.

Each weight of the plan becomes `setWeight` followed by an indefinite `pause`, so the
Rollout waits at each step for `kubectl argo rollouts promote` (the counterpart of
`mreg release step`); the plan's final 100% is Argo's own completion. The pod template runs
the version that should be deployed (the canary while the release is live), labelled with
its version and told which model it serves (`MREG_MODEL`, `MREG_VERSION`, `MREG_MODEL_ID`).
Argo's controller keeps its own position in the steps; the current mreg weight is recorded
in the `mreg/canary-weight` annotation, and a paused release is a paused Rollout.

`setWeight` is a whole percent, and this strategy has no traffic router: rules, a shadow
step and weights with decimals are losses.
"""

from __future__ import annotations

from typing import Any

from modelreg.release.bucketing import FULL
from modelreg.release.export.matching import describe
from modelreg.release.export.plan import Draft, ExportOptions, TrafficPlan, metadata
from modelreg.release.rollout import SHADOW

__all__ = ["render"]


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """A Rollout for the plan."""
    draft = Draft()
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
        if s % 100:
            draft.losses.append(
                f"the step {s / 100:g}%: setWeight is a whole percent (--lossy rounds it to "
                f"{round(s / 100)}%)"
            )
        if s < FULL:
            steps.extend(({"setWeight": round(s / 100)}, {"pause": {}}))
    if plan.mirror:
        draft.losses.append("shadow mode: Argo Rollouts has no mirroring without a router")
    deployed = plan.canary or plan.stable
    service = opts.service_for(plan)
    labels = {"app": service, opts.version_label: deployed.version}
    env = [
        {"name": "MREG_MODEL", "value": plan.model},
        {"name": "MREG_VERSION", "value": deployed.version},
        {"name": "MREG_MODEL_ID", "value": deployed.id},
    ]
    container = {"name": "model", "image": opts.fill(opts.image, plan, deployed), "env": env}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": service}},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        "strategy": {"canary": {"steps": steps}},
    }
    if plan.paused:
        spec["paused"] = True
    draft.documents.append(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": metadata(plan, opts, service),
            "spec": spec,
        }
    )
    return draft
