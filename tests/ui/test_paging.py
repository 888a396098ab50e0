"""The model page shows one page of versions, answered from the index (issue 18).

A model of 250 versions: 100 rows on page 1, the next 100 on page 2, 50 on page 3, each
with its "showing" line and its newer/older links; the version page of an old version and
`resolve` read one manifest, not the list of every version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput, NotFound
from modelreg.remote import Remote
from modelreg.ui import pages
from modelreg.ui.app import create_app
from modelreg.ui.report import html_report
from modelreg.ui.views import LocalView, RemoteView
from tests.ui.conftest import get

MODEL = "many"
COUNT = 250
NEWEST_FIRST = [f"1.{i}.0" for i in reversed(range(COUNT))]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("paging")
    store = Store.init(root)
    art = root / "w.bin"
    art.write_bytes(b"weights")
    for i in range(COUNT):
        store.register(MODEL, [art], version=f"1.{i}.0", detect_code=False,
                       metrics={"test": {"f1": i / COUNT}})  # fmt: skip
    store.promote(f"{MODEL}@1.3.0", "production", reason="old but trusted")
    store.tag(f"{MODEL}@1.120.0", ["candidate"])
    store.deprecate(f"{MODEL}@1.5.0", reason="leaked test data")
    return store


@pytest.fixture(scope="module")
def app(store: Store) -> Any:
    return create_app(LocalView(store), lambda line: None)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-version="([^"]+)">', html)


def paging(html: str) -> str:
    """The first "showing" line, without its markup."""
    line = re.search(r'<p class="paging muted">(.*?)</p>', html, re.S)
    assert line is not None, html
    return re.sub(r"<[^>]+>", "", line.group(1)).replace("&amp;", "&").strip()


def links(html: str) -> dict[str, str]:
    """The first pager's links by class: page-newest, page-newer, page-older."""
    line = re.search(r'<p class="paging muted">(.*?)</p>', html, re.S)
    assert line is not None
    return {
        cls: href.replace("&amp;", "&")
        for href, cls in re.findall(r'<a href="([^"]+)" class="(page-[a-z]+)">', line.group(1))
    }


def test_three_pages_of_a_model_of_250_versions(app: Any) -> None:
    status, html, _ = get(app, f"/models/{MODEL}")
    assert status == 200
    assert rows(html) == NEWEST_FIRST[:100]
    assert paging(html).startswith("showing 1-100 of 250, newest first")
    assert links(html) == {"page-older": f"/models/{MODEL}?page=2"}

    status, html, _ = get(app, f"/models/{MODEL}?page=2")
    assert status == 200
    assert rows(html) == NEWEST_FIRST[100:200]
    assert paging(html).startswith("showing 101-200 of 250")
    assert links(html) == {
        "page-newer": f"/models/{MODEL}?page=1",
        "page-older": f"/models/{MODEL}?page=3",
    }
    assert '<span class="pill tag">candidate</span>' in html  # 1.120.0 is on this page

    status, html, _ = get(app, f"/models/{MODEL}?page=3")
    assert status == 200
    assert rows(html) == NEWEST_FIRST[200:]
    assert paging(html).startswith("showing 201-250 of 250")
    assert links(html) == {
        "page-newest": f"/models/{MODEL}?page=1",
        "page-newer": f"/models/{MODEL}?page=2",
    }
    # the oldest page still shows the alias, the deprecation and the alias history
    row = html.split('<tr data-version="1.3.0">', 1)[1].split("</tr>", 1)[0]
    assert '<span class="pill alias">production</span>' in row
    row = html.split('<tr data-version="1.5.0">', 1)[1].split("</tr>", 1)[0]
    assert "deprecated" in row
    assert 'id="timeline"' in html and "old but trusted" in html


def test_offset_limit_and_pages_past_the_end(app: Any) -> None:
    status, html, _ = get(app, f"/models/{MODEL}?offset=150")
    assert rows(html) == NEWEST_FIRST[150:]
    assert paging(html).startswith("showing 151-250 of 250")
    assert links(html)["page-newer"] == f"/models/{MODEL}?offset=50"
    # offset wins over page; a non-default limit is carried by the links
    status, html, _ = get(app, f"/models/{MODEL}?page=2&limit=7&offset=7")
    assert rows(html) == NEWEST_FIRST[7:14]
    assert paging(html).startswith("showing 8-14 of 250")
    assert links(html)["page-older"] == f"/models/{MODEL}?page=3&limit=7"
    status, html, _ = get(app, f"/models/{MODEL}?page=9")
    assert status == 200 and rows(html) == []
    assert paging(html).startswith("no versions from 801 on: there are 250")
    assert links(html)["page-newer"] == f"/models/{MODEL}?page=3"  # the last page with rows
    for bad in ("page=0", "page=x", "offset=-1", "limit=0", "limit=100000"):
        status, html, _ = get(app, f"/models/{MODEL}?{bad}")
        assert status == 404, bad
        assert "Traceback" not in html


def test_page_window() -> None:
    assert pages.page_window() == (0, 100)
    assert pages.page_window("3") == (200, 100)
    assert pages.page_window("3", "5") == (5, 100)
    assert pages.page_window(None, None, "20") == (0, 20)
    assert pages.page_window("2", None, "20") == (20, 20)
    with pytest.raises(InvalidInput):
        pages.page_window("1.5")


def test_version_page_of_an_old_version_and_refs(app: Any, store: Store) -> None:
    status, html, _ = get(app, f"/models/{MODEL}/-/versions/1.3.0")
    assert status == 200
    assert 'id="v-1.3.0"' in html and '<span class="pill alias">production</span>' in html
    # the diff choices are the newest versions, not all 250
    offered = re.findall(rf'<option value="{MODEL}@([^"]+)">', html)
    assert offered == NEWEST_FIRST[: pages.OTHERS_LISTED]
    assert get(app, f"/models/{MODEL}/-/versions/1.250.0")[0] == 404
    assert get(app, f"/models/{MODEL}/-/versions/not-a-version")[0] == 404
    assert get(app, "/models/nope/-/versions/1.0.0")[0] == 404
    status, _, headers = get(app, f"/models/{MODEL}@production")
    assert status == 307 and headers["location"] == f"/models/{MODEL}/-/versions/1.3.0"
    status, _, headers = get(app, f"/models/{MODEL}@latest")
    assert headers["location"] == f"/models/{MODEL}/-/versions/1.249.0"
    view = LocalView(store)
    assert view.latest(MODEL) == "1.249.0"
    assert pages.resolve(view, f"{MODEL}@1.0.0").version == "1.0.0"
    for bad in (f"{MODEL}@9.9.9", f"{MODEL}@nope", "nope", "Bad Name"):
        with pytest.raises(NotFound):
            pages.resolve(view, bad)


def test_local_reads_never_list_every_version(store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    view = LocalView(store)

    def listed(name: str) -> list[str]:
        raise AssertionError("listed every version")

    monkeypatch.setattr(view, "version_names", listed)
    ctx = pages.model_page(view, MODEL, 200, 100)
    assert [r["mv"].version for r in ctx["rows"]] == NEWEST_FIRST[200:]
    assert ctx["paging"]["total"] == COUNT
    assert pages.version_page(view, MODEL, "1.0.0")["mv"].version == "1.0.0"
    assert pages.resolve(view, MODEL).version == "1.249.0"
    assert pages.audit_page(view, MODEL)["model"] == MODEL
    assert pages.release_page(view, MODEL, 0.0)["rollout"] is None


def test_the_remote_view_pages_the_same(store: Store, tmp_path: Path) -> None:
    store.remotes.add("paging-origin", str(tmp_path / "remote"), {})
    store.push("paging-origin")
    local = LocalView(store)
    remote = RemoteView(Remote(str(tmp_path / "remote"), cache_dir=tmp_path / "cache"))
    for offset in (0, 100, 200):
        a, b = pages.model_page(local, MODEL, offset), pages.model_page(remote, MODEL, offset)
        assert a["paging"] == b["paging"]
        assert [(r["mv"].id, r["aliases"], r["tags"], r["deprecated"]) for r in a["rows"]] == [
            (r["mv"].id, r["aliases"], r["tags"], r["deprecated"]) for r in b["rows"]
        ]
    others = [pages.version_page(v, MODEL, "1.3.0")["others"] for v in (local, remote)]
    assert others[0] == others[1]


def test_a_report_holds_the_newest_page(store: Store) -> None:
    report = html_report(LocalView(store), f"{MODEL}@production")
    assert rows(report.html) == NEWEST_FIRST[:100]
    assert paging(report.html).startswith("showing 1-100 of 250")
    assert "page-older" not in report.html  # no links in a one-file report
