"""The rollout manifest as a file of the store (`releases/NAME.yaml`), and rules files.

Domain layer (docs/architecture.md): reading and writing the manifest of a store given its
`StoreHandle` (the path comes from `modelreg.layout` through the handle), and reading a rules
file named on the command line. The parsing is the model layer's (`Rollout.parse`,
`rules_from_list`). `release.ops` re-exports the public names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg import yamlio
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import atomic_write, read_regular
from modelreg.release.rollout import Rollout
from modelreg.release.rules import Rule, rules_from_list

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = [
    "read_manifest_bytes",
    "read_rollout",
    "read_rules_file",
    "release_path",
    "write_rollout",
]


def release_path(store: StoreHandle, name: str) -> Path:
    """`releases/NAME.yaml` (namespaced names: `releases/team/name.yaml`); name checked first."""
    return store.release_path(name)  # the path is spelled in modelreg.layout


def read_rollout(store: StoreHandle, name: str) -> Rollout | None:
    """The model's rollout manifest, or None when it never had a release.

    Raises:
        IntegrityError: something is at the manifest's path but it is not a valid rollout
            manifest of this model: unreadable, not a file, unparsable, schema-invalid, or
            with generations out of order.
    """
    path = release_path(store, name)
    data = read_manifest_bytes(path)
    return None if data is None else _parse_manifest(data, path, name)


def read_manifest_bytes(path: Path) -> bytes | None:
    """The manifest's bytes (None: nothing there), opened without blocking (a FIFO).

    Raises:
        IntegrityError: something is there but cannot be read as a file (a dangling link, a
            directory, a FIFO or device, a read error).
    """
    data = read_regular(path, yamlio.MAX_BYTES, IntegrityError, directory="a rollout manifest")
    if data is None and os.path.lexists(path):
        raise IntegrityError(f"{path}: a symbolic link to nothing")
    return data


def _parse_manifest(data: bytes, path: Path, name: str) -> Rollout:
    return Rollout.parse(data, str(path), name)


def write_rollout(store: StoreHandle, rollout: Rollout) -> None:
    """Replace the manifest atomically (the caller holds the store lock)."""
    atomic_write(release_path(store, rollout.model), yamlio.dump(rollout.to_dict()))


def read_rules_file(path: str | Path) -> tuple[Rule, ...]:
    """Rules from a YAML or JSON file: a list of rule mappings or text forms (or `{rules: [...]}`).

    Raises:
        InvalidInput: the file is missing, unparsable, or holds an invalid rule.
    """
    doc = yamlio.loads_data(_read_bytes(Path(path)), str(path))
    if isinstance(doc, dict) and set(doc) == {"rules"}:
        doc = doc["rules"]
    try:
        return rules_from_list(doc)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
