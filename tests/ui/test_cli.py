"""`mreg report` (one self-contained HTML file, PNG charts), `mreg ui --remote`, errors."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cli.helpers import assert_one_line_error, ok
from tests.ui.conftest import XSS, build_store, start_server, stop

MODEL = "churn-classifier"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("report") / "work")


def _external_refs(html: str) -> list[str]:
    refs = re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', html)
    return [r for r in refs if re.match(r"^(https?:)?//", r)] + re.findall(r"url\(", html)


def test_report_html_is_self_contained(run_mreg, demo_dir, tmp_path, browser):
    out = tmp_path / "report.html"
    res = ok(run_mreg("report", f"{MODEL}@1.2.0", "--html", str(out), "--store", str(demo_dir)))
    assert str(out) in res.stdout
    html = out.read_text()
    assert _external_refs(html) == []
    assert "<script" not in html  # nothing runs in a report
    page = browser.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.abort() if not route.request.url.startswith("file:") else route.continue_()
        ),
    )
    page.goto(out.as_uri())
    assert "churn-classifier@1.2.0" in page.locator("section.card h1").inner_text()
    assert "lr" in page.locator("#diff").inner_text()  # against the previous version, 1.1.0
    assert "1.1.0" in page.locator("#diff h1").inner_text()
    assert "verified, intact" in page.locator("#audit").inner_text()
    href = page.locator("table.versions a").first.get_attribute("href")
    assert href == "#v-1.2.0"  # links stay inside the file
    page.close()


def test_report_release_html_and_png(run_mreg, demo_dir, tmp_path, browser):
    html_file, png_file = tmp_path / "release.html", tmp_path / "charts.png"
    res = ok(run_mreg("report", MODEL, "--release", "--html", str(html_file), "--png",
                      str(png_file), "--store", str(demo_dir), "--json"))  # fmt: skip
    doc = res.json()
    assert doc == {
        "model": MODEL, "version": None, "release": True, "html": str(html_file),
        "html_bytes": html_file.stat().st_size, "png": str(png_file),
        "png_bytes": png_file.stat().st_size,
    }  # fmt: skip
    html = html_file.read_text()
    assert _external_refs(html) == []
    page = browser.new_page()
    page.goto(html_file.as_uri())
    assert "Rolled back automatically" in page.locator("#rollback").inner_text()
    lengths = page.evaluate(
        "[...document.querySelectorAll('svg.chart path.line')].map(p => p.getTotalLength())"
    )
    assert len(lengths) >= 10 and min(lengths) > 10
    page.close()
    data = png_file.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 1000


def test_report_escapes_user_values(run_mreg, demo_dir, tmp_path):
    out = tmp_path / "x.html"
    ok(run_mreg("report", "xss-model@1.0.0", "--html", str(out), "--store", str(demo_dir)))
    html = out.read_text()
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_errors(run_mreg, demo_dir, tmp_path):
    store = ("--store", str(demo_dir))
    assert_one_line_error(run_mreg("report", "nope", "--html", str(tmp_path / "a"), *store), 2)
    assert_one_line_error(run_mreg("report", MODEL, *store), 2)
    res = run_mreg("report", f"{MODEL}@9.9.9", "--html", str(tmp_path / "a"), *store)
    assert_one_line_error(res, 2)
    assert not (tmp_path / "a").exists()


def test_ui_needs_a_store(run_mreg, tmp_path):
    line = assert_one_line_error(run_mreg("ui", "--store", str(tmp_path / "none")), 2)
    assert "no mreg store" in line


def test_missing_extra_is_one_line(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"  # as if the ui extra were not installed
        "from modelreg.cli import main\n"
        f"main(['ui', '--store', {str(tmp_path)!r}])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 2, res
    assert res.stderr.strip().splitlines() == [
        "mreg: error: the web view needs the ui extra: pip install 'modelreg[ui]' "
        "(starlette is not installed)"
    ]


def test_ui_over_a_remote(demo_dir, tmp_path):
    # A remote mirrors .modelreg/ path for path: the store directory is itself a file:// remote.
    url, proc = start_server("--remote", (demo_dir / ".modelreg").as_uri(), cwd=tmp_path,
                             home=tmp_path)  # fmt: skip
    try:
        assert "file://" in url or url.startswith("http://127.0.0.1")
        home = urllib.request.urlopen(url).read().decode()
        assert MODEL in home and "production → 1.0.0" in home
        card = urllib.request.urlopen(f"{url}models/{MODEL}/-/versions/1.2.0").read().decode()
        assert "weekly retrain 1.2.0" in card
        rel = urllib.request.urlopen(f"{url}models/{MODEL}/-/release").read().decode()
        assert "Rolled back automatically" in rel and 'data-chart="error-rate"' in rel
        assert 'class="line"' in rel
        audit = urllib.request.urlopen(f"{url}audit").read().decode()
        assert "verified, intact" in audit
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{url}models/nope")
        assert e.value.code == 404
    finally:
        stop(proc)
