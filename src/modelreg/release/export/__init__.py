"""`mreg release export`: a model's routing as service-mesh and gateway resources (issue 7).

One rollout manifest drives every format. `render` is pure: a `TrafficPlan` (from
`plan_of`) and options in, an `Export` (Kubernetes documents, what the format could not
express, remarks) out, one module per format:

| format | module | resources |
|---|---|---|
| `istio` | `istio` | VirtualService + DestinationRule |
| `gateway-api` | `gateway_api` | HTTPRoute (Linkerd, Istio, Envoy Gateway, Contour, Kong...) |
| `smi` | `smi` | TrafficSplit (linkerd-smi, Open Service Mesh) |
| `nginx` | `nginx` | Ingress + canary Ingress (ingress-nginx annotations) |
| `kserve` | `kserve` | InferenceService with canaryTrafficPercent |
| `argo` | `argo` | Argo Rollouts Rollout whose steps follow the step plan (+ AnalysisTemplate) |
| `flagger` | `flagger` | Flagger Canary with the step plan as stepWeights (+ MetricTemplates) |
| `nginx-njs` | `nginx_njs` | files for nginx with njs: a sticky API gateway (docs/gateway.md) |

`export` (render.py) reads the store (the rollout manifest, the production alias, the
versions' formats) and renders (`prometheus` turns the release's checks into the
queries of Argo's and Flagger's analyses); `watch` rewrites a file whenever the result changes.
docs/exports.md documents the conventions (Service names, header names, what each format
cannot express).
"""

from __future__ import annotations

from modelreg.release.export.plan import (
    Backend,
    Export,
    ExportOptions,
    LossyExport,
    TrafficPlan,
    plan_of,
)
from modelreg.release.export.render import DIRECTORY_FORMATS, FORMATS, export, render
from modelreg.release.export.watch import WatchReport, parse_duration, watch, write

__all__ = [
    "DIRECTORY_FORMATS",
    "FORMATS",
    "Backend",
    "Export",
    "ExportOptions",
    "LossyExport",
    "TrafficPlan",
    "WatchReport",
    "export",
    "parse_duration",
    "plan_of",
    "render",
    "watch",
    "write",
]
