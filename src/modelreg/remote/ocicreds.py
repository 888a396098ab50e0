"""Registry credentials from the Docker config file, never from the store (issue 20).

`docker login` writes `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`); skopeo,
oras, helm and podman read the same file. For a registry `HOST[:PORT]` mreg looks, in order:

1. `credHelpers[HOST]`: run `docker-credential-<helper> get` with `HOST` on stdin; its JSON
   answer's `Username` and `Secret` are the credentials;
2. `auths[HOST]` (also keyed `https://HOST`, `http://HOST`, with or without a path): its
   `auth` is base64 `user:password`;
3. `credsStore`: the default helper, as in 1.

Nothing found: the registry is asked anonymously. The credentials live in memory for one
command; mreg never writes them anywhere (the remote's config holds only its URL and options).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from modelreg.errors import MregError

__all__ = [
    "MAX_CONFIG_BYTES",
    "CredentialError",
    "Credentials",
    "docker_config_path",
    "find_credentials",
]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The largest Docker config file read."""
_HELPER_TIMEOUT = 30.0

Credentials = tuple[str, str]
"""(user name, password or token)."""


class CredentialError(MregError):
    """The Docker config file or a credential helper could not give credentials: exit 1."""


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise CredentialError(f"{path} is over {MAX_CONFIG_BYTES:,} bytes: not read")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise CredentialError(f"{path}: not valid JSON") from None
    return doc if isinstance(doc, dict) else {}


def _host_of(key: str) -> str:
    """`https://host:5000/v1/` -> `host:5000` (the forms `docker login` has written)."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def _helper(name: str, host: str) -> Credentials | None:
    """Ask `docker-credential-NAME get` for `host`; None when it has nothing for it."""
    if not name or "/" in name or name.startswith("."):
        raise CredentialError(f"invalid credential helper name {name!r} in the Docker config")
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run(
            [program, "get"], input=host.encode(), capture_output=True,
            timeout=_HELPER_TIMEOUT, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise CredentialError(
            f"the Docker config names the credential helper {program}, which is not installed"
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialError(f"{program} did not answer within {_HELPER_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        return None  # "credentials not found in native keychain"
    try:
        doc = json.loads(proc.stdout[:MAX_CONFIG_BYTES])
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{program} gave an answer that is not its JSON") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise CredentialError(f"{program} gave an answer that is not its JSON")
    return user, secret


def _decode(auth: str, host: str, path: Path) -> Credentials:
    try:
        user, sep, password = base64.b64decode(auth, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, sep, password = "", "", ""
    if not sep:
        raise CredentialError(f"{path}: auths.{host}.auth is not base64 of user:password")
    return user, password


def find_credentials(host: str, path: Path | None = None) -> Credentials | None:
    """The credentials for registry `host` (`HOST[:PORT]`), or None (see the module docstring).

    Raises:
        CredentialError: an unreadable config, a malformed `auth`, a missing or broken helper.
    """
    path = path or docker_config_path()
    doc = _read_config(path)
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return _helper(helpers[host], host)
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _host_of(str(key)) != host or not isinstance(entry, dict):
                continue
            auth = entry.get("auth")
            if isinstance(auth, str) and auth:
                return _decode(auth, host, path)
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _helper(store, host)
    return None
