"""The policy that travels (issue 19): gates, trusted keys and movers in `policy.yaml`."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import GateFailed, InvalidInput, TransitionRefused
from tests.conftest import snapshot
from tests.signing.test_sign import make_key


def version(store: Store, tmp_path: Path, v: str, f1: float, author: str | None = None) -> None:
    src = tmp_path / f"src-{store.root.parent.name}-{v}"
    src.mkdir()
    (src / "model.bin").write_bytes(f"weights {v}".encode())
    store.register("m", [src], version=v, metrics={"test": {"f1": f1}}, detect_code=False,
                   author=author)  # fmt: skip


def test_gates_in_the_policy_are_enforced_and_audited(store: Store, run_mreg, tmp_path: Path):
    version(store, tmp_path, "1.0.0", 0.95)
    version(store, tmp_path, "2.0.0", 0.80)
    r = run_mreg("policy", "gate", "production", "test.f1 >= 0.9", "--json")
    assert r.ok, r.stderr
    assert r.json()["gates"] == {"production": ["test.f1 >= 0.9"]} and r.json()["generation"] == 1
    assert run_mreg("promote", "m@1.0.0", "--to", "production").ok
    r = run_mreg("promote", "m@2.0.0", "--to", "production")
    assert r.returncode == 1 and "test.f1 >= 0.9" in r.stderr
    # config.yaml gates still apply, as local additions
    assert run_mreg("promote", "m@2.0.0", "--to", "staging").ok
    (entry,) = [e for e in run_mreg("log", "--json").json() if e["action"] == "policy.gate"]
    assert entry["details"]["generation"] == 1 and entry["details"]["alias"] == "production"
    # the same gate again: nothing changes, nothing recorded
    before = snapshot(store.root)
    assert run_mreg("policy", "gate", "production", "test.f1 >= 0.9").ok
    assert snapshot(store.root) == before
    # malformed input: exit 2, nothing written
    for args in (("gate", "production", "test.f1 >="), ("gate", "production", "signed-by: ci"),
                 ("gate", "Bad Alias!", "test.f1 > 0"), ("trust", "ci", str(tmp_path / "no.pem")),
                 ("allow", "production"), ("trust", "bad name!", str(tmp_path))):  # fmt: skip
        r = run_mreg("policy", *args)
        assert r.returncode == 2, (args, r.stderr)
    assert snapshot(store.root) == before
    shown = run_mreg("policy", "show", "--json").json()
    assert [h["generation"] for h in shown["history"]] == [1]


def test_signed_by_gates_and_movers(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    ci, ci_pub = make_key(tmp_path, "ci")
    other, _ = make_key(tmp_path, "other")
    version(store, tmp_path, "1.0.0", 0.95)
    store.policy_trust("ci", ci_pub)
    store.policy_gate("production", ["signed-by: ci"])
    with pytest.raises(GateFailed, match="not signed by ci"):
        store.promote("m@1.0.0", "production")
    store.sign("m@1.0.0", key=other)
    with pytest.raises(GateFailed, match="not signed by ci"):
        store.promote("m@1.0.0", "production")
    store.sign("m@1.0.0", key=ci)
    store.promote("m@1.0.0", "production")
    # a key a gate needs cannot be dropped
    with pytest.raises(InvalidInput, match="required by the gates of production"):
        store.policy_trust("ci", remove=True)
    # movers: only CI may move production
    store.policy_allow("production", ["CI <ci@example.com>"])
    version(store, tmp_path, "1.1.0", 0.96)
    store.sign("m@1.1.0", key=ci)
    with pytest.raises(TransitionRefused, match="may not move production"):
        store.promote("m@1.1.0", "production", actor="Mallory <m@example.com>")
    store.promote("m@1.1.0", "production", actor="CI <ci@example.com>")
    with pytest.raises(TransitionRefused, match="may not move production"):
        store.rollback("m", "production", actor="Mallory <m@example.com>")
    assert store.info("m@production").version.version == "1.1.0"
    assert store.verify(signatures=True).signatures  # the policy's keys are trusted by verify
    assert all(c.status != "invalid" for c in store.verify(signatures=True).signatures or ())
    assert [c.signer for c in store.verify(signatures=True).signatures or ()].count("ci") == 2
