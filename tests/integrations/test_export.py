"""`mreg release export`: every format, in every release state, validates against its project's
real CRD schema; header rules route as mreg routes; what a format cannot express fails."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store, yamlio
from modelreg.errors import InvalidInput
from modelreg.release import ops
from modelreg.release.bucketing import FULL
from modelreg.release.export import (
    DIRECTORY_FORMATS,
    FORMATS,
    ExportOptions,
    LossyExport,
    export,
    watch,
)
from modelreg.release.rules import parse_rule
from tests.integrations.conftest import RULES, mreg, register
from tests.integrations.replay import (
    check_ingress,
    gateway_share,
    headers_of,
    istio_share,
    mreg_share,
    requests,
)

KUBERNETES = [f for f in FORMATS if f not in DIRECTORY_FORMATS]
"""The formats whose export is Kubernetes documents."""


@pytest.fixture(autouse=True)
def _in_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs find the store of `release_store` (tmp_path/work) from the current directory."""
    (tmp_path / "work").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / "work")


OPTIONS = ExportOptions(storage_uri="s3://models/{model}/{version}", lossy=True)


def live(store: Store) -> None:
    """The release_store as it is: 5% with three rules."""


def decimal_weight(store: Store) -> None:
    ops.update(store, "fraud", weight="7.5", rules=[])


def shadow(store: Store) -> None:
    ops.update(store, "fraud", shadow=True)


def paused(store: Store) -> None:
    ops.update(store, "fraud", rules=[RULES[0]])
    ops.pause(store, "fraud")


def promoted(store: Store) -> None:
    ops.promote(store, "fraud")


def aborted(store: Store) -> None:
    ops.abort(store, "fraud")


def production_moved(store: Store) -> None:
    ops.abort(store, "fraud")
    store.promote("fraud@1.2.0", "production")


def no_release(store: Store) -> None:
    """Model `solo` has production and no release."""


SCENARIOS = [live, decimal_weight, shadow, paused, promoted, aborted, production_moved, no_release]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_every_format_matches_its_crd_schema(release_store, tmp_path, crd_validate, scenario):
    scenario(release_store)
    name = "fraud"
    if scenario is no_release:
        register(release_store, tmp_path, "team/solo", "2.0.0", 0.9)
        release_store.promote("team/solo@2.0.0", "production")
        name = "team/solo"
    for fmt in KUBERNETES:
        result = export(release_store, name, fmt, OPTIONS)
        assert result.documents, fmt
        for doc in result.documents:
            errors = check_ingress(doc) if doc["kind"] == "Ingress" else crd_validate(doc)
            assert errors == [], (fmt, doc)
            assert doc["metadata"]["name"] in (
                "fraud",
                "fraud-canary",
                "team-solo",
                "team-solo-canary",
            )
            assert doc["metadata"]["annotations"]["mreg/model"] == name
        text = result.yaml()
        assert [d for d in text.split(b"---\n") if d] and yamlio.load(text.split(b"---\n")[0])


def test_options_shape_the_resources(release_store, crd_validate):
    opts = ExportOptions(
        service="fraud-api", namespace="ml", port=8080, host="fraud.example.com",
        gateway="public", headers={"region": "x-geo"}, version_label="app.kubernetes.io/version",
        storage_uri="gs://m/{model}/{id}", model_format="sklearn", image="reg/serve:{version}",
        lossy=True,
    )  # fmt: skip
    docs = {
        (fmt, d["kind"]): d
        for fmt in KUBERNETES
        for d in export(release_store, "fraud", fmt, opts).documents
        if d["metadata"]["name"] == "fraud-api"
    }
    for doc in docs.values():
        assert doc["metadata"]["namespace"] == "ml"
        assert doc["kind"] == "Ingress" or crd_validate(doc) == []
    vs = docs["istio", "VirtualService"]["spec"]
    assert vs["hosts"] == ["fraud-api", "fraud.example.com"] and vs["gateways"] == [
        "public",
        "mesh",
    ]
    assert vs["http"][1]["match"] == [{"headers": {"x-geo": {"exact": "cn-north"}}}]
    assert vs["http"][-1]["route"][1]["destination"] == {
        "host": "fraud-api", "subset": "v1-1-0", "port": {"number": 8080}
    }  # fmt: skip
    subsets = docs["istio", "DestinationRule"]["spec"]["subsets"]
    assert subsets[1] == {"name": "v1-1-0", "labels": {"app.kubernetes.io/version": "1.1.0"}}
    route = docs["gateway-api", "HTTPRoute"]["spec"]
    assert route["parentRefs"] == [{"name": "public"}] and route["hostnames"] == [
        "fraud.example.com"
    ]
    assert route["rules"][-1]["backendRefs"] == [
        {"name": "fraud-api-v1-0-0", "port": 8080, "weight": 9500},
        {"name": "fraud-api-v1-1-0", "port": 8080, "weight": 500},
    ]
    isvc = docs["kserve", "InferenceService"]["spec"]["predictor"]
    canary_id = release_store.resolve("fraud@1.1.0").id
    assert isvc == {
        "canaryTrafficPercent": 5,
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"gs://m/fraud/{canary_id}"},
    }
    pod = docs["argo", "Rollout"]["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == "reg/serve:1.1.0"
    assert pod["metadata"]["labels"] == {"app": "fraud-api", "app.kubernetes.io/version": "1.1.0"}
    ingress = docs["nginx", "Ingress"]["spec"]["rules"][0]
    assert ingress["host"] == "fraud.example.com"


# -- the rules route as mreg's routers route them ---------------------------------------------


def test_istio_routes_every_request_as_mreg_does(release_store):
    (vs, _) = export(release_store, "fraud", "istio").documents
    for user, attrs in requests():
        assert istio_share(vs, headers_of(user, attrs)) == mreg_share(release_store, user, attrs)


def test_gateway_api_precedence(release_store):
    """Without a more specific later rule the HTTPRoute routes as mreg; with one it is a loss."""
    result = export(release_store, "fraud", "gateway-api", ExportOptions(lossy=True))
    assert result.losses == (
        "rule 3 (app_version^=2. and device in ios,android -> baseline): it has more conditions "
        "than rule 1, which can match the same requests; Gateway API would let rule 3 win where "
        "mreg lets rule 1 win",
    )
    (route,) = result.documents
    differ = [
        (u, a) for u, a in requests()
        if gateway_share(route, headers_of(u, a)) != mreg_share(release_store, u, a)
    ]  # fmt: skip
    assert (("qa-1", {"device": "ios", "app_version": "2.1"})) in differ
    with pytest.raises(LossyExport):
        export(release_store, "fraud", "gateway-api").raise_for_losses()

    ops.update(release_store, "fraud", rules=list(RULES[:2]))
    exact = export(release_store, "fraud", "gateway-api")
    assert exact.losses == ()
    (route,) = exact.documents
    for user, attrs in requests():
        headers = headers_of(user, attrs)
        assert gateway_share(route, headers) == mreg_share(release_store, user, attrs)


@pytest.mark.parametrize(
    ("rule", "annotations"),
    [
        ("region=cn-north -> canary", {"canary-by-header": "x-region", "canary-by-header-value": "cn-north"}),
        ("user_id in qa-1,qa.2 -> canary", {"canary-by-header": "x-user-id", "canary-by-header-pattern": r"^(qa-1|qa\.2)$"}),
        ("app_version^=2. -> canary", {"canary-by-header": "x-app-version", "canary-by-header-pattern": r"^2\."}),
    ],
)  # fmt: skip
def test_nginx_one_canary_rule_is_a_header(release_store, rule, annotations):
    ops.update(release_store, "fraud", rules=[rule], weight="7.5")
    result = export(release_store, "fraud", "nginx")
    assert result.losses == ()
    main, canary = result.documents
    prefix = "nginx.ingress.kubernetes.io/"
    got = {
        k.removeprefix(prefix): v
        for k, v in canary["metadata"]["annotations"].items()
        if k.startswith(prefix)
    }
    assert got == {
        "canary": "true",
        "canary-weight": "750",
        "canary-weight-total": "10000",
        **annotations,
    }
    assert (
        main["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "fraud-v1-0-0"
    )
    assert (
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        == "fraud-v1-1-0"
    )


TEXTS = [parse_rule(r).text() for r in RULES]
LOSSES = {
    "istio": [],
    "smi": [
        f"rule {i} ({TEXTS[i - 1]}): an SMI TrafficSplit splits by weight only" for i in (1, 2, 3)
    ],
    "kserve": [f"rule {i} ({TEXTS[i - 1]}): KServe splits by percentage only" for i in (1, 2, 3)],
    "argo": [
        f"rule {i} ({TEXTS[i - 1]}): an Argo Rollouts canary without a traffic router"
        for i in (1, 2, 3)
    ],
    "nginx": ["ingress-nginx routes on one header: the release has 3 rules"],
}


@pytest.mark.parametrize("fmt", sorted(LOSSES))
def test_what_a_format_cannot_express_fails_unless_lossy(release_store, fmt):
    args = ("release", "export", "fraud", "-f", fmt, "--storage-uri", "s3://m/{version}")
    res = mreg(*args)
    expected = LOSSES[fmt]
    if not expected:
        assert res.exit_code == 0 and res.stdout.startswith("apiVersion: "), res
        return
    assert res.exit_code == 1 and res.stdout == "", res
    lost = [line for line in res.stderr.splitlines() if line.startswith("mreg: cannot express: ")]
    assert len(lost) == len(expected)
    for line, start in zip(lost, expected, strict=True):
        assert line.removeprefix("mreg: cannot express: ").startswith(start), line
    assert res.stderr.splitlines()[-1].startswith(f"mreg: error: {fmt} cannot express")
    lossy = mreg(*args, "--lossy")
    assert lossy.exit_code == 0 and lossy.stdout.startswith("apiVersion: ")
    assert "mreg: lost (--lossy): " in lossy.stderr


def test_finer_weights_and_missing_headers(release_store):
    ops.update(release_store, "fraud", weight="7.5", rules=["region=cn-north -> 12.5%"])
    istio = export(release_store, "fraud", "istio")
    assert istio.losses == ()  # relative weights: exact
    (vs, _) = istio.documents
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [8750, 1250]
    assert [d["weight"] for d in vs["spec"]["http"][-1]["route"]] == [9250, 750]
    kserve = export(release_store, "fraud", "kserve", OPTIONS)
    assert kserve.losses[-1] == (
        "the weight: canaryTrafficPercent is a whole percent, 7.5% is not one (--lossy rounds "
        "it to 8%)"
    )
    argo = export(release_store, "fraud", "argo")
    assert "setWeight" in str(argo.documents) and len(argo.losses) == 1  # the rule; steps are whole
    gateway = export(release_store, "fraud", "gateway-api", ExportOptions(headers={"region": ""}))
    assert gateway.losses == (
        "rule 1 (region=cn-north -> 12.5%): the attribute 'region' travels in no request header "
        "(--header region=NAME)",
    )
    big = [f"user_id in {','.join(f'user-{i}' for i in range(300))} -> canary"]
    ops.update(release_store, "fraud", rules=big)
    (route,) = export(release_store, "fraud", "gateway-api").documents
    (header,) = route["spec"]["rules"][0]["matches"][0]["headers"]
    assert header["type"] == "RegularExpression" and re.fullmatch(header["value"], "user-299")
    huge = [f"user_id in {','.join(f'user-{i:08d}' for i in range(1200))} -> canary"]
    ops.update(release_store, "fraud", rules=huge)
    (loss,) = export(release_store, "fraud", "gateway-api").losses
    assert "too long for a header match" in loss
    (loss,) = export(release_store, "fraud", "istio").losses
    assert "more than the 1000 matches this format takes for one rule" in loss


def test_shadow_mode_mirrors_where_the_format_can(release_store):
    ops.update(release_store, "fraud", shadow=True)
    (vs, _) = export(release_store, "fraud", "istio").documents
    default = vs["spec"]["http"][-1]
    assert default["mirror"] == {"host": "fraud", "subset": "v1-1-0"}
    assert default["mirrorPercentage"] == {"value": 100.0}
    assert default["route"] == [{"destination": {"host": "fraud", "subset": "v1-0-0"}}]
    (route,) = export(release_store, "fraud", "gateway-api").documents
    assert (
        route["spec"]["rules"][-1]["filters"][0]["requestMirror"]["backendRef"]["name"]
        == "fraud-v1-1-0"
    )
    main, _ = export(release_store, "fraud", "nginx", ExportOptions(namespace="ml")).documents
    target = main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/mirror-target"]
    assert target == "http://fraud-v1-1-0.ml.svc.cluster.local:80$request_uri"
    for fmt in ("smi", "kserve", "argo"):
        assert any("shadow" in loss for loss in export(release_store, "fraud", fmt, OPTIONS).losses)


def test_argo_steps_follow_the_plan(release_store):
    ops.abort(release_store, "fraud")
    ops.start(release_store, "fraud", "1.2.0", steps="2,10,50,100")
    ops.pause(release_store, "fraud")
    (rollout,) = export(release_store, "fraud", "argo").documents
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 2}, {"pause": {}}, {"setWeight": 10}, {"pause": {}},
        {"setWeight": 50}, {"pause": {}},
    ]  # fmt: skip
    assert rollout["spec"]["paused"] is True
    assert rollout["spec"]["template"]["metadata"]["labels"]["version"] == "1.2.0"
    ops.abort(release_store, "fraud")
    (rollout,) = export(release_store, "fraud", "argo").documents
    assert rollout["spec"]["template"]["metadata"]["labels"]["version"] == "1.0.0"
    assert "paused" not in rollout["spec"]


def test_ended_releases_route_everything_to_one_version(release_store):
    ops.promote(release_store, "fraud")
    (vs, dr) = export(release_store, "fraud", "istio").documents
    assert vs["spec"]["http"] == [
        {"name": "default", "route": [{"destination": {"host": "fraud", "subset": "v1-1-0"}}]}
    ]
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["v1-1-0"]
    _, canary = export(release_store, "fraud", "nginx").documents
    annotations = canary["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "0"  # replaces a stale one
    release_store.rollback("fraud")
    (split,) = export(release_store, "fraud", "smi").documents
    assert split["spec"]["backends"] == [{"service": "fraud-v1-0-0", "weight": FULL}]


def test_usage_errors(release_store, tmp_path):
    res = mreg("release", "export", "fraud", "-f", "linkerd")
    assert res.exit_code == 2 and "unknown export format 'linkerd'" in res.stderr
    res = mreg("release", "export", "fraud", "-f", "kserve", "--lossy")
    assert res.exit_code == 2 and "needs --storage-uri" in res.stderr
    res = mreg("release", "export", "fraud", "-f", "istio", "--watch")
    assert res.exit_code == 2 and "--watch needs --output" in res.stderr
    res = mreg("release", "export", "nope", "-f", "istio")
    assert res.exit_code == 2 and "no model named 'nope'" in res.stderr
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    release_store.register("plain", [weights], version="1.0.0", detect_code=False)
    release_store.promote("plain@1.0.0", "production")
    with pytest.raises(InvalidInput, match="KServe needs a model format"):
        export(release_store, "plain", "kserve", ExportOptions(storage_uri="s3://m/{version}"))
    opts = ExportOptions(storage_uri="s3://m/{version}", model_format="sklearn")
    (isvc,) = export(release_store, "plain", "kserve", opts).documents
    assert isvc["spec"]["predictor"] == {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m/1.0.0"}
    }


# -- --output and --watch ----------------------------------------------------------------------


def test_output_file_is_written_once(release_store, tmp_path):
    out = tmp_path / "istio.yaml"
    first = mreg(
        "release",
        "export",
        "fraud",
        "-f",
        "istio",
        "-o",
        str(out),
        "--store",
        str(release_store.root),
    )
    assert first.exit_code == 0 and first.stdout.strip() == f"wrote: {out}"
    again = mreg(
        "release",
        "export",
        "fraud",
        "-f",
        "istio",
        "-o",
        str(out),
        "--store",
        str(release_store.root),
    )
    assert again.stdout.strip() == f"unchanged: {out}"
    assert out.read_bytes() == export(release_store, "fraud", "istio").yaml()


def test_watch_rewrites_the_file_on_every_change(release_store, tmp_path):
    """In-process, with the sleep between checks making the release move."""
    out = tmp_path / "route.yaml"
    moves: list[Callable[[], Any]] = [
        lambda: None,  # nothing changed: no write
        lambda: ops.step(release_store, "fraud"),
        lambda: ops.update(release_store, "fraud", rules=[]),
    ]
    seen: list[int] = []

    def sleep(_: float) -> None:
        moves.pop(0)()

    report = watch(
        release_store, "fraud", "gateway-api", ExportOptions(lossy=True), out,
        interval_s=0.01, max_writes=3, sleep=sleep, on_write=lambda e: seen.append(e.generation),
    )  # fmt: skip
    assert (report.writes, report.checks, seen) == (3, 4, [1, 2, 3])
    assert out.read_bytes() == export(release_store, "fraud", "gateway-api").yaml()


def test_watch_command_follows_a_live_release(release_store, tmp_path):
    """A real `mreg release export --watch` process sees `mreg release step` from another."""
    out = tmp_path / "istio.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "release", "export", "fraud", "-f", "istio",
         "--output", str(out), "--watch", "--interval", "100ms", "--max-writes", "2",
         "--max-duration", "60s",
         "--store", str(release_store.root), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"mreg/canary-weight: '5'" in out.read_bytes()
        ops.step(release_store, "fraud")
        while b"'10'" not in out.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"mreg/canary-weight: '10'" in out.read_bytes()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert yamlio.load(stdout.encode())["writes"] == 2
    assert Path(out).read_bytes() == export(release_store, "fraud", "istio").yaml()
