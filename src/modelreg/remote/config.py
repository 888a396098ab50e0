"""Remotes as configuration: `mreg remote add|list|remove|default` over `config.yaml`.

What a remote is (name, fsspec URL, driver options; never a secret) is `remote.spec`; this
module adds and removes them, each change rewriting `config.yaml` under the store lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.errors import InvalidInput, NotFound
from modelreg.remote.spec import (
    MREG_OPTIONS,
    RemoteSpec,
    check_options,
    check_remote_name,
    normalize_url,
    parse_option,
    parse_remotes,
)

if TYPE_CHECKING:
    from modelreg.config import StoreConfig
    from modelreg.handle import StoreHandle

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

    def __init__(self, store: StoreHandle) -> None:
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
        from modelreg.remote.lfs import is_lfs, meta_spec

        check_remote_name(name)
        spec = RemoteSpec(name, normalize_url(url), check_options(options or {}))
        if is_lfs(spec.url):  # objects on the LFS server, the rest on `meta` (issue 20)
            meta = meta_spec(spec)
            spec = RemoteSpec(name, spec.url, {**spec.options, "meta": meta.url})
            check_driver(meta.protocol)
        elif spec.protocol == "oci":  # not fsspec: the registry client (issue 20)
            from modelreg.remote.ocireg import RegistryURL

            RegistryURL.parse(spec)
        else:
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
            shutil.rmtree(layout.remote_dir(self.store.root, name), ignore_errors=True)
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
        from modelreg.config import StoreConfig

        return StoreConfig.read(self.store.root)

    def _save(self, cfg: StoreConfig) -> None:
        cfg.write(self.store.root)
        self.store.config = cfg
