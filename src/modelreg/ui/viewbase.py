"""The web view's read-only interface to a registry, and what its two readers share.

`View` is what every page reads: a local store (`ui.views.LocalView`) or a remote
(`ui.remoteview.RemoteView`) behind one read-only interface. Neither ever writes to the
store: this interface has no method that writes. Every name and version is checked
(`names.py`) before any path is built from it, and a file is only ever located through a
manifest entry's digest, so no URL can name a path. The store's paths come from
`modelreg.layout`, the metrics files' from `modelreg.metricsfile`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.audit import AuditEntry
from modelreg.errors import InvalidInput, NotFound
from modelreg.manifest import FileEntry, ModelVersion
from modelreg.metricsfile import COMPACT_PREFIX, absorbed
from modelreg.names import Version, check_name
from modelreg.refs import AliasRef
from modelreg.release.rollout import Rollout

if TYPE_CHECKING:
    from modelreg.listing import VersionPage
    from modelreg.store import Store

__all__ = [
    "AuditReport",
    "View",
    "analysis_rel",
    "check_version",
    "failure_reason",
    "merge_files",
    "one_line",
]


def check_version(version: str) -> str:
    """`version` if it is valid SemVer (raises InvalidInput otherwise)."""
    return Version.parse(version).text


@dataclass(frozen=True)
class AuditReport:
    """The audit trail and the result of verifying its hash chain."""

    entries: tuple[AuditEntry, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return not self.problems


class View(ABC):
    """A read-only view of a registry (local store or remote)."""

    label: str

    @abstractmethod
    def model_names(self) -> list[str]:
        """Every model, sorted."""

    @abstractmethod
    def version_names(self, name: str) -> list[str]:
        """A model's versions in SemVer order; NotFound for an unknown model."""

    @abstractmethod
    def manifest(self, name: str, version: str) -> ModelVersion:
        """A version's manifest; NotFound if there is no such version."""

    @abstractmethod
    def aliases(self, name: str) -> list[AliasRef]:
        """A model's aliases, sorted by alias name."""

    @abstractmethod
    def state(
        self, name: str, version: str
    ) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
        """A version's current tags (None: the manifest's) and deprecation."""

    @abstractmethod
    def rollout(self, name: str) -> Rollout | None:
        """The model's rollout manifest, or None if it never had a release."""

    @abstractmethod
    def audit(self) -> AuditReport:
        """The audit trail, verified."""

    @abstractmethod
    def metric_files(self, name: str, release: int) -> dict[str, list[dict[str, Any]]]:
        """The metrics lines of a release per file (files a compaction absorbed left out).

        A file's list is the same object as long as the file is unchanged (`LocalView`),
        so callers may keep what they computed from it.
        """

    @abstractmethod
    def judgments(self, name: str, release: int) -> list[dict[str, Any]]:
        """The analysis log of a release (`release watch`), oldest first."""

    @abstractmethod
    def object_path(self, entry: FileEntry) -> Path:
        """A local, verified copy of a file's object."""

    @abstractmethod
    def release_token(self, name: str) -> str:
        """A short text that changes whenever the release page would change (for polling)."""

    def local_store(self) -> Store | None:
        """The local store behind this view, read-only by convention; None for a remote.

        The drift page needs it: routers write their samples into the store they serve
        from, and a remote carries none (docs/monitoring.md).
        """
        return None

    def has_samples(self, name: str, version: str) -> bool:
        """Whether routers captured requests of `name@version` here (a remote: never)."""
        return False

    def require_model(self, name: str) -> list[str]:
        """The versions of `name`, or NotFound (also for names that are not valid)."""
        try:
            check_name(name)
        except InvalidInput:
            raise NotFound(f"no model named {name!r}") from None
        versions = self.version_names(name)
        if not versions:
            raise NotFound(f"no model named {name!r}")
        return versions

    def check_model(self, name: str) -> None:
        """NotFound unless `name` is a model (`LocalView`: without listing its versions)."""
        self.require_model(name)

    def latest(self, name: str) -> str:
        """The model's highest version, or NotFound."""
        return self.require_model(name)[-1]

    def newest(self, name: str, limit: int) -> list[str]:
        """The model's `limit` highest versions, newest first (names only), or NotFound."""
        return self.require_model(name)[::-1][:limit]

    def require_version(self, name: str, version: str) -> ModelVersion:
        """The manifest of `name@version`, or NotFound."""
        versions = self.require_model(name)
        if not Version.is_version(version) or version not in versions:
            raise NotFound(f"{name}@{version}: no such version")
        return self.manifest(name, version)

    def version_page(self, name: str, *, offset: int = 0, limit: int = 100) -> VersionPage:
        """One page of the model's versions, newest first, with tags, aliases, deprecation.

        `total` counts every version; NotFound for an unknown model. This default reads
        `version_names` and the page's manifests and states (a remote); `LocalView` asks
        the index (`listing.versions`).
        """
        from modelreg.catalog import VersionInfo
        from modelreg.listing import VersionPage

        if offset < 0 or limit < 1:
            raise InvalidInput("a page needs an offset of 0 or more and a limit of 1 or more")
        names = self.require_model(name)[::-1]
        aliases = self.aliases(name)
        page = VersionPage()
        for v in names[offset : offset + limit]:
            mv = self.manifest(name, v)
            tags, deprecated = self.state(name, v)
            here = [a for a in aliases if a.version == v]
            page.append(
                VersionInfo(
                    version=mv,
                    aliases=tuple(a.alias for a in here),
                    tags=mv.tags if tags is None else tags,
                    deprecated=deprecated,
                    alias_moves=tuple(a.history[-1] for a in here if a.history),
                )
            )
        page.total, page.offset = len(names), offset
        return page


def merge_files(parsed: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A release's metrics files without those a compacted file absorbed (see `compact`)."""
    gone: set[str] = set()
    for name, docs in parsed.items():
        if name.startswith(COMPACT_PREFIX) and docs:
            gone.update(absorbed(docs[0]))
    return {name: parsed[name] for name in sorted(parsed) if name not in gone}


def analysis_rel(name: str, release: int | None = None) -> str:
    """`analysis/NAME/<release>.jsonl`, or `analysis/NAME` (relative, as a remote holds it)."""
    path = layout.analysis_log(Path(), name, 0 if release is None else int(release))
    return (path.parent if release is None else path).as_posix()


def one_line(text: str) -> str:
    """`text` on one line: runs of whitespace become one space, control characters escapes."""
    text = " ".join(text.split())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def failure_reason(exc: BaseException) -> str:
    """What went wrong, on one line: the driver's own error when mreg wrapped it."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return one_line(str(cause)) or type(cause).__name__
