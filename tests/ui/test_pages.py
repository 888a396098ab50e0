"""The pages' data and charts, without a browser: numbers checked against the raw files."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import NotFound
from modelreg.remote import Remote
from modelreg.ui import pages
from modelreg.ui.charts import Band, Marker, Series, line_chart, nice_ticks
from modelreg.ui.release import _wilson
from modelreg.ui.views import LocalView, RemoteView
from tests.ui.conftest import build_store

MODEL = "churn-classifier"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("pages") / "work")


def test_release_counts_every_recorded_request(demo):
    store = Store.open(demo)
    view = LocalView(store)
    rel = pages.release_page(view, MODEL, time.time())
    totals = {"baseline": 0, "canary": 0}
    for path in (store.root / "metrics" / MODEL / "1").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            totals[doc["variant"]] += doc["n"]
    assert rel["charts"].requests == totals
    assert totals["canary"] > 1000 and totals["baseline"] > 10 * totals["canary"]
    assert rel["charts"].rollback["automatic"] is True
    assert rel["analyses"] == len(view.judgments(MODEL, 1)) > 1


def test_wilson_interval_matches_the_textbook():
    lo, hi = _wilson(10, 100)  # Wilson 95% interval of 10/100: [0.0552, 0.1744]
    assert round(lo, 4) == 0.0552 and round(hi, 4) == 0.1744
    lo, hi = _wilson(0, 50)
    assert lo == 0.0 and 0.07 < hi < 0.072


def test_chart_escapes_text_and_draws_gaps_bands_and_markers():
    svg = line_chart(
        "k<", "<script>x</script>",
        [Series("<b>s</b>", [(0, 1.0), (1, 2.0), (2, None), (3, 1.0), (4, 1.5)], "#000",
                band=Band([(0, 0.5, 1.5), (1, 1.5, 2.5)]))],
        markers=[Marker(2.5, "roll<back>", "#f00", strong=True)],
    )  # fmt: skip
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg
    assert 'data-chart="k&lt;"' in svg
    d = re.search(r'class="line"[^>]* d="([^"]+)"', svg).group(1)
    assert d.count("M") == 2  # the None point starts a new segment
    assert 'class="band"' in svg and 'class="marker rollback"' in svg
    assert 'data-points="4"' in svg
    empty = line_chart("e", "empty", [Series("a", [], "#000")])
    assert "no data recorded yet" in empty


def test_nice_ticks():
    assert nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.0, 0.05, 4) == pytest.approx([0.0, 0.02, 0.04])


def test_remote_view_shows_what_the_local_view_shows(demo, tmp_path):
    local = LocalView(Store.open(demo))
    remote = RemoteView(Remote((demo / ".modelreg").as_uri(), cache_dir=tmp_path / "cache"))
    a, b = pages.models_page(local), pages.models_page(remote)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "latest"} for r in rows]  # noqa: E731
    assert strip(a["models"]) == strip(b["models"])
    assert [r["latest"].id for r in a["models"]] == [r["latest"].id for r in b["models"]]
    card_l = pages.version_page(local, MODEL, "1.2.0")
    card_r = pages.version_page(remote, MODEL, "1.2.0")
    assert card_l["mv"] == card_r["mv"] and card_l["aliases"] == card_r["aliases"]
    assert pages.audit_page(local)["total"] == pages.audit_page(remote)["total"]
    assert pages.audit_page(remote)["ok"]
    now = time.time()
    rl, rr = pages.release_page(local, MODEL, now), pages.release_page(remote, MODEL, now)
    assert rl["charts"].requests == rr["charts"].requests
    assert [c.svg for c in rl["charts"].metrics] == [c.svg for c in rr["charts"].metrics]
    with pytest.raises(NotFound):
        pages.model_page(remote, "nope")


def test_resolve_refs(demo):
    view = LocalView(Store.open(demo))
    assert pages.resolve(view, f"{MODEL}@production").version == "1.0.0"
    assert pages.resolve(view, MODEL).version == "1.2.0"
    for bad in (f"{MODEL}@nope", "Bad Name", f"{MODEL}@9.9.9", "nope"):
        with pytest.raises(NotFound):
            pages.resolve(view, bad)


def test_metrics_lines_skip_torn_and_bad_lines():
    from modelreg.ui.views import _lines

    assert _lines(b'{"n": 1}\n{"n": 2}\n{"n": 3') == [{"n": 1}, {"n": 2}]  # torn last line
    assert _lines(b'{"n": 1}\nnot json\n[1]\n\n{"n": 2}\n') == [{"n": 1}, {"n": 2}]
    assert _lines(b"") == [] and _lines(b'{"n": 1}') == []


def test_interval_cells_match_merging_histograms_line_by_line(demo):
    from modelreg.serving.aggregate import LogHistogram
    from modelreg.ui.release import Memo, _aggregate, release_charts

    store = Store.open(demo)
    view = LocalView(store)
    r = view.rollout(MODEL)
    files = view.metric_files(MODEL, r.release)
    cells, _, _, step, lines = _aggregate(r, files, None)
    expected: dict = {}
    for docs in files.values():
        for d in docs:
            side = "canary" if d["variant"] == "canary" else "baseline"
            h = expected.setdefault((side, int(d["t1"] // step)), LogHistogram())
            h.merge(LogHistogram.from_dict(d["lat"]))
    got = {(side, k): c.lat for side, by in cells.items() for k, c in by.items()}
    assert got.keys() == expected.keys() and lines == sum(len(d) for d in files.values())
    for key, h in expected.items():
        assert (got[key].pos, got[key].neg, got[key].zero, got[key].count) == (
            h.pos,
            h.neg,
            h.zero,
            h.count,
        )
    # the server's per-file memo gives the very same charts, the second time from memory
    memo = Memo()
    now = time.time()
    plain = release_charts(r, files, view.judgments(MODEL, 1), now)
    for _ in range(2):
        kept = release_charts(r, view.metric_files(MODEL, 1), view.judgments(MODEL, 1), now, memo)
        assert [c.svg for c in kept.metrics] == [c.svg for c in plain.metrics]
