"""Fixtures shared by the reliability suites (issue 8)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The session's moto S3 server (one per session, shared with tests/remote/).
from tests.remote.conftest import AWS_ENV, s3_endpoint  # noqa: F401

STRESS_SCALE = float(os.environ.get("MREG_STRESS_SCALE", "1"))
"""Multiplies the work of the stress suites: 1 in CI, 3 for the figures in docs/reliability.md."""


@pytest.fixture(scope="session", autouse=True)
def _memory_report() -> Iterator[None]:
    """At the end of the session, print every peak `memory.run_measured` took (see with -s)."""
    yield
    from tests.reliability.memory import REPORT

    for row in REPORT:
        print(f"peak {row['peak_mib']:>8} MiB  exit {row['exit']}  {row['case']}")
