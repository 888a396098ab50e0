"""A model server behind the API gateway: the gateway's decision, read from its headers.

When nginx splits the traffic (`mreg release export -f nginx-njs`, docs/gateway.md), every
request reaches the model server with `X-Mreg-Variant` (`canary`, `baseline` or `shadow`)
and `X-Mreg-Version`. The model server opens a `Router` on the same store (for its metrics
and its sample, not to route) and turns those headers into the `Decision` the gateway made,
so `router.record(d, ...)`, `router.capture(d, ...)` and `record_outcome` work exactly as
when the router splits the traffic itself (issue 21)::

    router = Router.open("churn", store=".modelreg", materialize=False)
    d = gateway_decision(router, request.headers)
    ref = router.capture(d, features=fields, prediction=y)

Serving layer: no import beyond the router's own modules.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelreg.errors import InvalidInput
from modelreg.serving.decision import Decision
from modelreg.serving.router import Router

__all__ = ["VARIANT_HEADER", "VERSION_HEADER", "gateway_decision"]

VARIANT_HEADER = "x-mreg-variant"
VERSION_HEADER = "x-mreg-version"
_VARIANTS = ("canary", "baseline", "shadow")


def gateway_decision(router: Router, headers: Mapping[str, str]) -> Decision:
    """The decision the gateway made for a request, from its `X-Mreg-*` headers.

    The version must be one the router's release serves now; when it is not (the gateway
    reloaded first), the router checks its rollout manifest once more before refusing.

    Raises:
        InvalidInput: a header is missing or names a variant or version the release does not
            have (the request did not come through the gateway, or the two disagree).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    variant, version = lower.get(VARIANT_HEADER), lower.get(VERSION_HEADER)
    if variant not in _VARIANTS or not version:
        raise InvalidInput(
            f"not a request from the gateway: {VARIANT_HEADER} must be one of "
            f"{', '.join(_VARIANTS)} and {VERSION_HEADER} a version"
        )
    for attempt in (0, 1):
        config = router._config  # the configuration in force, read once (a plain attribute)
        for target in config.targets.values():
            if target.version == version:
                return Decision(variant, target, "gateway", None, None, config.generation)
        if attempt == 0:
            router.check()
    raise InvalidInput(
        f"{router.name}: the gateway sent version {version!r}, which the release does not serve"
    )
