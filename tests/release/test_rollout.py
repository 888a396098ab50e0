"""The rollout manifest and the state machine (pure)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.errors import InvalidInput, TransitionRefused
from modelreg.release.rollout import (
    ACTIONS,
    DEFAULT_STEPS,
    SHADOW,
    STATES,
    TRANSITIONS,
    Event,
    Rollout,
    Side,
    parse_steps,
    rule_as_written,
    transition,
)
from modelreg.release.rules import parse_rule

DOC = Path(__file__).resolve().parents[2] / "docs" / "release.md"
A, B = "a" * 64, "b" * 64


def rollout(**kw) -> Rollout:
    base = dict(
        model="m",
        release=1,
        state="progressing",
        baseline=Side("1.0.0", A),
        canary=Side("1.1.0", B),
        weight=500,
        seed="5bd083fc3cca355d3919f43df0a2c630",
        rules=(parse_rule("t: user_id in qa-1 -> canary"), parse_rule("region=cn -> 10%")),
        steps=(SHADOW, *DEFAULT_STEPS),
        analysis=({"metric": "error_rate", "max": 0.01},),
        generation=3,
        history=(
            Event(
                1,
                3,
                "set",
                "alice",
                "2026-11-25T10:00:00Z",
                "progressing",
                500,
                False,
                "ok",
                {"x": 1},
            ),
        ),
    )
    base.update(kw)
    return Rollout(**base)


ALLOWED = {
    ("none", "start"): "progressing",
    ("promoted", "start"): "progressing",
    ("aborted", "start"): "progressing",
    ("progressing", "set"): "progressing",
    ("progressing", "step"): "progressing",
    ("progressing", "pause"): "paused",
    ("progressing", "promote"): "promoted",
    ("progressing", "abort"): "aborted",
    ("paused", "resume"): "progressing",
    ("paused", "promote"): "promoted",
    ("paused", "abort"): "aborted",
}


def test_the_transition_table_is_exactly_the_documented_one():
    assert TRANSITIONS == ALLOWED
    # and docs/release.md shows the same table
    text = DOC.read_text()
    header = "| from \\ action | " + " | ".join(ACTIONS) + " |"
    assert header in text
    for state in STATES:
        row = re.search(rf"^\| {state} \|(.*)\|$", text, re.M)
        assert row, state
        cells = [c.strip() for c in row.group(1).split("|")]
        expected = [ALLOWED.get((state, a), "–") for a in ACTIONS]
        assert cells == expected, state


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_allowed_or_refused_with_a_reason(state, action):
    if (state, action) in ALLOWED:
        assert transition("m", state, action) == ALLOWED[(state, action)]
        return
    with pytest.raises(TransitionRefused) as exc:
        transition("m", state, action)
    msg = str(exc.value)
    assert msg.startswith(f"cannot {action}")
    assert "m" in msg
    reasons = ("no release", "already", "ended", "paused", "not paused")
    assert any(r in msg for r in reasons), msg
    assert TransitionRefused.exit_code == 1


def test_unknown_action_is_invalid_input():
    with pytest.raises(InvalidInput):
        transition("m", "progressing", "explode")


def test_manifest_round_trip_and_header():
    r = rollout()
    doc = r.to_dict()
    assert (doc["schema"], doc["kind"]) == ("mreg/v1", "Rollout")
    assert doc["weight"] == 5 and doc["steps"] == ["shadow", 1, 5, 10, 25, 50, 100]
    assert Rollout.from_dict(doc) == r
    assert Rollout.from_dict(rollout(weight=1, shadow=True).to_dict()).weight == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema", "mreg/v2"),
        ("kind", "Alias"),
        ("state", "none"),
        ("state", "exploded"),
        ("weight", 100.5),
        ("weight", 0.001),
        ("seed", "xyz"),
        ("baseline", {"version": "1.0.0", "id": "short"}),
        ("canary", {"version": "1.0.0", "id": A}),  # same as the baseline
        ("canary", {"version": "1.1", "id": B}),
        ("rules", [{"users": ["a"]}]),
        ("rules", "user_id in a -> canary"),
        ("steps", [5, 1]),
        ("steps", [1, "shadow"]),
        ("steps", []),
        ("stick_by", "bad key"),
        ("shadow", "yes"),
        ("generation", 0),
        ("model", "../etc"),
        ("history", [{"action": "fly"}]),
        ("analysis", "none"),
    ],
)
def test_invalid_manifests_are_refused(field, value):
    doc = copy.deepcopy(rollout().to_dict())
    doc[field] = value
    with pytest.raises(InvalidInput):
        Rollout.from_dict(doc)


@pytest.mark.parametrize(
    "missing", ["state", "baseline", "canary", "weight", "seed", "release", "steps"]
)
def test_missing_fields_are_refused(missing):
    doc = rollout().to_dict()
    del doc[missing]
    with pytest.raises(InvalidInput):
        Rollout.from_dict(doc)


def test_not_a_mapping():
    for doc in (None, [], "text", 3):
        with pytest.raises(InvalidInput):
            Rollout.from_dict(doc)


def test_step_plan_parsing():
    assert parse_steps("1,5,10,25,50,100") == DEFAULT_STEPS
    assert parse_steps("shadow, 0.5, 2") == (SHADOW, 50, 200)
    assert parse_steps([1, 5]) == (100, 500)
    for bad in ("", "shadow", "5,1", "0,5", "1,1", "1,shadow", "1,x", "101"):
        with pytest.raises(InvalidInput):
            parse_steps(bad)


def test_steps_done_and_next():
    r = rollout(weight=500)
    assert r.steps_done() == (SHADOW, 100, 500) and r.next_step() == 1000
    shadow = rollout(weight=0, shadow=True)
    assert shadow.steps_done() == (SHADOW,) and shadow.next_step() == 100
    hand_set = rollout(weight=700)  # set off-plan: next is the first plan weight above it
    assert hand_set.next_step() == 1000
    assert rollout(weight=10000).next_step() is None
    assert rollout(state="promoted", weight=10000).steps_done() == r.steps
    assert rollout(state="aborted").next_step() is None


def test_canary_share_per_state():
    assert rollout().canary_share == 500
    assert rollout(state="paused").canary_share == 500
    assert rollout(shadow=True, weight=0).canary_share == 0
    assert rollout(state="aborted", weight=0).canary_share == 0
    assert rollout(state="promoted", weight=10000).canary_share == 10000


def test_routing_order_lists_rules_then_the_weight():
    lines = rollout().routing_order()
    assert lines[0].startswith("1. t: user_id in qa-1 -> canary")
    assert lines[1].startswith("2. region=cn -> 10%")
    assert lines[2].startswith("then: 5% to the canary 1.1.0")
    assert "shadows" in rollout(shadow=True, weight=0).routing_order()[0]
    assert "aborted" in rollout(state="aborted").routing_order()[0]


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("region=eu and device=ios -> canary", "region=eu and device=ios -> canary"),
        ("eu: region in eu,us and user_id in b,a -> 10%", "eu: region in eu,us and user_id in b,a -> 10%"),
        ("  app_version ^= 2.  and  device = ios ->  baseline", "app_version^=2. and device=ios -> baseline"),
        ("user_id=qa-1 -> canary", "user_id in qa-1 -> canary"),
        ("x: path=a->b and region=eu -> canary", "x: path=a->b and region=eu -> canary"),
    ],
)  # fmt: skip
def test_rules_print_with_their_conditions_in_the_order_written(written, printed):
    """`Rule` sorts conditions (the manifest stores them as a sorted mapping); the text keeps
    the written order and parses back to the same rule."""
    assert rule_as_written(written) == printed
    assert parse_rule(printed) == parse_rule(written)
    with pytest.raises(InvalidInput):
        rule_as_written("region=eu")


def test_rule_texts_come_from_the_change_that_set_the_rules():
    written = "region=eu and device=ios -> canary"
    rule = parse_rule(written)
    assert rule.text() == "device=ios and region=eu -> canary"  # the canonical order
    start = Event(1, 1, "start", "a", "t", "progressing", 500, details={"rules": [written]})
    r = rollout(rules=(rule,), history=(start,))
    assert r.rule_texts() == (written,)
    assert r.routing_order()[0] == f"1. {written}  (pinned to the canary)"
    assert Rollout.from_dict(r.to_dict()).rule_texts() == (written,)  # through the file
    # a text that no longer matches the rule (a hand-edited manifest) is not trusted
    edited = rollout(rules=(parse_rule("region=us -> canary"),), history=(start,))
    assert edited.rule_texts() == ("region=us -> canary",)
    # a later release's rules are its own
    later = rollout(release=2, rules=(rule,), history=(start,))
    assert later.rule_texts() == ("device=ios and region=eu -> canary",)


@given(
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from(["progressing", "paused", "promoted", "aborted"]),
    st.integers(1, 10**6),
)
def test_manifest_round_trip_property(weight, shadow, state, generation):
    r = rollout(
        weight=weight,
        shadow=shadow,
        state=state,
        generation=generation,
        production_generation=generation,
    )
    assert Rollout.from_dict(r.to_dict()) == r
