"""`mreg monitor` on what a real router captured, against the version's training profile."""

from __future__ import annotations

import random

import pytest

from modelreg import Store
from modelreg.errors import InvalidInput, NotFound
from modelreg.exportrecords import format_time
from modelreg.monitoring import DriftLimit, drift_report, drift_series
from modelreg.serving.router import Router
from tests.conftest import snapshot

T0 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
WINDOWS = {  # name: (start, rows, shift of age in sd)
    "steady": (T0, 400, 0.0),
    "shifted": (T0 + 3600, 400, 1.0),
    "sparse": (T0 + 7200, 40, 0.0),
}


def _span(name):
    start, rows, _ = WINDOWS[name]
    return format_time(start), format_time(start + rows + 1)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """m@1.0.0 (production) profiled on train.csv, with three captured windows; m@1.1.0 not."""
    tmp = tmp_path_factory.mktemp("monitor")
    rng = random.Random(21)
    train = tmp / "train.csv"
    lines = (f"{rng.gauss(40, 10):.1f},{rng.choice('abcde')}\n" for _ in range(2000))
    train.write_text("age,country\n" + "".join(lines))
    model = tmp / "model.bin"
    model.write_bytes(b"weights")
    store = Store.init(tmp / "work")
    store.register("m", [model], version="1.0.0", data=[str(train)], profile=True,
                   detect_code=False)  # fmt: skip
    model.write_bytes(b"weights 2")
    store.register("m", [model], version="1.1.0", data=[str(train)], detect_code=False)
    store.promote("m@1.0.0", "production")
    now = [T0]
    router = Router.open("m", store=store.root, flush_interval_s=3600, wall=lambda: now[0])
    router.sampler.configure(rate=1.0, size=1000, window_s=600, features=("age", "country"))
    for start, rows, shift in WINDOWS.values():
        for i in range(rows):
            now[0] = start + i
            d = router.route(user_id=f"u{start}-{i}")
            age = rng.gauss(40 + 10 * shift, 10)
            router.capture(d, features={"age": age, "country": rng.choice("abcde")}, prediction=0.5)
    router.close()
    return store


def _monitor(run_mreg, store, *args):
    return run_mreg("monitor", *args, cwd=store.root.parent)


def test_a_shifted_feature_is_named_and_exits_1(run_mreg, captured):
    since, until = _span("shifted")
    before = snapshot(captured.root)
    r = _monitor(run_mreg, captured, "m@production", "--since", since, "--until", until)
    assert r.returncode == 1, r.stderr
    crossed = [line for line in r.stdout.splitlines() if line.startswith("crossed")]
    assert len(crossed) == 1 and "age: psi" in crossed[0] and "n=400" in crossed[0]
    assert "country" not in crossed[0]
    assert snapshot(captured.root) == before  # monitoring writes nothing


def test_an_unshifted_window_exits_0_with_the_json_shape(run_mreg, captured):
    since, until = _span("steady")
    r = _monitor(run_mreg, captured, "m@1.0.0", "--since", since, "--until", until, "--json",
                 "--check", "drift.features.psi <= 0.2", "--check", "drift.feature.age.ks <= 0.1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = r.json()
    assert doc["verdict"] == "ok" and doc["crossed"] == [] and doc["rows"] == 400
    assert (doc["model"], doc["version"], doc["since"], doc["until"]) == (
        "m",
        "1.0.0",
        since,
        until,
    )
    assert doc["reference_rows"] == 2000 and doc["data"].endswith("train.csv")
    assert doc["limits"] == ["drift.features.psi <= 0.2", "drift.feature.age.ks <= 0.1"]
    by_name = {f["feature"]: f for f in doc["features"]}
    assert set(by_name) == {"age", "country"}
    age = by_name["age"]
    assert age["method"] == "ks" and age["n_production"] == 400 and age["n_reference"] == 2000
    assert age["status"] == "ok" and 0 <= age["psi"] < 0.2 and 0 <= age["distance"] < 0.1
    assert by_name["country"]["method"] == "tv"


def test_too_few_rows_and_no_profile_are_inconclusive(run_mreg, captured):
    since, until = _span("sparse")
    r = _monitor(run_mreg, captured, "m@production", "--since", since, "--until", until)
    assert r.returncode == 3, r.stderr
    assert "fewer than 100 values of age, country" in r.stdout
    r = _monitor(run_mreg, captured, "m@1.1.0", "--json")
    assert r.returncode == 3
    assert r.json()["verdict"] == "inconclusive" and "no stored profile" in r.json()["reason"]


@pytest.mark.parametrize(
    "args",
    [
        ("--check", "drift.features.psi <= lots"),
        ("--check", "drift.feature.income.psi <= 0.1"),  # not a profiled feature
        ("--check", "drift.feature.country.ks <= 0.1"),  # a category has no KS distance
        ("--window", "1h", "--since", "2026-12-01T00:00:00Z"),
    ],
)
def test_bad_input_exits_2(captured, args):
    with pytest.raises(InvalidInput):
        captured.monitor(
            "m@production",
            limits=[a for k, a in zip(args[::2], args[1::2], strict=True) if k == "--check"],
            window=3600 if "--window" in args else None,
            since=T0 if "--since" in args else None,
        )


def test_a_bad_check_exits_2_in_one_line(run_mreg, captured):
    r = _monitor(run_mreg, captured, "m@production", "--check", "drift.features.psi <= lots")
    assert r.returncode == 2 and "cannot parse drift check" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(NotFound):
        drift_report(captured, "m@9.9.9")


def test_the_limits_and_the_series(captured):
    lim = DriftLimit.parse("drift.feature.age.psi < auto")
    assert (lim.feature, lim.statistic, lim.op, lim.value) == ("age", "psi", "<", None)
    assert lim.limit(10, 100_000, 100) == pytest.approx(0.22, abs=0.01)  # docs/monitoring.md
    assert lim.limit(10, 100_000, 10_000) == 0.1  # the floor
    with pytest.raises(InvalidInput):
        DriftLimit.parse("drift.features.ks <= auto")
    # a fixed limit on the steady window: 0.0 is crossed by any PSI above it
    rep = drift_report(captured, "m@production", since=T0, until=T0 + 401,
                       limits=["drift.feature.age.psi <= 0"])  # fmt: skip
    assert rep.verdict == "crossed" and [f.status for f in rep.features] == ["crossed", "ok"]
    series = drift_series(captured, "m@production", since=T0, until=T0 + 3 * 3600, step=3600)
    assert [b["rows"] for b in series.buckets] == [400, 400, 40]
    ages = [b["features"]["age"] for b in series.buckets]
    assert ages[1]["psi"] > 0.3 > ages[0]["psi"] and ages[2]["n_production"] == 40
    assert series.to_dict()["buckets"][0]["start"] == format_time(T0)
