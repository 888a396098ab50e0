"""Where the tests find the outside Python tools that `.ci/tools` installs in virtualenvs.

giftless (a Git LFS server), MLflow and gto live in their own virtualenvs under `$MREG_TOOLS`
(default `~/.cache/mreg-tools`), so their pins never meet mreg's. The directory is read when
this module is imported, before the autouse fixture points HOME at a test's temp directory.
A missing tool is a skip ("... is not installed: run bash .ci/tools"), which CI turns into a
failure (tests/conftest.py).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

TOOLS = Path(os.environ.get("MREG_TOOLS") or Path.home() / ".cache" / "mreg-tools")


def tool_bin(venv: str, program: str | None = None) -> Path | None:
    """The path of `program` (default: `venv`) in the tool virtualenv `venv`, or None."""
    path = TOOLS / venv / "bin" / (program or venv)
    return path if path.exists() and os.access(path, os.X_OK) else None


def require_tool(venv: str, program: str | None = None) -> Path:
    """`tool_bin(...)`, or skip the test saying how to install it."""
    path = tool_bin(venv, program)
    if path is None:
        pytest.skip(f"{program or venv} is not installed: run bash .ci/tools ({TOOLS / venv})")
    return path


def skip_unless_tool(venv: str, program: str | None = None) -> pytest.MarkDecorator:
    """A `skipif` mark for tests that need `program` from the tool virtualenv `venv`."""
    return pytest.mark.skipif(
        tool_bin(venv, program) is None,
        reason=f"{program or venv} is not installed: run bash .ci/tools ({TOOLS / venv})",
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
