"""Mutable refs beside the immutable manifests: alias files and per-version state files.

Both are small YAML documents replaced atomically under the store lock. An alias file holds
the current target (version and manifest id), a generation number raised on every move, and
the full history of moves; a state file holds a version's current tags and deprecation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import TMP_PREFIX, atomic_write
from modelreg.hashing import is_digest
from modelreg.names import Version, check_alias

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "AliasEvent",
    "AliasRef",
    "VersionState",
    "list_aliases",
    "read_alias",
    "read_state",
    "write_alias",
    "write_state",
]


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: promote or rollback, to which version, by whom, why."""

    generation: int
    alias: str
    action: str
    version: str
    id: str
    previous: str | None
    actor: str
    time: str
    reason: str = ""
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (stored in the alias file; `history --json`)."""
        return {
            "generation": self.generation,
            "alias": self.alias,
            "action": self.action,
            "version": self.version,
            "id": self.id,
            "previous": self.previous,
            "actor": self.actor,
            "time": self.time,
            "reason": self.reason,
            "forced": self.forced,
        }


@dataclass(frozen=True)
class AliasRef:
    """An alias of a model: where it points now, and how it got there."""

    model: str
    alias: str
    version: str
    id: str
    generation: int
    history: tuple[AliasEvent, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The alias file document."""
        return {
            "schema": "mreg/v1",
            "kind": "Alias",
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "id": self.id,
            "generation": self.generation,
            "history": [e.to_dict() for e in self.history],
        }

    @classmethod
    def from_dict(cls, doc: Any) -> AliasRef:
        """Parse an alias file document (raises on a malformed one)."""
        if not isinstance(doc, dict) or doc.get("kind") != "Alias":
            raise ValueError("not an Alias document")
        if not is_digest(doc["id"]):
            raise ValueError(f"bad id {doc['id']!r}")
        return cls(
            model=str(doc["model"]),
            alias=check_alias(str(doc["alias"])),
            version=Version.parse(str(doc["version"])).text,
            id=doc["id"],
            generation=int(doc["generation"]),
            history=tuple(AliasEvent(**e) for e in doc.get("history") or ()),
        )


@dataclass(frozen=True)
class VersionState:
    """Mutable state of a version: current tags (None: the manifest's) and deprecation."""

    tags: tuple[str, ...] | None = None
    deprecated: dict[str, str] | None = None
    generation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The state file document."""
        return {
            "schema": "mreg/v1",
            "kind": "VersionState",
            "tags": list(self.tags) if self.tags is not None else None,
            "deprecated": self.deprecated,
            "generation": self.generation,
        }


def _load(path: Path) -> Any:
    return yamlio.load_file(path, IntegrityError) if path.exists() else None


def read_alias(store: StoreHandle, name: str, alias: str) -> AliasRef | None:
    """The alias ref, or None when the alias was never set."""
    path = store.alias_path(name, alias)
    doc = _load(path)
    if doc is None:
        return None
    try:
        return AliasRef.from_dict(doc)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        # InvalidInput comes from the name/version grammar: in a stored file it means damage.
        raise IntegrityError(f"{path}: malformed alias file ({exc})") from None


def list_aliases(store: StoreHandle, name: str) -> list[AliasRef]:
    """Every alias of a model, sorted by alias name."""
    d = layout.aliases_dir(store.root, name)
    if not d.is_dir():
        return []
    # A `.tmp-*` file is a write in progress or one a crash cut short (fsck --repair sweeps
    # it), never an alias: reading it would fail on its name (issue 8, crash suite).
    names = sorted(
        p.name[:-5]
        for p in d.iterdir()
        if p.name.endswith(".yaml") and not p.name.startswith(TMP_PREFIX)
    )
    refs = [read_alias(store, name, a) for a in names]
    return [r for r in refs if r is not None]


def write_alias(store: StoreHandle, ref: AliasRef) -> None:
    """Replace the alias file (caller holds the lock)."""
    atomic_write(store.alias_path(ref.model, ref.alias), yamlio.dump(ref.to_dict()))


def read_state(store: StoreHandle, name: str, version: str) -> VersionState:
    """A version's mutable state (the default state when it has no state file)."""
    path = store.state_path(name, version)
    doc = _load(path)
    if doc is None:
        return VersionState()
    try:
        if doc.get("kind") != "VersionState":
            raise ValueError("not a VersionState document")
        tags = doc.get("tags")
        dep = doc.get("deprecated")
        return VersionState(
            tags=tuple(str(t) for t in tags) if tags is not None else None,
            deprecated={str(k): str(v) for k, v in dep.items()} if dep else None,
            generation=int(doc.get("generation") or 0),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{path}: malformed state file ({exc})") from None


def write_state(store: StoreHandle, name: str, version: str, state: VersionState) -> None:
    """Replace a version's state file (caller holds the lock)."""
    atomic_write(store.state_path(name, version), yamlio.dump(state.to_dict()))
