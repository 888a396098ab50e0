"""Gateway API: an HTTPRoute with header matches for the rules and weighted backendRefs.

Read by Linkerd, Istio, Envoy Gateway, Contour, Kong and others. Each version is a Service,
`<service>-<version slug>` (e.g. `fraud-v1-3-0`); the route attaches to the model's Service
(the GAMMA mesh pattern) or, with `--gateway`, to a Gateway. Weights are relative, so they are
written in hundredths of a percent and express every mreg weight exactly.

Gateway API does not take rules in list order: among matching rules the one with the most
header matches wins, and only ties go by order. A later rule with more conditions that can
match the same requests as an earlier one would win where mreg's earlier rule wins: that
is reported as a loss. Prefix tests become anchored regular expressions, whose support is
implementation-specific (noted).

With `--sticky`, while a canary is live (not in shadow mode), rules for the variant header
(`x-mreg-variant`) come first: `canary` to the canary, `baseline` to the baseline. List order
alone would not make them win: a request carrying the header that also matches an mreg rule
with two header matches would follow that rule (two matches beat one). So each sticky rule
also holds, for every match of an mreg rule with two or more header tests, that match plus
the variant header: for a request carrying the header, whatever mreg match it satisfies, the
sticky copy of it has one match more, and a rule with a single test ties with the plain
variant match, which wins by list order. The edge's side always wins; a request without the
header routes as without `--sticky`. What does not fit an HTTPRoute (fewer than 128 matches
in all, 16 rules, 16 header tests per match) is a loss.
"""

from __future__ import annotations

from typing import Any

from modelreg.release.bucketing import FULL
from modelreg.release.export.matching import (
    VARIANTS,
    Alternative,
    HeaderTest,
    describe,
    header_matches,
    sticky,
    variant_header,
)
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan, metadata

__all__ = ["render"]

MAX_RULES = 16
MAX_MATCHES = 64
MAX_ROUTE_MATCHES = 127
"""An HTTPRoute's matches in all rules (the CRD's validation: fewer than 128)."""
MAX_HEADERS = 16
DEFAULT_PORT = 80


def _ref(plan: TrafficPlan, opts: ExportOptions, b: Backend, weight: int | None) -> dict[str, Any]:
    ref: dict[str, Any] = {
        "name": opts.backend_service(plan, b),
        "port": opts.port or DEFAULT_PORT,
    }
    if weight is not None:
        ref["weight"] = weight
    return ref


def _backends(plan: TrafficPlan, opts: ExportOptions, weight: int) -> list[dict[str, Any]]:
    if plan.canary is None or weight <= 0:
        return [_ref(plan, opts, plan.stable, None)]
    if weight >= FULL:
        return [_ref(plan, opts, plan.canary, None)]
    return [_ref(plan, opts, plan.stable, FULL - weight), _ref(plan, opts, plan.canary, weight)]


def _may_overlap(a: Alternative, b: Alternative) -> bool:
    """False only when no request can satisfy both sets of header tests."""
    tests: dict[str, list[HeaderTest]] = {}
    for t in (*a, *b):
        tests.setdefault(t.header, []).append(t)
    for same in tests.values():
        for x in same:
            for y in same:
                if x.op == "regex" or y.op == "regex":
                    continue
                if x.op == "exact" and y.op == "exact" and x.value != y.value:
                    return False
                if x.op == "exact" and y.op == "prefix" and not x.value.startswith(y.value):
                    return False
                if (
                    x.op == "prefix"
                    and y.op == "prefix"
                    and not (x.value.startswith(y.value) or y.value.startswith(x.value))
                ):
                    return False
    return True


def _sticky_rules(
    plan: TrafficPlan,
    opts: ExportOptions,
    mreg: list[tuple[str, list[dict[str, Any]]]],
    draft: Draft,
) -> list[dict[str, Any]]:
    """The rules sending a request whose variant header names a side to that side.

    `mreg` holds each rule (as losses name it) and its matches. See the module docstring for
    why each sticky rule repeats the matches of two or more headers with the variant header.
    """
    header = variant_header(opts)
    copies: list[list[dict[str, Any]]] = []
    for what, matches in mreg:
        for m in matches:
            names = [h["name"] for h in m["headers"]]
            if header in names:
                draft.losses.append(
                    f"{what}: it tests the variant header {header} itself, which --sticky "
                    "routes on (map its attribute to another header with --header)"
                )
                break
            if len(names) >= MAX_HEADERS:
                draft.losses.append(
                    f"{what}: with the variant header a match would test {len(names) + 1} "
                    f"headers, Gateway API takes {MAX_HEADERS}: a request carrying {header} "
                    "that matches the rule would follow the rule"
                )
                break
            if len(names) >= 2 and m["headers"] not in copies:
                copies.append(m["headers"])
    total = sum(len(matches) for _, matches in mreg) + 2 * (1 + len(copies))
    if copies and total > MAX_ROUTE_MATCHES:
        draft.losses.append(
            f"--sticky needs {total} matches in the HTTPRoute (the rules' and the variant "
            f"routes'), Gateway API takes {MAX_ROUTE_MATCHES}: a request carrying {header} that "
            "matches a rule with several conditions would follow the rule (--lossy keeps the "
            "rules, not their sticky copies)"
        )
        copies = []
    rules: list[dict[str, Any]] = []
    for variant, weight in zip(VARIANTS, (FULL, 0), strict=True):
        tag = {"name": header, "type": "Exact", "value": variant}
        # within the route's 127 matches, 1 + len(copies) is at most 42: one rule holds them
        matches = [{"headers": [tag]}, *({"headers": [tag, *c]} for c in copies)]
        rules.append({"matches": matches, "backendRefs": _backends(plan, opts, weight)})
    return rules


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """An HTTPRoute for the plan."""
    draft = Draft()
    rules: list[dict[str, Any]] = []
    kept: list[tuple[int, tuple[Alternative, ...]]] = []
    written: list[tuple[str, list[dict[str, Any]]]] = []
    regex = False
    for i, rule in enumerate(plan.rules, 1):
        what = describe(i, rule)
        alts = header_matches(rule, opts, prefix=False, regex=True, max_alternatives=MAX_MATCHES)
        if isinstance(alts, str):
            draft.losses.append(f"{what}: {alts}")
            continue
        for j, earlier in kept:
            if any(
                len(a) > len(e) and _may_overlap(a, e) for a in alts for e in earlier
            ):  # Gateway API prefers more header matches over list order
                draft.losses.append(
                    f"{what}: it has more conditions than rule {j}, which can match the same "
                    f"requests; Gateway API would let rule {i} win where mreg lets rule {j} win"
                )
                break
        kept.append((i, alts))
        regex = regex or any(t.op == "regex" for alt in alts for t in alt)
        weight = FULL if rule.variant == "canary" else 0 if rule.variant else rule.weight or 0
        matches = [
            {
                "headers": [
                    {
                        "name": t.header,
                        "type": "RegularExpression" if t.op == "regex" else "Exact",
                        "value": t.value,
                    }
                    for t in alt
                ]
            }
            for alt in alts
        ]
        written.append((what, matches))
        rules.append({"matches": matches, "backendRefs": _backends(plan, opts, weight)})
    if sticky(plan, opts):
        rules[:0] = _sticky_rules(plan, opts, written, draft)
    default: dict[str, Any] = {"backendRefs": _backends(plan, opts, plan.weight)}
    if plan.mirror and plan.canary is not None:
        default["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": _ref(plan, opts, plan.canary, None)},
            }
        ]
    rules.append(default)
    if len(rules) > MAX_RULES:
        routes = "the variant-header routes, " if sticky(plan, opts) else ""
        draft.losses.append(
            f"an HTTPRoute takes at most {MAX_RULES} rules; the release needs {len(rules)} "
            f"({routes}its rules and the default route)"
        )
        rules = [*rules[: MAX_RULES - 1], default]
    if regex:
        draft.notes.append(
            "prefix tests and long value lists use RegularExpression header matches, whose "
            "support is implementation-specific in Gateway API"
        )
    service = opts.service_for(plan)
    if opts.gateway:
        parent: dict[str, Any] = {"name": opts.gateway}
    else:  # GAMMA: the route attaches to the model's Service, for traffic inside the mesh
        parent = {"group": "", "kind": "Service", "name": service}
        if opts.port:
            parent["port"] = opts.port
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": rules}
    if opts.host and opts.gateway:
        spec["hostnames"] = [opts.host]
    draft.documents.append(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": metadata(plan, opts, service),
            "spec": spec,
        }
    )
    return draft
