"""Routing rules: the text grammar, the manifest form, and the compiled matchers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.errors import InvalidInput
from modelreg.release.rules import Match, Rule, compile_rule, parse_rule, rules_from_list


def test_user_list_rule():
    r = parse_rule("testers: user_id in qa-1,qa-2 -> canary")
    assert (r.name, r.users, r.when, r.variant, r.weight) == (
        "testers",
        ("qa-1", "qa-2"),
        (),
        "canary",
        None,
    )
    check = compile_rule(r)
    assert check("qa-1", None)
    assert check(None, {"user_id": "qa-2"})  # the user ID may also come as an attribute
    assert not check("qa-3", {"user_id": "qa-1"})  # the argument wins
    assert not check(None, None)
    assert parse_rule("user_id=qa-1 -> baseline").users == ("qa-1",)


def test_equality_rule():
    r = parse_rule("region=eu -> baseline")
    assert r.when == (Match("region", "eq", ("eu",)),)
    check = compile_rule(r)
    assert check("u", {"region": "eu"})
    assert not check("u", {"region": "eu-west"})
    assert not check("u", {})
    assert not check("u", None)


def test_set_membership_rule():
    r = parse_rule("device in ios, android -> canary")
    assert r.when == (Match("device", "in", ("ios", "android")),)
    check = compile_rule(r)
    assert check(None, {"device": "android"})
    assert not check(None, {"device": "web"})


def test_prefix_rule():
    check = compile_rule(parse_rule("app_version^=2. -> canary"))
    assert check(None, {"app_version": "2.13.1"})
    assert not check(None, {"app_version": "12.0"})
    assert not check(None, {"app_version": None})
    user_prefix = compile_rule(parse_rule("user_id^=staff- -> canary"))
    assert user_prefix("staff-7", None) and not user_prefix("u-7", None)


def test_percentage_rule_and_conjunction():
    r = parse_rule("cn: region=cn-north and device in ios,android -> 10%")
    assert r.weight == 1000 and r.variant is None and r.name == "cn"
    check = compile_rule(r)
    assert check("u", {"region": "cn-north", "device": "ios"})
    assert not check("u", {"region": "cn-north", "device": "web"})
    assert not check("u", {"device": "ios"})


def test_non_string_attribute_values_compare_as_strings():
    assert compile_rule(parse_rule("app_version=2 -> canary"))(None, {"app_version": 2})
    assert compile_rule(parse_rule("beta in 1,2 -> canary"))(None, {"beta": 1})
    assert compile_rule(parse_rule("user_id in 42 -> canary"))(42, None)
    # unhashable or odd values never raise
    assert not compile_rule(parse_rule("k in a,b -> canary"))(None, {"k": ["a"]})
    assert not compile_rule(parse_rule("k^=a -> canary"))(None, {"k": object()})


@pytest.mark.parametrize(
    "text",
    [
        "region=eu",  # no outcome
        "-> canary",  # no condition
        "region=eu -> sideways",
        "region=eu -> 101%",
        "region=eu -> 0.001%",
        "region= -> canary",
        "Region Name=eu -> canary",
        "region=eu and region=us -> canary",  # one test per attribute
        "user_id in a,,b -> canary",
        "user_id in a and user_id=b -> canary",
        "k=\x01 -> canary",
    ],
)
def test_malformed_rules_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_rule(text)


@pytest.mark.parametrize(
    "doc",
    [
        {"variant": "canary"},  # no condition
        {"users": ["a"]},  # no outcome
        {"users": ["a"], "variant": "canary", "weight": 5},
        {"users": "a", "variant": "canary"},
        {"when": {"region": {"regex": ".*"}}, "variant": "canary"},
        {"when": {"region": {"prefix": ["a", "b"]}}, "variant": "canary"},
        {"when": ["region"], "variant": "canary"},
        {"users": ["a"], "variant": "canary", "extra": 1},
        "not a rule",
        ["a list"],
    ],
)
def test_malformed_rule_documents_are_refused(doc):
    with pytest.raises(InvalidInput):
        rules_from_list([doc])


def test_manifest_form_and_text_form_agree():
    doc = {
        "name": "eu-mobile",
        "when": {
            "region": "eu",
            "device": {"in": ["ios", "android"]},
            "app_version": {"prefix": "2."},
        },
        "weight": 12.5,
    }
    r = Rule.from_dict(doc)
    assert parse_rule(r.text()) == r
    assert r.text() == "eu-mobile: app_version^=2. and device in ios,android and region=eu -> 12.5%"
    assert Rule.from_dict(r.to_dict()) == r


_value = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=",>"),
    min_size=1,
    max_size=8,
).filter(lambda s: s == s.strip() and " and " not in s and "->" not in s)
_key = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "user_id")


@st.composite
def rules(draw):
    users = tuple(dict.fromkeys(draw(st.lists(_value, max_size=3))))
    keys = draw(st.lists(_key, unique=True, max_size=3, min_size=0 if users else 1))
    when = []
    for k in sorted(keys):
        op = draw(st.sampled_from(["eq", "in", "prefix"]))
        values = (
            tuple(dict.fromkeys(draw(st.lists(_value, min_size=1, max_size=3))))
            if op == "in"
            else (draw(_value),)
        )
        when.append(Match(k, op, values))
    if draw(st.booleans()):
        return Rule(users, tuple(when), draw(st.sampled_from(["canary", "baseline"])), None)
    return Rule(users, tuple(when), None, draw(st.integers(0, 10_000)))


@given(rules())
def test_rules_round_trip_through_text_and_manifest(rule):
    assert parse_rule(rule.text()) == rule
    assert Rule.from_dict(rule.to_dict()) == rule
    assert rules_from_list([rule.to_dict(), rule.text()]) == (rule, rule)
