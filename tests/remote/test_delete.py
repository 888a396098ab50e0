"""Deletions travel (issue 19): push sends the tombstone and the remote drops the manifest, pull
applies it (or reports why not), status reports it, remote gc honours the grace period; with
moto's S3 server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import NotFound
from tests.conftest import snapshot
from tests.remote.conftest import Target, blob, register

TOMB = "models/fraud/tombstones/1.0.0.yaml"
MANIFEST = "models/fraud/versions/1.0.0.yaml"


@pytest.fixture
def s3(s3_endpoint: str) -> Target:
    tag = uuid.uuid4().hex[:12]
    t = Target("s3", f"s3://bucket-{tag}/reg", {"endpoint_url": s3_endpoint})
    t.backend().fs.mkdir(f"bucket-{tag}")
    return t


@pytest.fixture
def pair(s3: Target, tmp_path: Path) -> tuple[Store, Store]:
    """alice (fraud 1.0.0 and 1.1.0, pushed) and bob (pulled from the same S3 remote)."""
    alice = Store.init(tmp_path / "alice")
    register(alice, tmp_path, {"model.bin": blob(5000, 1)}, version="1.0.0")
    register(alice, tmp_path, {"model.bin": blob(5000, 2)}, version="1.1.0")
    alice.tag("fraud@1.0.0", ["old"])  # a state file the remote must drop too
    s3.add(alice)
    alice.push()
    bob = Store.init(tmp_path / "bob")
    s3.add(bob)
    bob.pull()
    return alice, bob


def problems(store: Store) -> list[object]:
    return [f for f in store.fsck().findings if f.kind != "orphan-object"]


def test_push_drops_the_remote_manifest_and_pull_applies_the_tombstone(
    pair: tuple[Store, Store], s3: Target
) -> None:
    alice, bob = pair
    remote = s3.backend()
    alice.delete("fraud@1.0.0", reason="registered a secret")
    status = alice.remote_status()
    assert status.refs == {TOMB: "ahead"} and status.versions_to_pull == ()
    alice.push()
    assert remote.read(TOMB) == (alice.root / TOMB).read_bytes()
    assert remote.read(MANIFEST) is None
    assert remote.read("models/fraud/state/1.0.0.yaml") is None
    assert alice.remote_status().in_sync
    assert bob.remote_status().refs == {TOMB: "behind"}
    pulled = bob.pull()
    assert pulled.ok and TOMB in pulled.refs_updated, pulled
    with pytest.raises(NotFound, match=r"fraud@1\.0\.0 was deleted at .*: registered a secret"):
        bob.resolve("fraud@1.0.0")
    assert [i.version.version for i in bob.versions("fraud")] == ["1.1.0"]
    assert not bob.manifest_path("fraud", "1.0.0").exists()
    assert not bob.state_path("fraud", "1.0.0").exists()
    assert [e.details["reason"] for e in bob.log(action="delete")] == ["registered a secret"]
    assert not problems(bob) and bob.verify().ok and not problems(alice)
    assert bob.remote_status().refs == {} and alice.remote_status().in_sync  # (bob: pull entries)
    assert bob.pull().refs_updated == ()  # nothing more to do


def test_a_pull_does_not_delete_what_a_local_alias_points_at(
    pair: tuple[Store, Store],
) -> None:
    alice, bob = pair
    bob.promote("fraud@1.0.0", "staging")
    alice.delete("fraud@1.0.0", reason="bad")
    alice.push()
    pulled = bob.pull()
    assert not pulled.ok
    assert any("fraud@staging points at it here" in c for c in pulled.conflicts), pulled
    assert bob.resolve("fraud@staging").version == "1.0.0"  # nothing was applied
    assert not (bob.root / TOMB).exists() and not problems(bob)
    bob.promote("fraud@1.1.0", "staging")  # the owner moves the alias: the next pull applies
    assert bob.pull().ok
    with pytest.raises(NotFound, match="was deleted"):
        bob.resolve("fraud@1.0.0")


def test_a_received_tombstone_is_checked_before_it_touches_the_store(
    pair: tuple[Store, Store], s3: Target
) -> None:
    alice, bob = pair
    alice.delete("fraud@1.0.0", reason="bad")
    data = (alice.root / TOMB).read_bytes()
    remote = s3.backend()
    remote.write(TOMB, data.replace(b"version: 1.0.0", b"version: 1.1.0"))
    before = snapshot(bob.root / "models")
    pulled = bob.pull()
    assert any("not of its own path" in r for r in pulled.rejected), pulled
    assert snapshot(bob.root / "models") == before
    remote.write(TOMB, b"kind: Tombstone\n")
    assert any("malformed tombstone" in r for r in bob.pull().rejected)
    assert snapshot(bob.root / "models") == before


def test_remote_gc_keeps_a_deleted_versions_objects_for_the_grace_period(
    pair: tuple[Store, Store], s3: Target
) -> None:
    alice, _ = pair
    digest = alice.resolve("fraud@1.0.0").files[0].sha256
    alice.delete("fraud@1.0.0", reason="bad")
    alice.push()
    alice.gc(grace=0)  # local objects gone: the remote's are kept by its tombstone, not ours
    remote = s3.backend()
    rel = f"objects/{digest[:2]}/{digest}"
    assert alice.gc(remote="origin").removed == ()  # within the default grace
    assert remote.read(rel) is not None
    assert [d for d, _ in alice.gc(remote="origin", grace=0).removed] == [digest]
    assert remote.read(rel) is None
