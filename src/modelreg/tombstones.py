"""Tombstones: the immutable record a deleted version leaves (issue 19, "Deletion, audited").

Storage layer. `models/NAME/tombstones/V.yaml` (spelled in `modelreg.layout`) replaces the
manifest of a deleted version. It names the version, the id of the manifest it replaced,
the objects that manifest named (digest and size only: no path, no parameter, nothing the
deletion was meant to remove), why, by whom and when, whether it was forced, and the
aliases the deletion removed. It is written once (temp, fsync, rename, read-only) and never
changed, like a manifest; a remote mirrors it at the same path.

A version with a tombstone is deleted, whatever else is still beside it: readers list it no
more (`deleted_versions`), and what a delete cut short left behind (the manifest, the state
file, signatures, aliases) is removed by the next `mreg delete` of it or `fsck --repair`
(`modelreg.deletion`). Every tombstone read passes `parse`, from this store or received.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError, InvalidInput, MregError
from modelreg.fsutil import TMP_PREFIX, atomic_write, read_regular
from modelreg.hashing import is_digest
from modelreg.names import Version, check_alias, check_name

__all__ = [
    "KIND",
    "MAX_BYTES",
    "Tombstone",
    "deleted_versions",
    "parse",
    "read_tombstone",
    "read_tombstones",
    "write_tombstone",
]

KIND = "Tombstone"
MAX_BYTES = yamlio.MAX_BYTES
"""The largest tombstone read (a manifest's bound: it lists as many objects as one)."""


@dataclass(frozen=True)
class Tombstone:
    """A deleted version: which manifest, its objects, why, by whom, when."""

    name: str
    version: str
    id: str
    objects: tuple[tuple[str, int], ...]
    """(digest, size) of every object the deleted manifest named."""
    reason: str
    actor: str
    time: str
    forced: bool = False
    aliases: tuple[str, ...] = ()
    """The aliases that pointed at the version and that the deletion removed (`--force`)."""

    def to_dict(self) -> dict[str, Any]:
        """The tombstone document (and `deleted` in `mreg delete --json`)."""
        return {
            "schema": "mreg/v1",
            "kind": KIND,
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "reason": self.reason,
            "actor": self.actor,
            "time": self.time,
            "forced": self.forced,
            "aliases": list(self.aliases),
            "objects": [{"sha256": d, "size": n} for d, n in self.objects],
        }

    def bytes(self) -> bytes:
        """The document as stored."""
        return yamlio.dump(self.to_dict())

    @property
    def timestamp(self) -> float:
        """`time` as seconds since the epoch (gc's grace period counts from it)."""
        return datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%S%z").timestamp()

    def describe(self) -> str:
        """`NAME@V was deleted at TIME by ACTOR: REASON` (what readers of it are told)."""
        who = f"{self.name}@{self.version} was deleted at {self.time} by {self.actor}"
        return f"{who}: {self.reason}"


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return value


def parse(data: bytes, name: str, version: str, source: str) -> Tombstone:
    """Parse and check a tombstone that must be the one of `name@version`.

    Raises:
        IntegrityError: too large, not YAML, not a well-formed tombstone, or one naming
            another version than its path (`source` names where it came from).
    """
    if len(data) > MAX_BYTES:
        raise IntegrityError(f"{source}: larger than {MAX_BYTES} bytes, not a tombstone")
    doc = yamlio.load(data, source, IntegrityError)
    try:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise ValueError("not a Tombstone document")
        objects = doc.get("objects")
        aliases = doc.get("aliases", [])
        if not isinstance(objects, list) or not isinstance(aliases, list):
            raise ValueError("objects and aliases must be lists")
        found = []
        for o in objects:
            size = o.get("size") if isinstance(o, dict) else None
            if not is_digest(o.get("sha256")) or not isinstance(size, int) or size < 0:
                raise ValueError("every object needs a sha256 digest and a size")
            found.append((str(o["sha256"]), size))
        forced = doc.get("forced", False)
        if not isinstance(forced, bool) or not is_digest(doc.get("id")):
            raise ValueError("forced must be true or false, and id a sha256 digest")
        t = Tombstone(
            name=check_name(_text(doc, "name")),
            version=Version.parse(_text(doc, "version")).text,
            id=str(doc["id"]),
            objects=tuple(found),
            reason=_text(doc, "reason"),
            actor=_text(doc, "actor"),
            time=_text(doc, "time"),
            forced=forced,
            aliases=tuple(check_alias(str(a)) for a in aliases),
        )
        t.timestamp  # noqa: B018 (a time that does not parse is a malformed tombstone)
        if not t.reason.strip():
            raise ValueError("the reason is empty")
    except (AttributeError, TypeError, ValueError, InvalidInput) as exc:
        raise IntegrityError(f"{source}: malformed tombstone ({exc})") from None
    if t.name != name or t.version != version:
        raise IntegrityError(f"{source}: tombstone of {t.name}@{t.version}, not of its own path")
    return t


def read_tombstone(root: Path, name: str, version: str) -> Tombstone | None:
    """The tombstone of `name@version` (None: not deleted); IntegrityError if damaged."""
    path = layout.tombstone_path(root, name, version)
    data = read_regular(path, MAX_BYTES, IntegrityError)
    if data is None:
        return None
    return parse(data, name, version, str(path))


def deleted_versions(root: Path, name: str) -> set[str]:
    """The versions of `name` that have a tombstone (one directory listing; none: empty)."""
    try:
        entries = os.scandir(layout.tombstones_dir(root, name))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    with entries:
        return {
            e.name[:-5]
            for e in entries
            if e.name.endswith(".yaml")
            and not e.name.startswith(TMP_PREFIX)
            and Version.is_version(e.name[:-5])
        }


def read_tombstones(root: Path, name: str) -> tuple[list[Tombstone], list[tuple[str, str]]]:
    """Every tombstone of a model, and (store-relative path, problem) for each damaged one."""
    good, bad = [], []
    for version in sorted(deleted_versions(root, name), key=Version):
        try:
            t = read_tombstone(root, name, version)
        except MregError as exc:
            bad.append((layout.rel_tombstone(name, version), str(exc)))
            continue
        if t is not None:
            good.append(t)
    return good, bad


def write_tombstone(root: Path, t: Tombstone) -> None:
    """Write a tombstone (temp, fsync, rename; read-only): the first step of a deletion."""
    atomic_write(layout.tombstone_path(root, t.name, t.version), t.bytes(), mode=0o444)
