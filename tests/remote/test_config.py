"""Remotes in config.yaml (format 1 stays readable, no secrets), driver options, the backends' CAS."""

from __future__ import annotations

import threading

import pytest

from modelreg import IntegrityError, InvalidInput, NotFound, Store, yamlio
from modelreg.remote.backend import Backend, MissingDriver, fs_options
from modelreg.remote.config import RemoteSpec, normalize_url, parse_option
from modelreg.store import StoreConfig

from .conftest import Target


def test_config_without_remotes_is_unchanged(store: Store):
    doc = yamlio.load((store.root / "config.yaml").read_bytes())
    assert doc == {"format": 1, "gates": {}, "kind": "StoreConfig", "schema": "mreg/v1"}
    assert StoreConfig.from_dict(doc, "x").remotes == {}


def test_add_list_default_remove(store: Store, tmp_path):
    store.remotes.add("origin", str(tmp_path / "r1"))
    store.remotes.add("backup", "memory://bk/reg", {"mreg.jobs": 4})
    assert [(r.remote.name, r.default) for r in store.remotes.list()] == [
        ("backup", False),
        ("origin", True),
    ]
    reopened = Store.open(store.root)  # written to config.yaml, format 1
    assert reopened.config.remotes["origin"].url == f"file://{tmp_path / 'r1'}"
    assert reopened.config.remotes["backup"].options == {"mreg.jobs": 4}
    assert reopened.remotes.get().name == "origin"
    reopened.remotes.set_default("backup")
    assert Store.open(store.root).remotes.get().name == "backup"
    reopened.remotes.remove("backup")
    assert Store.open(store.root).config.default_remote is None
    assert Store.open(store.root).remotes.get().name == "origin"  # the only one
    with pytest.raises(NotFound):
        reopened.remotes.get("backup")
    with pytest.raises(InvalidInput, match="exists already"):
        reopened.remotes.add("origin", "memory://x")


@pytest.mark.parametrize(
    "option",
    ["secret=abc", "key=AKIA", "token=t", "client_kwargs.aws_secret_access_key=x", "password=p"],
)
def test_secrets_are_never_stored(store: Store, option):
    before = (store.root / "config.yaml").read_bytes()
    with pytest.raises(InvalidInput, match="never writes credentials"):
        store.remotes.add("origin", "s3://bucket/reg", dict([parse_option(option)]))
    with pytest.raises(InvalidInput, match="password"):
        store.remotes.add("origin", "s3://user:pw@bucket/reg")
    assert (store.root / "config.yaml").read_bytes() == before


def test_a_hand_written_secret_is_refused(store: Store):
    doc = yamlio.load((store.root / "config.yaml").read_bytes())
    doc["remotes"] = {"origin": {"url": "s3://b/p", "options": {"secret": "x"}}}
    (store.root / "config.yaml").write_bytes(yamlio.dump(doc))
    with pytest.raises(IntegrityError, match="secret"):
        Store.open(store.root)


def test_missing_driver_names_the_package(store: Store):
    with pytest.raises(MissingDriver, match="pip install gcsfs") as info:
        store.remotes.add("gcs", "gcs://bucket/reg")
    assert info.value.exit_code == 2
    with pytest.raises(InvalidInput, match="unknown remote protocol"):
        store.remotes.add("bad", "nosuchproto://x")


def test_driver_options():
    spec = RemoteSpec(
        "s3",
        "s3://b/p",
        {"region": "eu-west-1", "path_style": True, "profile": "ci", "mreg.jobs": 2,
         "endpoint_url": "http://127.0.0.1:9000"},
    )  # fmt: skip
    opts = fs_options(spec)
    assert opts["client_kwargs"] == {"region_name": "eu-west-1"}
    assert opts["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert opts["profile"] == "ci" and opts["endpoint_url"] == "http://127.0.0.1:9000"
    assert "mreg" not in opts and opts["use_listings_cache"] is False
    assert parse_option("mreg.part_size_mib=16") == ("mreg.part_size_mib", 16)
    with pytest.raises(InvalidInput, match="unknown option"):
        parse_option("mreg.nope=1")
    assert (
        normalize_url("rel/dir").startswith("file:///") and normalize_url("s3://b/p/") == "s3://b/p"
    )


def test_compare_and_swap(target: Target):
    b = target.backend()
    token = b.write_if("models/m/aliases/prod.yaml", b"generation: 1\n", None)
    assert token is not None
    assert b.write_if("models/m/aliases/prod.yaml", b"generation: 9\n", None) is None  # exists
    first = b.stat("models/m/aliases/prod.yaml")
    assert first is not None and first.token == token
    assert b.write_if("models/m/aliases/prod.yaml", b"generation: 2\n", first) is not None
    assert b.write_if("models/m/aliases/prod.yaml", b"generation: 3\n", first) is None  # stale
    assert b.read("models/m/aliases/prod.yaml") == b"generation: 2\n"
    expected = {"memory": "process-lock", "file": "lock-file", "s3": "s3-conditional-writes"}
    assert b.guarantee == expected[target.kind]
    if target.kind == "s3":
        assert b.probe_conditional() is True
        return  # moto serves requests from threads without a lock: races are AWS's to settle
    current = b.stat("models/m/aliases/prod.yaml")
    wins = []

    def racer(i: int) -> None:
        if b.write_if("models/m/aliases/prod.yaml", f"racer: {i}\n".encode(), current):
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert b.read("models/m/aliases/prod.yaml") == f"racer: {wins[0]}\n".encode()


def test_conditional_writes_can_be_turned_off(s3_endpoint):
    spec = RemoteSpec(
        "x", "s3://any/reg", {"endpoint_url": s3_endpoint, "mreg.conditional_writes": False}
    )
    assert Backend(spec).guarantee == "check-then-write"


def test_a_file_remote_is_itself_a_valid_store(make_store, tmp_path):
    a = make_store("a", {"m.onnx": b"weights"}, promote="production")
    a.tag("fraud@1.0.0", ["golden"])
    a.remotes.add("mirror", str(tmp_path / "mirror" / ".modelreg"))
    a.push()
    mirror = Store.open(tmp_path / "mirror")  # as `mreg --store mirror` opens it
    assert mirror.resolve("fraud@production").id == a.resolve("fraud@1.0.0").id
    assert mirror.info("fraud@1.0.0").tags == ("golden",)
    report = mirror.verify()
    assert report.ok, report.problems
    assert report.objects == 1 and report.audit_entries == 4  # register, promote, tag, push
    assert [e.action for e in mirror.log()][-1] == "push"


def test_importing_remote_code_loads_no_driver():
    import subprocess
    import sys

    code = (
        "import sys, modelreg.remote.cache, modelreg.remote.sync, modelreg.bundle, modelreg.oci\n"
        "print(','.join(m for m in ('fsspec', 's3fs', 'botocore', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
