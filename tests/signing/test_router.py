"""A router told to trust keys serves only versions signed by one of them (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import IntegrityError
from modelreg.serving import Router
from tests.signing.test_sign import make_key

pytest.importorskip("model_signing")


def version(store: Store, tmp_path: Path, v: str, content: bytes) -> None:
    src = tmp_path / f"src-{v}"
    src.mkdir()
    (src / "model.bin").write_bytes(content)
    store.register("m", [src], version=v, detect_code=False)


def test_only_versions_signed_by_a_trusted_key_are_served(store: Store, tmp_path: Path) -> None:
    ci, ci_pub = make_key(tmp_path, "ci")
    stranger, _ = make_key(tmp_path, "stranger")
    version(store, tmp_path, "1.0.0", b"one")
    store.sign("m@1.0.0", key=ci)
    store.promote("m@1.0.0", "production")
    trusted = [f"ci={ci_pub}"]
    router = Router.open("m", store=store.root, check_interval_ms=0, trusted_keys=trusted)
    assert router.route("u1").target.version == "1.0.0"
    assert (router.route("u1").target.path / "model.bin").read_bytes() == b"one"
    # an unsigned version promoted: not served, the last good one answers
    version(store, tmp_path, "2.0.0", b"two")
    store.promote("m@2.0.0", "production")
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        router.check()
    assert router.route("u1").target.version == "1.0.0"
    assert router.stats().errors >= 1
    # signed by a key not trusted: still not served
    store.sign("m@2.0.0", key=stranger)
    with pytest.raises(IntegrityError):
        router.check()
    assert router.route("u1").target.version == "1.0.0"
    # signed by ci: served at the next check
    store.sign("m@2.0.0", key=ci)
    assert router.check()
    assert router.route("u1").target.version == "2.0.0"


def test_a_router_cannot_open_on_an_unsigned_production(store: Store, tmp_path: Path) -> None:
    _, ci_pub = make_key(tmp_path, "ci")
    version(store, tmp_path, "1.0.0", b"one")
    store.promote("m@1.0.0", "production")
    with pytest.raises(IntegrityError, match=r"m@1\.0\.0 is not served"):
        Router.open("m", store=store.root, trusted_keys=[str(ci_pub)])
    assert Router.open("m", store=store.root).route("u").target.version == "1.0.0"  # untrusting
