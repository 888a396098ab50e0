"""Replaying requests through exported routes, shared by the export tests.

`requests()` is a grid of users and rule attributes; `headers_of` turns one into the request
headers the exports match on; `mreg_share` is the canary's share mreg's own first-match rules
give it; `istio_share` and `gateway_share` are what an exported VirtualService or HTTPRoute
gives it (Gateway API with its precedence). `check_ingress` checks a plain Ingress.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from modelreg import Store
from modelreg.release import ops
from modelreg.release.bucketing import FULL
from modelreg.release.rules import compile_rule

CANARY_SUBSET = "v1-1-0"
"""The canary of `release_store` as a subset and a Service suffix."""


def check_ingress(doc: dict[str, Any]) -> list[str]:
    """ingress-nginx canaries are plain Ingresses: string annotations, a service backend."""
    errors = []
    if (doc["apiVersion"], doc["kind"]) != ("networking.k8s.io/v1", "Ingress"):
        errors.append("not a networking.k8s.io/v1 Ingress")
    if not all(isinstance(v, str) for v in doc["metadata"]["annotations"].values()):
        errors.append("annotation values must be strings")
    for rule in doc["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            svc = path["backend"]["service"]
            if not (isinstance(svc["name"], str) and isinstance(svc["port"]["number"], int)):
                errors.append("backend service needs a name and a port number")
            if path["pathType"] not in ("Prefix", "Exact", "ImplementationSpecific"):
                errors.append("bad pathType")
    return errors


USERS = ("qa-1", "qa-2", "u-7", None)
REGIONS = ("cn-north", "eu", None)
DEVICES = ("ios", "android", "web", None)
APPS = ("2.1", "2", "1.9", None)


def requests() -> list[tuple[Any, dict[str, str]]]:
    """Every combination of user and attributes (a missing one is None / absent)."""
    out = []
    for user, region, device, app in itertools.product(USERS, REGIONS, DEVICES, APPS):
        attrs = {
            k: v for k, v in (("region", region), ("device", device), ("app_version", app)) if v
        }
        out.append((user, attrs))
    return out


def headers_of(user: Any, attrs: dict[str, str]) -> dict[str, str]:
    """The request headers carrying a user and attributes (the default header names)."""
    h = {f"x-{k.replace('_', '-')}": v for k, v in attrs.items()}
    if user is not None:
        h["x-user-id"] = user
    return h


def mreg_share(store: Store, user: Any, attrs: dict[str, str]) -> int:
    """The canary's share (hundredths) for a request, by mreg's first-match rules."""
    r = ops.read_rollout(store, "fraud")
    assert r is not None
    for rule in r.rules:
        if compile_rule(rule)(user, attrs):
            return FULL if rule.variant == "canary" else 0 if rule.variant else rule.weight or 0
    return r.canary_share


def header_test(op: str, value: str, actual: str | None) -> bool:
    """One header test of a VirtualService or an HTTPRoute on the request's value."""
    if actual is None:
        return False
    if op in ("exact", "Exact"):
        return actual == value
    if op == "prefix":
        return actual.startswith(value)
    return re.search(value, actual) is not None


def istio_share(vs: dict[str, Any], headers: dict[str, str]) -> int:
    """The canary's share (hundredths) of a request by a VirtualService: the first match."""
    for route in vs["spec"]["http"]:
        matches = route.get("match") or [{"headers": {}}]
        if any(
            all(
                header_test(*next(iter(t.items())), headers.get(h)) for h, t in m["headers"].items()
            )
            for m in matches
        ):
            dests = route["route"]
            if len(dests) == 1:
                return FULL if dests[0]["destination"]["subset"] == CANARY_SUBSET else 0
            return dests[1]["weight"] * FULL // (dests[0]["weight"] + dests[1]["weight"])
    raise AssertionError("no route matched")


def gateway_share(route: dict[str, Any], headers: dict[str, str]) -> int:
    """Gateway API precedence: the match with the most header matches, then list order."""
    candidates = []
    for i, rule in enumerate(route["spec"]["rules"]):
        for m in rule.get("matches") or [{"headers": []}]:
            if all(
                header_test(t["type"], t["value"], headers.get(t["name"])) for t in m["headers"]
            ):
                candidates.append((-len(m["headers"]), i, rule))
    _, _, rule = min(candidates, key=lambda c: c[:2])
    refs = rule["backendRefs"]
    if len(refs) == 1:
        return FULL if refs[0]["name"].endswith(CANARY_SUBSET) else 0
    return refs[1]["weight"] * FULL // (refs[0]["weight"] + refs[1]["weight"])
