"""Where an LFS remote's credentials come from, none of them stored (issue 20).

`~/.netrc` for the endpoint's host, and git's credential helpers (`git credential fill`,
`approve`), the ones git and git-lfs use, asked without a prompt. `remote.lfs` tries the
environment (`MREG_LFS_AUTHORIZATION`) first, then these.
"""

from __future__ import annotations

import base64
import os
import subprocess

__all__ = ["basic_authorization", "git_credential", "netrc_authorization"]


def basic_authorization(user: str, password: str) -> str:
    """The value of an HTTP Basic `Authorization` header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def netrc_authorization(host: str) -> str | None:
    """Basic authorization from `~/.netrc` for `host` (a port is ignored), or None."""
    import netrc

    try:
        found = netrc.netrc().authenticators(host.split(":")[0])
    except (OSError, netrc.NetrcParseError):
        found = None
    if found and found[2] is not None:
        return basic_authorization(found[0], found[2])
    return None


def git_credential(verb: str, fields: dict[str, str]) -> dict[str, str]:
    """`git credential VERB` with `fields` (protocol, host...); {} when git has none."""
    text = "".join(f"{k}={v}\n" for k, v in fields.items()) + "\n"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
    try:
        out = subprocess.run(
            ["git", "credential", verb], input=text.encode(), capture_output=True,
            env=env, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        return {}
    lines = out.stdout.decode(errors="replace").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)
