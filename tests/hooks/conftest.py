"""Fixtures of the webhook tests: a real receiver on 127.0.0.1, fast retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hooks.receiver import Receiver

SECRET = "s3cr3t-for-tests-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def _fast_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries due at once and short delivery budgets, in this process and in `run_mreg`."""
    monkeypatch.setenv("MREG_HOOK_BACKOFF", "0")
    monkeypatch.setenv("MREG_HOOK_TIMEOUT", "5")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
