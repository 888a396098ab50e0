"""The training data's profile (issue 21): built from CSV, JSON Lines and Parquet, read back."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from modelreg import dataprofile
from modelreg.errors import InvalidInput, NotFound
from modelreg.profiling import CHUNK, ProfileBuilder, frequent_capacity, profile_file

pytest.importorskip("datasketches")

COLUMNS = ["age", "income", "country", "vip", "score", "note"]


def rows(n: int, seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            {
                "age": rnd.randint(18, 90),
                "income": round(rnd.lognormvariate(10, 1), 2),
                "country": rnd.choice(["de", "fr", "it", "es", *[f"c{j}" for j in range(40)]]),
                "vip": rnd.random() < 0.1,
                "score": None if i % 17 == 0 else rnd.gauss(0, 1),
                "note": None if i % 5 else f"n{i % 3}",
            }
        )
    return out


def csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def write_all(tmp_path: Path, data: list[dict]) -> dict[str, Path]:
    paths = {"csv": tmp_path / "d.csv", "jsonl": tmp_path / "d.jsonl"}
    with paths["csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in data:
            w.writerow([csv_cell(r[c]) for c in COLUMNS])
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in data))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    paths["parquet"] = tmp_path / "d.parquet"
    # row groups of another size than the profiler's chunks
    pq.write_table(pa.Table.from_pylist(data), paths["parquet"], row_group_size=3000)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("data"), rows(2 * CHUNK + 500))


def body(profile: dataprofile.Profile) -> dict:
    d = profile.to_dict()
    assert d.pop("format") == profile.format
    return d


def test_csv_jsonl_parquet_give_the_same_profile(files):
    profiles = {fmt: profile_file(path) for fmt, path in files.items()}
    assert body(profiles["csv"]) == body(profiles["jsonl"]) == body(profiles["parquet"])
    p = profiles["csv"]
    assert p.rows == 2 * CHUNK + 500
    types = {f.name: f.type for f in p.features}
    assert types == {
        "age": "number",
        "income": "number",
        "country": "category",
        "vip": "boolean",
        "score": "number",
        "note": "category",
    }
    score = p.feature("score")
    assert score is not None and score.missing == len(range(0, p.rows, 17))
    assert abs(score.mean) < 0.05 and abs(score.std - 1) < 0.05
    assert len(score.edges) == 9 and not score.exact
    # deciles of N(0, 1): the t-digest is within a fraction of a percent in rank
    assert score.edges[4] == pytest.approx(0.0, abs=0.05)
    assert score.edges[8] == pytest.approx(1.2816, abs=0.05)
    age = p.feature("age")
    assert age is not None and age.exact  # 73 distinct integers: exact shares
    assert sum(age.shares) == pytest.approx(1.0)
    assert all(e == int(e) for e in age.edges)
    vip = p.feature("vip")
    assert vip is not None and {v for v, _ in vip.top} == {"true", "false"}
    note = p.feature("note")
    assert note is not None and note.missing == p.rows - len(range(0, p.rows, 5))
    assert note.missing_rate == pytest.approx(0.8, abs=0.01)


def test_the_same_input_gives_the_same_bytes_and_reads_back(files):
    one, two = profile_file(files["csv"]), profile_file(files["csv"])
    assert one.to_json() == two.to_json()
    back = dataprofile.from_json(one.to_json())
    assert back.to_json() == one.to_json()
    assert len(one.to_json()) < 3000  # 6 features: a few hundred bytes each


def test_columns_bins_and_top(files):
    p = profile_file(files["jsonl"], columns=["income", "country"], bins=4, top=3)
    assert [f.name for f in p.features] == ["income", "country"]
    income, country = p.features
    assert len(income.edges) == 3 and income.shares == (0.25, 0.25, 0.25, 0.25)
    assert len(country.top) == 3 and country.other == country.count - sum(c for _, c in country.top)


def test_category_sketch_memory_is_bounded():
    builder = ProfileBuilder({"id": "category"}, fmt="csv", top=20)
    sketch = builder.cols["id"].sketch  # type: ignore[union-attr]
    most = 0
    for start in range(0, 100_000, 5_000):
        builder.add({"id": [f"user-{i}" for i in range(start, start + 5_000)]}, 5_000)
        most = max(most, sketch.num_active_items)
    assert most <= frequent_capacity(20) < 200
    # a frequent value among 1e5 distinct ones is still found
    builder.add({"id": ["hot"] * 20_000}, 20_000)
    feature = builder.profile().features[0]
    assert feature.top[0][0] == "hot" and feature.top[0][1] >= 19_000
    assert len(feature.top) <= 20 and not feature.exact


def test_number_memory_is_bounded():
    builder = ProfileBuilder({"x": "number"}, fmt="parquet")
    col = builder.cols["x"]
    builder.add({"x": [float(i % 10) for i in range(5_000)]}, 5_000)
    assert col.exact is not None and len(col.exact) == 10  # type: ignore[union-attr]
    for start in range(0, 100_000, 5_000):
        builder.add({"x": [float(i) for i in range(start, start + 5_000)]}, 5_000)
        assert col.exact is None  # type: ignore[union-attr]  # distinct values not kept
    x = builder.profile().features[0]
    assert not x.exact and len(x.edges) == 9 and x.count == 105_000
    assert x.edges[4] == pytest.approx(
        47_500, rel=0.01
    )  # the median of 0..99,999 and 5,000 small values


def test_csv_type_mismatch_counts_as_invalid(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x\n" + "1\n" * CHUNK + "oops\n\n2\n")
    f = profile_file(path).features[0]
    assert (f.type, f.count, f.invalid) == ("number", CHUNK + 1, 1)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("d.txt", b"x\n1\n", InvalidInput),
        ("d.jsonl", b'{"x": 1}\n[1, 2]\n', InvalidInput),
        ("d.jsonl", b"{" + b" " * (1 << 20) + b"}\n", InvalidInput),
        ("d.csv", b"x\n\xff\xfe\n", InvalidInput),
        ("d.csv", b"", InvalidInput),
        ("d.parquet", b"PAR1 not really", InvalidInput),
        ("d.jsonl", b"[" * 500_000 + b"]" * 500_000 + b"\n", InvalidInput),
        ("d.csv", b"a,b,a\n1,2,3\n", InvalidInput),
    ],
)
def test_bad_files_are_refused_in_one_line(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as info:
        profile_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_an_unknown_column_is_refused(files):
    with pytest.raises(InvalidInput, match="no column 'agee'"):
        profile_file(files["csv"], columns=["age", "agee"])


def test_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        profile_file(tmp_path / "absent.csv")


def good_doc() -> dict:
    return {
        "kind": "DataProfile",
        "version": 1,
        "format": "csv",
        "rows": 10,
        "features": [
            {
                "name": "x",
                "type": "number",
                "count": 9,
                "missing": 1,
                "invalid": 0,
                "exact": False,
                "min": 0,
                "max": 3,
                "mean": 1.5,
                "std": 1,
                "edges": [1, 2],
                "shares": [0.3, 0.3, 0.4],
            },
            {
                "name": "c",
                "type": "category",
                "count": 10,
                "missing": 0,
                "invalid": 0,
                "exact": True,
                "top": [["a", 6]],
                "other": 4,
            },
        ],
    }


def broken(change) -> dict:
    doc = good_doc()
    change(doc)
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        broken(lambda d: d.update(kind="Model")),
        broken(lambda d: d.update(version=2)),
        broken(lambda d: d.update(rows=-1)),
        broken(lambda d: d["features"][0].update(type="tensor")),
        broken(lambda d: d["features"][0].update(edges=[2, 1])),
        broken(lambda d: d["features"][0].update(shares=[0.5, 0.5, 0.5])),
        broken(lambda d: d["features"][0].update(mean=float("nan"))),
        broken(lambda d: d["features"][0].update(count=3)),
        broken(lambda d: d["features"][1].update(top=[["a", 6], ["a", 0]])),
        broken(lambda d: d["features"][1].update(top=[["a" * 1000, 6]])),
        broken(lambda d: d["features"][1].update(other=5)),
        broken(lambda d: d["features"].append(d["features"][0])),
        broken(lambda d: d.update(features=[{"name": "x"}] * (dataprofile.MAX_FEATURES + 1))),
        broken(lambda d: d["features"][1].update(top=[["v", 0]] * (dataprofile.MAX_TOP + 1))),
        [1, 2],
    ],
)
def test_a_bad_profile_is_refused_in_one_line(doc):
    assert dataprofile.from_dict(good_doc()).rows == 10
    with pytest.raises(InvalidInput) as info:
        dataprofile.from_dict(doc, "objects/ab/cd")
    assert str(info.value).startswith("objects/ab/cd") and "\n" not in str(info.value)


def test_an_oversized_or_hostile_profile_file_is_refused():
    with pytest.raises(InvalidInput, match="larger than"):
        dataprofile.from_json(b" " * (dataprofile.MAX_BYTES + 1))
    with pytest.raises(InvalidInput, match="not JSON"):
        dataprofile.from_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InvalidInput, match="not JSON"):
        dataprofile.from_json(b"\xff")


def test_values_closer_than_the_rounding_still_read_back():
    builder = ProfileBuilder({"x": "number"}, fmt="csv", bins=4)
    values = [1.0, 1.00000001, 1.00000002, 2.0] * 50  # 4 distinct values, 2 after rounding
    builder.add({"x": values}, len(values))
    profile = builder.profile()
    assert profile.features[0].edges == (1.0,)
    # 1.00000001 and 1.00000002 are above the stored edge 1.0: in the next bin, as
    # production values equal to them will be
    assert profile.features[0].shares == (0.25, 0.75)
    assert dataprofile.from_json(profile.to_json()) == profile
