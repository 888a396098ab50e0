"""The bucketing hash: documented vectors, other implementations, shares, weights."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.errors import InvalidInput
from modelreg.release.bucketing import (
    BUCKETS,
    Bucketer,
    bucket,
    check_seed,
    format_weight,
    in_canary,
    new_seed,
    parse_weight,
    threshold,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "release.md"


def doc_vectors() -> list[tuple[str, str, str, int, int, list[str]]]:
    rows = []
    for line in DOC.read_text().splitlines():
        m = re.fullmatch(
            r"\| `([0-9a-f]{32})` \| `([^`]*)` \| `([0-9a-f]{16})` \| (\d+) \| (\d+) \| (\w+) \| (\w+) \| (\w+) \|",
            line,
        )
        if m:
            rows.append((m[1], m[2], m[3], int(m[4]), int(m[5]), [m[6], m[7], m[8]]))
    return rows


VECTORS = doc_vectors()


def test_docs_have_the_test_vector_table():
    assert len(VECTORS) >= 8
    assert any(sides[0] == "canary" for *_, sides in VECTORS)  # the table shows both sides
    assert any(sides[2] == "baseline" for *_, sides in VECTORS)


@pytest.mark.parametrize(("seed", "key", "hex8", "as_int", "expected", "sides"), VECTORS)
def test_documented_vectors_match_the_code(seed, key, hex8, as_int, expected, sides):
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    assert digest[:8].hex() == hex8
    assert int(hex8, 16) == as_int
    assert as_int % 1_000_000 == expected
    assert bucket(seed, key) == expected
    assert Bucketer(seed)(key) == expected
    for weight_pct, side in zip((1, 5, 50), sides, strict=True):
        assert ("canary" if in_canary(expected, weight_pct * 100) else "baseline") == side


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum missing")
def test_vectors_against_coreutils_sha256sum():
    for seed, key, hex8, *_ in VECTORS:
        out = subprocess.run(
            ["sha256sum"], input=f"{seed}:{key}".encode(), capture_output=True, check=True
        ).stdout.decode()
        assert out[:16] == hex8


NODE_BUCKET = r"""
const crypto = require('crypto');
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(Boolean);
for (const line of lines) {
  const [seed, key] = JSON.parse(line);
  const d = crypto.createHash('sha256').update(seed + ':' + key, 'utf8').digest();
  console.log((d.readBigUInt64BE(0) % 1000000n).toString());
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_javascript_gateway_reproduces_the_buckets():
    import json

    cases = [(s, k) for s, k, *_ in VECTORS] + [(new_seed(), f"user-{i}") for i in range(200)]
    out = subprocess.run(
        ["node", "-e", NODE_BUCKET],
        input="\n".join(json.dumps(c) for c in cases) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [int(x) for x in out] == [bucket(s, k) for s, k in cases]


@given(st.text(max_size=40), st.sampled_from([new_seed() for _ in range(5)]))
def test_precomputed_bucketer_equals_the_reference(key, seed):
    b = bucket(seed, key)
    assert 0 <= b < BUCKETS
    assert Bucketer(seed)(key) == b


def test_lone_surrogates_do_not_raise():
    seed = new_seed()
    assert bucket(seed, "\udcff") == Bucketer(seed)("\udcff")


def test_each_release_seed_is_new_and_valid():
    seeds = {new_seed() for _ in range(100)}
    assert len(seeds) == 100
    assert all(check_seed(s) == s for s in seeds)
    for bad in ("", "0" * 31, "G" * 32, "A" * 32, 42):
        with pytest.raises(InvalidInput):
            check_seed(bad)


@pytest.mark.parametrize(
    ("text", "hundredths"),
    [
        ("5", 500),
        (5, 500),
        (0.01, 1),
        ("0.01%", 1),
        ("12.5", 1250),
        ("100", 10000),
        (0, 0),
        ("7.25 %", 725),
    ],
)
def test_weights_parse_to_hundredths(text, hundredths):
    assert parse_weight(text) == hundredths
    assert parse_weight(format_weight(hundredths)) == hundredths


@pytest.mark.parametrize(
    "bad", ["-1", "100.01", "0.005", "abc", "", True, None, float("nan"), "inf"]
)
def test_bad_weights_are_refused(bad):
    with pytest.raises(InvalidInput):
        parse_weight(bad)


@given(st.integers(0, 10_000))
def test_weight_round_trip(h):
    assert parse_weight(format_weight(h)) == h
    assert parse_weight(f"{format_weight(h)}%") == h


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, BUCKETS - 1))
def test_monotonic_in_the_weight(w1, w2, b):
    lo, hi = sorted((w1, w2))
    assert not in_canary(b, lo) or in_canary(b, hi)  # raising the weight only adds buckets


def test_observed_shares_over_a_million_keys():
    """1,000,000 keys at 1%, 5% and 50%: each share within 5 standard deviations."""
    n = 1_000_000
    b = Bucketer("5bd083fc3cca355d3919f43df0a2c630")
    buckets = [b(f"user-{i}") for i in range(n)]
    for pct in (1, 5, 50):
        p = pct / 100
        observed = sum(1 for x in buckets if x < threshold(pct * 100))
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(observed - n * p) < 5 * sigma, (pct, observed)
    # 0.01% steps are honoured too: 100 buckets each, about 100 keys per million
    assert abs(sum(1 for x in buckets if x < threshold(1)) - 100) < 5 * 10
    # and the buckets are uniform: 10 deciles each within 5 sigma of 100,000
    deciles = [0] * 10
    for x in buckets:
        deciles[x // 100_000] += 1
    sigma = math.sqrt(n * 0.1 * 0.9)
    assert all(abs(d - n / 10) < 5 * sigma for d in deciles), deciles
