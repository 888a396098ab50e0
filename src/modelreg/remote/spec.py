"""Remotes as configuration: names, URLs and driver options kept in `config.yaml`.

A remote is a name, an fsspec URL and options passed to the fsspec driver (s3fs's
`endpoint_url`, `region`, `profile`...). Options are plain scalars given as `key=value`;
a dotted key nests (`config_kwargs.s3.addressing_style=path`). Keys under `mreg.` tune mreg
itself (`mreg.jobs`, `mreg.part_size_mib`, `mreg.conditional_writes`) and are not passed on.

Secrets are never written to the store: an option whose key names a credential (`secret`,
`key`, `token`, `password`...) and a URL with a password are refused. Credentials come from
the driver's own chain: the AWS environment variables, a profile, instance metadata.

This module is light (no fsspec import) and below the store's config (storage layer,
docs/architecture.md): `StoreConfig` parses remotes through it. Adding and removing remotes
is `remote.config.RemoteRegistry`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelreg import yamlio
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.names import check_setting_name

__all__ = [
    "MREG_OPTIONS",
    "RemoteSpec",
    "check_options",
    "check_remote_name",
    "normalize_url",
    "parse_option",
    "parse_remotes",
]

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*://")
# Keys (the last dotted segment, lowercased) that name a credential: refused, never stored.
_SECRET_KEYS = frozenset(
    {
        "key", "secret", "token", "password", "passwd", "credentials", "access_key",
        "secret_key", "secret_access_key", "session_token", "security_token",
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "account_key",
        "sas_token", "client_secret", "connection_string", "private_key", "api_key",
    }
)  # fmt: skip
MREG_OPTIONS = {
    "mreg.jobs": "parallel transfers (default 8)",
    "mreg.part_size_mib": "multipart part size in MiB (default 8, at least 5)",
    "mreg.conditional_writes": "auto (probe the server), true or false",
}


def check_remote_name(name: str) -> str:
    """Return `name` if it is a valid remote name (like an alias: `origin`, `s3-prod`)."""
    return check_setting_name("remote", name)


def normalize_url(url: str) -> str:
    """Check a remote URL; plain paths become absolute `file://` URLs.

    Refuses an empty URL and a URL carrying a password (`scheme://user:secret@host`).
    """
    if not url or any(ord(c) < 32 for c in url):
        raise InvalidInput(f"invalid remote URL {url!r}")
    if not _SCHEME_RE.match(url):
        return "file://" + os.path.normpath(Path(url).expanduser().absolute())
    parts = urlsplit(url)
    if parts.password is not None:
        raise InvalidInput(
            "refusing a URL with a password: mreg never writes credentials to the store; use "
            "the driver's credential chain (environment variables, a profile)"
        )
    if parts.scheme == "file":
        return "file://" + os.path.normpath(Path(parts.path).absolute())
    return url.rstrip("/")


def _check_option_key(key: str) -> str:
    if not key or any(not seg or seg.strip() != seg for seg in key.split(".")):
        raise InvalidInput(f"invalid option key {key!r}")
    if key.split(".")[-1].lower() in _SECRET_KEYS:
        raise InvalidInput(
            f"refusing to store the secret option {key!r}: mreg never writes credentials to "
            "the store; use the driver's credential chain (AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, --option profile=NAME, instance metadata)"
        )
    if key.startswith("mreg.") and key not in MREG_OPTIONS:
        raise InvalidInput(f"unknown option {key!r}: mreg options are {', '.join(MREG_OPTIONS)}")
    return key


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Return driver options if every key is allowed (no secret) and every value a scalar."""
    for key, value in options.items():
        _check_option_key(str(key))
        if isinstance(value, (dict, list)):
            raise InvalidInput(f"option {key} must be a scalar")
    return {str(k): v for k, v in options.items()}


def parse_option(text: str) -> tuple[str, Any]:
    """Parse one `key=value` option; the value is a YAML scalar (`true`, `5`, `eu-west-1`)."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise InvalidInput(f"invalid option {text!r}: expected key=value")
    key = _check_option_key(key.strip())
    value = yamlio.load(raw.encode(), f"--option {key}") if raw.strip() else ""
    if isinstance(value, (dict, list)):
        raise InvalidInput(f"invalid option {text!r}: the value must be a scalar")
    return key, value


@dataclass(frozen=True)
class RemoteSpec:
    """A configured remote: its name, URL and driver options (never secrets)."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        """The fsspec protocol of the URL (`s3`, `file`, `memory`, `gcs`...)."""
        return self.url.split("://", 1)[0]

    def mreg_option(self, key: str, default: Any) -> Any:
        """An `mreg.*` option's value, or `default`."""
        return self.options.get(f"mreg.{key}", default)

    def to_dict(self) -> dict[str, Any]:
        """The entry under `remotes:` in `config.yaml` (the name is its key)."""
        return {"url": self.url, "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_dict(cls, name: str, doc: Any, source: str) -> RemoteSpec:
        """Parse one `remotes:` entry; IntegrityError if it is malformed or holds a secret."""
        try:
            check_remote_name(name)
            if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
                raise InvalidInput("expected a mapping with a url")
            options = doc.get("options") or {}
            if not isinstance(options, dict):
                raise InvalidInput("options must be a mapping")
            return cls(name, normalize_url(doc["url"]), check_options(options))
        except InvalidInput as exc:
            raise IntegrityError(f"{source}: remotes.{name}: {exc}") from None


def parse_remotes(doc: dict[str, Any], source: str) -> tuple[dict[str, RemoteSpec], str | None]:
    """The `remotes` and `default_remote` of a config document (both optional)."""
    raw = doc.get("remotes") or {}
    if not isinstance(raw, dict):
        raise IntegrityError(f"{source}: remotes must map names to {{url, options}}")
    remotes = {str(k): RemoteSpec.from_dict(str(k), v, source) for k, v in raw.items()}
    default = doc.get("default_remote")
    if default is not None and default not in remotes:
        raise IntegrityError(f"{source}: default_remote {default!r} is not a configured remote")
    return remotes, default
