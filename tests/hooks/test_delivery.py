"""Webhooks through the library (issue 19): a real receiver on 127.0.0.1, no mocks of ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.analysis.demo import Behaviour
from modelreg.errors import InvalidInput, NotFound
from modelreg.hooks import DeliveryFailed
from tests.analysis.conftest import simulate_release
from tests.hooks.conftest import SECRET
from tests.hooks.receiver import Receiver, verify
from tests.release.util import SEED, make_model

ALIAS_AND_RELEASE = [
    "promote", "release.start", "release.set", "release.step", "release.pause",
    "release.resume", "promote", "release.promote", "rollback", "release.start", "release.abort",
]  # fmt: skip


def _every_default_event(s: Store) -> None:
    """One of each alias and release event on model `m` (production at 1.0.0)."""
    s.promote("m@1.1.0", "production", reason="better f1")
    s.release_start("m", "1.2.0", steps="1,5,50,100", seed=SEED, reason="try 1.2.0")
    s.release_set("m", weight="2")
    s.release_step("m", reason="fine")
    s.release_pause("m", reason="lunch")
    s.release_resume("m")
    s.release_promote("m", reason="good")
    s.rollback("m", reason="regression", to="1.1.0")
    s.release_start("m", "1.2.0", steps="5,100", seed=SEED)
    s.release_abort("m", reason="errors up")


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    return make_model(store, tmp_path)


def test_every_alias_and_release_event_is_delivered_signed_and_in_order(model, receiver):
    model.hook_add(receiver.url, name="ci", secret_env="HOOK_SECRET")
    _every_default_event(model)
    # delivered by the commands themselves, as each write ended
    assert receiver.actions() == ALIAS_AND_RELEASE
    assert all(verify(SECRET.encode(), r) for r in receiver.received)
    assert not any(verify(b"another secret", r) for r in receiver.received)
    trail = {e.seq: e.to_dict() for e in model.log()}
    got = [r.doc for r in receiver.received]
    assert [d["entry"] for d in got] == [trail[d["entry"]["seq"]] for d in got]  # as in mreg log
    assert [d["entry"]["seq"] for d in got] == sorted(d["entry"]["seq"] for d in got)
    assert {d["model"] for d in got} == {"m"} and {d["store"] for d in got} == {
        str(model.root.parent)
    }
    assert all(d["event"] == d["entry"]["action"] for d in got)
    ids = [r.delivery for r in receiver.received]
    assert len(set(ids)) == len(ids) and all(d["id"] == i for d, i in zip(got, ids, strict=True))
    r = receiver.received[0]
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["User-Agent"].startswith("mreg/") and r.headers["X-Mreg-Hook"] == "ci"
    (info,) = model.hook_list()
    assert (info.backlog, info.delivered, info.failing) == (0, len(ALIAS_AND_RELEASE), False)


def test_event_filters_and_the_every_event_pattern(model, receiver, tmp_path):
    other = Receiver()
    try:
        model.hook_add(receiver.url, name="moves", events=["promote", "rollback"])
        model.hook_add(other.url, name="all", events=["*"])
        _every_default_event(model)
        model.tag("m@1.2.0", ["blessed"])
        model.deprecate("m@1.0.0", reason="old")
        f = tmp_path / "n.bin"
        f.write_bytes(b"n")
        model.register("n", [f], version="0.1.0", detect_code=False)
    finally:
        other.stop()
    assert receiver.actions() == ["promote", "promote", "rollback"]  # release.promote moves it
    assert other.actions() == [*ALIAS_AND_RELEASE, "tag", "deprecate", "register"]
    assert [e["model"] for e in other.entries()][-1] == "n"  # in order across models too


def test_default_events_leave_out_the_rest(model, receiver):
    model.hook_add(receiver.url)
    model.tag("m@1.1.0", ["x"])
    model.promote("m@1.1.0", "staging")
    assert receiver.actions() == ["promote"]
    (info,) = model.hook_list()
    assert info.spec.name == "127-0-0-1" or info.spec.name.startswith("hook-127")
    assert info.secret_set is None  # unsigned


def test_slack_format_is_one_line_of_text(model, receiver):
    model.hook_add(receiver.url, name="slack", format="slack")
    model.promote("m@1.2.0", "production", reason="best f1", actor="alice")
    model.release_start("m", "1.1.0", steps="5,100", seed=SEED, actor="bob")
    model.release_abort("m", reason="errors up", actor="bob")
    texts = [r.doc for r in receiver.received]
    assert all(set(t) == {"text"} for t in texts)
    assert texts[0]["text"] == "alice promoted m@1.2.0 to production (was 1.0.0): best f1"
    assert texts[2]["text"].startswith("bob release abort m (release ")
    assert texts[2]["text"].endswith(", aborted, canary weight 0%: errors up")


def test_a_down_receiver_is_retried_by_later_commands_in_order(model, receiver, monkeypatch):
    notes: list[str] = []
    model.notes = notes.append
    model.hook_add(receiver.url, name="ci")
    receiver.stop()
    model.promote("m@1.1.0", "production", reason="one")  # succeeds; the hook fails
    model.promote("m@1.2.0", "production", reason="two")
    assert len(notes) == 2 and all(n.startswith("hook ci: delivery failed (") for n in notes)
    (info,) = model.hook_list()
    assert (info.backlog, info.failing) == (2, True) and info.last_error
    assert model.resolve("m@production").version == "1.2.0"
    receiver.start()  # the same port
    model.tag("m@1.2.0", ["x"])  # a later command, not an event of this hook, retries
    assert [e["details"]["reason"] for e in receiver.entries()] == ["one", "two"]
    (info,) = model.hook_list()
    assert (info.backlog, info.failing, info.delivered) == (0, False, 2)


def test_backoff_keeps_commands_fast_and_hook_deliver_sends_now(model, receiver, monkeypatch):
    monkeypatch.setenv("MREG_HOOK_BACKOFF", "3600")
    model.hook_add(receiver.url, name="ci")
    receiver.status = 503
    model.promote("m@1.1.0", "production")
    assert len(receiver.received) == 1  # one try, then backing off for about an hour
    model.promote("m@1.2.0", "production")
    assert len(receiver.received) == 1  # not due: this command did not try
    (info,) = model.hook_list()
    assert (
        info.backlog == 2 and info.last_error == "HTTP 503" and info.to_dict()["next_try_in"] > 2000
    )
    with pytest.raises(DeliveryFailed):
        model.hook_deliver()  # now, despite the backoff; still 503: exit 1
    receiver.status = 200
    report = model.hook_deliver()
    assert report.to_dict()["delivered"] == 2 and report.to_dict()["backlog"] == 0
    versions = [e["details"]["version"] for e in receiver.entries()]
    assert versions == ["1.1.0", "1.2.0"]


def test_a_missing_secret_is_a_failure_not_an_unsigned_post(model, receiver, monkeypatch):
    model.hook_add(receiver.url, name="ci", secret_env="NOT_SET_ANYWHERE")
    notes: list[str] = []
    model.notes = notes.append
    model.promote("m@1.1.0", "production")
    assert receiver.received == [] and "NOT_SET_ANYWHERE" in notes[0]
    assert model.hook_list()[0].secret_set is False


def test_a_release_watch_rollback_is_delivered(model, receiver):
    model.hook_add(receiver.url, name="ci", events=["release.*"], secret_env="HOOK_SECRET")
    report, _ = simulate_release(model, Behaviour(error_rate=0.03), steps="5,25,50,100")
    assert report.outcome == "aborted"
    assert receiver.actions() == ["release.start", "release.abort"]
    abort = receiver.received[-1]
    assert verify(SECRET.encode(), abort)
    assert abort.doc["entry"]["details"]["reason"].startswith("analysis: errors")


def test_a_new_hook_starts_at_the_end_unless_from_start(model, receiver):
    other = Receiver()
    try:
        model.hook_add(receiver.url, name="new")
        model.hook_add(other.url, name="replay", from_start=True)
        model.hook_deliver()
    finally:
        other.stop()
    assert receiver.received == []
    assert other.actions() == ["promote"]  # make_model's promotion, from the trail


def test_bad_urls_names_and_events_are_refused(model, receiver):
    before = (model.root / "config.yaml").read_bytes()
    for url in ("ftp://example.com/x", "https://user:token@example.com/x", "file:///etc/x",
                "http:///nohost", "https://example.com/x#frag", "no url"):  # fmt: skip
        with pytest.raises(InvalidInput):
            model.hook_add(url)
    with pytest.raises(InvalidInput):
        model.hook_add(receiver.url, events=["rel*ease"])
    with pytest.raises(InvalidInput):
        model.hook_add(receiver.url, format="xml")
    with pytest.raises(InvalidInput):
        model.hook_add(receiver.url, secret_env="my secret value")
    with pytest.raises(InvalidInput):
        model.hook_add(receiver.url, name="Bad Name")
    assert (model.root / "config.yaml").read_bytes() == before
    model.hook_add(receiver.url, name="ci")
    with pytest.raises(InvalidInput):
        model.hook_add(receiver.url, name="ci")
    with pytest.raises(NotFound):
        model.hook_remove("nope")


def test_remove_drops_the_cursor_and_test_sends_a_ping(model, receiver):
    model.hook_add(receiver.url, name="ci", secret_env="HOOK_SECRET")
    assert model.hook_test("ci").ok
    ping = receiver.received[-1]
    assert ping.action == "ping" and ping.doc["hook"] == "ci" and verify(SECRET.encode(), ping)
    assert (model.root / "hooks" / "ci.json").is_file()
    model.hook_remove("ci")
    assert not (model.root / "hooks" / "ci.json").exists() and model.hook_list() == []
    model.promote("m@1.1.0", "production")
    assert receiver.actions() == ["ping"]


def test_pulled_entries_are_delivered_and_own_entries_not_twice(tmp_path, receiver):
    a = make_model(Store.init(tmp_path / "a"), tmp_path / "ina")
    remote = tmp_path / "remote"
    a.remotes.add("origin", str(remote))
    a.push()
    b = Store.init(tmp_path / "b")
    b.remotes.add("origin", str(remote))
    b.pull()
    b.hook_add(receiver.url, name="ci")
    b.promote("m@1.1.0", "staging", reason="b's own")  # delivered, not pushed
    a.promote("m@1.2.0", "production", reason="a's move")
    a.push()
    b.pull()  # diverged: b's own entry is re-chained after a's
    reasons = [r.doc["entry"]["details"]["reason"] for r in receiver.received]
    assert reasons == ["b's own", "a's move"]  # a's arrives by the pull; b's is not resent
    b.promote("m@1.2.0", "staging", reason="after")
    reasons = [r.doc["entry"]["details"]["reason"] for r in receiver.received]
    assert reasons == ["b's own", "a's move", "after"]
    assert b.verify(objects=False).ok


def test_the_store_holds_no_secret_and_stays_valid(model, receiver):
    model.hook_add(receiver.url, name="ci", secret_env="HOOK_SECRET", events=["*"])
    _every_default_event(model)
    assert len(receiver.received) > 5
    for p in model.root.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p
    cfg = (model.root / "config.yaml").read_text()
    assert "HOOK_SECRET" in cfg and receiver.url in cfg
    assert model.fsck(quick=True).errors == []
    assert model.validate().ok
    state = json.loads((model.root / "hooks" / "ci.json").read_bytes())
    assert state["seq"] == model.log()[-1].seq


def test_the_verifier_in_docs_hooks_md_accepts_deliveries_and_refuses_forgeries(model, receiver):
    doc = (Path(__file__).parents[2] / "docs" / "hooks.md").read_text()
    code = doc.split("### Verifying a delivery")[1].split("```python")[1].split("```")[0]
    scope: dict[str, object] = {}
    exec(code, scope)
    verify_doc = scope["verify"]
    model.hook_add(receiver.url, name="ci", secret_env="HOOK_SECRET")
    model.promote("m@1.1.0", "production")
    (r,) = receiver.received
    assert verify_doc(SECRET.encode(), r.headers, r.body)
    assert not verify_doc(b"wrong", r.headers, r.body)
    assert not verify_doc(SECRET.encode(), r.headers, r.body.replace(b"1.1.0", b"1.2.0"))
    assert not verify_doc(SECRET.encode(), r.headers, r.body, tolerance=-1)  # a replay, later
