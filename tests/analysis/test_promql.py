"""Mesh metrics in the judge (issue 17): PromQL templates read from a real Prometheus.

A test exporter (a thread on 127.0.0.1) serves Istio-style series for a baseline and a
canary, growing over time; a real Prometheus scrapes it every second; `mreg release watch
--prometheus` judges the release from the `istio` preset's queries.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modelreg.analysis.checks import Check, Policy
from modelreg.analysis.judge import INCONCLUSIVE, PASS, judge
from modelreg.analysis.promql import PromQLSource, load_queries, prometheus_source
from modelreg.analysis.queries import QuerySet, preset
from modelreg.analysis.sources import PrometheusSource, Sample, SourceError
from modelreg.errors import InvalidInput, NotFound
from modelreg.release import ops
from tests.analysis.promserver import needs_prometheus, prometheus_scraping

LE = (5, 10, 25, 50, 100, 250, 500, 1000)
ISTIO = {"preset": "istio", "vars": {"service": "fraud", "namespace": "ml"}}
CHECKS = [
    "errors: error_rate <= baseline + 1pt",
    "p90: latency.p90 <= 1.5x baseline",
    {"policy": {"passes": 1, "min_samples": 200, "stratum_s": 10}},
    {"queries": ISTIO},
]


class IstioExporter:
    """Istio-style counters for versions 1.0.0 and 1.1.0 of service `fraud`, growing."""

    def __init__(self, error_rates: dict[str, float], rps: int = 600) -> None:
        self.errors = error_rates
        self.rps = rps
        self.rng = random.Random(7)
        self.codes: dict[tuple[str, str], int] = {}
        self.buckets: dict[str, list[int]] = {v: [0] * (len(LE) + 1) for v in error_rates}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def tick(self, seconds: float) -> None:
        with self.lock:
            for version, rate in self.errors.items():
                for _ in range(int(self.rps * seconds)):
                    code = "503" if self.rng.random() < rate else "200"
                    self.codes[(version, code)] = self.codes.get((version, code), 0) + 1
                    ms = self.rng.lognormvariate(3.5, 0.5)
                    row = self.buckets[version]
                    for i, le in enumerate(LE):
                        if ms <= le:
                            row[i] += 1
                    row[-1] += 1

    def text(self) -> str:
        sel = 'reporter="destination",destination_service_name="fraud",' \
              'destination_service_namespace="ml"'  # fmt: skip
        lines = ["# TYPE istio_requests_total counter"]
        with self.lock:
            for (version, code), n in sorted(self.codes.items()):
                lines.append(f'istio_requests_total{{{sel},destination_version="{version}",'
                             f'response_code="{code}"}} {n}')  # fmt: skip
            lines.append("# TYPE istio_request_duration_milliseconds histogram")
            for version, row in sorted(self.buckets.items()):
                for le, n in zip([*map(str, LE), "+Inf"], row, strict=True):
                    lines.append(
                        f"istio_request_duration_milliseconds_bucket{{{sel},"
                        f'destination_version="{version}",le="{le}"}} {n}'
                    )
        return "\n".join(lines) + "\n"

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.tick(0.2)


@pytest.fixture
def exporter(request) -> Iterator[tuple[IstioExporter, str]]:
    """The exporter's thread and HTTP server on 127.0.0.1 (param: the canary's error rate)."""
    ex = IstioExporter({"1.0.0": 0.01, "1.1.0": request.param})
    ex.tick(1.0)  # some history before the release starts: increase() must leave it out

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ex.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threads = [threading.Thread(target=server.serve_forever, daemon=True),
               threading.Thread(target=ex.run, daemon=True)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        yield ex, f"127.0.0.1:{server.server_address[1]}"
    finally:
        ex.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def mesh(exporter, model, tmp_path):
    """A release of m@1.1.0 judged on Istio's series, and Prometheus scraping the exporter."""
    _, target = exporter
    with prometheus_scraping([target], tmp_path) as url:
        yield model, url


@needs_prometheus
@pytest.mark.parametrize("exporter", [0.12], indirect=True)
def test_a_worse_canary_in_the_mesh_is_rolled_back(mesh, run_mreg, tmp_path):
    model, url = mesh
    checks = tmp_path / "checks.yaml"
    checks.write_text(json.dumps({"checks": CHECKS[:2], "policy": CHECKS[2]["policy"],
                                  "queries": ISTIO}))  # fmt: skip
    started = run_mreg("release", "start", "m", "--canary", "1.1.0", "--steps", "10,50",
                       "--checks-file", str(checks), "--json")  # fmt: skip
    assert started.returncode == 0, started
    assert started.json()["status"]["analysis"][-1] == {"queries": ISTIO}

    # a query that returns one series per response code is refused, naming the query
    per_code = tmp_path / "per-code.yaml"
    per_code.write_text(json.dumps({**ISTIO, "requests": "increase(istio_requests_total"
                                    "{destination_service_name=\"fraud\"}[{{ window }}])"}))  # fmt: skip
    deadline = time.monotonic() + 20
    while True:  # until Prometheus has scraped two points of the release's window
        refused = run_mreg("release", "analyze", "m", "--prometheus", url, "--queries",
                           str(per_code))  # fmt: skip
        if refused.returncode != 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert refused.returncode == 1, refused
    assert "query requests" in refused.stderr and "aggregate it with sum" in refused.stderr

    watched = run_mreg("release", "watch", "m", "--prometheus", url, "--interval", "1s",
                       "--max-duration", "40s", "--json")  # fmt: skip
    assert watched.returncode == 1, watched
    assert "rolled back" in watched.stderr and "errors" in watched.stderr
    assert ops.read_rollout(model, "m").state == "aborted"
    report = json.loads(watched.stdout)
    assert report["outcome"] == "aborted"
    assert report["events"][-1]["verdict"] == "fail"


@needs_prometheus
@pytest.mark.parametrize("exporter", [0.01], indirect=True)
def test_an_equal_canary_in_the_mesh_is_promoted(mesh, run_mreg):
    model, url = mesh
    ops.start(model, "m", "1.1.0", steps="10,50", analysis=CHECKS)
    watched = run_mreg("release", "watch", "m", "--prometheus", url, "--interval", "1s",
                       "--max-duration", "40s", "--json")  # fmt: skip
    assert watched.returncode == 0, watched
    assert ops.read_rollout(model, "m").state == "promoted"
    assert model.resolve("m@production").version == "1.1.0"
    passing = [e for e in json.loads(watched.stdout)["events"] if e["verdict"] == "pass"]
    assert len(passing) >= 2  # one per step, the last one promotes

    # the same release through `--queries` on mreg's own series finds nothing of it
    rel = ops.read_rollout(model, "m")
    sample = prometheus_source(url, "mreg").read(rel, 10)
    assert sample.source == url and sample.canary.n == 0


# -- without Prometheus: what the source makes of the answers ------------------------------


class Canned:
    """Stands in for `PrometheusSource.query`: answers by the query's first words."""

    def __init__(self, answers: dict[str, list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, expr: str, at: float) -> list[dict[str, Any]]:
        self.asked.append(expr)
        return next((v for k, v in self.answers.items() if k in expr), [])


def _vec(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [0, str(value)]}


@pytest.fixture
def release(model):
    ops.start(model, "m", "1.1.0", weight=20)
    return ops.read_rollout(model, "m")


def _read(release, qs: QuerySet, answers: dict[str, list[dict[str, Any]]]) -> tuple[Sample, Canned]:
    src = PromQLSource("http://127.0.0.1:9", qs, now=time.time() + 60)
    canned = Canned(answers)
    src.prometheus.query = canned  # type: ignore[method-assign]
    return src.read(release, 60), canned


def test_each_side_fills_counts_buckets_and_outcomes(release):
    qs = QuerySet.from_dict(
        {"requests": 'sum(req{v="{{ version }}",s="{{ variant }}"})', "errors": "sum(err)",
         "latency": "sum by (le) (lat)", "latency_unit": "s",
         "outcomes": {"orders": ["sum(oc)", "sum(os)", "sum(oq)"], "revenue": ["sum(rc)", "sum(rs)"]}}
    )  # fmt: skip
    buckets = [_vec(50, le="0.1"), _vec(90, le="0.5"), _vec(100, le="+Inf")]
    sample, canned = _read(release, qs, {
        "req": [_vec(1000)], "err": [_vec(10)], "lat": buckets, "oc": [_vec(30)],
        "os": [_vec(30)], "oq": [_vec(30)], "rc": [_vec(30)], "rs": [_vec(900.5)],
    })  # fmt: skip
    assert 'sum(req{v="1.0.0",s="baseline"})' in canned.asked
    assert 'sum(req{v="1.1.0",s="canary"})' in canned.asked
    c = sample.canary
    assert (c.n, c.errors) == (1000, 10)
    assert c.latency == [(0.0, 100.0, 50), (100.0, 500.0, 40), (500.0, math.inf, 10)]
    assert c.out["orders"] == [30, 30.0, 30.0]
    assert c.out["revenue"][:2] == [30, 900.5] and math.isnan(c.out["revenue"][2])
    assert c.strata[(0, 0)][:2] == [1000, 10]
    assert sample.mode == "live" and not sample.attributed

    # an outcome without its sum of squares is inconclusive, never a silent pass
    checks = [Check.parse("revenue.mean >= 0.9x baseline"), Check.parse("orders >= baseline")]
    verdict, results = judge(checks, Policy(min_samples=10), sample)
    assert [r.verdict for r in results] == [INCONCLUSIVE, PASS]
    assert "no sum of squares" in results[0].reason and verdict == INCONCLUSIVE


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"req": [_vec(1, code="200"), _vec(2, code="503")]}, "returned 2 series"),
        ({"req": [_vec(math.nan)]}, "expected a count or sum"),
        ({"lat": [_vec(1, le="5", pod="a"), _vec(2, le="5", pod="b")]}, "more than one series"),
        ({"lat": [_vec(1)]}, "without an le label"),
    ],
)
def test_answers_the_judge_cannot_use_are_refused(release, answers, words):
    with pytest.raises(SourceError, match=words) as err:
        _read(release, preset("istio"), {k.replace("req", "istio_requests_total")
                                         .replace("lat", "istio_request_duration"): v
                                         for k, v in answers.items()})  # fmt: skip
    assert "\n" not in str(err.value) and err.value.exit_code == 1


def test_without_queries_prometheus_source_reads_mreg_series(release, model):
    src = PromQLSource("http://127.0.0.1:9")
    assert src.query_set(release) is None
    assert PromQLSource("http://127.0.0.1:9", preset("mreg")).query_set(release) is None
    sample, _ = _read(release, preset("istio"), {})
    assert (sample.baseline.n, sample.canary.n, sample.canary.latency) == (0, 0, [])
    with pytest.raises(InvalidInput, match="http"):
        prometheus_source("localhost:9090")
    assert isinstance(PromQLSource("http://x").prometheus, PrometheusSource)


def test_queries_load_from_a_preset_or_a_file(tmp_path, run_mreg, model):
    assert load_queries("linkerd") == preset("linkerd")
    f = tmp_path / "q.yaml"
    f.write_text("queries: {preset: istio, vars: {service: fraud}}\n")
    assert load_queries(str(f)) == preset("istio", service="fraud")
    f.write_text("{preset: istio, latency: 'x{{ nope }}'}\n")
    with pytest.raises(InvalidInput, match=r"q\.yaml: queries: latency: unknown placeholder"):
        load_queries(str(f))
    with pytest.raises(NotFound, match="neither a preset"):
        load_queries(str(tmp_path / "none.yaml"))
    ops.start(model, "m", "1.1.0", weight=20)
    alone = run_mreg("release", "analyze", "m", "--queries", "istio")
    assert alone.returncode == 2 and "--queries needs --prometheus" in alone.stderr
    bad = run_mreg("release", "watch", "m", "--prometheus", "http://127.0.0.1:9",
                   "--queries", "consul")  # fmt: skip
    assert bad.returncode == 2 and "neither a preset" in bad.stderr
