"""The scale-out path against a real Prometheus server scraping a real serving process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from modelreg.analysis import PrometheusSource, StoreSource, analyze
from modelreg.analysis.sources import SourceError
from modelreg.release import ops
from tests.analysis.promserver import needs_prometheus, prometheus_scraping
from tests.tools import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = needs_prometheus

SERVER = textwrap.dedent(
    """
    import random, sys, time
    from modelreg.serving import Router
    r = Router.open("m", store=sys.argv[1], materialize=False, flush_interval_s=1)
    print(r.metrics.expose(0), flush=True)
    rng = random.Random(1)
    errors = {"1.0.0": 0.01, "1.1.0": 0.06}
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        for _ in range(300):
            d = r.route(user_id=f"u{rng.randrange(100_000)}")
            r.record(d, latency_ms=rng.lognormvariate(3, 0.4), error=rng.random() < errors[d.version],
                     score=rng.betavariate(2, 5), conversion=int(rng.random() < 0.1))
        time.sleep(0.01)
    r.close()
    """
)


@pytest.fixture
def serving(model):
    """A serving process recording a 20% canary (6% errors against 1%), exposing /metrics."""
    ops.start(
        model, "m", "1.1.0", weight=20,
        analysis=["errors: error_rate <= baseline + 0.5pt", "p99: latency.p99 <= 1.2x baseline",
                  "conversion >= baseline", {"policy": {"min_samples": 300}}],
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(model.root), "12"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield model, port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def prometheus(serving, tmp_path):
    """A real Prometheus on 127.0.0.1 scraping the serving process every second."""
    model, target = serving
    with prometheus_scraping([f"127.0.0.1:{target}"], tmp_path) as url:
        yield model, url


def test_analysis_from_prometheus_matches_the_store(prometheus, run_mreg):
    model, url = prometheus
    source = PrometheusSource(url)
    rollout = ops.read_rollout(model, "m")
    deadline = time.monotonic() + 40
    while True:  # until Prometheus has several scrapes of enough requests
        time.sleep(1)
        sample = source.read(rollout, 60)
        if sample.canary.n > 3000 or time.monotonic() > deadline:
            break
    assert sample.canary.n > 3000, "Prometheus never scraped enough requests"
    assert 3 < sample.baseline.n / sample.canary.n < 5  # a 20% canary
    assert sum(c for _, _, c in sample.canary.latency) == pytest.approx(sample.canary.n, rel=0.02)
    assert sample.canary.out["conversion"][0] == pytest.approx(sample.canary.n, rel=0.02)

    result = analyze(model, "m", source=source)
    verdicts = {r.check.label: r.verdict for r in result.results}
    assert verdicts["errors"] == "fail" and verdicts["p99"] == "pass"
    assert result.verdict == "fail" and result.source == url
    errors = next(r for r in result.results if r.check.label == "errors")
    assert 0.04 < errors.canary < 0.08 and 0.005 < errors.baseline < 0.015

    # The embedded path judges the same traffic the same way.
    local = analyze(model, "m", source=StoreSource(model.root))
    assert {r.check.label: r.verdict for r in local.results}["errors"] == "fail"

    cli = run_mreg("release", "analyze", "m", "--prometheus", url, "--json")
    assert cli.returncode == 1, cli
    assert cli.json()["source"] == url


def test_an_unreachable_prometheus_is_a_clear_error(model):
    ops.start(model, "m", "1.1.0", weight=5)
    with pytest.raises(SourceError, match=r"Prometheus at http://127\.0\.0\.1:"):
        analyze(model, "m", source=PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2))
