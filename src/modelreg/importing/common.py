"""What the importers share (issue 20): history replayed with its authors and times, marked.

An importer (`importing.mlflow`, `importing.gto`) reads another registry and replays what
it finds through the ordinary domain functions (`register.register`, `aliases.promote`,
`aliases.deprecate`), so imported versions pass the same validators, credential checks,
gates and mover policy as local ones. They run on a `Replay` handle: the same store, whose
clock is the original time of the event and whose every audit entry carries an `imported`
marker (`source`, `key`, `from`, `at`, `by`). The trail stays one hash chain (entries are
appended, never inserted); their `time` and `actor` are the original ones, the marker says
when and by whom the import happened.

Idempotency: `imported_keys` reads the markers back from the trail, so a second run skips
what the first one imported (an event's key: an MLflow `MODEL/VERSION`, a GTO tag name).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.errors import InvalidInput
from modelreg.fsutil import tmp_name
from modelreg.handle import StoreHandle
from modelreg.lineage import default_author
from modelreg.names import check_tag

if TYPE_CHECKING:
    from modelreg.audit import AuditEntry

__all__ = [
    "IMPORTED",
    "ImportItem",
    "ImportReport",
    "Replay",
    "imported_keys",
    "is_tag",
    "marker",
    "staging",
    "utc_from_ms",
]

IMPORTED = "imported"
"""The key of the marker in an imported audit entry's `details`."""

STATUSES = ("imported", "exists", "skipped", "failed", "planned")
"""What happened to one item: done now, done before (idempotent), skipped with a reason,
failed (exit 1), or would be imported (`--dry-run`)."""


@dataclass(frozen=True)
class ImportItem:
    """One thing an import read: a version, an alias move or a deprecation, and its fate."""

    kind: str
    """`version`, `alias` or `deprecation`."""
    name: str
    """The mreg model name."""
    source: str
    """What it is called where it comes from (`MODEL/VERSION`, a GTO tag)."""
    status: str
    version: str | None = None
    alias: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """One entry of `items` in the `--json` shape."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ImportReport:
    """The result of `mreg import mlflow|gto`."""

    source: str
    location: str
    dry_run: bool
    items: tuple[ImportItem, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        """How many items ended in each status."""
        return {s: sum(1 for i in self.items if i.status == s) for s in STATUSES}

    @property
    def failed(self) -> bool:
        """True when an item failed (the command exits 1)."""
        return any(i.status == "failed" for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg import mlflow` and `mreg import gto`."""
        return {
            "source": self.source,
            "location": self.location,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "items": [i.to_dict() for i in self.items],
        }


def utc_from_ms(ms: Any) -> datetime:
    """A datetime from milliseconds since the epoch (MLflow's timestamps), UTC."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def is_tag(text: str) -> bool:
    """True when `text` is a valid mreg tag (imported tags that are not are left out)."""
    try:
        check_tag(text)
    except InvalidInput:
        return False
    return True


def marker(source: str, key: str, location: str, now: str) -> dict[str, str]:
    """The `imported` details of an audit entry: where from, which event, when, by whom."""
    return {"source": source, "key": key, "from": location, "at": now, "by": default_author()}


class Replay(StoreHandle):
    """The store as one imported event sees it: the event's clock, marked audit entries.

    Its clock is the event's original time, and each audit entry it appends carries the
    `imported` marker.
    """

    def __init__(self, store: StoreHandle, when: datetime, mark: dict[str, str]) -> None:
        super().__init__(store.root, store.config, clock=lambda: when)
        self.notes = store.notes
        self._mark = mark

    def record(self, actor: str, action: str, model: str | None, **details: Any) -> AuditEntry:
        """Append an audit entry at the event's time, marked as imported."""
        return super().record(actor, action, model, **details, **{IMPORTED: self._mark})


def imported_keys(store: StoreHandle, source: str) -> set[str]:
    """The keys of the events imported from `source` before, read from the audit trail."""
    keys = set()
    for e in store.audit.entries():
        mark = e.details.get(IMPORTED)
        if isinstance(mark, dict) and mark.get("source") == source:
            keys.add(str(mark.get("key")))
    return keys


@contextmanager
def staging(store: StoreHandle) -> Iterator[Path]:
    """A directory under the store's `tmp/` to download a version's files into, then remove.

    Its `.tmp-PID-...` name lets `fsck --repair` sweep it after a crash.
    """
    path = store.root / layout.TMP / tmp_name("import")
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
