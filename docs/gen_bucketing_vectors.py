"""Write the routing test vectors, tests/release/bucketing_vectors.json, from the Python router.

    python docs/gen_bucketing_vectors.py            # rewrite the file
    python docs/gen_bucketing_vectors.py --search   # find keys in given buckets (see EDGE)

Every routing vector is routed by the real `modelreg.serving.Router` on a temporary store
(`ops.start` with the vector's seed, weight, stickiness key, shadow flag and rules), so the
file says what serving does, not what this script thinks it does. The expected key, its
bytes and its bucket are computed here as docs/release.md describes them, and checked
against the router's decision. Weights and rules are parsed by `parse_weight` and
`rules_from_list`. tests/release/test_bucketing.py fails when the file differs from what
this script writes, and runs tests/release/bucketing.mjs (a JavaScript implementation
written from the docs) over every vector.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from modelreg import Store
from modelreg.errors import InvalidInput
from modelreg.release import ops
from modelreg.release.bucketing import BUCKETS, bucket, parse_weight, threshold
from modelreg.release.rules import USER_ID, Rule, rules_from_list
from modelreg.serving import Router

OUT = Path(__file__).resolve().parents[1] / "tests" / "release" / "bucketing_vectors.json"
ACTOR = "gen_bucketing_vectors <vectors@example.invalid>"

S0 = "00000000000000000000000000000000"
SA = "5bd083fc3cca355d3919f43df0a2c630"  # the seed of the boundary keys below
SB = "9f2c4e1ab37d5608c1e2f3a4b5c6d7e8"
SF = "ffffffffffffffffffffffffffffffff"

EDGE = {
    0: "edge-820585",
    99: "edge-547792",
    100: "edge-2193911",
    699: "edge-1326074",
    700: "edge-2809913",
    5699: "edge-237220",
    5700: "edge-492631",
    100399: "edge-1154180",
    100400: "edge-1728264",
    101299: "edge-924881",
    101300: "edge-409725",
    123399: "edge-355760",
    123400: "edge-659649",
    500099: "edge-2586910",
    500100: "edge-803266",
    999899: "edge-1746260",
    999900: "edge-2149972",
    999999: "edge-2011778",
}
"""Keys in given buckets under seed SA: the first `edge-N` in each (`--search` finds them).

The thresholds they straddle: 0.01% (100), 0.07% (700: 0.07 x 10,000 is 700.0000000000001 in
floating point), 0.57% (5,700: 5699.999999999999), 10.04% and 10.13% (both inexact too),
12.34%, 50.01%, 99.99% and 100%.
"""


def search(seed: str = SA, wanted: frozenset[int] = frozenset(EDGE)) -> dict[int, str]:
    """The first key `edge-N` in each wanted bucket under `seed` (a few million hashes)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(wanted):
        key = f"edge-{i}"
        b = bucket(seed, key)
        if b in wanted and b not in found:
            found[b] = key
        i += 1
    return dict(sorted(found.items()))


# -- the cases ----------------------------------------------------------------------------------

R_MAPPINGS: list[Any] = [
    {"name": "testers", "users": ["qa-1", "qa-2", 1001], "variant": "canary"},
    {"name": "hold-cn", "when": {"region": "cn-north"}, "variant": "baseline"},
    {"name": "mobile", "when": {"device": {"in": ["ios", "android"]}}, "weight": 10.04},
    {"when": {"app_version": {"prefix": "2."}}, "variant": "canary"},
    {"name": "staff", "when": {"user_id": {"prefix": "staff-"}}, "variant": "baseline"},
    {"name": "eu-beta", "when": {"region": "eu", "tier": {"in": "beta"}}, "weight": "50.01%"},
    {"name": None, "when": {"build": 7}, "variant": "canary"},
    {"name": "everyone-here", "when": {"plan": "enterprise"}, "weight": 100},
    {"name": "no-one-here", "when": {"plan": "free"}, "weight": 0},
]
R_TEXTS: list[Any] = [
    "testers: user_id in qa-1, qa-2 -> canary",
    "user_id=qa-3 -> baseline",
    "beta: app_version^=2. and device in ios,android -> 12.34%",
    "region=東京 -> canary",
    "city=New York -> baseline",
    "note=a->b -> canary",
    "pilots:\u3000user_id^=pilot-\u0085->\u00a0100%",
    "zero: plan=free -> 0%",
    "region=eu -> canary -> baseline",
]
R_UNICODE: list[Any] = [
    {"name": "e-prefix", "when": {"name": {"prefix": "e"}}, "variant": "canary"},
    {"name": "e-acute", "when": {"name": "é"}, "variant": "baseline"},
    {"name": "woman", "when": {"emoji": {"prefix": "👩"}}, "variant": "canary"},
    {"name": "set", "when": {"emoji": {"in": ["😀", "🇫🇷"]}}, "variant": "baseline"},
]
R_DEVICE: list[Any] = [
    {"name": "testers", "users": ["qa-1"], "variant": "canary"},
    {"name": "eu", "when": {"region": "eu"}, "weight": 0.57},
]
R_GROUP: list[Any] = ["eu: region=eu -> 10.13%"]


def v(name: str, **kw: Any) -> dict[str, Any]:
    """One routing vector: the manifest's fields and the request."""
    case: dict[str, Any] = {
        "name": name,
        "seed": kw.pop("seed", SA),
        "weight": kw.pop("weight", 0),
        "stick_by": kw.pop("stick_by", USER_ID),
        "shadow": kw.pop("shadow", False),
        "rules": kw.pop("rules", []),
        "user_id": kw.pop("user_id", None),
        "attributes": kw.pop("attributes", None),
    }
    if kw:
        raise TypeError(f"unknown fields {sorted(kw)}")
    return case


def routing_cases() -> Iterator[dict[str, Any]]:
    """Every routing vector, grouped by manifest (one release per group)."""
    # boundaries: the bucket exactly at the threshold and the one below it
    for weight, below in [
        (0.01, 99), (0.07, 699), ("0.57%", 5699), (10.04, 100399), ("10.13", 101299),
        (12.34, 123399), ("1.234e1", 123399), ("50.01", 500099), (99.99, 999899),
    ]:  # fmt: skip
        for b in (below, below + 1):
            yield v(f"weight {weight}: bucket {b}", weight=weight, user_id=EDGE[b])
    yield v("weight 0.01: bucket 0", weight=0.01, user_id=EDGE[0])
    yield v("weight 0: bucket 0", weight=0, user_id=EDGE[0])
    yield v("weight 100: bucket 999999", weight=100, user_id=EDGE[999999])
    yield v("weight '100%': bucket 999999", weight="100%", user_id=EDGE[999999])

    # keys: the documented table, text in many scripts, surrogates, odd characters
    for seed, key in [
        (S0, "u-42"), (S0, "u-43"), (SA, "u-42"), (SA, "u-31"), (SA, "u-218"), (SA, "u-0"),
        (SA, "alice@example.com"), (SB, ""), (SB, "用户-7"), (SF, "1234567890"),
    ]:  # fmt: skip
        for weight in (1, 5, 50):
            yield v(f"table: {key!r} at {weight}%", seed=seed, weight=weight, user_id=key)
    for label, key in [
        ("CJK", "日本語のユーザー"),
        ("Hangul", "사용자-12"),
        ("emoji", "😀"),
        ("emoji ZWJ sequence", "👩\u200d💻"),
        ("flag", "🇫🇷"),
        ("precomposed é", "é"),
        ("e + combining acute", "e\u0301"),
        ("precomposed Å", "Å"),
        ("A + combining ring", "A\u030a"),
        ("Bob", "Bob"),
        ("bob", "bob"),
        ("spaces kept", "  padded  "),
        ("colon in key", "a:b"),
        ("NUL in key", "a\u0000b"),
        ("newline", "line\nbreak"),
        ("BOM kept", "\ufeffu-1"),
        ("U+FFFF", "\uffff"),
        ("U+10FFFF", "\U0010ffff"),
        ("long key", "x" * 1000),
        ("lone low surrogate", "\udcff"),
        ("lone high surrogate", "\ud800"),
        ("last surrogate", "\udfff"),
        ("lone high inside", "a\ud83dz"),
        ("lone low first", "\ude00x"),
        ("pair then lone low", "😀\udc00"),
        ("lone high then pair", "\ud83d😀"),
        ("two high surrogates", "\udbff\udbff"),
    ]:
        for seed in (SA, SB):
            yield v(f"key {label}, seed {seed[:4]}", seed=seed, weight=50, user_id=key)
    yield v("empty key", seed=SA, weight=50, user_id="")

    # keys that are not strings (integers only: other types are Python's str())
    for uid in (42, 0, -7, 9007199254740991):
        yield v(f"integer user ID {uid}", seed=SB, weight=50, user_id=uid)

    # which key: user ID, attributes["user_id"], another attribute, none
    yield v("user ID absent: attributes.user_id", weight=0.07,
            attributes={"user_id": EDGE[699]})  # fmt: skip
    yield v("user ID wins over attributes.user_id", weight=0.07, user_id=EDGE[700],
            attributes={"user_id": EDGE[699]})  # fmt: skip
    yield v("empty user ID is a key", weight=0.07, user_id="", attributes={"user_id": EDGE[0]})
    for weight in (0, 100):
        yield v(f"no key at {weight}%", weight=weight)
        yield v(f"null user ID, null attributes.user_id at {weight}%", weight=weight,
                attributes={"user_id": None})  # fmt: skip
    for b in (699, 700):
        yield v(f"stick_by device_id: device bucket {b}", weight=0.07, stick_by="device_id",
                user_id=EDGE[1399 - b], attributes={"device_id": EDGE[b]})  # fmt: skip
    yield v("stick_by device_id: integer device", weight=50, stick_by="device_id",
            seed=SB, attributes={"device_id": 1234567890})  # fmt: skip
    for weight in (0, 100):
        yield v(f"stick_by device_id: no device at {weight}%", weight=weight,
                stick_by="device_id", user_id=EDGE[0])  # fmt: skip
    yield v("stick_by session.id", weight=50, stick_by="session.id", seed=SB,
            attributes={"session.id": "s-1", "user_id": "u-1"})  # fmt: skip

    # rules, mapping form (global weight 0.07%)
    def m(name: str, **kw: Any) -> dict[str, Any]:
        return v(f"mappings: {name}", weight=0.07, rules=R_MAPPINGS, **kw)

    yield m("user list", user_id="qa-1")
    yield m("user list before region", user_id="qa-2", attributes={"region": "cn-north"})
    yield m("user list, integer in the list", user_id="1001")
    yield m("user list, integer user ID", user_id=1001)
    yield m("user list, user ID from attributes", attributes={"user_id": "qa-1"})
    yield m("user list is case-sensitive", user_id="QA-1")
    yield m("pinned baseline beats the weight", user_id=EDGE[0],
            attributes={"region": "cn-north"})  # fmt: skip
    for b in (100399, 100400):
        yield m(f"group 10.04%, bucket {b}", user_id=EDGE[b], attributes={"device": "ios"})
    yield m("group 10.04%, android", user_id=EDGE[100400], attributes={"device": "android"})
    yield m("membership is case-sensitive", user_id=EDGE[699], attributes={"device": "iOS"})
    yield m("prefix", user_id="u-1", attributes={"app_version": "2.1.0"})
    yield m("prefix equal to the value", user_id="u-1", attributes={"app_version": "2."})
    yield m("prefix not at the start", user_id=EDGE[700], attributes={"app_version": "12.0"})
    yield m("prefix on a float attribute", user_id="u-1", attributes={"app_version": 2.5})
    yield m("user_id prefix", user_id="staff-9")
    yield m("user_id prefix from attributes", attributes={"user_id": "staff-1"})
    for b in (500099, 500100):
        yield m(f"two conditions, bucket {b}", user_id=EDGE[b],
                attributes={"region": "eu", "tier": "beta"})  # fmt: skip
    yield m("two conditions, one fails", user_id=EDGE[699],
            attributes={"region": "eu", "tier": "gold"})  # fmt: skip
    yield m("two conditions, one missing", user_id=EDGE[699], attributes={"region": "eu"})
    yield m("integer attribute", user_id=EDGE[700], attributes={"build": 7})
    yield m("integer rule value, string attribute", user_id=EDGE[700], attributes={"build": "7"})
    yield m("no leading zeros", user_id=EDGE[700], attributes={"build": "07"})
    yield m("null attribute", user_id=EDGE[699], attributes={"region": None})
    yield m("no attributes", user_id=EDGE[700])
    yield m("group 100% without a key", attributes={"plan": "enterprise"})
    yield m("group 0% with a key", user_id=EDGE[0], attributes={"plan": "free"})
    yield m("pinned rule without a key", attributes={"region": "cn-north"})

    # rules, text form (global weight 10.13%)
    def t(name: str, **kw: Any) -> dict[str, Any]:
        return v(f"texts: {name}", seed=SA, weight="10.13%", rules=R_TEXTS, **kw)

    yield t("user list", user_id="qa-2")
    yield t("user_id=", user_id="qa-3")
    for b in (123399, 123400):
        yield t(f"group 12.34%, bucket {b}", user_id=EDGE[b],
                attributes={"app_version": "2.0", "device": "android"})  # fmt: skip
    yield t("and: one fails", user_id=EDGE[101299],
            attributes={"app_version": "2.0", "device": "web"})  # fmt: skip
    yield t("CJK value", user_id=EDGE[101300], attributes={"region": "東京"})
    yield t("value with a space", user_id=EDGE[101300], attributes={"city": "New York"})
    yield t("spaces count", user_id=EDGE[101300], attributes={"city": "New  York"})
    yield t("value with ->", user_id=EDGE[101300], attributes={"note": "a->b"})
    yield t("Unicode whitespace", user_id="pilot-7")
    yield t("only the last -> splits", user_id=EDGE[101299],
            attributes={"region": "eu -> canary"})  # fmt: skip
    yield t("not the value before the last ->", user_id=EDGE[101299],
            attributes={"region": "eu"})  # fmt: skip
    yield t("group 0% without a key", attributes={"plan": "free"})
    for b in (101299, 101300):
        yield t(f"no rule, bucket {b}", user_id=EDGE[b])

    # Unicode in rule values: code points, no normalisation
    for label, attrs in [
        ("prefix e, e + combining acute", {"name": "e\u0301"}),
        ("prefix e, precomposed é", {"name": "é"}),
        ("prefix 👩 of a ZWJ sequence", {"emoji": "👩\u200d💻"}),
        ("in a set", {"emoji": "😀"}),
        ("a lone surrogate in the request", {"emoji": "\ud83d"}),
        ("not in the set: the flag's first half", {"emoji": "🇫"}),
    ]:
        yield v(f"unicode: {label}", weight=50, rules=R_UNICODE, user_id="u-42",
                attributes=attrs)  # fmt: skip

    # a percentage rule with another stickiness key
    for b in (5699, 5700):
        yield v(f"stick_by device_id, group 0.57%, device bucket {b}", weight=0,
                stick_by="device_id", rules=R_DEVICE, user_id=EDGE[11399 - b],
                attributes={"region": "eu", "device_id": EDGE[b]})  # fmt: skip
    yield v("stick_by device_id, user list without a device", weight=0, stick_by="device_id",
            rules=R_DEVICE, user_id="qa-1")  # fmt: skip

    # the group's own threshold, the global one's bucket: no per-rule salt
    for b in (101299, 101300):
        for attrs in ({"region": "eu"}, {"region": "us"}):
            yield v(f"group 10.13% in a 50% release, bucket {b}, {attrs['region']}",
                    weight=50, rules=R_GROUP, user_id=EDGE[b], attributes=attrs)  # fmt: skip

    # shadow mode: the baseline answers, rules do not apply
    shadowed: list[tuple[str | None, dict[str, str] | None]] = [
        ("qa-1", None), (EDGE[0], {"region": "eu"}), (None, None),
    ]  # fmt: skip
    for who, region in shadowed:
        yield v(f"shadow: {who}", weight=0, shadow=True, rules=R_MAPPINGS, user_id=who,
                attributes=region)  # fmt: skip


WEIGHTS: list[Any] = [
    0, 5, 100, 0.01, 0.07, 0.57, 10.04, 12.5, 99.99, 100.0, -0.0,
    "7.5%", " 0.07 ", "0.07 %", "1e1", "1.234e1", "1E-2", "+5", "-0", "-0.00", ".5", "5.",
    "100.00", "7.50", "0.010", "\u00a012.5%\u3000", "\u0085\u001c5\u2028",
    -1, 100.01, 0.005, 5.000000001, 0.30000000000000004, 1e-300, 1e30, -0.01,
    "5.000000001", "0.285", "5.0000000000000001", "100.001", "-0.01", "1_0", "٥", "nan",
    "inf", "Infinity", "", "%", "5%%", "0x10", "1e999", "1e-999", "12.5 percent", "1,5",
    "e5", "5e", ". 5", "+-5", "\ufeff5", True, False, None, [5], {"weight": 5},
]  # fmt: skip

RULES: list[Any] = [
    *R_MAPPINGS, *R_TEXTS, *R_UNICODE, *R_DEVICE, *R_GROUP,
    {"name": None, "users": ["a", "a", 7, 2.5], "variant": "canary"},
    {"name": "", "when": {"device": {"in": "ios"}}, "weight": "12.5%"},
    {"when": {"b": "1", "a": {"prefix": "x"}, "user_id": "u"}, "users": ["v"],
     "variant": "baseline"},
    {"name": 5, "users": ["a"], "variant": "canary"},
    "7: a=x and b in p, q ,p and user_id^=u- -> 0.01%",
    "  region = eu  ->  baseline  ",
    "x=1 -> 10 %",
    "a=x and a2^=y and a3 in z -> canary",
    "named: region=eu -> canary",
    "region=a: b -> canary",
    "region=eu AND device=ios -> canary",
    "region=\ufeffeu\ufeff -> canary",
    "region=eu\u0085and\u001cdevice=ios -> canary",
    # refused
    "region=eu", "region=eu -> ", "region=eu -> Canary", "region=eu -> 10", "-> canary",
    "region=eu -> 0.005%", "region=eu -> 101%", " -> canary", "team=R and D -> canary",
    "user_id in a and user_id=b -> canary", "a=x and a=y -> canary", "region= -> canary",
    "device in ios,,android -> canary", "1region=eu -> canary", "a: b -> canary",
    "region=\u0007 -> canary", "region=" + "x" * 257 + " -> canary",
    "testers:user_id in a -> canary",
    "region=eu -> 5%%", "region~eu -> canary", "region=eu ->", "bad name!: region=eu -> canary",
    {"variant": "canary"}, {"users": [], "when": {}, "variant": "canary"},
    {"users": ["a"], "variant": "canary", "weight": 5}, {"users": ["a"]},
    {"users": ["a"], "variant": "Canary"}, {"users": ["a"], "variant": "canary", "extra": 1},
    {"when": {"region": True}, "variant": "canary"},
    {"when": {"region": {"in": []}}, "variant": "canary"},
    {"when": {"region": {"eq": "x"}}, "variant": "canary"},
    {"when": {"region": {"in": ["a"], "prefix": "b"}}, "variant": "canary"},
    {"when": {"1region": "x"}, "variant": "canary"}, {"users": "qa-1", "variant": "canary"},
    {"when": [["a", "b"]], "variant": "canary"},
    {"name": "bad name", "users": ["a"], "variant": "canary"},
    {"users": ["a"], "weight": "0.001"}, {"users": [""], "variant": "canary"},
    {"users": [None], "variant": "canary"}, {"users": ["a\u001fb"], "variant": "canary"},
    {"when": {"region": {"prefix": ["a"]}}, "variant": "canary"},
    {"when": {"region": "x" * 257}, "variant": "canary"}, {"users": ["a"], "weight": True},
    {"when": {"region": None}, "variant": "canary"}, 5, None, ["region=eu -> canary"],
    {"when": {"emoji": {"prefix": "\ud83d"}}, "variant": "canary"},
    {"users": ["a\udcff"], "variant": "canary"}, "region=\udcff -> canary",
]  # fmt: skip


# -- expectations -------------------------------------------------------------------------------


def key_of(case: Mapping[str, Any]) -> str | None:
    """The stickiness key as docs/release.md defines it."""
    attrs = case["attributes"] or {}
    if case["stick_by"] == USER_ID:
        value = case["user_id"] if case["user_id"] is not None else attrs.get(USER_ID)
    else:
        value = attrs.get(case["stick_by"])
    return None if value is None else value if isinstance(value, str) else str(value)


def parsed(rule: Rule) -> dict[str, Any]:
    """A rule's meaning in a form any language can compare (the weight as W)."""
    return {
        "name": rule.name,
        "users": list(rule.users),
        "when": [[m.key, m.op, list(m.values)] for m in rule.when],
        "variant": rule.variant,
        "weight": rule.weight,
    }


def route_all(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Route every case through a real Router; return the expectations, in order.

    Each distinct manifest is one release of its own model (`m1`, `m2`...), so that no
    manifest carries the history of the others.
    """
    groups: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        manifest = {k: case[k] for k in ("seed", "weight", "stick_by", "shadow", "rules")}
        groups.setdefault(_line(manifest), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in cases]
    with tempfile.TemporaryDirectory(prefix="mreg-vectors-") as tmp:
        root = Path(tmp)
        store = Store.init(root / "work")
        files = []
        for version in ("1.0.0", "1.1.0"):
            f = root / "in" / version / "model.bin"
            f.parent.mkdir(parents=True)
            f.write_bytes(f"weights {version}".encode())
            files.append((version, f))
        for n, indices in enumerate(groups.values(), 1):
            name, case = f"m{n}", cases[indices[0]]
            for version, f in files:
                store.register(name, [f], version=version, detect_code=False, author=ACTOR)
            store.promote(f"{name}@1.0.0", "production", actor=ACTOR)
            ops.start(
                store, name, "1.1.0", seed=case["seed"], stick_by=case["stick_by"],
                weight=None if case["shadow"] else case["weight"], shadow=case["shadow"],
                rules=rules_from_list(case["rules"]), actor=ACTOR,
            )  # fmt: skip
            with Router.open(name, store=store.root, materialize=False) as router:
                for i in indices:
                    out[i] = expect(cases[i], router)
    return out


def expect(case: Mapping[str, Any], router: Router) -> dict[str, Any]:
    """What the router decides for one case, with the key, its bytes and its bucket."""
    decisions = {
        (d.variant, d.reason, d.rule)
        for d in (router.route(case["user_id"], case["attributes"]) for _ in range(20))
    }
    if len(decisions) != 1:
        raise AssertionError(f"{case['name']}: not deterministic: {decisions}")
    ((variant, reason, label),) = decisions
    key = key_of(case)
    b = None if key is None else bucket(case["seed"], key)
    t: int | None = None
    if reason == "weight":
        t = threshold(parse_weight(case["weight"]))
    elif reason == "rule":
        rules = rules_from_list(case["rules"])
        i = next(i for i, r in enumerate(rules, 1) if (r.name or str(i)) == label)
        w = rules[i - 1].weight
        t = None if w is None else threshold(w)
    if t is not None and b is not None and variant != ("canary" if b < t else "baseline"):
        raise AssertionError(f"{case['name']}: bucket {b}, threshold {t}, router {variant}")
    if t is not None and b is None and t not in (0, BUCKETS):
        raise AssertionError(f"{case['name']}: no key, and the threshold {t} needs a bucket")
    return {
        "key": key,
        "key_utf8": None if key is None else key.encode("utf-8", "surrogatepass").hex(),
        "bucket": b,
        "threshold": t,
        "variant": variant,
        "reason": reason,
        "rule": label,
    }


def weight_vectors() -> list[dict[str, Any]]:
    """Each weight and its W (None: refused)."""
    out = []
    for w in WEIGHTS:
        try:
            hundredths: int | None = parse_weight(w)
        except InvalidInput:
            hundredths = None
        out.append({"weight": w, "hundredths": hundredths})
    return out


def rule_vectors() -> list[dict[str, Any]]:
    """Each rule (mapping or text) and its meaning (None: refused)."""
    out = []
    for r in RULES:
        try:
            meaning: dict[str, Any] | None = parsed(rules_from_list([r])[0])
        except InvalidInput:
            meaning = None
        out.append({"rule": r, "parsed": meaning})
    return out


# -- the file -----------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _line(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    # lone surrogates cannot be written as UTF-8: escape them (JSON's \uXXXX), nothing else
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def render() -> str:
    """The vectors file's text."""
    cases = list(routing_cases())
    routing = [{**case, "expected": exp} for case, exp in zip(cases, route_all(cases), strict=True)]
    head = {
        "about": "Routing test vectors of mreg: every decision is the Python Router's. The "
        "contract they check: docs/release.md, section 'Bucketing (for gateways in other "
        "languages)'. Regenerate with: python docs/gen_bucketing_vectors.py",
        "buckets": BUCKETS,
        "routing_fields": "seed, weight, stick_by, shadow, rules: the rollout manifest's; "
        "user_id, attributes: the request; expected: key (text, null when none), key_utf8 "
        "(hex of the bytes hashed after SEED:), bucket (null without a key), threshold (T = "
        "W x 100 that decided; null for a pinned rule or shadow mode), variant, reason "
        "(weight, rule, shadow), rule (the label of the rule that decided)",
        "weights_fields": "weight: as written (number or string); hundredths: W, or null when "
        "the weight is refused",
        "rules_fields": "rule: a manifest rule (mapping or one-line text); parsed: {name, "
        "users, when: [[key, op (eq, in, prefix), values]] sorted by key, variant, weight: W}, "
        "or null when the rule is refused",
    }
    parts = [_line(k) + ": " + _line(val) for k, val in head.items()]
    for section, items in (
        ("routing", routing),
        ("weights", weight_vectors()),
        ("rules", rule_vectors()),
    ):
        body = ",\n".join("    " + _line(item) for item in items)
        parts.append(f"{_line(section)}: [\n{body}\n  ]")
    text = "{\n" + ",\n".join("  " + p for p in parts) + "\n}\n"
    check = json.loads(text)
    if check["routing"] != routing or check["rules"] != rule_vectors():
        raise AssertionError("the vectors do not survive a JSON round trip")
    return text


def main(argv: list[str]) -> int:
    """Rewrite the vectors file, or with --search print the keys of EDGE's buckets."""
    if argv[1:] == ["--search"]:
        for b, key in search().items():
            print(f"    {b}: {key!r},")
        return 0
    for b, key in EDGE.items():
        if bucket(SA, key) != b:
            raise AssertionError(f"EDGE: {key!r} is in bucket {bucket(SA, key)}, not {b}")
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
