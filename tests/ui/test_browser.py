"""The web view in a real browser (Debian's chromium): pages, charts, escaping, refresh."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse

from modelreg import Store
from modelreg.release import ops
from tests.conftest import snapshot
from tests.ui.conftest import XSS, XSS_MESSAGE, XSS_REASON, wait_until

MODEL = "churn-classifier"


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalisation of .. or %2e)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_model_list(site, page):
    resp = page.goto(site.url)
    assert resp.status == 200
    assert resp.headers["content-security-policy"].startswith("default-src 'none'")
    row = page.locator(f'tr.model-row[data-model="{MODEL}"]')
    text = row.inner_text()
    store = Store.open(site.root)
    for v in store.versions(MODEL):
        assert v.version.version in text
    assert "production → 1.0.0" in text and "staging → 1.2.0" in text
    assert "aborted" in text and "1.2.0 at 0% vs 1.0.0" in text
    assert page.locator("tr.model-row").count() == len(store.models())
    page.click(f'tr.model-row[data-model="{MODEL}"] a.model-link')
    assert page.url.endswith(f"/models/{MODEL}")
    timeline = page.locator("table.timeline").inner_text()
    assert "rollback" in timeline and "conversion dropped" in timeline
    assert page.locator("table.versions tr[data-version]").count() == 3


def test_identity_card(site, page):
    store = Store.open(site.root)
    info = store.info(f"{MODEL}@1.2.0")
    mv = info.version
    assert page.goto(f"{site.url}models/{MODEL}/-/versions/1.2.0").status == 200
    assert mv.short_id in page.locator("h1").inner_text()
    card = page.locator("section.card")
    assert mv.id in card.locator("table.identity").inner_text()
    assert mv.author in card.locator("table.identity").inner_text()
    params = card.locator("table.params").inner_text()
    for k, v in mv.params.items():
        assert k in params and str(v) in params
    metrics = card.locator("table.metrics").inner_text()
    assert "test" in metrics and "train" in metrics and f"{mv.metric('test.f1'):g}" in metrics
    files = card.locator("table.files").inner_text()
    for f in mv.files:
        assert f.path in files and f.sha256 in files
    data = card.locator("table.data").inner_text()
    for d in mv.data:
        assert d.uri in data
    assert "staging" in card.locator(".alias").all_inner_texts()
    # the file link serves the very bytes of the object
    href = card.locator("table.files a").first.get_attribute("href")
    status, body = _raw_get(site.url, href)
    assert status == 200 and hashlib.sha256(body).hexdigest() == mv.files[0].sha256


def test_diff(site, page):
    page.goto(f"{site.url}models/{MODEL}/-/versions/1.2.0")
    page.select_option("form.diff-form select", f"{MODEL}@1.0.0")
    page.click("form.diff-form button")
    page.wait_for_url("**/diff?**")
    store = Store.open(site.root)
    expected = store.diff(f"{MODEL}@1.2.0", f"{MODEL}@1.0.0")
    params = page.locator('table.diff[data-section="params"]')
    changed = params.locator("tr.changed")
    assert changed.count() == len(expected.params)
    lr = changed.filter(has_text="lr").inner_text()
    assert "0.2" in lr and "0.5" in lr
    unchanged = " ".join(params.locator("tr.same").all_inner_texts())
    assert "epochs" in unchanged
    files = page.locator('table.diff[data-section="files"] tr.changed')
    assert files.count() == len(expected.files)
    assert "data lineage" in page.locator("#diff").inner_text()
    # any other version, of any model, by NAME@REF
    page.goto(f"{site.url}models/xss-model/-/versions/1.0.0")
    page.fill("form.diff-any input[name=b]", f"{MODEL}@production")
    page.click("form.diff-any button")
    page.wait_for_url("**/diff?**")
    assert f"{MODEL}@1.0.0" in page.locator("#diff h1").inner_text()
    assert "xss-model@1.0.0" in page.locator("#diff h1").inner_text()


def test_release_page_draws_its_charts(site, page):
    resp = page.goto(f"{site.url}models/{MODEL}/-/release")
    assert resp.status == 200
    banner = page.locator("#rollback").inner_text()
    assert "Rolled back automatically" in banner and "analysis: errors" in banner
    assert "fail" in page.locator("table.checks").inner_text()
    charts = page.locator("svg.chart")
    keys = [charts.nth(i).get_attribute("data-chart") for i in range(charts.count())]
    for key in ("weight", "error-rate", "latency-p50", "latency-p99", "outcome-conversion"):
        assert key in keys, keys
    # every chart is drawn by the browser: lines with length and a visible box
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('svg.chart')].map(svg => ({
            key: svg.dataset.chart,
            width: svg.getBoundingClientRect().width,
            lines: [...svg.querySelectorAll('path.line')].map(p => p.getTotalLength()),
            bands: [...svg.querySelectorAll('polygon.band')].map(p => p.getBBox().height),
            rollback: [...svg.querySelectorAll('g.rollback')].map(g => g.textContent),
            dots: svg.querySelectorAll('circle.verdict').length,
        }))"""
    )
    by_key = {d["key"]: d for d in drawn}
    for d in drawn:
        assert d["width"] > 200, d
        # a series judged once (a release rolled back at its second analysis) is one point
        assert d["lines"] and max(d["lines"]) > 10, d
    for key in ("error-rate", "latency-p99", "outcome-conversion"):
        assert len(by_key[key]["lines"]) == 2  # canary and baseline
        assert any(h > 0 for h in by_key[key]["bands"])  # confidence intervals
        assert by_key[key]["rollback"] == ["automatic rollbackautomatic rollback"]
    assert by_key["error-rate"]["dots"] > 0  # each analysis's verdict
    assert by_key["weight"]["rollback"]
    # the rollback marker sits at the time of the abort in the release history
    r = ops.read_rollout(Store.open(site.root), MODEL)
    abort = next(e for e in r.history if e.action == "abort")
    assert abort.reason.startswith("analysis:")
    assert abort.time in banner
    checks = page.locator("svg.chart[data-chart^=check-]")
    assert checks.count() == len(r.analysis)


def test_user_values_are_escaped(site, page):
    for path in (
        "models/xss-model/-/versions/1.0.0",
        "models/xss-model",
        "models/xss-model/-/release",
        "audit",
        "",
        "diff?a=xss-model@1.0.0&b=xss-model@1.1.0",
    ):
        assert page.goto(site.url + path).status == 200, path
        assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0
        assert page.dialogs == [], path
    page.goto(f"{site.url}models/xss-model/-/versions/1.0.0")
    assert XSS in page.locator("table.params").inner_text()
    assert XSS_MESSAGE in page.locator("td.message").inner_text()
    page.goto(f"{site.url}models/xss-model")
    assert XSS_REASON in page.locator("table.timeline").inner_text()
    page.goto(f"{site.url}models/xss-model/-/release")
    assert "<b>eu</b>" in page.locator("table.rules").inner_text()
    assert XSS_REASON in page.locator("table.history").inner_text()
    assert page.dialogs == []


def test_unknown_things_get_a_404_page(site, page):
    for path in (
        "models/nope",
        "models/NOPE!",
        f"models/{MODEL}/-/versions/9.9.9",
        f"models/{MODEL}/-/versions/not-a-version",
        f"models/{MODEL}/-/versions/1.2.0/files/missing.bin",
        f"models/{MODEL}/-/elsewhere",
        "diff?a=nope@1.0.0&b=nope@2.0.0",
        "audit?model=nope",
        "no/such/page",
    ):
        resp = page.goto(site.url + path)
        assert resp.status == 404, path
        assert "404" in page.locator("h1").inner_text(), path


def test_no_url_reaches_outside_the_store(site):
    secret = site.root.parent.parent / "secret.txt"
    secret.write_text("TOP SECRET")
    version_dir = f"/models/{MODEL}/-/versions/1.2.0/files/"
    for path in (
        version_dir + "../../../../../../etc/passwd",
        version_dir + "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        version_dir + "..%2f..%2f..%2f..%2f..%2fsecret.txt",
        version_dir + "%252e%252e/%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret.txt",
        version_dir + "/etc/passwd",
        version_dir + "%2Fetc%2Fpasswd",
        "/models/..%2F..%2F..%2Fsecret.txt",
        "/models/../../../etc/passwd",
        "/models/%2e%2e/-/versions/1.0.0",
        f"/models/{MODEL}/-/versions/..%2F1.2.0/files/model.json",
        "/models/config.yaml",
        "/models/objects",
    ):
        status, body = _raw_get(site.url, path)
        assert status == 404, (path, status)
        assert b"TOP SECRET" not in body and b"root:" not in body


def test_no_request_changes_the_store(site):
    before = snapshot(site.root)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", f"/models/{MODEL}", f"/models/{MODEL}/-/release", "/audit"):
            u = urllib.parse.urlsplit(site.url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            conn.request(method, path, body=b"x=1")
            assert conn.getresponse().status == 405, (method, path)
            conn.close()
    for path in ("/", f"/models/{MODEL}", f"/models/{MODEL}/-/release", "/audit",
                 f"/models/{MODEL}/-/versions/1.0.0/files/model.json"):  # fmt: skip
        assert _raw_get(site.url, path)[0] == 200
    assert snapshot(site.root) == before


def _redirect(url: str, path: str) -> tuple[int, str | None]:
    """GET a path without following a redirect: (status, Location)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, resp.getheader("Location")


def test_ref_urls_lead_to_the_version_they_name(site, page):
    card = f"/models/{MODEL}/-/versions"
    for path, version in (
        (f"/models/{MODEL}/-/at/production", "1.0.0"),  # production was rolled back to 1.0.0
        (f"/models/{MODEL}/-/at/staging", "1.2.0"),
        (f"/models/{MODEL}/-/at/latest", "1.2.0"),
        (f"/models/{MODEL}/-/at/1.1.0", "1.1.0"),
        (f"/models/{MODEL}@production", "1.0.0"),  # NAME@REF as the CLI writes it
        (f"/models/{MODEL}@1.1.0", "1.1.0"),
    ):
        assert _redirect(site.url, path) == (307, f"{card}/{version}"), path
    assert _redirect(site.url, f"/models/{MODEL}/-/at/production/files/model.json") == (
        307, f"{card}/1.0.0/files/model.json",
    )  # fmt: skip
    # In the browser: the redirect lands on the identity card; the alias links to its URL.
    page.goto(f"{site.url}models/{MODEL}/-/at/production")
    assert page.url.endswith(f"{card}/1.0.0")
    assert f"{MODEL}@1.0.0" in page.locator("section.card h1").inner_text()
    page.goto(f"{site.url}models/{MODEL}")
    link = page.locator("a.alias-link", has_text="staging")
    assert link.get_attribute("href") == f"/models/{MODEL}/-/at/staging"
    link.click()
    assert page.url.endswith(f"{card}/1.2.0")
    for path in (
        f"models/{MODEL}/-/at/nope",
        f"models/{MODEL}/-/at/",
        f"models/{MODEL}/-/at/9.9.9",
        f"models/{MODEL}/-/at/production/files/missing.bin",
        f"models/{MODEL}/-/at/production/elsewhere",
        f"models/{MODEL}@nope",
        "models/nope@production",
        f"models/{MODEL}/-/at/{urllib.parse.quote(XSS)}",
        f"models/{MODEL}@{urllib.parse.quote(XSS)}",
    ):
        resp = page.goto(site.url + path)
        assert resp.status == 404, path
        assert "404" in page.locator("h1").inner_text(), path
        assert XSS not in page.content()
    assert page.dialogs == []


def test_live_release_page_refreshes(site, page):
    page.goto(f"{site.url}models/xss-model/-/release")
    assert page.locator(".canary-share").inner_text() == "5%"
    store = Store.open(site.root)
    ops.step(store, "xss-model", reason="looks fine", actor="tester")
    wait_until(lambda: page.locator(".canary-share").inner_text() == "25%", timeout=15)
    assert "looks fine" in page.locator("table.history").inner_text()
