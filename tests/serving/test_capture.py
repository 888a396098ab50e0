"""The sampled capture of requests in a real router (issue 21): allow-list, hashed
identifiers, a bounded and uniform reservoir per version and window."""

from __future__ import annotations

import json

import pytest

from modelreg.errors import InvalidInput
from modelreg.serving.capture import KEY_ENV, hash_identifier
from modelreg.serving.router import Router

KEY = "a-capture-key-of-some-length"


def _rows(root):
    """Every sample line under the store, by file."""
    out = {}
    for p in sorted((root / "samples").rglob("*.jsonl")):
        if not p.name.endswith(".outcomes.jsonl"):
            out[p] = [json.loads(x) for x in p.read_text().splitlines()]
    return out


def test_off_by_default_and_at_rate_zero(model):
    router = Router.open("m", store=model.root, flush_interval_s=0)
    d = router.route(user_id="u1")
    assert router.capture(d, features={"age": 3}, prediction=1) is None
    router.sampler.configure(rate=0.0, features=("age",))
    assert all(router.capture(d, features={"age": i}) is None for i in range(100))
    router.close()
    assert not (model.root / "samples").exists()


def test_configuration_refused(model, monkeypatch):
    router = Router.open("m", store=model.root)
    monkeypatch.delenv(KEY_ENV, raising=False)
    for kwargs in ({"rate": 1.5}, {"rate": 0.1, "size": 0}, {"rate": 0.1, "window_s": 0.0}):
        with pytest.raises(InvalidInput, match="capture"):
            router.sampler.configure(**kwargs)
    with pytest.raises(InvalidInput, match=KEY_ENV):
        router.sampler.configure(rate=1.0, identifiers=("user",))
    assert router.sampler.rate == 0.0  # nothing half-configured
    router.close()


def test_allow_list_and_hashed_identifiers_keep_personal_data_out(model, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    router = Router.open("m", store=model.root, flush_interval_s=0)
    router.sampler.configure(rate=1.0, features=("age", "country"), identifiers=("user_id",))
    refs = []
    for i in range(5):
        d = router.route(user_id=f"alice-{i}")
        features = {
            "age": 30 + i, "country": "fr", "user_id": f"alice-{i}",
            "email": f"alice{i}@mail.invalid", "phone": "+33-6-00-00-00",
        }  # fmt: skip
        refs.append(router.capture(d, features=features, prediction=0.5))
    router.record_outcome(refs[0], clicked=1)
    router.close()
    assert all(r is not None and r["request"] for r in refs)
    rows = [r for rs in _rows(model.root).values() for r in rs]
    assert len(rows) == 5
    for r in rows:
        assert set(r["features"]) == {"age", "country", "user_id"}
        i = r["features"]["age"] - 30
        assert r["features"]["user_id"] == hash_identifier(KEY.encode(), f"alice-{i}")
    for p in model.root.rglob("*"):  # the raw values and the key appear in no file
        if p.is_file():
            data = p.read_bytes()
            for secret in (b"alice", b"mail.invalid", b"+33", KEY.encode()):
                assert secret not in data, (p, secret)


def test_reservoir_is_bounded_and_uniform(model):
    """300 windows of 100 sampled requests, reservoirs of 10: every position of a window is
    kept with the same probability (chi-square over the 100 positions, df 99)."""
    clock = {"t": 1_800_000_000.0}
    router = Router.open("m", store=model.root, flush_interval_s=3600, wall=lambda: clock["t"])
    router.sampler.configure(rate=1.0, size=10, window_s=1.0, seed=7)
    d = router.route(user_id="u")
    windows, n, k = 300, 100, 10
    for w in range(windows):
        for i in range(n):
            clock["t"] = 1_800_000_000.0 + w + i / (2 * n)
            router.capture(d, request_id=f"{w}-{i}")
    router.close()
    files = _rows(model.root)
    assert len(files) == windows
    counts = [0] * n
    for rows in files.values():
        assert len(rows) == k  # never more than its size
        assert len({r["request"].split("-")[0] for r in rows}) == 1  # one window per file
        for r in rows:
            counts[int(r["request"].split("-")[1])] += 1
    expected = windows * k / n
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 148.2, (chi2, counts)  # the 0.999 quantile of chi-square with 99 df
    # the first and the last requests of a window are kept alike (Algorithm R is not biased)
    assert abs(sum(counts[:50]) - sum(counts[50:])) < 0.1 * windows * k


def test_a_bigger_row_than_the_bound_is_not_kept(model):
    router = Router.open("m", store=model.root, flush_interval_s=0)
    router.sampler.configure(rate=1.0, features=("text",))
    d = router.route(user_id="u")
    assert router.capture(d, features={"text": "x" * 100_000}) is None
    assert router.sampler.too_large == 1
    router.close()
