"""Issue 13: a missing bucket, a first argument that is neither remote nor model, and the
audit entries of push and pull (recorded once, never for a no-op, converging between clones).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from modelreg import Conflict, Store
from modelreg.remote.record import public_url

from ..cli.helpers import assert_one_line_error, ok
from ..conftest import snapshot
from .conftest import AWS_ENV, Target, blob, register


def _cli_store(tmp_path: Path, run_mreg) -> Path:  # type: ignore[no-untyped-def]
    """A CLI store in tmp_path/work with fraud@1.0.0 in production; returns its .modelreg."""
    src = tmp_path / "model.onnx"
    src.write_bytes(blob(5000, 1))
    ok(run_mreg("init"))
    ok(run_mreg("register", "fraud", str(src), "--version", "1.0.0", "--no-code"))
    ok(run_mreg("promote", "fraud@1.0.0", "--to", "production"))
    return tmp_path / "work" / ".modelreg"


def _actions(store: Store) -> list[str]:
    return [e.action for e in store.audit.entries()]


# -- defect 5: a bucket that does not exist -------------------------------------------------


def test_a_missing_bucket_is_an_error_for_every_command(run_mreg, tmp_path, s3_endpoint):
    root = _cli_store(tmp_path, run_mreg)
    bucket = f"nosuch-{uuid.uuid4().hex[:12]}"
    url, endpoint = f"s3://{bucket}/reg", f"endpoint_url={s3_endpoint}"
    ok(run_mreg("remote", "add", "origin", url, "-o", endpoint))
    before = snapshot(root)
    for args in (("status", "--remote"), ("push",), ("pull",), ("fetch",), ("push", "origin")):
        line = assert_one_line_error(run_mreg(*args, env=AWS_ENV), 1)
        assert f"bucket '{bucket}' does not exist" in line, (args, line)
        assert "to push" not in line and "push to it first" not in line
    line = assert_one_line_error(run_mreg("gc", "--remote", "origin", env=AWS_ENV), 1)
    assert f"bucket '{bucket}' does not exist" in line
    assert snapshot(root) == before  # nothing recorded, nothing tracked
    # push did not create it: mreg never creates buckets
    from modelreg.remote.backend import Backend
    from modelreg.remote.config import RemoteSpec

    fs = Backend(RemoteSpec("t", f"s3://{bucket}/reg", {"endpoint_url": s3_endpoint})).fs
    assert not fs.exists(bucket)


def test_an_existing_empty_bucket_is_still_nothing_there_yet(run_mreg, tmp_path, s3_endpoint):
    _cli_store(tmp_path, run_mreg)
    target = Target("s3", f"s3://empty-{uuid.uuid4().hex[:12]}/reg", {"endpoint_url": s3_endpoint})
    target.backend().fs.mkdir(target.url[5:].split("/")[0])
    ok(run_mreg("remote", "add", "origin", target.url, "-o", f"endpoint_url={s3_endpoint}"))
    st = ok(run_mreg("status", "--remote", env=AWS_ENV))
    assert "to push: 1 objects" in st.stdout
    line = assert_one_line_error(run_mreg("pull", env=AWS_ENV), 2)
    assert "no mreg store there yet" in line
    ok(run_mreg("push", env=AWS_ENV))  # an existing bucket: the first push creates the store
    assert "in sync" in ok(run_mreg("status", "--remote", env=AWS_ENV)).stdout


# -- defect 6: neither a remote nor a model ------------------------------------------------


def test_a_first_argument_that_is_neither_remote_nor_model(run_mreg, tmp_path):
    root = _cli_store(tmp_path, run_mreg)
    ok(run_mreg("remote", "add", "origin", str(tmp_path / "remote")))
    ok(run_mreg("push"))
    before = snapshot(root)
    for cmd in ("push", "pull", "fetch"):
        line = assert_one_line_error(run_mreg(cmd, "nosuchremote"), 2)
        assert "no remote or model named 'nosuchremote'" in line, line
        assert "mreg remote list" in line
    # a remote was named: the rest can only be models
    line = assert_one_line_error(run_mreg("push", "origin", "nosuchremote"), 2)
    assert "no model named 'nosuchremote'" in line and "remote or" not in line
    # a later argument is never taken for a remote
    line = assert_one_line_error(run_mreg("push", "fraud", "nosuch"), 2)
    assert "no model named 'nosuch'" in line
    # status takes a remote only
    line = assert_one_line_error(run_mreg("status", "--remote", "nosuchremote"), 2)
    assert "no remote named 'nosuchremote'" in line
    assert snapshot(root) == before
    assert "up to date" in ok(run_mreg("push", "fraud")).stdout  # a model still works


# -- defect 11: push and pull in the audit trail --------------------------------------------


class TestSyncAudit:
    def test_push_and_pull_are_recorded_once(self, target: Target, make_store, tmp_path):
        a = make_store("a", {"model.onnx": blob(3000)}, promote="production")
        target.add(a)
        pushed = a.push()
        entry = a.audit.entries()[-1]
        assert entry.action == "push" and entry.model is None
        assert entry.details == {
            "remote": "origin", "url": public_url(a.remotes.get().url), "objects": 1,
            "bytes": 3000, "manifests": 1, "versions": ["fraud@1.0.0"], "refs": 1,
        }  # fmt: skip
        assert pushed.audit_entries_sent == 3  # register, promote and the push itself
        n = len(a.audit.entries())
        again = a.push()  # the push entry travelled with the push: nothing left to send
        assert (again.objects_sent, again.manifests_sent, again.refs_sent) == (0, (), ())
        assert again.audit_entries_sent == 0 and len(a.audit.entries()) == n
        assert a.remote_status().in_sync

        b = Store.init(tmp_path / "b")
        target.add(b)
        assert b.pull().ok
        pulled = b.audit.entries()[-1]
        assert pulled.action == "pull" and pulled.details["versions"] == ["fraud@1.0.0"]
        assert (pulled.details["objects"], pulled.details["refs"]) == (1, 1)
        m = len(b.audit.entries())
        assert b.pull().ok and len(b.audit.entries()) == m  # a no-op pull records nothing
        assert b.verify().ok and a.verify().ok

    def test_two_clones_converge_without_audit_growth(self, target: Target, make_store, tmp_path):
        a = make_store("a", {"model.onnx": b"v1"}, promote="production")
        b = Store.init(tmp_path / "b")
        for s in (a, b):
            target.add(s)
        a.push()
        sizes = []
        for _ in range(4):  # CI jobs on two machines, pulling and pushing in turn
            for s in (b, a):
                assert s.pull().ok
                s.push()
            sizes.append((len(a.audit.entries()), len(b.audit.entries())))
        assert sizes[-1] == sizes[-2] == sizes[1], sizes  # stable after one round trip
        assert [e.hash for e in a.audit.entries()] == [e.hash for e in b.audit.entries()]
        assert _actions(a).count("push") == 1 and _actions(a).count("pull") == 1
        assert a.remote_status().in_sync and b.remote_status().in_sync

        # changes on both sides: each store's transfers are recorded, then it settles again
        register(a, tmp_path, {"model.onnx": b"v2"}, version="2.0.0")
        b.promote("fraud@1.0.0", "staging")
        a.push()
        with pytest.raises(Conflict):
            b.push()  # the remote trail has a's entries: pull first
        assert b.pull().ok
        b.push()
        assert a.pull().ok
        a.push()
        settled = len(a.audit.entries())
        for _ in range(2):
            for s in (b, a):
                assert s.pull().ok
                s.push()
        assert len(a.audit.entries()) == len(b.audit.entries()) == settled
        assert a.verify().ok and b.verify().ok

    def test_a_rebased_pull_entry_comes_last(self, target: Target, make_store, tmp_path):
        a = make_store("a", {"model.onnx": b"v1"}, promote="production")
        target.add(a)
        a.push()
        b = Store.init(tmp_path / "b")
        target.add(b)
        b.pull()
        b.push()  # b's pull entry: a pulls it before its next push can send the trail
        with pytest.raises(Conflict, match="entries not pulled"):
            register(a, tmp_path, {"model.onnx": b"v2"}, version="2.0.0")
            a.push()
        assert a.pull().ok and _actions(a)[-2:] == ["pull", "register"]  # b's, then a's own
        a.push()
        b.promote("fraud@1.0.0", "staging")  # a local entry: the pull rebases it
        result = b.pull()
        assert result.ok and result.audit_rebased == 1
        assert _actions(b)[-2:] == ["promote", "pull"]
        assert b.verify().ok

    def test_a_push_behind_the_remote_trail_keeps_its_entry_for_later(
        self, target: Target, make_store, tmp_path
    ):
        a = make_store("a", {"model.onnx": b"v1"}, promote="production")
        target.add(a)
        register(a, tmp_path, {"model.onnx": b"v2"}, version="2.0.0")
        a.push(specs=["fraud@1.0.0"])  # the whole trail goes (2.0.0's register entry too)
        b = Store.init(tmp_path / "b")
        target.add(b)
        b.pull()
        b.push()  # the remote trail now has b's pull entry, which a has not pulled
        result = a.push()  # 2.0.0 goes; the trail cannot (a is behind there, and its own
        assert result.manifests_sent == ("fraud@2.0.0",)  # push entry makes it diverge)
        assert result.audit_entries_sent == 0 and "audit/log.jsonl" in result.remote_ahead
        assert _actions(a)[-1] == "push"
        assert a.pull().ok  # rebased: the push entry after b's pull entry
        assert a.push().audit_entries_sent == 1
        assert a.remote_status().in_sync and a.verify().ok


def test_a_lost_audit_swap_to_a_log_we_extend_is_retried(make_store, tmp_path):
    """Two pushes of one store: the loser finds the remote log a prefix of its own, sends it."""
    from modelreg.remote.session import Session
    from modelreg.remote.sync import _push_audit

    a = make_store("a", {"m.onnx": b"v1"}, promote="production")
    a.remotes.add("origin", str(tmp_path / "remote"))
    a.push()
    s = Session.open(a, None)
    s.get(["audit/log.jsonl"])  # what push reads when it decides
    a.record("Test", "note", None, n=1)
    a.push()  # "another push of this store" sends the note
    a.record("Test", "note", None, n=2)
    assert _push_audit(s) == 1  # the swap on the old token lost; retried on the new one
    assert (tmp_path / "remote" / "audit" / "log.jsonl").read_bytes() == a.audit.path.read_bytes()

    other = Store.init(tmp_path / "other")
    other.remotes.add("origin", str(tmp_path / "remote"))
    other.pull()
    s = Session.open(a, None)
    s.get(["audit/log.jsonl"])
    a.record("Test", "note", None, n=3)
    other.push()  # another store's entry (its pull): our log no longer extends the remote's
    assert _push_audit(s) == -1


def test_no_credential_reaches_an_entry(run_mreg, tmp_path, s3_endpoint):
    root = _cli_store(tmp_path, run_mreg)
    bucket = f"creds-{uuid.uuid4().hex[:12]}"
    target = Target("s3", f"s3://{bucket}/reg", {"endpoint_url": s3_endpoint})
    target.backend().fs.mkdir(bucket)
    ok(run_mreg("remote", "add", "origin", target.url, "-o", f"endpoint_url={s3_endpoint}"))
    secret = {"AWS_ACCESS_KEY_ID": "AKIDSECRETVALUE1", "AWS_SECRET_ACCESS_KEY": "sekrit/Value+42"}
    ok(run_mreg("push", env={**AWS_ENV, **secret}))
    log = (root / "audit" / "log.jsonl").read_text()
    assert all(v not in log for v in secret.values())
    entry = ok(run_mreg("log", "--json")).json()[-1]
    assert entry["action"] == "push" and entry["details"]["url"] == target.url
    table = ok(run_mreg("log")).stdout
    assert "push" in table and "remote=origin" in table


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://bucket/reg", "s3://bucket/reg"),
        ("file:///srv/reg", "file:///srv/reg"),
        ("sftp://deploy@host:2222/reg", "sftp://host:2222/reg"),
        ("https://acct.blob.example/c/reg?sig=abc&se=2030", "https://acct.blob.example/c/reg"),
        ("memory://x/reg#token", "memory://x/reg"),
    ],
)
def test_public_url_drops_what_could_be_a_credential(url, shown):
    assert public_url(url) == shown
