"""Signatures travel with their version (issue 19): push and pull through an S3 remote (moto's
server), and pack and unpack, each received signature checked before it is stored."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import GateFailed, InvalidInput
from tests.conftest import snapshot
from tests.remote.conftest import Target, blob, register
from tests.signing.test_sign import make_key

pytest.importorskip("model_signing")


@pytest.fixture
def s3(s3_endpoint: str) -> Target:
    import uuid

    tag = uuid.uuid4().hex[:12]
    t = Target("s3", f"s3://bucket-{tag}/reg", {"endpoint_url": s3_endpoint})
    t.backend().fs.mkdir(f"bucket-{tag}")
    return t


def signature_names(store: Store, version: str = "1.0.0") -> list[str]:
    where = store.root / "models" / "fraud" / "signatures" / version
    return sorted(p.name for p in where.iterdir()) if where.is_dir() else []


def test_push_and_pull_carry_every_signature(s3: Target, tmp_path: Path) -> None:
    ci, ci_pub = make_key(tmp_path, "ci")
    reviewer, reviewer_pub = make_key(tmp_path, "reviewer")
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(5000)}, version="1.0.0")
    alice.sign("fraud@1.0.0", key=ci)
    s3.add(alice)
    pushed = alice.push()
    assert pushed.manifests_sent == ("fraud@1.0.0",)
    assert alice.remote_status().in_sync
    bob = Store.init(tmp_path / "bob")
    s3.add(bob)
    bob.pull()
    assert signature_names(bob) == signature_names(alice) and len(signature_names(bob)) == 1
    assert bob.info("fraud@1.0.0").signatures[0].key == alice.info("fraud@1.0.0").signatures[0].key
    assert [
        c.status for c in bob.verify(signatures=True, keys=[f"ci={ci_pub}"]).signatures or ()
    ] == ["valid"]
    # a reviewer signs in bob's store: status says so, a push sends it, alice pulls it
    bob.sign("fraud@1.0.0", key=reviewer)
    assert any(
        state == "ahead" for rel, state in bob.remote_status().refs.items() if rel.endswith(".sig")
    )
    bob.push()
    assert any(
        state == "behind"
        for rel, state in alice.remote_status().refs.items()
        if rel.endswith(".sig")
    )
    alice.pull()
    assert len(signature_names(alice)) == 2 and signature_names(alice) == signature_names(bob)
    checks = alice.verify(signatures=True, keys=[f"ci={ci_pub}", f"reviewer={reviewer_pub}"])
    assert sorted(c.signer for c in checks.signatures or ()) == ["ci", "reviewer"]
    assert all(c.status == "valid" for c in checks.signatures or ())
    # (a pull that received something leaves its own entry to push: the audit is ahead)
    assert not alice.remote_status().refs and not bob.remote_status().refs
    # the `sign` entries travelled in the audit trail: one per signature, in both stores
    for s in (alice, bob):
        assert len(s.log(action="sign")) == 2


def test_a_damaged_signature_on_the_remote_is_not_pulled(s3: Target, tmp_path: Path) -> None:
    ci, _ = make_key(tmp_path, "ci")
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(3000)}, version="1.0.0")
    s3.add(alice)
    alice.push()
    # a signature of other files, planted on the remote under a valid name
    other = Store.init(tmp_path / "other")
    register(other, tmp_path, {"model.bin": blob(100, seed=9)}, version="1.0.0")
    other.sign("fraud@1.0.0", key=ci)
    (sig,) = (other.root / "models" / "fraud" / "signatures" / "1.0.0").iterdir()
    backend = s3.backend()
    backend.fs.pipe(f"{backend.root}/models/fraud/signatures/1.0.0/{sig.name}", sig.read_bytes())
    bob = Store.init(tmp_path / "bob")
    s3.add(bob)
    result = bob.pull()
    assert result.manifests_received == ("fraud@1.0.0",)
    assert any("not a signature of fraud@1.0.0" in r for r in result.rejected), result.rejected
    assert signature_names(bob) == []
    assert bob.fsck().ok


def test_pack_and_unpack_carry_the_signatures(tmp_path: Path, run_mreg) -> None:
    ci, ci_pub = make_key(tmp_path, "ci")
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(4000), "cfg.json": b"{}"}, version="1.0.0")
    alice.sign("fraud@1.0.0", key=ci)
    bundle = tmp_path / "fraud.tar"
    alice.pack("fraud@1.0.0", bundle)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert [n for n in names if n.startswith("signatures/")] == [
        f"signatures/{n}" for n in signature_names(alice)
    ]
    bob = Store.init(tmp_path / "bob")
    bob.unpack(bundle)
    assert signature_names(bob) == signature_names(alice)
    assert [c.status for c in bob.verify(signatures=True, keys=[str(ci_pub)]).signatures or ()] == [
        "valid"
    ]
    assert [e.details["how"] for e in bob.log(action="sign")] == ["bundle"]
    again = snapshot(bob.root)
    bob.unpack(bundle)  # the same bundle again: nothing changes
    assert snapshot(bob.root) == again


def test_a_bundle_with_a_foreign_signature_changes_nothing(tmp_path: Path) -> None:
    ci, _ = make_key(tmp_path, "ci")
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(4000)}, version="1.0.0")
    register(alice, tmp_path, {"model.bin": blob(10, seed=3)}, version="2.0.0")
    alice.sign("fraud@2.0.0", key=ci)
    bundle = tmp_path / "fraud.tar"
    alice.pack("fraud@1.0.0", bundle)
    (sig,) = (alice.root / "models" / "fraud" / "signatures" / "2.0.0").iterdir()
    with tarfile.open(bundle, "a") as tar:  # 2.0.0's signature, added to 1.0.0's bundle
        tar.add(sig, arcname=f"signatures/{sig.name}")
    bob = Store.init(tmp_path / "bob")
    before = snapshot(bob.root)
    with pytest.raises(InvalidInput, match=r"a signature not of fraud@1\.0\.0"):
        bob.unpack(bundle)
    assert snapshot(bob.root) == before


def test_a_router_on_the_remote_serves_only_signed_versions(s3: Target, tmp_path: Path) -> None:
    from modelreg.errors import IntegrityError
    from modelreg.serving import Router

    ci, ci_pub = make_key(tmp_path, "ci")
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(2000)}, version="1.0.0")
    alice.sign("fraud@1.0.0", key=ci)
    alice.promote("fraud@1.0.0", "production")
    s3.add(alice)
    alice.push()
    router = Router.open(
        "fraud", store=s3.url, options=s3.options, cache_dir=tmp_path / "cache",
        check_interval_ms=0, trusted_keys=[f"ci={ci_pub}"],
    )  # fmt: skip
    assert router.route("u").target.version == "1.0.0"
    register(alice, tmp_path, {"model.bin": blob(2000, seed=1)}, version="2.0.0")
    alice.promote("fraud@2.0.0", "production")
    alice.push()
    with pytest.raises(IntegrityError, match="no signature by a trusted key"):
        router.check()
    assert router.route("u").target.version == "1.0.0"
    alice.sign("fraud@2.0.0", key=ci)
    alice.push()
    assert router.check() and router.route("u").target.version == "2.0.0"


def test_the_policy_travels_and_a_forbidden_move_is_not_pulled(s3: Target, tmp_path: Path):
    """The issue's story: a clone without the gates promoted a failing version and pushed."""
    gated = Store.init(tmp_path / "gated")
    register(gated, tmp_path, {"model.bin": blob(100)}, version="1.0.0",
             metrics={"test": {"f1": 0.95}})  # fmt: skip
    register(gated, tmp_path, {"model.bin": blob(100, seed=2)}, version="2.0.0",
             metrics={"test": {"f1": 0.70}})  # fmt: skip
    gated.policy_gate("production", ["test.f1 >= 0.9"])
    gated.promote("fraud@1.0.0", "production")
    s3.add(gated)
    gated.push()
    # a second clone pulls: it has the policy, and enforces it
    clone = Store.init(tmp_path / "clone")
    s3.add(clone)
    clone.pull()
    assert clone.policy_show().gates == {"production": ("test.f1 >= 0.9",)}
    with pytest.raises(GateFailed):
        clone.promote("fraud@2.0.0", "production")
    # an old clone that never had the policy forces the move (gates of its own: none) and
    # pushes it; the gated store refuses to take it
    old = Store.init(tmp_path / "old")
    s3.add(old)
    old.pull()
    (old.root / "policy.yaml").unlink()  # as a store made before the policy existed
    old.promote("fraud@2.0.0", "production", reason="hotfix")
    old.push()
    result = gated.pull()
    assert any("breaks this store's policy" in r and "test.f1 >= 0.9" in r for r in result.rejected)
    assert gated.info("fraud@production").version.version == "1.0.0"
    # a pull that brings a newer policy enforces it from then on
    assert any("breaks this store's policy" in r for r in clone.pull().rejected)
    clone.policy_gate("staging", ["test.f1 >= 0.99"])
    clone.push()
    gated.pull()
    assert gated.policy_show().gates["staging"] == ("test.f1 >= 0.99",)
    with pytest.raises(GateFailed):
        gated.promote("fraud@1.0.0", "staging")
