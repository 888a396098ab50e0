"""The drift page of a version and the lineage page of a model (issue 21), over HTTP.

The store is made by the real APIs: `Store.register(..., profile=True)` on a training CSV,
a real `Router` capturing requests into the store (with an injected wall clock), an
export with `Store.data_export`, and the next version registered on that export (the
lineage link). Pages are asked through the real ASGI app in process; the numbers shown
are checked against `monitoring.drift_report`.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.monitoring import drift_report
from modelreg.remote import Remote
from modelreg.serving.router import Router
from modelreg.ui.app import create_app
from modelreg.ui.report import html_report
from modelreg.ui.views import LocalView, RemoteView
from tests.conftest import snapshot
from tests.ui.conftest import get

pytest.importorskip("datasketches")

MODEL = "churn"
HOSTILE = "<script>alert(5)</script>"
T0 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
NOW = T0 + 3 * 86400  # the store's clock: 2026-12-04T00:00:00Z


def _capture(root: Path, t0: float, rows: list[dict[str, Any]]) -> None:
    """A real router captures `rows` (one a minute from `t0`) of the production version."""
    clock = {"t": t0}
    router = Router.open(MODEL, store=root, flush_interval_s=0, wall=lambda: clock["t"])
    router.sampler.configure(rate=1.0, size=1000, window_s=3600,
                             features=("age", "country", HOSTILE))  # fmt: skip
    for i, row in enumerate(rows):
        clock["t"] = t0 + 60 * i
        router.capture(router.route(user_id=f"u{i}"), features=row, prediction=0.5)
    router.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    tmp = tmp_path_factory.mktemp("dataloop")
    store = Store.init(tmp, clock=lambda: datetime.fromtimestamp(NOW, timezone.utc))
    model = tmp / "model.bin"
    model.write_bytes(b"weights")
    train = tmp / "train.csv"
    countries = ("de", "de", "fr", "us")
    lines = [f"age,country,{HOSTILE}"]
    lines += [f"{20 + i % 60},{countries[i % 4]},{i % 7}" for i in range(600)]
    train.write_text("\n".join(lines) + "\n")
    store.register(MODEL, [model], version="1.2.0", data=[str(train)], profile=True,
                   detect_code=False)  # fmt: skip
    store.promote(f"{MODEL}@1.2.0", "production")
    # hour 0..2: as in training; from hour 5: every age 40 years older, all from "us"
    same = [{"age": 20 + i % 60, "country": countries[i % 4], HOSTILE: i % 7} for i in range(120)]
    older = [{"age": 60 + i % 60, "country": "us", HOSTILE: i % 7} for i in range(120)]
    _capture(store.root, T0, same)
    _capture(store.root, T0 + 5 * 3600, older)
    store.data_export(f"{MODEL}@1.2.0", tmp / "prod-1.2.0.jsonl", since=T0, until=T0 + 86400)
    store.register(MODEL, [model], version="1.3.0", data=[str(tmp / "prod-1.2.0.jsonl")],
                   profile=True, detect_code=False)  # fmt: skip
    store.promote(f"{MODEL}@1.3.0", "production")
    _capture(store.root, T0 + 86400, older[:50])
    store.data_export(f"{MODEL}@1.3.0", tmp / "prod-1.3.0.jsonl")
    store.register(MODEL, [model], version="1.4.0", data=[str(tmp / "prod-1.3.0.jsonl")],
                   detect_code=False)  # fmt: skip
    ages = tmp / "ages.csv"  # 1.5.0: two profiled data files
    ages.write_text("age\n" + "".join(f"{60 + i % 60}\n" for i in range(300)))
    store.register(MODEL, [model], version="1.5.0", data=[str(train), str(ages)], profile=True,
                   detect_code=False)  # fmt: skip
    return store


@pytest.fixture(scope="module")
def app(store: Store) -> Any:
    return create_app(LocalView(store), lambda line: None)


def feature_rows(page: str) -> dict[str, dict[str, str]]:
    """The per-feature table: feature -> {psi, distance, n-ref, n-prod, limit, status}."""
    out = {}
    for feature, cells in re.findall(
        r'<tr class="feature [^"]*" data-feature="([^"]*)">(.*?)</tr>', page, re.S
    ):
        values = dict(re.findall(r'<td class="([a-z-]+)">(.*?)</td>', cells, re.S))
        text = {k: re.sub(r"<[^>]+>", " ", v).split()[0] for k, v in values.items()}
        out[html.unescape(feature)] = text
    return out


def test_drift_page_shows_what_drift_report_says(app, store):
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.2.0/drift")
    assert status == 200
    report = drift_report(store, f"{MODEL}@1.2.0")
    rows = feature_rows(page)
    assert list(rows) == ["age", "country", HOSTILE] == [f.feature for f in report.features]
    for f in report.features:
        shown = rows[f.feature]
        assert shown["psi"] == f"{f.psi:.4f}" and shown["distance"] == f"{f.distance:.4f}"
        assert shown["n-ref"] == f"{f.n_reference:,}" == "600"
        assert shown["n-prod"] == f"{f.n_production:,}" == "240"
        assert shown["limit"] == f"{f.psi_limit:.4f}" and shown["status"] == f.status
    assert rows["age"]["status"] == rows["country"]["status"] == "crossed"
    assert rows[HOSTILE]["status"] == "ok"
    assert 'data-verdict="crossed"' in page
    # a PSI chart and a histogram per feature: 11 bins of age, de/fr/us + other
    for chart in ("psi-age", "hist-age", "psi-country", "hist-country"):
        assert f'data-chart="{chart}"' in page
    hist = re.search(r'<svg[^>]*data-chart="hist-country".*?</svg>', page, re.S).group(0)
    bars = dict(re.findall(r'data-series="production" data-label="([^"]*)" data-value="([^"]*)"',
                           hist))  # fmt: skip
    assert bars == {"de": "0.25", "fr": "0.125", "us": "0.625", "(other)": "0"}  # of 240


def test_the_window_params_select_the_rows(app, store):
    since, until = "2026-12-01T00:00:00Z", "2026-12-01T03:00:00Z"
    status, page, _ = get(
        app, f"/models/{MODEL}/-/versions/1.2.0/drift?since={since}&until={until}"
    )
    assert status == 200
    report = drift_report(store, f"{MODEL}@1.2.0", since=T0, until=T0 + 3 * 3600)
    rows = feature_rows(page)
    assert rows["age"]["n-prod"] == "120" and rows["age"]["psi"] == f"{report.features[0].psi:.4f}"
    assert report.features[0].psi < 0.1 and 'data-verdict="ok"' in page
    assert f"{since} .. {until}" in page
    # window=: the last 24 hours before the store's clock: only 1.3.0's rows were then
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.2.0/drift?window=24h")
    assert status == 200 and 'class="rows">0<' in page
    assert 'data-verdict="inconclusive"' in page
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.3.0/drift?window=3d")
    assert status == 200 and feature_rows(page)["age"]["n-prod"] == "50"
    for bad in (
        "window=yesterday",
        "since=noon",
        "since=2026-12-02T00:00:00Z&until=2026-12-01",
        "data=other.csv",
        "since=2026-12-01&window=1h",
    ):
        status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.2.0/drift?{bad}")
        assert status == 404 and 'id="not-found"' in page
        assert bad.split("=")[0] in re.search(r'id="not-found">(.*?)</section>', page).group(1)


def test_alias_drift_url_redirects_with_its_window(app):
    status, _, headers = get(app, f"/models/{MODEL}/-/at/production/drift?window=7d&x=1")
    assert status == 307
    assert headers["location"] == f"/models/{MODEL}/-/versions/1.3.0/drift?window=7d"


def test_unknown_versions_are_404(app):
    for url in (f"/models/{MODEL}/-/versions/9.9.9/drift", "/models/nope/-/versions/1.0.0/drift",
                f"/models/{MODEL}/-/versions/..%2f/drift", "/models/nope/-/lineage"):  # fmt: skip
        status, page, _ = get(app, url)
        assert status == 404 and 'id="not-found"' in page, url


def test_a_version_without_profile_says_so(app):
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.4.0/drift")
    assert status == 200 and "has no stored profile" in page
    assert 'data-verdict="inconclusive"' in page and "data-chart" not in page


def test_hostile_feature_names_are_escaped(app):
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.2.0/drift")
    assert status == 200
    assert HOSTILE not in page and "&lt;script&gt;alert(5)&lt;/script&gt;" in page


def test_version_and_model_pages_link_to_the_new_pages(app):
    _, card, _ = get(app, f"/models/{MODEL}/-/versions/1.2.0")
    assert f'href="/models/{MODEL}/-/versions/1.2.0/drift"' in card
    _, card, _ = get(app, f"/models/{MODEL}/-/versions/1.4.0")  # no profile, no samples
    assert "/drift" not in card
    _, model, _ = get(app, f"/models/{MODEL}")
    assert f'href="/models/{MODEL}/-/lineage"' in model


def test_lineage_page_lists_the_chain(app):
    status, page, _ = get(app, f"/models/{MODEL}/-/lineage")
    assert status == 200
    links = re.findall(
        r'<tr class="link" data-version="([^"]+)">.*?class="source">.*?>([^<]+)</a>.*?'
        r'class="window">([^<]*)</td><td class="rows">([^<]*)<',
        page, re.S,
    )  # fmt: skip
    assert links == [
        ("1.4.0", f"{MODEL}@1.3.0", "every sample", "50"),
        ("1.3.0", f"{MODEL}@1.2.0", "2026-12-01T00:00:00Z..2026-12-02T00:00:00Z", "240"),
    ]
    svg = re.search(r'<svg[^>]*data-chart="lineage".*?</svg>', page, re.S).group(0)
    assert re.findall(r'class="node" data-node="([^"]+)"', svg) == [
        f"{MODEL}@1.2.0", f"{MODEL}@1.3.0", f"{MODEL}@1.4.0"
    ]  # fmt: skip
    edges = re.findall(r'class="edge" data-from="([^"]+)" data-to="([^"]+)" data-rows="(\d+)"', svg)
    assert edges == [(f"{MODEL}@1.3.0", f"{MODEL}@1.4.0", "50"),
                     (f"{MODEL}@1.2.0", f"{MODEL}@1.3.0", "240")]  # fmt: skip
    # the source's drift in the exported window, one click away
    assert (f"/models/{MODEL}/-/versions/1.2.0/drift?since=2026-12-01T00%3A00%3A00Z&amp;"
            "until=2026-12-02T00%3A00%3A00Z") in page  # fmt: skip


def test_the_report_file_has_no_links_to_server_pages(store):
    report = html_report(LocalView(store), f"{MODEL}@1.3.0").html
    assert "/drift" not in report and "/lineage" not in report


def test_pages_are_read_only(app, store):
    before = snapshot(store.root)
    for url in (f"/models/{MODEL}/-/versions/1.2.0/drift?window=7d", f"/models/{MODEL}/-/lineage",
                f"/models/{MODEL}/-/versions/1.3.0/drift"):  # fmt: skip
        assert get(app, url)[0] == 200
    assert snapshot(store.root) == before


def test_over_a_remote_the_drift_page_says_it_needs_the_store(store, tmp_path):
    remote = RemoteView(Remote(store.root.as_uri(), cache_dir=tmp_path / "cache"))
    served = create_app(remote, lambda line: None)
    status, page, _ = get(served, f"/models/{MODEL}/-/versions/1.2.0/drift")
    assert status == 200 and "Drift is shown for a local store only" in page
    status, page, _ = get(served, f"/models/{MODEL}/-/lineage")  # manifests travel: it works
    assert status == 200 and page.count('<tr class="link"') == 2


def test_the_reference_can_be_another_profiled_file(app, store):
    first = store.resolve(f"{MODEL}@1.5.0").data[0].uri
    ages = store.resolve(f"{MODEL}@1.5.0").data[1].uri
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.5.0/drift")
    assert status == 200 and f"<code>{first}</code>, 600 rows" in page
    assert page.count('class="reference-link"') == 2
    status, page, _ = get(app, f"/models/{MODEL}/-/versions/1.5.0/drift?data={ages}")
    assert status == 200 and f"<code>{ages}</code>, 300 rows" in page
    assert list(feature_rows(page)) == ["age"]
