"""`mreg fsck`'s check of the derived index against the files (issue 18).

Storage layer. The index (`modelreg.index`) is derived, so a disagreement is never the
files' fault: `mreg fsck --repair` rebuilds the index.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg import layout
from modelreg.errors import IntegrityError
from modelreg.index import MARK, NAME, connect, path_of, usable
from modelreg.indexrows import load_manifest, model_names, version_names

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = ["check"]

_MOVES = "SELECT move FROM moves WHERE model = ?"


def check(store: StoreHandle) -> list[str]:
    """Where the index disagrees with the files (`mreg fsck`); [] when it agrees or is absent.

    Compares every version's manifest id, every alias and its moves, every version's current
    tags and deprecation, and the audit entries indexed, with the files.
    """
    from modelreg.hashing import hash_bytes
    from modelreg.refs import list_aliases, read_state

    path = path_of(store.root)
    if path.exists():
        from modelreg.index import open_index

        with open_index(store):  # behind is not wrong: a read catches up first, as here
            pass
    if not path.exists() or (store.root / MARK).exists():
        return []  # absent, or a write in progress: rebuilt or caught up by the next read
    try:
        conn = connect(path)
    except sqlite3.DatabaseError:
        return [f"{NAME}: not an index (it is rebuilt by the next read)"]
    try:
        if not usable(conn):
            return [f"{NAME}: not an index of this mreg (it is rebuilt by the next read)"]
        problems: list[str] = []
        rows = conn.execute("SELECT model, version, id, deprecated FROM versions").fetchall()
        indexed = {(m, v): (i, d) for m, v, i, d in rows}
        tags: dict[tuple[str, str], set[str]] = {}
        for m, v, t in conn.execute("SELECT model, version, tag FROM tags"):
            tags.setdefault((m, v), set()).add(t)
        files: set[tuple[str, str]] = set()
        for name in model_names(store.root):
            for version in version_names(store.root, name):
                key = (name, version)
                files.add(key)
                data = layout.manifest_path(store.root, name, version).read_bytes()
                if key not in indexed:
                    problems.append(f"{name}@{version}: not in the index")
                    continue
                if indexed[key][0] != hash_bytes(data):
                    problems.append(f"{name}@{version}: the index holds another manifest")
                st = read_state(store, name, version)
                want = st.tags if st.tags is not None else _tags_of(store.root, name, version)
                if set(want) != tags.get(key, set()):
                    problems.append(f"{name}@{version}: the index holds other tags")
                if bool(st.deprecated) != bool(indexed[key][1]):
                    problems.append(f"{name}@{version}: the index says otherwise of deprecation")
            refs = list_aliases(store, name)
            want_aliases = {(a.alias, a.version) for a in refs}
            got = set(conn.execute("SELECT alias, version FROM aliases WHERE model = ?", (name,)))
            if want_aliases != got:
                problems.append(f"{name}: the index holds other aliases")
            want_moves = {json.dumps(e.to_dict()) for a in refs for e in a.history}
            if want_moves != {m for (m,) in conn.execute(_MOVES, (name,))}:
                problems.append(f"{name}: the index holds another alias history")
        problems += [f"{m}@{v}: in the index, not in the store" for m, v in indexed.keys() - files]
        try:
            last = store.audit.last()
        except IntegrityError:  # a damaged trail: verify and fsck report it themselves
            return problems
        n = conn.execute("SELECT COUNT(*), MAX(seq) FROM audit").fetchone()
        if (n[1] or 0) != (last.seq if last else 0):
            problems.append("audit: the index holds another number of entries than the log")
        return problems
    finally:
        conn.close()


def _tags_of(root: Path, name: str, version: str) -> tuple[str, ...]:
    mv = load_manifest(root, name, version)
    return mv.tags if mv is not None else ()
