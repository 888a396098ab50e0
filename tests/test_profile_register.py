"""`register --data FILE --profile` and the lineage link to production data (issue 21).

The profile of a training data file is an object of the version, named by the manifest's
data entry; it travels and is kept like the version's files. A data file that `mreg data
export` wrote is linked to the version whose production sample it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from modelreg import Store, yamlio
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.exportrecords import export_record, write_export_record
from modelreg.hashing import hash_file
from modelreg.manifest import ModelVersion
from modelreg.profiling import profile_file
from modelreg.schemas import check as schema_problems
from tests.conftest import snapshot
from tests.ociregistry import REGISTRY, Registry

pytest.importorskip("datasketches")

ROWS = [
    {"age": 20 + i % 50 if i % 7 else None, "country": "defr"[i % 2 * 2 :][:2], "ok": i % 3 == 0}
    for i in range(300)
]


def _csv(path: Path) -> Path:
    def cell(v: object) -> str:
        return "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    lines = ["age,country,ok", *(",".join(cell(r[k]) for k in r) for r in ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _parquet(path: Path) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "data"
    d.mkdir()
    return {
        "csv": _csv(d / "train.csv"),
        "jsonl": _jsonl(d / "train.jsonl"),
        "parquet": _parquet(d / "train.parquet"),
    }


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "m" / "model.bin"
    p.parent.mkdir()
    p.write_bytes(b"weights")
    return p


def _manifest(store: Store, name: str, version: str) -> dict:
    return yamlio.load(store.manifest_path(name, version).read_bytes())


def test_register_profiles_csv_jsonl_parquet_as_objects(store, data, model):
    paths = [str(data[k]) for k in ("csv", "jsonl", "parquet")]
    result = store.register("m", [model], data=paths, profile=True, detect_code=False)
    assert result.notes == []
    doc = _manifest(store, "m", "0.1.0")
    assert schema_problems(doc, "ModelVersion") == []  # the JSON schema knows the new fields
    for entry, path in zip(doc["data"], paths, strict=True):
        ref = entry["profile"]
        expected = profile_file(path)
        blob = store.objects.path(ref["sha256"]).read_bytes()
        assert blob == expected.to_json()  # canonical bytes, content-addressed
        assert ref == {
            "sha256": hash_file(store.objects.path(ref["sha256"]))[0],
            "size": len(blob), "rows": 300, "features": 3,
            "missing": sum(f.missing + f.invalid for f in expected.features),
        }  # fmt: skip
        assert store.profile("m@0.1.0", path) == expected
    assert doc["data"][0]["profile"]["missing"] == 43  # the 43 rows without an age
    with pytest.raises(InvalidInput):  # three profiled files: name one
        store.profile("m@0.1.0")
    with pytest.raises(NotFound):
        store.profile("m@0.1.0", "other.csv")


def test_without_profile_the_manifest_is_as_before(store, data, model):
    store.register("m", [model], data=[str(data["csv"])], detect_code=False)
    raw = store.manifest_path("m", "0.1.0").read_bytes()
    doc = yamlio.load(raw)
    assert set(doc["data"][0]) == {"uri", "kind", "sha256", "size", "files"}
    # an old manifest (no profile, no link) reads back to the same bytes, hence the same id
    assert yamlio.dump(ModelVersion.from_dict(doc).to_dict()) == raw
    with pytest.raises(NotFound):
        store.profile("m@0.1.0")


def test_config_default_and_override(store, data, model):
    store.config = replace(store.config, register_profile=True)
    store.config.write(store.root)
    reopened = Store.open(store.root)
    r1 = reopened.register("m", [model], data=[str(data["csv"])], detect_code=False)
    assert r1.version.data[0].profile is not None
    r2 = reopened.register(
        "m", [model], data=[str(data["csv"])], profile=False, detect_code=False, version="2.0.0"
    )
    assert r2.version.data[0].profile is None
    text = (store.root / "config.yaml").read_text()
    (store.root / "config.yaml").write_text(text.replace("profile: true", "profile: 1"))
    with pytest.raises(IntegrityError, match=r"register\.profile"):
        Store.open(store.root)


def test_cli_register_show_and_notes(run_mreg, store, data, model, tmp_path):
    notes = tmp_path / "data" / "notes.txt"
    notes.write_text("not tabular\n")
    r = run_mreg(
        "register", "m", str(model), "--data", str(data["csv"]), "--data", str(notes),
        "--profile", "--no-code",
    )  # fmt: skip
    assert r.ok, r
    assert "Profiled: " in r.stdout and "300 rows, 3 features" in r.stdout
    assert f"skipped: {notes} (no profile: not CSV, JSON Lines or Parquet)" in r.stdout
    detailed = run_mreg("show", "m@0.1.0", "--profile", "--json").json()
    ref = detailed["data"][0]["profile"]
    assert detailed["data"][1].get("profile") is None
    assert detailed["profiles"][str(data["csv"])] == profile_file(data["csv"]).to_dict()
    assert hash_file(store.objects.path(ref["sha256"]))[0] == ref["sha256"]
    human = run_mreg("show", "m@0.1.0", "--profile")  # the card, then the features
    assert "profile: 300 rows, 3 features, 4.8% cells missing" in human.stdout
    assert "age" in human.stdout and "14.3%" in human.stdout  # age's missing rate


def test_malformed_data_with_profile_is_refused_and_changes_nothing(run_mreg, store, model):
    bad = model.parent / "bad.jsonl"
    bad.write_text('{"a": 1}\n[1, 2]\n')
    before = snapshot(store.root)
    r = run_mreg("register", "m", str(model), "--data", str(bad), "--profile", "--no-code")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.jsonl:2" in r.stderr
    assert snapshot(store.root) == before


def test_missing_parquet_extra_is_a_note(store, data, model, tmp_path):
    # pyarrow blocked in the child: the Parquet file is skipped, the CSV still profiled
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "from modelreg.cli import main; main()"
    )
    args = ["register", "m", str(model), "--no-code", "--profile", "--json"]
    args += ["--data", str(data["parquet"]), "--data", str(data["csv"])]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=store.root.parent, capture_output=True, text=True, env=dict(os.environ), timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["notes"] == [
        f"skipped: {data['parquet']} (install modelreg[parquet] to profile Parquet)"
    ]
    mv = store.resolve("m@0.1.0")
    assert mv.data[0].profile is None and mv.data[1].profile is not None


def test_profile_travels_and_is_kept(store, data, model, tmp_path):
    store.register("m", [model], data=[str(data["csv"])], profile=True, detect_code=False)
    expected = store.profile("m@0.1.0")
    digest = store.resolve("m@0.1.0").data[0].profile.sha256
    store.remotes.add("origin", (tmp_path / "remote").as_uri())
    store.push()
    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", (tmp_path / "remote").as_uri())
    other.pull()
    assert other.profile("m@0.1.0") == expected
    for s in (store, other):
        assert not [f for f in s.fsck().findings if f.severity == "error"]
        report = s.gc(grace=0)
        assert digest not in {d for d, _ in report.removed}
        assert s.profile("m@0.1.0") == expected
    for fmt, out in (("tar", tmp_path / "m.tar"), ("oci", tmp_path / "m-oci")):
        store.pack("m@0.1.0", out, format=fmt)
        fresh = Store.init(tmp_path / f"fresh-{fmt}")
        fresh.unpack(out)
        assert fresh.profile("m@0.1.0") == expected


def test_damaged_profile_object_is_detected(store, data, model):
    store.register("m", [model], data=[str(data["csv"])], profile=True, detect_code=False)
    path = store.objects.path(store.resolve("m@0.1.0").data[0].profile.sha256)
    blob = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(blob.replace(b'"rows":300', b'"rows":301'))
    errors = [f for f in store.fsck().findings if f.severity == "error"]
    assert errors and "profiles/0.json" in errors[0].message
    assert store.verify().problems
    with pytest.raises(IntegrityError, match="damaged"):
        store.profile("m@0.1.0")


def test_lineage_link_to_production_data(run_mreg, store, data, model, tmp_path):
    export = _jsonl(tmp_path / "data" / "export.jsonl")
    digest = hash_file(export)[0]
    write_export_record(
        store.root,
        export_record(
            sha256=digest, rows=300, model="churn", model_version="1.2.0",
            since=1_796_083_200.0, until=1_796_169_600.0, with_outcomes=True,
            format="jsonl", created=1_796_170_000.0,
        ),
    )  # fmt: skip
    r = run_mreg(
        "register", "churn", str(model), "--data", str(export), "--data", str(data["csv"]),
        "--no-code", "--version", "1.3.0",
    )  # fmt: skip
    assert r.ok, r
    line = "production data of churn@1.2.0, 2026-12-01T00:00:00Z..2026-12-02T00:00:00Z, 300 rows"
    assert f"Trained on {line}" in r.stdout
    doc = _manifest(store, "churn", "1.3.0")
    assert schema_problems(doc, "ModelVersion") == []
    assert doc["data"][0]["from_production"] == {
        "model": "churn", "version": "1.2.0", "since": "2026-12-01T00:00:00Z",
        "until": "2026-12-02T00:00:00Z", "rows": 300,
    }  # fmt: skip
    assert "from_production" not in doc["data"][1]  # no export record of that file
    assert f"trained on {line}" in run_mreg("show", "churn@1.3.0").stdout

    pytest.importorskip("jinja2")
    from modelreg.ui import pages
    from modelreg.ui.render import ServerLinks, render
    from modelreg.ui.views import LocalView

    card = pages.version_page(LocalView(store), "churn", "1.3.0")
    html, _ = render("page.html", ServerLinks(), title="churn@1.3.0", card=card, source="here")
    assert "trained on production data of" in html and "churn@1.2.0</a>" in html


@pytest.mark.skipif(not Path(REGISTRY).exists(), reason="docker-registry is not installed")
def test_profile_travels_through_an_oci_registry(store, data, model, tmp_path):
    store.register("m", [model], data=[str(data["csv"])], profile=True, detect_code=False)
    expected = store.profile("m@0.1.0")
    reg = Registry(tmp_path / "registry")
    try:
        store.remotes.add("oci", f"oci://{reg.host}/mreg")
        store.push("oci")
        other = Store.init(tmp_path / "other")
        other.remotes.add("oci", f"oci://{reg.host}/mreg")
        other.pull("oci")
    finally:
        reg.stop()
    assert other.profile("m@0.1.0") == expected
    assert not [f for f in other.fsck().findings if f.severity == "error"]


@pytest.mark.parametrize(
    "bad",
    [
        {"sha256": "x" * 64, "size": 1, "rows": 1, "features": 1, "missing": 0},
        {"sha256": "a" * 64, "size": 1, "rows": -1, "features": 1, "missing": 0},
        {"sha256": "a" * 64, "size": 1, "rows": 1, "features": 1},
    ],
)
def test_a_malformed_profile_reference_is_refused(store, data, model, bad):
    store.register("m", [model], data=[str(data["csv"])], profile=True, detect_code=False)
    doc = _manifest(store, "m", "0.1.0")
    doc["data"][0]["profile"] = bad
    with pytest.raises(IntegrityError, match="malformed manifest"):
        ModelVersion.from_dict(doc)
    assert schema_problems(doc, "ModelVersion")


def test_production_sample_to_the_next_version_end_to_end(run_mreg, store, model, tmp_path):
    """A real router captures churn@1.2.0's requests, `mreg data export` writes them, and
    registering 1.3.0 on that file records the link and profiles the captured features."""
    from modelreg.serving.router import Router

    store.register("churn", [model], version="1.2.0", detect_code=False)
    store.promote("churn@1.2.0", "production")
    clock = {"t": 1_796_083_200.0}  # 2026-12-01T00:00:00Z
    router = Router.open("churn", store=store.root, flush_interval_s=0, wall=lambda: clock["t"])
    router.sampler.configure(rate=1.0, size=100, features=("age", "country"), window_s=3600)
    for i in range(40):
        clock["t"] += 60
        d = router.route(user_id=f"u{i}")
        router.capture(d, features={"age": 20 + i, "country": "de" if i % 4 else "fr"})
    router.close()
    out = tmp_path / "prod.jsonl"
    exported = run_mreg(
        "data", "export", "churn@1.2.0", "--since", "2026-12-01T00:00:00Z",
        "--until", "2026-12-02T00:00:00Z", "--out", str(out), "--json",
    )  # fmt: skip
    assert exported.ok, exported
    r = run_mreg(
        "register", "churn", str(model), "--data", str(out), "--profile", "--no-code", "--json"
    )
    assert r.ok, r
    mv = store.resolve("churn@1.3.0")
    link = mv.data[0].from_production
    assert link is not None and link.to_dict() == {
        "model": "churn", "version": "1.2.0", "since": "2026-12-01T00:00:00Z",
        "until": "2026-12-02T00:00:00Z", "rows": 40,
    }  # fmt: skip
    profile = store.profile("churn@1.3.0")  # the captured features, under their names
    assert [f.name for f in profile.features] == ["age", "country"] and profile.rows == 40
    assert dict(profile.feature("country").top) == {"de": 30, "fr": 10}
    shown = run_mreg("show", "churn@1.3.0").stdout
    assert "trained on production data of churn@1.2.0, 2026-12-01T00:00:00Z..2026-12-02" in shown


def test_a_damaged_export_record_is_a_note_not_a_refusal(store, data, model):
    digest = hash_file(data["csv"])[0]
    (store.root / "exports").mkdir()
    (store.root / "exports" / f"{digest}.yaml").write_text("kind: DataExport\nrows: [\n")
    result = store.register("m", [model], data=[str(data["csv"])], detect_code=False)
    assert result.version.data[0].from_production is None
    assert len(result.notes) == 1 and result.notes[0].startswith(
        f"unreadable: {data['csv']} (no lineage link: "
    )
