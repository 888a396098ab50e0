"""`mreg release export -f argo --traffic-router ...` and `-f flagger` (issue 17): every document
validates against the project's real CRD schema in every release state, with and without
--lossy; steps start from the live weight; rules and shadow become header and mirror routes
where the router has them; the checks become AnalysisTemplate / MetricTemplate queries; what a
format cannot express fails through the CLI unless --lossy."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.release import ops
from modelreg.release.export import ExportOptions, export
from tests.integrations.conftest import RULES, mreg, register
from tests.integrations.test_export import SCENARIOS, no_release, production_moved, shadow

PROM = "http://prometheus.monitoring:9090"


@pytest.fixture(autouse=True)
def _in_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs find the store of `release_store` (tmp_path/work) from the current directory."""
    (tmp_path / "work").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "work")


CONFIGS = [
    ("argo", router, prom)
    for router, prom in itertools.product(("istio", "nginx", "gateway-api"), (None, PROM))
] + [("flagger", router, prom)
     for router, prom in itertools.product((None, "istio", "nginx", "gateway-api"), (None, PROM))]  # fmt: skip


def steps_of(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    return rollout["spec"]["strategy"]["canary"]["steps"]  # type: ignore[no-any-return]


def docs(result: Any, kind: str) -> list[dict[str, Any]]:
    return [d for d in result.documents if d["kind"] == kind]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s is not production_moved],
                         ids=lambda f: f.__name__)  # fmt: skip
def test_every_document_matches_its_crd_schema(release_store, tmp_path, crd_validate, scenario):
    scenario(release_store)
    name = "fraud"
    if scenario is no_release:
        register(release_store, tmp_path, "team/solo", "2.0.0", 0.9)
        release_store.promote("team/solo@2.0.0", "production")
        name = "team/solo"
    kinds: set[str] = set()
    for (fmt, router, prom), lossy in itertools.product(CONFIGS, (False, True)):
        opts = ExportOptions(traffic_router=router, prometheus_address=prom, lossy=lossy,
                             namespace="ml" if prom else None)  # fmt: skip
        result = export(release_store, name, fmt, opts)
        assert result.documents, (fmt, router)
        for doc in result.documents:
            kinds.add(doc["kind"])
            assert crd_validate(doc) == [], (fmt, router, prom, doc)
            assert doc["metadata"]["annotations"]["mreg/model"] == name
            assert doc["metadata"].get("namespace") == ("ml" if prom else None)
        if not lossy and result.losses:
            res = mreg("release", "export", name, "-f", fmt, *(["--traffic-router", router]
                       if router else []))  # fmt: skip
            assert (res.exit_code, res.stdout) == (1, ""), res
    rollout = ops.read_rollout(release_store, name)
    expected = {"Rollout", "Canary"}
    if rollout is not None and rollout.live:  # the checks judge a live canary
        expected |= {"AnalysisTemplate", "MetricTemplate"}
    assert kinds == expected


def test_argo_steps_start_from_the_live_weight(release_store):
    ops.update(release_store, "fraud", rules=[])
    opts = ExportOptions(traffic_router="istio")
    (rollout,) = export(release_store, "fraud", "argo", opts).documents
    assert steps_of(rollout) == [
        {"setWeight": 5}, {"pause": {}}, {"setWeight": 10}, {"pause": {}},
        {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
    ]  # fmt: skip
    ops.step(release_store, "fraud")
    (rollout,) = export(release_store, "fraud", "argo", opts).documents
    assert steps_of(rollout)[:3] == [{"setWeight": 10}, {"pause": {}}, {"setWeight": 25}]
    (plain,) = export(release_store, "fraud", "argo").documents  # without a router: unchanged
    assert steps_of(plain)[0] == {"setWeight": 1} and "trafficRouting" not in str(plain)


def test_argo_router_names_match_the_router_exports(release_store):
    ops.update(release_store, "fraud", rules=[RULES[0]])
    (rollout,) = export(
        release_store, "fraud", "argo", ExportOptions(traffic_router="istio")
    ).documents
    routing = rollout["spec"]["strategy"]["canary"]["trafficRouting"]
    vs, dr = export(release_store, "fraud", "istio").documents
    assert routing["istio"]["virtualService"] == {
        "name": vs["metadata"]["name"],
        "routes": ["default"],
    }
    assert vs["spec"]["http"][-1]["name"] == "default"
    subsets = [s["name"] for s in dr["spec"]["subsets"]]
    assert routing["istio"]["destinationRule"] == {
        "name": dr["metadata"]["name"], "stableSubsetName": subsets[0], "canarySubsetName": subsets[1],
    }  # fmt: skip
    assert routing["managedRoutes"] == [{"name": "rule-1-testers"}]
    assert steps_of(rollout)[1] == {
        "setHeaderRoute": {
            "name": "rule-1-testers",
            "match": [
                {"headerName": "x-user-id", "headerValue": {"exact": "qa-1"}},
                {"headerName": "x-user-id", "headerValue": {"exact": "qa-2"}},
            ],
        }
    }
    main, _ = export(release_store, "fraud", "nginx").documents
    opts = ExportOptions(traffic_router="nginx")
    (rollout,) = export(release_store, "fraud", "argo", opts).documents
    canary = rollout["spec"]["strategy"]["canary"]
    backend = main["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert canary["trafficRouting"]["nginx"] == {
        "stableIngress": main["metadata"]["name"],
        "additionalIngressAnnotations": {
            "canary-by-header": "x-user-id", "canary-by-header-pattern": "^(qa-1|qa-2)$",
        },
    }  # fmt: skip
    assert (canary["stableService"], canary["canaryService"]) == (backend, "fraud-v1-1-0")
    (route,) = export(release_store, "fraud", "gateway-api").documents
    opts = ExportOptions(traffic_router="gateway-api", namespace="ml")
    (rollout,) = export(release_store, "fraud", "argo", opts).documents
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"]["plugins"] == {
        "argoproj-labs/gatewayAPI": {"httpRoute": route["metadata"]["name"], "namespace": "ml"}
    }
    refs = [r["name"] for r in route["spec"]["rules"][-1]["backendRefs"]]
    assert [canary["stableService"], canary["canaryService"]] == refs


def test_argo_header_routes_or_and_and(release_store):
    """Argo's Istio header route ORs its matches, the Gateway API plugin ANDs them."""
    ops.update(release_store, "fraud", rules=["device=ios and region=eu -> canary"])
    istio = export(release_store, "fraud", "argo",
                   ExportOptions(traffic_router="istio", lossy=True))  # fmt: skip
    assert istio.losses == (
        "rule 1 (device=ios and region=eu -> canary): Argo's Istio header route matches any one "
        "of its headers (OR); the rule needs several headers at once (AND)",
    )
    assert "setHeaderRoute" not in str(istio.documents)
    gateway = export(release_store, "fraud", "argo", ExportOptions(traffic_router="gateway-api"))
    assert gateway.losses == ()
    (rollout,) = gateway.documents
    assert steps_of(rollout)[1]["setHeaderRoute"]["match"] == [
        {"headerName": "x-device", "headerValue": {"exact": "ios"}},
        {"headerName": "x-region", "headerValue": {"exact": "eu"}},
    ]


def test_shadow_is_a_mirror_route_where_the_router_has_one(release_store):
    shadow(release_store)
    (rollout,) = export(
        release_store, "fraud", "argo", ExportOptions(traffic_router="istio")
    ).documents
    mirror = {"name": "mirror", "percentage": 100, "match": [{"path": {"prefix": "/"}}]}
    assert steps_of(rollout)[:5] == [
        {"setWeight": 0}, {"setMirrorRoute": mirror}, {"pause": {}},
        {"setMirrorRoute": {"name": "mirror"}}, {"setWeight": 1},
    ]  # fmt: skip
    assert rollout["spec"]["strategy"]["canary"]["trafficRouting"]["managedRoutes"] == [
        {"name": "mirror"}
    ]
    nginx = export(
        release_store, "fraud", "argo", ExportOptions(traffic_router="nginx", lossy=True)
    )
    assert any(loss.startswith("shadow: ") for loss in nginx.losses)
    opts = ExportOptions(traffic_router="istio")
    (canary,) = export(release_store, "fraud", "flagger", opts).documents
    assert canary["spec"]["analysis"]["mirror"] is True
    assert canary["spec"]["provider"] == "istio"
    flagger = export(release_store, "fraud", "flagger", ExportOptions(lossy=True))
    assert flagger.losses == (
        "shadow: Flagger mirrors requests to the canary (analysis.mirror) with the Istio "
        "provider only (--traffic-router istio)",
    )


def test_flagger_canary_follows_the_plan(release_store):
    ops.abort(release_store, "fraud")
    ops.start(release_store, "fraud", "1.2.0", steps="2,10,50,100")
    ops.pause(release_store, "fraud")
    opts = ExportOptions(traffic_router="gateway-api", gateway="public", port=8080)
    result = export(release_store, "fraud", "flagger", opts)
    assert result.losses == ()
    (canary,) = result.documents
    spec = canary["spec"]
    assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud"}
    assert spec["service"] == {"port": 8080, "gatewayRefs": [{"name": "public"}]}
    assert spec["provider"] == "gatewayapi:v1" and spec["suspend"] is True
    assert spec["analysis"] == {
        "interval": "1m", "threshold": 1, "maxWeight": 50, "stepWeights": [2, 10, 50],
    }  # fmt: skip
    assert any("Flagger, not mreg, drives the steps" in n for n in result.notes)
    ops.abort(release_store, "fraud")
    ops.start(release_store, "fraud", "1.2.0", steps="2.5,10,100")
    lossy = export(release_store, "fraud", "flagger", ExportOptions(lossy=True))
    assert lossy.losses == (
        "the step 2.5%: Flagger's stepWeights are whole percents (--lossy rounds it to 2%)",
    )


CHECKS = [
    "error_rate <= baseline + 0.5pt",
    "guard: error_rate < 2%",
    "latency.p99 <= 1.2x baseline",
    "slow: latency.p99 <= 250ms",
    "latency.mwu <= 0.55",
    "drift.psi <= 0.2",
    "conversion >= baseline",
]


def test_checks_become_analysis_queries(release_store, crd_validate):
    ops.update(release_store, "fraud", rules=[], analysis=CHECKS)
    opts = ExportOptions(traffic_router="istio", prometheus_address=PROM, lossy=True)
    result = export(release_store, "fraud", "argo", opts)
    assert [loss.split(":")[0] for loss in result.losses] == [
        "check 'latency.mwu <= 0.55'", "check 'drift.psi <= 0.2'", "check 'conversion >= baseline'",
    ]  # fmt: skip
    template, rollout = result.documents
    assert any("fixed threshold" in n for n in result.notes)
    assert rollout["spec"]["strategy"]["canary"]["analysis"]["templates"] == [
        {"templateName": template["metadata"]["name"]}
    ]
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert list(metrics) == ["error-rate", "guard", "latency-p99", "slow"]
    rel = metrics["error-rate"]
    assert rel["successCondition"] == "len(result) > 0 && result[0] <= 0.005"
    assert rel["failureCondition"] == "len(result) > 0 && result[0] > 0.005"
    query = rel["provider"]["prometheus"]["query"]
    assert 'mreg_errors_total{model="fraud",variant="canary",version="1.1.0"}' in query
    assert 'mreg_errors_total{model="fraud",variant="baseline",version="1.0.0"}' in query
    assert ") - (" in query and "[1m]" in query and ">= 500" in query
    assert metrics["guard"]["failureCondition"] == "len(result) > 0 && result[0] >= 0.02"
    assert metrics["slow"]["successCondition"].endswith("result[0] <= 0.25")  # seconds
    assert "/ histogram_quantile(0.99" in metrics["latency-p99"]["provider"]["prometheus"]["query"]

    ops.update(release_store, "fraud", analysis=[*CHECKS[:4], {"queries": "istio"}])
    (template, _) = export(release_store, "fraud", "argo", opts).documents
    query = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert 'destination_service_name="{{args.service}}"' in query
    assert 'destination_service_namespace=~"{{args.namespace}}"' in query
    slow = template["spec"]["metrics"][3]
    assert slow["successCondition"].endswith("result[0] <= 250")  # istio buckets are in ms

    flagger = export(release_store, "fraud", "flagger", opts)
    canary, *templates = flagger.documents
    for doc in flagger.documents:
        assert crd_validate(doc) == []
    assert [t["metadata"]["name"] for t in templates] == ["fraud-error-rate", "fraud-latency-p99"]
    assert "{{ target }}" in templates[0]["spec"]["query"]
    assert "[{{ interval }}]" in templates[0]["spec"]["query"]
    assert canary["spec"]["analysis"]["metrics"] == [
        {"name": "error-rate", "templateRef": {"name": "fraud-error-rate"},
         "thresholdRange": {"max": 0.005}, "interval": "1m"},
        {"name": "request-success-rate", "thresholdRange": {"min": 98.0}, "interval": "1m"},
        {"name": "latency-p99", "templateRef": {"name": "fraud-latency-p99"},
         "thresholdRange": {"max": 1.2}, "interval": "1m"},
        {"name": "request-duration", "thresholdRange": {"max": 250.0}, "interval": "1m"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "lost"),
    [
        (("-f", "argo", "--traffic-router", "istio"), ["rule 2 (", "rule 3 ("]),
        (("-f", "argo", "--traffic-router", "nginx"), ["ingress-nginx routes on one header"]),
        (("-f", "flagger"), ["rule 1 (", "rule 2 (", "rule 3 ("]),
    ],
)
def test_what_cannot_be_expressed_fails_unless_lossy(release_store, args, lost):
    res = mreg("release", "export", "fraud", *args)
    assert res.exit_code == 1 and res.stdout == "", res
    lines = [x for x in res.stderr.splitlines() if x.startswith("mreg: cannot express: ")]
    assert len(lines) == len(lost)
    for line, start in zip(lines, lost, strict=True):
        assert line.removeprefix("mreg: cannot express: ").startswith(start), line
    lossy = mreg("release", "export", "fraud", *args, "--lossy")
    assert lossy.exit_code == 0 and lossy.stdout.startswith("apiVersion: "), lossy
    ops.update(release_store, "fraud", weight="7.5", rules=[])
    res = mreg("release", "export", "fraud", "-f", "argo", "--traffic-router", "istio")
    assert res.exit_code == 1 and "the live weight 7.5%: setWeight is a whole percent" in res.stderr
    res = mreg("release", "export", "fraud", "-f", "argo", "--traffic-router", "istio", "--lossy")
    assert res.exit_code == 0 and "setWeight: 8\n" in res.stdout


def test_usage_errors(release_store: Store):
    res = mreg("release", "export", "fraud", "-f", "argo", "--traffic-router", "linkerd")
    assert res.exit_code == 2 and "unknown --traffic-router 'linkerd'" in res.stderr
    res = mreg("release", "export", "fraud", "-f", "flagger", "--prometheus-address", "prom:9090")
    assert res.exit_code == 2 and "invalid --prometheus-address" in res.stderr
    res = mreg("release", "export", "fraud", "-f", "flagger", "--lossy", "--json",
               "--prometheus-address", PROM)  # fmt: skip
    assert res.exit_code == 0
    assert [d["kind"] for d in res.json()["documents"]] == ["Canary", "MetricTemplate",
                                                            "MetricTemplate"]  # fmt: skip
