"""Fixtures shared by the reliability suites (issue 8)."""

from __future__ import annotations

import os

# The session's moto S3 server (one per session, shared with tests/remote/).
from tests.remote.conftest import AWS_ENV, s3_endpoint  # noqa: F401

STRESS_SCALE = float(os.environ.get("MREG_STRESS_SCALE", "1"))
"""Multiplies the work of the stress suites: 1 in CI, 3 for the figures in docs/reliability.md."""
