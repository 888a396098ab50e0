"""What the derived index holds of each version, and how it finds the files (issue 18).

Storage layer, used by `modelreg.index`: the sortable version key, the metric and parameter
leaves a filter or a sort reads, and the scans of the models' directories.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError
from modelreg.hashing import hash_bytes
from modelreg.manifest import ModelVersion
from modelreg.names import Version

if TYPE_CHECKING:
    from modelreg.refs import AliasRef
from modelreg.tombstones import deleted_versions

__all__ = [
    "SCHEMA",
    "fields_of",
    "index_aliases",
    "load_manifest",
    "model_names",
    "version_key",
    "version_names",
]

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE versions(
    model TEXT NOT NULL, version TEXT NOT NULL, vkey TEXT NOT NULL, id TEXT NOT NULL,
    created TEXT NOT NULL, author TEXT NOT NULL, deprecated INTEGER NOT NULL,
    PRIMARY KEY (model, version)) WITHOUT ROWID;
CREATE INDEX versions_vkey ON versions(model, vkey);
CREATE INDEX versions_created ON versions(created);
CREATE TABLE fields(model TEXT NOT NULL, version TEXT NOT NULL, key TEXT NOT NULL,
    num REAL, text TEXT);
CREATE INDEX fields_key ON fields(key, num, model, version);
CREATE INDEX fields_version ON fields(model, version, key, num, text);
CREATE TABLE tags(model TEXT NOT NULL, version TEXT NOT NULL, tag TEXT NOT NULL);
CREATE INDEX tags_tag ON tags(tag, model, version);
CREATE INDEX tags_version ON tags(model, version);
CREATE TABLE aliases(model TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL,
    id TEXT NOT NULL, generation INTEGER NOT NULL, move TEXT,
    PRIMARY KEY (model, alias)) WITHOUT ROWID;
CREATE INDEX aliases_version ON aliases(model, version);
CREATE TABLE moves(model TEXT NOT NULL, alias TEXT NOT NULL, generation INTEGER NOT NULL,
    time TEXT NOT NULL, move TEXT NOT NULL, PRIMARY KEY (model, alias, generation))
    WITHOUT ROWID;
CREATE INDEX moves_time ON moves(model, time, alias, generation);
CREATE TABLE audit(seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, model TEXT, line TEXT NOT NULL);
CREATE INDEX audit_model ON audit(model, seq);
CREATE INDEX audit_time ON audit(time);
"""
"""The tables (`modelreg.index` documents what each holds; `moves` is every alias move, in
the order `mreg history` shows them)."""


def _num(n: str) -> str:
    return f"{len(n):02d}{n}"


def version_key(text: str) -> str:
    """A text that sorts (bytewise) as SemVer orders the versions: 1.2.0-rc.1 < 1.2.0."""
    core, _, pre = text.partition("-")
    major, minor, patch = (str(int(p)) for p in core.split("."))
    key = ".".join(_num(p) for p in (major, minor, patch))
    if not pre:
        return key + "~"
    parts = []
    for ident in pre.split("."):
        parts.append("0" + _num(str(int(ident))) if ident.isdigit() else "1" + ident)
    return key + "-" + "\x01".join(parts)


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(f"{prefix}.{k}", v)
    else:
        yield prefix, value


def fields_of(mv: ModelVersion) -> list[tuple[str, float | None, str]]:
    """(key, number or None, text) per metric and parameter leaf of a manifest.

    And per value of what its files declare (`declared.*`, each value a row, issue 20).
    """
    from modelreg.declared import search_values

    declared = [(k, v) for k, vs in search_values(mv.declared).items() for v in vs]
    out = []
    for key, value in [*_leaves("metrics", mv.metrics), *_leaves("params", mv.params), *declared]:
        num = None
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            num = float(value)
        out.append((key, num, str(value)))
    return out


def load_manifest(root: Path, name: str, version: str) -> ModelVersion | None:
    """Read and check one manifest (the one reader: `catalog.load_version` uses it too).

    None when there is no such file; IntegrityError when it is unreadable or damaged.
    """
    path = layout.manifest_path(root, name, version)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror})") from None
    doc = yamlio.load(data, str(path), IntegrityError)
    try:
        mv = ModelVersion.from_dict(doc, hash_bytes(data))
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from None
    if mv.name != name or mv.version != version:
        raise IntegrityError(f"{path}: manifest names {mv.name}@{mv.version}, not its own path")
    return mv


def model_names(root: Path) -> list[str]:
    """Every model with a versions directory, sorted (namespaced ones as `team/model`)."""
    models = root / layout.MODELS
    out: list[str] = []
    if not models.is_dir():
        return out
    for d in sorted(models.iterdir()):
        if (d / layout.VERSIONS).is_dir():
            out.append(d.name)
        elif d.is_dir():
            out.extend(
                f"{d.name}/{s.name}" for s in sorted(d.iterdir()) if (s / layout.VERSIONS).is_dir()
            )
    return out


def version_names(root: Path, name: str) -> set[str]:
    """The versions whose manifests are in a model's directory (one directory listing).

    A version with a tombstone is deleted (issue 19), even while a delete cut short has
    left its manifest: it is not listed.
    """
    try:
        entries = os.scandir(layout.versions_dir(root, name))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    with entries:
        found = {
            e.name[:-5]
            for e in entries
            if e.name.endswith(".yaml") and Version.is_version(e.name[:-5])
        }
    return found - deleted_versions(root, name) if found else found


def index_aliases(conn: sqlite3.Connection, model: str) -> list[AliasRef]:
    """A model's aliases, each with the move that put it where it is, from the index.

    An alias file holds its whole history: reading it grows with the moves; this does not.
    """
    from modelreg.refs import AliasEvent, AliasRef

    out = []
    for alias, version, id_, generation, move in conn.execute(
        "SELECT alias, version, id, generation, move FROM aliases WHERE model = ? ORDER BY alias",
        (model,),
    ):
        last = (AliasEvent(**json.loads(move)),) if move else ()
        out.append(AliasRef(model, alias, version, id_, generation, last))
    return out
