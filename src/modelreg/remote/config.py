"""Remotes as configuration: names, URLs and driver options kept in `config.yaml`.

A remote is a name, an fsspec URL and options passed to the fsspec driver (s3fs's
`endpoint_url`, `region`, `profile`...). Options are plain scalars given as `key=value`;
a dotted key nests (`config_kwargs.s3.addressing_style=path`). Keys under `mreg.` tune mreg
itself (`mreg.jobs`, `mreg.part_size_mib`, `mreg.conditional_writes`) and are not passed on.

Secrets are never written to the store: an option whose key names a credential (`secret`,
`key`, `token`, `password`...) and a URL with a password are refused. Credentials come from
the driver's own chain: the AWS environment variables, a profile, instance metadata.

This module is light (no fsspec import): `Store.open` parses remotes through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelreg import yamlio
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import atomic_write

if TYPE_CHECKING:
    from modelreg.store import Store, StoreConfig

__all__ = [
    "MREG_OPTIONS",
    "RemoteInfo",
    "RemoteRegistry",
    "RemoteSpec",
    "check_options",
    "check_remote_name",
    "normalize_url",
    "parse_option",
    "parse_remotes",
]

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
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
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid remote name {name!r}: use a lowercase letter, then up to 63 lowercase "
            "letters, digits, '-' or '_'"
        )
    return name


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


@dataclass(frozen=True)
class RemoteInfo:
    """A remote as `mreg remote list` shows it."""

    remote: RemoteSpec
    default: bool

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg remote add` and of each row of `mreg remote list`."""
        return {
            "name": self.remote.name,
            "url": self.remote.url,
            "options": dict(sorted(self.remote.options.items())),
            "default": self.default,
        }


class RemoteRegistry:
    """Add, list, remove and choose remotes; every change rewrites `config.yaml` under lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self) -> list[RemoteInfo]:
        """Every configured remote, sorted by name."""
        cfg = self.store.config
        return [RemoteInfo(r, r.name == cfg.default_remote) for _, r in sorted(cfg.remotes.items())]

    def get(self, name: str | None = None) -> RemoteSpec:
        """The remote `name`, else the default remote, else the only one configured."""
        cfg = self.store.config
        if name is not None:
            check_remote_name(name)
            if name not in cfg.remotes:
                raise NotFound(f"no remote named {name!r} (see mreg remote list)")
            return cfg.remotes[name]
        if cfg.default_remote is not None:
            return cfg.remotes[cfg.default_remote]
        if len(cfg.remotes) == 1:
            return next(iter(cfg.remotes.values()))
        if not cfg.remotes:
            raise NotFound("no remote configured: run mreg remote add NAME URL")
        raise InvalidInput(
            "several remotes and no default: name one, or run mreg remote add --default"
        )

    def split(self, args: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
        """`[REMOTE] [NAME[@REF]]...`: the first argument is a remote if one has that name."""
        if args and args[0] in self.store.config.remotes:
            return args[0], tuple(args[1:])
        return None, tuple(args)

    def add(
        self,
        name: str,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        default: bool = False,
    ) -> RemoteInfo:
        """Configure a remote; the first one added becomes the default."""
        from modelreg.remote.backend import check_driver

        check_remote_name(name)
        spec = RemoteSpec(name, normalize_url(url), check_options(options or {}))
        check_driver(spec.protocol)
        with self.store.locked():
            cfg = self._reload()
            if name in cfg.remotes:
                raise InvalidInput(f"remote {name!r} exists already (mreg remote remove it first)")
            remotes = {**cfg.remotes, name: spec}
            chosen = name if default or cfg.default_remote is None else cfg.default_remote
            self._save(replace(cfg, remotes=remotes, default_remote=chosen))
        return RemoteInfo(spec, chosen == name)

    def remove(self, name: str) -> RemoteSpec:
        """Forget a remote and its tracking state; the remote itself is not touched."""
        import shutil

        check_remote_name(name)
        with self.store.locked():
            cfg = self._reload()
            if name not in cfg.remotes:
                raise NotFound(f"no remote named {name!r} (see mreg remote list)")
            spec = cfg.remotes[name]
            remotes = {k: v for k, v in cfg.remotes.items() if k != name}
            chosen = cfg.default_remote if cfg.default_remote != name else None
            self._save(replace(cfg, remotes=remotes, default_remote=chosen))
            shutil.rmtree(self.store.root / "remotes" / name, ignore_errors=True)
        return spec

    def set_default(self, name: str) -> RemoteSpec:
        """Make `name` the remote that push, pull, fetch and status use by default."""
        with self.store.locked():
            cfg = self._reload()
            if name not in cfg.remotes:
                raise NotFound(f"no remote named {name!r} (see mreg remote list)")
            self._save(replace(cfg, default_remote=name))
        return cfg.remotes[name]

    def _reload(self) -> StoreConfig:
        from modelreg.store import StoreConfig

        path = self.store.root / "config.yaml"
        return StoreConfig.from_dict(yamlio.load_file(path, IntegrityError), str(path))

    def _save(self, cfg: StoreConfig) -> None:
        atomic_write(self.store.root / "config.yaml", yamlio.dump(cfg.to_dict()))
        self.store.config = cfg
