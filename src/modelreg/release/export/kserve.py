"""KServe: an InferenceService whose predictor serves the canary with `canaryTrafficPercent`.

KServe splits traffic between the latest revision of the predictor and the previous one it
rolled out: during a release the predictor names the canary's files and
`canaryTrafficPercent` its weight, and the baseline must be the revision KServe rolled out
before. Once the release ends the predictor names the version that takes all the traffic.
`canaryTrafficPercent` is a whole percent; KServe has no header routing and no mirroring,
so rules and shadow mode are losses.

`--storage-uri` says where a version's files are (`s3://bucket/models/{model}/{version}`,
filled per version); the model format comes from the version's files, or `--model-format`.
"""

from __future__ import annotations

from typing import Any

from modelreg.errors import InvalidInput
from modelreg.release.export.matching import describe
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan, metadata

__all__ = ["KSERVE_FORMATS", "render"]

KSERVE_FORMATS = {
    "onnx": "onnx",
    "pytorch": "pytorch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "pickle": "sklearn",
    "joblib": "sklearn",
    "safetensors": "huggingface",
}
"""mreg's detected formats → KServe's model format names."""


def _model(plan: TrafficPlan, opts: ExportOptions, b: Backend) -> dict[str, Any]:
    if not opts.storage_uri:
        raise InvalidInput(
            "the kserve format needs --storage-uri: where the serving runtime reads a "
            "version's files, e.g. s3://bucket/models/{model}/{version}"
        )
    fmt = opts.model_format or KSERVE_FORMATS.get(b.format or "")
    if not fmt:
        raise InvalidInput(
            f"{plan.model}@{b.version}: KServe needs a model format, and mreg detected "
            f"{b.format or 'none'} from its files: give --model-format (sklearn, onnx...)"
        )
    return {"modelFormat": {"name": fmt}, "storageUri": opts.fill(opts.storage_uri, plan, b)}


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """An InferenceService for the plan."""
    draft = Draft()
    for i, rule in enumerate(plan.rules, 1):
        draft.losses.append(
            f"{describe(i, rule)}: KServe splits by percentage only, it cannot route a group "
            "of requests"
        )
    predictor: dict[str, Any]
    if plan.canary is None:
        predictor = {"model": _model(plan, opts, plan.stable)}
    else:
        if plan.mirror:
            draft.losses.append(
                "shadow mode: KServe cannot mirror requests (--lossy deploys the canary with "
                "0% of the traffic)"
            )
        if plan.weight % 100:
            draft.losses.append(
                f"the weight: canaryTrafficPercent is a whole percent, {plan.weight / 100:g}% "
                f"is not one (--lossy rounds it to {round(plan.weight / 100)}%)"
            )
        predictor = {
            "canaryTrafficPercent": round(plan.weight / 100),
            "model": _model(plan, opts, plan.canary),
        }
        draft.notes.append(
            f"KServe sends the rest to the revision it rolled out before: it must be the "
            f"baseline {plan.stable.version}"
        )
    service = opts.service_for(plan)
    draft.documents.append(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": metadata(plan, opts, service),
            "spec": {"predictor": predictor},
        }
    )
    return draft
