"""`verify`: check the audit chain, every manifest and ref, and every object's digest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg.catalog import load_version, model_names, version_list
from modelreg.errors import MregError
from modelreg.refs import list_aliases, read_state
from modelreg.store import Store

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """What was checked and every problem found (one line each)."""

    problems: tuple[str, ...]
    versions: int
    objects: int
    audit_entries: int

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg verify`."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "versions": self.versions,
            "objects": self.objects,
            "audit_entries": self.audit_entries,
        }


def verify(store: Store, *, objects: bool = True) -> VerifyReport:
    """Check everything the store holds; never modifies it."""
    problems: list[str] = list(store.audit.verify())
    try:
        entries = len(store.audit.entries())
    except MregError:
        entries = 0
    referenced: dict[str, str] = {}
    count = 0
    for name in model_names(store):
        known: dict[str, str] = {}
        for v in sorted(version_list(store, name)):
            try:
                mv = load_version(store, name, v.text)
                read_state(store, name, v.text)
            except MregError as exc:
                problems.append(str(exc))
                continue
            count += 1
            known[mv.version] = mv.id
            files = list(mv.files)
            if mv.dependencies and mv.dependencies.requirements:
                files.append(mv.dependencies.requirements)
            for f in files:
                referenced.setdefault(f.sha256, f"{name}@{v.text}:{f.path}")
                if not store.objects.has(f.sha256):
                    problems.append(f"{name}@{v.text}: object {f.sha256[:12]} ({f.path}) missing")
        try:
            aliases = list_aliases(store, name)
        except MregError as exc:
            problems.append(str(exc))
            continue
        for a in aliases:
            if a.version not in known:
                problems.append(f"alias {name}@{a.alias} points at missing version {a.version}")
            elif known[a.version] != a.id:
                problems.append(
                    f"alias {name}@{a.alias}: manifest of {a.version} changed "
                    f"(expected {a.id[:12]}, found {known[a.version][:12]})"
                )
    checked = 0
    if objects:
        for digest in store.objects.iter_digests():
            checked += 1
            if not store.objects.verify(digest):
                where = referenced.get(digest, "unreferenced")
                problems.append(
                    f"object {digest[:12]} ({where}) is corrupt: content does not match"
                )
    return VerifyReport(tuple(problems), count, checked, entries)
