"""`mreg release ...` end to end, as real subprocesses against a real store."""

from __future__ import annotations

import yaml

from modelreg.fsutil import atomic_write
from modelreg.store import StoreConfig
from tests.conftest import snapshot


def ok(res):
    assert res.returncode == 0, res
    assert "Traceback" not in res.stderr, res
    return res


def one_line_error(res, code: int) -> str:
    assert res.returncode == code, res
    assert "Traceback" not in res.stderr, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mreg: error: "), res
    return lines[0]


def test_a_release_from_start_to_promote(model, run_mreg):
    out = ok(
        run_mreg(
            "release", "start", "m", "--canary", "1.1.0", "--steps", "shadow,1,5,50",
            "--rule", "testers: user_id in qa-1,qa-2 -> canary", "--rule", "region=cn-north -> 10%",
            "--reason", "new features", "--json",
        )
    ).json()  # fmt: skip
    st = out["status"]
    assert (out["action"], out["changed"], out["previous_state"]) == ("start", True, "none")
    assert (st["state"], st["shadow"], st["generation"], st["release"]) == (
        "progressing",
        True,
        1,
        1,
    )
    assert st["baseline"]["version"] == "1.0.0" and st["canary"]["version"] == "1.1.0"
    assert [r["text"] for r in st["rules"]] == [
        "testers: user_id in qa-1,qa-2 -> canary",
        "region=cn-north -> 10%",
    ]

    st = ok(run_mreg("release", "step", "m", "--json")).json()["status"]
    assert (st["shadow"], st["canary"]["weight"], st["baseline"]["weight"]) == (False, 1, 99)
    st = ok(run_mreg("release", "status", "m", "--json")).json()
    assert st["steps"] == {"plan": ["shadow", 1, 5, 50], "done": ["shadow", 1], "next": 5}
    assert st["routing"][0].startswith("1. testers: user_id in qa-1,qa-2 -> canary")
    assert st["routing"][2].startswith("then: 1% to the canary 1.1.0")
    assert [c["action"] for c in st["last_changes"]] == ["start", "step"]

    human = ok(run_mreg("release", "status", "m")).stdout
    assert "Routing (first match wins)" in human
    assert "1. testers: user_id in qa-1,qa-2 -> canary" in human
    assert "then: 1% to the canary 1.1.0" in human

    ok(run_mreg("release", "pause", "m", "-r", "checking a spike"))
    before = snapshot(model.root)
    err = one_line_error(run_mreg("release", "step", "m"), 1)
    assert "paused" in err and "resume" in err
    err = one_line_error(run_mreg("release", "pause", "m"), 1)
    assert "already paused" in err
    assert snapshot(model.root) == before

    ok(run_mreg("release", "resume", "m"))
    st = ok(run_mreg("release", "set", "m", "--weight", "0.25%", "--no-rules", "--json")).json()[
        "status"
    ]
    assert (st["canary"]["weight"], st["rules"]) == (0.25, [])

    out = ok(run_mreg("release", "promote", "m", "--json")).json()
    assert out["promotion"]["version"] == "1.1.0" and out["status"]["state"] == "promoted"
    assert model.resolve("m@production").version == "1.1.0"
    err = one_line_error(run_mreg("release", "abort", "m"), 1)
    assert "ended" in err and "mreg rollback m" in err

    events = ok(run_mreg("release", "history", "m", "--json")).json()
    assert [e["action"] for e in events] == ["start", "step", "pause", "resume", "set", "promote"]
    assert events[2]["reason"] == "checking a spike"
    assert "m release history" in ok(run_mreg("release", "history", "m")).stdout
    log = [e.action for e in model.log("m")]
    assert log[-7:] == [
        "release.start", "release.step", "release.pause", "release.resume", "release.set",
        "promote", "release.promote",
    ]  # fmt: skip
    assert ok(run_mreg("verify", "--json")).json()["ok"]


def test_refusals_and_usage_errors(model, run_mreg):
    err = one_line_error(run_mreg("release", "step", "m"), 1)
    assert "no release" in err and "mreg release start m" in err
    assert one_line_error(
        run_mreg("release", "start", "m", "--canary", "1.1.0", "--rule", "region=eu"), 2
    )
    assert one_line_error(
        run_mreg("release", "start", "m", "--canary", "1.1.0", "--weight", "150"), 2
    )
    assert one_line_error(run_mreg("release", "start", "nope", "--canary", "1.1.0"), 2)
    assert one_line_error(run_mreg("release", "start", "m", "--canary", "1.0.0"), 2)
    st = ok(run_mreg("release", "status", "m", "--json")).json()
    assert st == {"model": "m", "state": "none", "production": "1.0.0"}
    assert "no release" in ok(run_mreg("release", "status", "m")).stdout


def test_promote_through_a_failing_gate_and_abort(model, run_mreg):
    cfg = StoreConfig(gates={"production": ("test.f1 >= 0.99",)})
    atomic_write(model.root / "config.yaml", yaml.safe_dump(cfg.to_dict()).encode())
    ok(run_mreg("release", "start", "m", "--canary", "1.2.0", "--weight", "5"))
    err = one_line_error(run_mreg("release", "promote", "m"), 1)
    assert "test.f1 >= 0.99" in err
    st = ok(run_mreg("release", "abort", "m", "--reason", "gate", "--json")).json()["status"]
    assert (st["state"], st["canary"]["weight"], st["baseline"]["weight"]) == ("aborted", 0, 100)
    assert model.resolve("m@production").version == "1.0.0"


def test_help_lists_every_release_command(run_mreg):
    out = ok(run_mreg("release", "--help")).stdout
    for cmd in ("start", "set", "step", "pause", "resume", "promote", "abort", "status", "history"):
        assert cmd in out
    assert "--stick-by" in ok(run_mreg("release", "start", "--help")).stdout


# -- issue 14 ---------------------------------------------------------------------------------


def test_set_changes_the_checks_of_a_live_release(model, run_mreg, tmp_path):
    ok(run_mreg("release", "start", "m", "--canary", "1.1.0", "--check", "error_rate < 5%"))
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks: ['p99: latency.p99 <= 1.5x baseline']\npolicy: {passes: 4}\n")
    out = ok(run_mreg("release", "set", "m", "--check", "errors: error_rate <= baseline + 1pt",
                      "--checks-file", str(checks), "-r", "too strict", "--json")).json()  # fmt: skip
    assert out["changed"] and out["status"]["generation"] == 2
    analysis = out["status"]["analysis"]
    assert [a.get("name") for a in analysis] == ["errors", "p99", None]
    assert analysis[-1]["policy"]["passes"] == 4
    last = out["status"]["last_changes"][-1]
    assert last["details"]["previous_checks"] == ["error_rate < 5%"]
    assert last["details"]["checks"] == [
        "errors: error_rate <= baseline + 1pt", "p99: latency.p99 <= 1.5x baseline",
    ]  # fmt: skip
    assert model.log("m")[-1].details["checks"] == last["details"]["checks"]

    before = snapshot(model.root)
    again = ok(run_mreg("release", "set", "m", "--check", "errors: error_rate <= baseline + 1pt",
                        "--checks-file", str(checks)))  # fmt: skip
    assert "unchanged" in again.stdout
    assert "check 1" in one_line_error(run_mreg("release", "set", "m", "--check", "p99 <= soon"), 2)
    err = one_line_error(
        run_mreg("release", "set", "m", "--no-checks", "--check", "error_rate < 1%"), 2
    )
    assert "--no-checks" in err
    assert "no such file" in one_line_error(
        run_mreg("release", "set", "m", "--checks-file", str(tmp_path / "nope.yaml")), 2
    )
    assert snapshot(model.root) == before
    cleared = ok(run_mreg("release", "set", "m", "--no-checks", "--json")).json()["status"]
    assert cleared["analysis"] == [analysis[-1]]  # the default checks again, the policy kept


def test_analyze_an_inconclusive_release_is_a_result_not_an_error(model, run_mreg):
    ok(run_mreg("release", "start", "m", "--canary", "1.1.0"))
    res = run_mreg("release", "analyze", "m")
    assert res.returncode == 3, res
    assert res.stderr == ""
    assert "m release 1: inconclusive: " in res.stdout and "needs 500 requests" in res.stdout
    js = run_mreg("release", "analyze", "m", "--json")
    assert js.returncode == 3 and js.stderr == "" and js.json()["verdict"] == "inconclusive"


def test_analyze_an_ended_release_says_it_ended(model, run_mreg):
    ok(run_mreg("release", "start", "m", "--canary", "1.1.0"))
    ok(run_mreg("release", "abort", "m", "-r", "errors"))
    when = model.log("m")[-1].time
    err = one_line_error(run_mreg("release", "analyze", "m"), 2)
    assert err == f"mreg: error: release 1 of m ended (aborted at {when}); nothing to analyze"
    js = run_mreg("release", "analyze", "m", "--json")
    assert js.returncode == 2 and "nothing to analyze" in js.stderr and js.stdout == ""


def test_start_prints_rules_as_written(model, run_mreg):
    out = ok(run_mreg("release", "start", "m", "--canary", "1.1.0",
                      "--rule", "eu-ios: region=eu and device=ios -> canary",
                      "--rule", "region in eu,us and user_id in b,a -> 10%"))  # fmt: skip
    assert "1. eu-ios: region=eu and device=ios -> canary" in out.stdout
    assert "2. region in eu,us and user_id in b,a -> 10%" in out.stdout
    status = ok(run_mreg("release", "status", "m")).stdout
    assert "1. eu-ios: region=eu and device=ios -> canary" in status
    events = ok(run_mreg("release", "history", "m", "--json")).json()
    assert events[0]["details"]["rules"] == [
        "eu-ios: region=eu and device=ios -> canary", "region in eu,us and user_id in b,a -> 10%",
    ]  # fmt: skip
