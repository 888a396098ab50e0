"""The contract every remote backend keeps: memory://, file:// and s3:// (moto on 127.0.0.1)."""

from __future__ import annotations

import pytest

from modelreg import Conflict, IntegrityError, Store
from modelreg.remote import Remote
from modelreg.remote.backend import Backend, Entry

from .conftest import Target, blob, register


def _object_rel(store: Store, spec: str, path: str) -> tuple[str, str, int]:
    f = next(f for f in store.resolve(spec).files if f.path == path)
    return f"objects/{f.sha256[:2]}/{f.sha256}", f.sha256, f.size


def _write(backend: Backend, rel: str, data: bytes) -> None:
    """Overwrite a remote file behind mreg's back (a tamperer with bucket access)."""
    if backend.local_root is not None:
        path = backend.local_root / rel
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        backend.fs.pipe_file(backend.path(rel), data)


class _Requests:
    """Counts the S3 API calls s3fs makes (botocore's own event hook: nothing is mocked)."""

    def __init__(self, backend: Backend) -> None:
        self.calls: list[str] = []
        backend.fs.ls(backend.root.split("/")[0])  # make s3fs create its client
        backend.fs.s3.meta.events.register("before-call.s3", self._count)

    def _count(self, model, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(model.name)

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in ("PutObject", "UploadPart", "CreateMultipartUpload")]


class TestRemoteContract:
    def test_round_trip(self, target: Target, make_store, tmp_path):
        a = make_store(
            "a", {"model.onnx": blob(3 << 20), "vocab.txt": b"a b c"}, promote="production"
        )
        register(a, tmp_path, {"model.onnx": blob(1000, 1)}, version="1.1.0", message="retrain")
        a.promote("fraud@1.1.0", "staging")
        a.tag("fraud@1.0.0", ["golden"])
        a.deprecate("fraud@1.1.0", reason="leaky feature")
        target.add(a)
        pushed = a.push()
        assert pushed.objects_sent == 3 and pushed.bytes_sent == (3 << 20) + 5 + 1000
        assert sorted(pushed.manifests_sent) == ["fraud@1.0.0", "fraud@1.1.0"]

        b = Store.init(tmp_path / "b")
        target.add(b)
        pulled = b.pull()
        assert pulled.ok, pulled
        assert pulled.objects_received == 3
        for spec in ("fraud@production", "fraud@staging", "fraud@1.1.0"):
            assert b.resolve(spec).id == a.resolve(spec).id
        assert b.info("fraud@1.0.0").tags == ("golden",)
        assert b.info("fraud@1.1.0").deprecated["reason"] == "leaky feature"
        # the pushed trail (its last entry the push), then b's own entry of the pull (#13)
        assert [e.hash for e in b.audit.entries()][:-1] == [e.hash for e in a.audit.entries()]
        assert [e.action for e in a.audit.entries()][-1] == "push"
        assert [e.action for e in b.audit.entries()][-1] == "pull"
        assert b.verify().ok, b.verify().problems
        assert a.remote_status().in_sync
        assert b.remote_status().audit.local_only == 1  # the pull entry, sent by b's next push
        assert b.push().audit_entries_sent == 1 and b.remote_status().in_sync

    def test_only_missing_is_sent(self, target: Target, make_store, tmp_path):
        files = {f"shard-{i}.bin": blob(4096, i) for i in range(20)}
        a = make_store("a", files)
        target.add(a)
        assert a.push().objects_sent == 20
        requests = _Requests(Backend(a.remotes.get())) if target.kind == "s3" else None
        again = a.push()
        assert (again.objects_sent, again.bytes_sent) == (0, 0)
        assert (
            again.manifests_sent == () and again.refs_sent == () and again.audit_entries_sent == 0
        )
        if requests is not None:  # a no-op push is a few listings, no read or write of a file
            assert requests.writes() == [] and "GetObject" not in requests.calls
            assert set(requests.calls) == {"ListObjectsV2"} and len(requests.calls) <= 3

        files["shard-new.bin"] = blob(5000, 99)  # one new file, 20 unchanged
        register(a, tmp_path, files, version="1.1.0")
        third = a.push()
        assert (third.objects_sent, third.bytes_sent, third.objects_present) == (1, 5000, 20)
        if requests is not None:
            # the object, the manifest and the audit log (+ its head); one HEAD per object of
            # the version sent and no listing of objects/, whatever the remote holds (#18)
            assert requests.writes().count("PutObject") == 4, requests.calls
            assert requests.calls.count("HeadObject") == 21, requests.calls

    def test_tampered_and_truncated_objects_are_rejected(
        self, target: Target, make_store, tmp_path
    ):
        a = make_store("a", {"model.onnx": blob(2 << 20, 3)}, promote="production")
        register(a, tmp_path, {"small.pkl": blob(3000, 4)}, name="other", version="1.0.0")
        target.add(a)
        a.push()
        backend = target.backend()
        big_rel, big, size = _object_rel(a, "fraud@1.0.0", "model.onnx")
        _write(backend, big_rel, blob(size, 42))  # same size, other bytes
        small_rel, small, small_size = _object_rel(a, "other@1.0.0", "small.pkl")
        _write(backend, small_rel, blob(small_size, 4)[:-10])  # truncated

        b = Store.init(tmp_path / "b")
        target.add(b)
        result = b.pull()
        assert not result.ok
        text = " ".join(result.rejected)
        assert big[:12] in text and "corrupt" in text
        assert small[:12] in text and "truncated" in text
        assert not b.objects.has(big) and not b.objects.has(small)
        assert result.manifests_received == ()
        assert b.models() == []  # neither version nor the alias entered the store
        assert list((b.root / "tmp").iterdir()) == []
        assert b.verify().ok

    def test_conflicting_alias_moves_one_refused_nothing_lost(
        self, target: Target, make_store, tmp_path
    ):
        origin = make_store("origin", {"m.onnx": b"v1"}, promote="production")
        register(origin, tmp_path, {"m.onnx": b"v2"}, version="2.0.0")
        register(origin, tmp_path, {"m.onnx": b"v3"}, version="3.0.0")
        target.add(origin)
        origin.push()
        alice, bob = Store.init(tmp_path / "alice"), Store.init(tmp_path / "bob")
        for s in (alice, bob):
            target.add(s)
            assert s.pull().ok

        alice.promote("fraud@2.0.0", "production", reason="alice: v2 wins")
        bob.promote("fraud@3.0.0", "production", reason="bob: v3 wins")
        alice.push()
        with pytest.raises(Conflict, match=r"production\.yaml changed on the remote"):
            bob.push()
        checker = Store.init(tmp_path / "checker")
        target.add(checker)
        checker.pull()
        assert checker.resolve("fraud@production").version == "2.0.0"  # alice's move kept
        assert bob.resolve("fraud@production").version == "3.0.0"  # bob's kept locally

        pulled = bob.pull()  # the alias diverged: reported, left alone
        assert any("production.yaml" in c for c in pulled.conflicts)
        assert bob.resolve("fraud@production").version == "3.0.0"
        resolved = bob.pull(theirs=True)
        assert resolved.ok and bob.resolve("fraud@production").version == "2.0.0"
        actions = [e.action for e in bob.audit.entries()]
        assert actions[-3:] == ["promote", "pull-theirs", "pull"]  # bob's move, its undoing
        bob.promote("fraud@3.0.0", "production", reason="bob: v3 after all")
        bob.push()

        final = Store.init(tmp_path / "final")
        target.add(final)
        final.pull()
        reasons = [e.details.get("reason") for e in final.audit.entries()]
        for why in ("alice: v2 wins", "bob: v3 wins", "bob: v3 after all"):
            assert why in reasons  # every move is in the shared trail
        assert final.resolve("fraud@production").version == "3.0.0"
        assert final.verify().ok, final.verify().problems
        history = [e.version for e in final.history("fraud", "production")]
        assert history == ["1.0.0", "2.0.0", "3.0.0"]

    def test_a_lost_swap_to_identical_bytes_is_no_conflict(
        self, target: Target, make_store, tmp_path
    ):
        """Two pushes of one store race for a ref: the loser finds its own bytes and is done."""
        from modelreg.remote.session import Session
        from modelreg.remote.sync import _swap

        a = make_store("a", {"m.onnx": b"v1"}, promote="production")
        target.add(a)
        a.push()
        rel = "models/fraud/aliases/production.yaml"
        data = (a.root / rel).read_bytes()
        s = Session.open(a, None)
        stale = Entry(s.listing[rel].size, "stale-token")
        s.listing[rel] = stale
        assert _swap(s, rel, data)  # the remote holds `data`: the swap counts as done
        assert s.listing[rel].token != "stale-token"
        s.listing[rel] = stale
        assert not _swap(s, rel, data + b"# other\n")  # other bytes: a real conflict
        assert s.backend.read(rel) == data

    def test_same_version_other_content_is_a_conflict(self, target: Target, make_store, tmp_path):
        a = make_store("a", {"m.onnx": b"alice's weights"})
        b = make_store("b", {"m.onnx": b"bob's weights"})
        for s in (a, b):
            target.add(s)
        a.push()
        with pytest.raises(
            Conflict, match=r"fraud@1\.0\.0 exists on the remote with other content"
        ):
            b.push()
        result = b.pull()
        assert any("fraud@1.0.0" in c for c in result.conflicts)
        assert b.resolve("fraud@1.0.0").id != a.resolve("fraud@1.0.0").id  # nothing overwritten
        c = Store.init(b.root.parent.parent / "c")
        target.add(c)
        c.pull()
        assert c.resolve("fraud@1.0.0").id == a.resolve("fraud@1.0.0").id

    def test_push_and_pull_a_selection(self, target: Target, make_store, tmp_path):
        a = make_store("a", {"m.onnx": b"one"}, promote="production")
        register(a, tmp_path, {"m.onnx": b"two"}, version="2.0.0")
        register(a, tmp_path, {"x.bin": b"other model"}, name="team/other", version="0.1.0")
        target.add(a)
        result = a.push(specs=["fraud@production"])
        assert result.manifests_sent == ("fraud@1.0.0",)
        assert result.refs_sent == ("models/fraud/aliases/production.yaml",)
        a.push()
        b = Store.init(tmp_path / "b")
        target.add(b)
        assert b.pull(specs=["team/other"]).manifests_received == ("team/other@0.1.0",)
        assert [m.name for m in b.models()] == ["team/other"]
        b.pull(specs=["fraud@2.0.0"])
        assert [v.version.version for v in b.versions("fraud")] == ["2.0.0"]

    def test_fetch_is_metadata_only_and_status_both_ways(
        self, target: Target, make_store, tmp_path
    ):
        a = make_store("a", {"m.onnx": blob(10_000, 7)}, promote="production")
        target.add(a)
        a.push()
        b = make_store("b", {"n.onnx": blob(20_000, 8)}, name="local-only")
        target.add(b)
        before = sorted(p.name for p in (b.root / "objects").rglob("*") if p.is_file())
        fetched = b.fetch()
        assert fetched.remote_versions == ("fraud@1.0.0",)
        assert sorted(p.name for p in (b.root / "objects").rglob("*") if p.is_file()) == before
        assert not (b.root / "models" / "fraud").exists()
        st = b.remote_status()
        assert st.versions_to_pull == ("fraud@1.0.0",) and st.versions_to_push == (
            "local-only@1.0.0",
        )
        assert (st.objects_to_pull, st.bytes_to_pull) == (1, 10_000)
        assert (st.objects_to_push, st.bytes_to_push) == (1, 20_000)
        assert st.audit.state == "diverged" and not st.in_sync

    def test_remote_reader_serves_verified_artifacts_through_a_cache(
        self, target: Target, make_store, tmp_path
    ):
        a = make_store("a", {"model.onnx": blob(2 << 20, 5)}, promote="production")
        target.add(a)
        a.push()
        remote = Remote(target.url, target.options, cache_dir=tmp_path / "cache")
        mv = remote.resolve("fraud@production")
        assert mv.id == a.resolve("fraud@production").id
        with remote.open_artifact("fraud@production", "model.onnx") as fh:
            assert fh.read() == blob(2 << 20, 5)
        rel, digest, _ = _object_rel(a, "fraud@1.0.0", "model.onnx")
        target.backend().remove(rel)  # cached: served without the remote
        assert remote.object_path(digest).read_bytes() == blob(2 << 20, 5)

        register(a, tmp_path, {"model.onnx": blob(4000, 6)}, version="2.0.0")
        a.push()
        rel2, digest2, size2 = _object_rel(a, "fraud@2.0.0", "model.onnx")
        _write(target.backend(), rel2, blob(size2, 66))
        fresh = Remote(target.url, target.options, cache_dir=tmp_path / "cache2")
        with pytest.raises(IntegrityError, match="corrupt"):
            fresh.artifact_path("fraud@latest")
        assert not fresh.cache.has(digest2)
