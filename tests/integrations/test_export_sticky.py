"""`mreg release export --sticky` (issue 17): the mesh routes on the variant header set at the edge.

A request carrying `x-mreg-variant: canary|baseline` lands on that side, whatever the rules
and the weight say; a request without it routes as without `--sticky`. Checked by replaying a
grid of requests through the exported Istio VirtualService and Gateway API HTTPRoute, against
the real CRD schemas; the formats that cannot route on headers fail unless `--lossy`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from modelreg import Store, yamlio
from modelreg.errors import InvalidInput
from modelreg.release import ops
from modelreg.release.bucketing import FULL
from modelreg.release.export import ExportOptions, export
from tests.integrations.conftest import RULES, mreg
from tests.integrations.replay import (
    check_ingress,
    gateway_share,
    headers_of,
    istio_share,
    mreg_share,
    requests,
)

STICKY = ExportOptions(sticky=True)
HEADER = "x-mreg-variant"
VARIANTS = (None, "canary", "baseline", "Canary", "other")
"""Header values of the grid: absent, the two sides, and values that must be ignored."""
WEIGHTS = ("0", "5", "37.5", "100")
PRECEDENCE_SAFE = (RULES[2], RULES[0], RULES[1])
"""The release's rules with the two-condition rule first: no Gateway API precedence loss."""


def expected(store: Store, user: Any, attrs: dict[str, str], variant: str | None) -> int:
    """Where the mesh must send a request: the side its header names, else mreg's routing."""
    if variant == "canary":
        return FULL
    if variant == "baseline":
        return 0
    return mreg_share(store, user, attrs)


def grid() -> list[tuple[Any, dict[str, str], str | None, dict[str, str]]]:
    """Requests with and without the variant header: (user, attributes, variant, headers)."""
    out = []
    for user, attrs in requests():
        for variant in VARIANTS:
            headers = headers_of(user, attrs)
            if variant is not None:
                headers[HEADER] = variant
            out.append((user, attrs, variant, headers))
    return out


def live(store: Store) -> None:
    """5% with the three rules."""


def decimal_weight(store: Store) -> None:
    ops.update(store, "fraud", weight="7.5")


def paused(store: Store) -> None:
    ops.pause(store, "fraud")


def shadow(store: Store) -> None:
    ops.update(store, "fraud", shadow=True)


def promoted(store: Store) -> None:
    ops.promote(store, "fraud")


def aborted(store: Store) -> None:
    ops.abort(store, "fraud")


@pytest.mark.parametrize(
    "scenario", [live, decimal_weight, paused, shadow, promoted, aborted], ids=lambda f: f.__name__
)
def test_sticky_documents_match_their_crd_schemas(
    release_store: Store, crd_validate: Callable[[dict[str, Any]], list[str]], scenario: Any
) -> None:
    scenario(release_store)
    lossy = ExportOptions(sticky=True, lossy=True)
    live_canary = scenario in (live, decimal_weight, paused)
    for fmt in ("istio", "gateway-api", "nginx"):
        result = export(release_store, "fraud", fmt, lossy)
        for doc in result.documents:
            errors = check_ingress(doc) if doc["kind"] == "Ingress" else crd_validate(doc)
            assert errors == [], (fmt, doc)
        plain = export(release_store, "fraud", fmt, ExportOptions(lossy=True))
        if not live_canary:  # shadow mode or an ended release: the header means nothing
            assert result.yaml() == plain.yaml() and HEADER not in result.yaml().decode()
        else:
            assert HEADER in result.yaml().decode()


# -- Istio: the variant routes come first, and Istio takes the first match ---------------------


@pytest.mark.parametrize("weight", WEIGHTS)
def test_istio_sends_a_request_to_the_side_its_header_names(
    release_store: Store, weight: str
) -> None:
    ops.update(release_store, "fraud", weight=weight)
    result = export(release_store, "fraud", "istio", STICKY)
    assert result.losses == ()
    (vs, _) = result.documents
    assert vs["spec"]["http"][:2] == [
        {
            "name": "sticky-canary",
            "match": [{"headers": {HEADER: {"exact": "canary"}}}],
            "route": [{"destination": {"host": "fraud", "subset": "v1-1-0"}}],
        },
        {
            "name": "sticky-baseline",
            "match": [{"headers": {HEADER: {"exact": "baseline"}}}],
            "route": [{"destination": {"host": "fraud", "subset": "v1-0-0"}}],
        },
    ]
    (plain, _) = export(release_store, "fraud", "istio").documents
    assert vs["spec"]["http"][2:] == plain["spec"]["http"]  # the rest is today's routing
    overruled = 0
    for user, attrs, variant, headers in grid():
        want = expected(release_store, user, attrs, variant)
        assert istio_share(vs, headers) == want, (user, attrs, variant)
        overruled += variant in ("canary", "baseline") and want != mreg_share(
            release_store, user, attrs
        )
    assert overruled > 0  # the edge's side beat a rule or the weight


# -- Gateway API: the variant rules must win on precedence, not list order ---------------------


@pytest.mark.parametrize("weight", WEIGHTS)
def test_gateway_api_sends_a_request_to_the_side_its_header_names(
    release_store: Store, weight: str
) -> None:
    ops.update(release_store, "fraud", weight=weight, rules=list(PRECEDENCE_SAFE))
    result = export(release_store, "fraud", "gateway-api", STICKY)
    assert result.losses == ()
    (route,) = result.documents
    canary, baseline, *rest = route["spec"]["rules"]
    tag = {"name": HEADER, "type": "Exact", "value": "canary"}
    app = {"name": "x-app-version", "type": "RegularExpression", "value": r"^2\."}
    assert canary["matches"] == [
        {"headers": [tag]},
        {"headers": [tag, app, {"name": "x-device", "type": "Exact", "value": "ios"}]},
        {"headers": [tag, app, {"name": "x-device", "type": "Exact", "value": "android"}]},
    ]
    assert canary["backendRefs"] == [{"name": "fraud-v1-1-0", "port": 80}]
    assert baseline["backendRefs"] == [{"name": "fraud-v1-0-0", "port": 80}]
    (plain,) = export(release_store, "fraud", "gateway-api").documents
    assert rest == plain["spec"]["rules"]
    for user, attrs, variant, headers in grid():
        want = expected(release_store, user, attrs, variant)
        assert gateway_share(route, headers) == want, (user, attrs, variant)


def test_without_the_copies_a_two_condition_rule_would_win(release_store: Store) -> None:
    """Why each variant rule repeats the matches of two or more headers: precedence."""
    ops.update(release_store, "fraud", rules=list(PRECEDENCE_SAFE))
    (route,) = export(release_store, "fraud", "gateway-api", STICKY).documents
    naive = copy.deepcopy(route)
    for rule in naive["spec"]["rules"][:2]:
        rule["matches"] = rule["matches"][:1]
    tester_on_ios = {"x-device": "ios", "x-app-version": "2.1", HEADER: "canary"}
    assert gateway_share(route, tester_on_ios) == FULL
    assert gateway_share(naive, tester_on_ios) == 0  # rule 1 (two headers) beats one header


def test_gateway_api_variant_wins_even_where_rules_lose_precedence(release_store: Store) -> None:
    """The release's own rules keep their precedence loss; the header still always wins."""
    result = export(release_store, "fraud", "gateway-api", ExportOptions(sticky=True, lossy=True))
    assert len(result.losses) == 1 and "Gateway API would let rule 3 win" in result.losses[0]
    (route,) = result.documents
    for user, attrs, variant, headers in grid():
        if variant in ("canary", "baseline"):
            assert gateway_share(route, headers) == expected(release_store, user, attrs, variant)


def test_gateway_api_limits_are_losses(release_store: Store) -> None:
    devices = ",".join(f"d{i}" for i in range(40))
    two = [f"device in {devices} and region=eu -> canary", f"device in {devices} and x=1 -> 5%"]
    ops.update(release_store, "fraud", rules=two)
    result = export(release_store, "fraud", "gateway-api", ExportOptions(sticky=True, lossy=True))
    assert result.losses == (
        "--sticky needs 242 matches in the HTTPRoute (the rules' and the variant routes'), "
        f"Gateway API takes 127: a request carrying {HEADER} that matches a rule with several conditions would follow the rule "
        "(--lossy keeps the rules, not their sticky copies)",
    )
    (route,) = result.documents
    assert [len(r["matches"]) for r in route["spec"]["rules"][:2]] == [1, 1]
    ops.update(release_store, "fraud", rules=["region=cn-north -> 10%"])
    opts = ExportOptions(sticky=True, headers={"region": HEADER})
    (loss,) = export(release_store, "fraud", "gateway-api", opts).losses
    assert loss.startswith(f"rule 1 (region=cn-north -> 10%): it tests the variant header {HEADER}")


# -- ingress-nginx: only the canary side ------------------------------------------------------


def test_nginx_keeps_only_the_canary_side(release_store: Store) -> None:
    result = export(release_store, "fraud", "nginx", ExportOptions(sticky=True, lossy=True))
    _, canary = result.documents
    annotations = canary["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == HEADER
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "canary"
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "5"
    assert [loss.split(":")[0] for loss in result.losses] == [
        "rule 1 (testers",
        "rule 2 (region=cn-north -> 10%)",
        "rule 3 (app_version^=2. and device in ios,android -> baseline)",
        f"requests whose {HEADER} is baseline",
    ]
    assert "5% of them reach the canary" in result.losses[-1]
    assert result.notes[0].startswith(
        f"nginx keeps a request on the canary when its {HEADER} header says canary; one that "
        "says baseline, or has no such header, is split at random"
    )
    ops.update(release_store, "fraud", weight=0, rules=[])  # nothing reaches the canary by weight
    assert export(release_store, "fraud", "nginx", STICKY).losses == ()


# -- through the CLI --------------------------------------------------------------------------


def run(store: Store, *args: str) -> Any:
    return mreg("release", "export", "fraud", "--store", str(store.root), *args)


@pytest.mark.parametrize("fmt", ["smi", "kserve", "argo"])
def test_formats_without_header_routes_fail_unless_lossy(release_store: Store, fmt: str) -> None:
    ops.update(release_store, "fraud", rules=[])
    args = ("-f", fmt, "--storage-uri", "s3://m/{version}", "--sticky")
    res = run(release_store, *args)
    assert res.exit_code == 1 and res.stdout == "", res
    lost = [line for line in res.stderr.splitlines() if line.startswith("mreg: cannot express: ")]
    assert lost[0].startswith("mreg: cannot express: --sticky: "), res.stderr
    assert f"requests carrying {HEADER} are split at random like the others" in lost[0]
    lossy = run(release_store, *args, "--lossy")
    assert lossy.exit_code == 0 and lossy.stdout.startswith("apiVersion: "), lossy
    assert "mreg: lost (--lossy): --sticky: " in lossy.stderr
    plain = run(release_store, "-f", fmt, "--storage-uri", "s3://m/{version}")
    assert plain.exit_code == 0 and plain.stdout == lossy.stdout


@pytest.mark.parametrize("fmt", ["istio", "gateway-api", "nginx"])
def test_without_sticky_the_output_is_unchanged(release_store: Store, fmt: str) -> None:
    ops.update(release_store, "fraud", rules=[RULES[0]])
    plain = run(release_store, "-f", fmt)
    other = run(release_store, "-f", fmt, "--variant-header", "x-edge-side")
    assert plain.exit_code == 0 and plain.stdout == other.stdout and plain.stderr == other.stderr
    assert plain.stdout.encode() == export(release_store, "fraud", fmt).yaml()
    assert HEADER not in plain.stdout and "x-edge-side" not in plain.stdout
    assert f"mreg: note: {fmt} splits each request at random" in plain.stderr


def test_sticky_through_the_cli(release_store: Store) -> None:
    ops.update(release_store, "fraud", rules=[RULES[0]])
    res = run(release_store, "-f", "istio", "--sticky", "--variant-header", "X-Edge-Side")
    assert res.exit_code == 0, res
    docs = [yamlio.load(d.encode()) for d in res.stdout.split("---\n")]
    assert docs[0]["spec"]["http"][0]["match"] == [
        {"headers": {"x-edge-side": {"exact": "canary"}}}
    ]
    assert (
        "mreg: note: istio keeps a request on the side its x-edge-side header names (canary or "
        "baseline, set at the edge); a request without it is split at random, not kept on one "
        "side by user_id as mreg's routers keep it"
    ) in res.stderr
    gateway = run(release_store, "-f", "gateway-api", "--sticky", "--json")
    assert gateway.exit_code == 0 and gateway.json()["losses"] == []
    bad = run(release_store, "-f", "istio", "--sticky", "--variant-header", "x mreg")
    assert bad.exit_code == 2 and "invalid --variant-header 'x mreg'" in bad.stderr
    with pytest.raises(InvalidInput, match="invalid --variant-header"):
        export(release_store, "fraud", "smi", ExportOptions(sticky=True, variant_header=""))
