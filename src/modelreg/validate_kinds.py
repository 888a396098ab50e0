"""`mreg validate`'s per-kind checks: what a document's place says it is, and its meaning.

The third and fourth kinds of check of `modelreg.validate` (issue 7): what a schema cannot say
about a version manifest, an alias, a version state, the store config or a rollout, and the
references an alias or a rollout makes to the store's manifests. Each check takes the parsed
document, the place it sits in the store (`Place`, from `place_of`) and the store's
`References`, and returns `Finding`s that `modelreg.validate` turns into problems.

Domain layer (docs/architecture.md): `References` reads manifests through a `StoreHandle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

from modelreg import layout
from modelreg.config import StoreConfig
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.names import Version, check_alias, check_name

__all__ = ["MEANING", "Finding", "Place", "References", "place_of"]


# -- where a document sits in a store -----------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """What a store path says a document is: its kind, model and key (version or alias)."""

    kind: str
    model: str | None = None
    key: str | None = None


def _subdir(rel: str) -> str:
    """The directory of a model that holds `rel` (`versions` for `models/m/versions/1.yaml`)."""
    return PurePosixPath(rel).parent.name


_VERSIONS = _subdir(layout.rel_manifest("m", "1"))
_STATE = _subdir(layout.rel_state("m", "1"))
_ALIASES = _subdir(layout.rel_alias("m", "production"))


def place_of(root: Path, path: Path) -> Place | str:
    """The kind a store-relative path implies, or why the path is not a document's place."""
    parts = path.relative_to(root).parts
    stem = parts[-1].removesuffix(".yaml")
    try:
        if parts == (layout.CONFIG,):
            return Place("StoreConfig")
        if parts[0] == layout.MODELS and len(parts) in (4, 5):
            model, sub = check_name("/".join(parts[1:-2])), parts[-2]
            if sub == _ALIASES:
                return Place("Alias", model, check_alias(stem))
            if sub in (_VERSIONS, _STATE):
                v = Version.parse(stem).text
                return Place("ModelVersion" if sub == _VERSIONS else "VersionState", model, v)
        elif parts[0] == layout.RELEASES and len(parts) in (2, 3):
            return Place("Rollout", check_name("/".join(parts[1:])[: -len(".yaml")]))
    except InvalidInput as exc:
        return f"not a valid store path: {exc}"
    return "not a place where the store keeps documents"


# -- references ---------------------------------------------------------------------------------


class References:
    """Reads a store's manifests for the reference checks (cached; nothing is written)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.store = None if root is None else StoreHandle(root, StoreConfig())
        self._ids: dict[tuple[str, str], str | None] = {}

    def manifest_id(self, model: str, version: str) -> str | None:
        """The id (digest) of `model@version`'s manifest, or None when there is none."""
        assert self.store is not None
        key = (model, version)
        if key not in self._ids:
            try:
                data = self.store.manifest_path(check_name(model), Version.parse(version).text)
                self._ids[key] = hash_bytes(data.read_bytes())
            except (OSError, InvalidInput):
                self._ids[key] = None
        return self._ids[key]

    def check_side(self, model: str, version: str, id: str, what: str) -> Iterable[Finding]:
        """The version `what` names must exist and have the manifest id it recorded."""
        found = self.manifest_id(model, version)
        if found is None:
            yield Finding(what, f"{model}@{version} does not exist in the store", "reference")
        elif found != id:
            yield Finding(
                what,
                f"{model}@{version} has manifest {found[:12]}, not {id[:12]} as recorded: "
                "the manifest was changed, or this file is from another store",
                "reference",
            )


@dataclass(frozen=True)
class Finding:
    """One meaning or reference finding on a field of a document (`path`, empty: all of it)."""

    path: str
    message: str
    check: str = "meaning"
    unreadable: bool = False
    """The document cannot be read as its kind (a consequence of its schema problems, if any)."""


# -- meaning, per kind --------------------------------------------------------------------------


def _increasing(generations: Sequence[int], current: int, what: str) -> Iterable[Finding]:
    if any(b <= a for a, b in pairwise(generations)):
        yield Finding("history", f"{what} generations must increase")
    if generations and generations[-1] != current:
        yield Finding(
            "generation", f"is {current}, but the last history entry has {generations[-1]}"
        )


def _model_version(doc: dict[str, Any], place: Place | None, refs: References) -> list[Finding]:
    from modelreg.manifest import ModelVersion

    # File paths first, one finding per file: a manifest refuses to load with an unsafe or
    # repeated path (manifest.check_files), and would otherwise name only the first one.
    out = list(_file_path_findings(doc.get("files")))
    if out:
        return out
    try:
        mv = ModelVersion.from_dict(doc, error=InvalidInput)
    except InvalidInput as exc:
        return [Finding("", str(exc), unreadable=True)]
    if place is not None and (place.model, place.key) != (mv.name, mv.version):
        out.append(Finding("", f"holds {mv.name}@{mv.version}, but its path is for "
                                f"{place.model}@{place.key}"))  # fmt: skip
    return out


def _file_path_findings(files: Any) -> Iterable[Finding]:
    """Unsafe and repeated file paths of a manifest's `files` list."""
    from modelreg.names import check_path

    seen: set[str] = set()
    for i, f in enumerate(files if isinstance(files, list) else []):
        path = f.get("path") if isinstance(f, dict) else None
        if not isinstance(path, str):
            continue  # the schema check reports it
        try:
            check_path(path)
        except InvalidInput as exc:
            yield Finding(f"files[{i}].path", str(exc))
        if path in seen:
            yield Finding(f"files[{i}].path", f"{path!r} is listed twice")
        seen.add(path)


def _alias(doc: dict[str, Any], place: Place | None, refs: References) -> list[Finding]:
    from modelreg.refs import AliasRef

    try:
        ref = AliasRef.from_dict(doc)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        return [Finding("", f"malformed alias: {exc}", unreadable=True)]
    out = list(_increasing([e.generation for e in ref.history], ref.generation, "move"))
    if ref.history and (ref.history[-1].version, ref.history[-1].id) != (ref.version, ref.id):
        out.append(Finding("version", "differs from the last move in the history"))
    out.extend(
        Finding(f"history[{i}].alias", f"is {e.alias!r}, in the file of alias {ref.alias!r}")
        for i, e in enumerate(ref.history)
        if e.alias != ref.alias
    )
    if place is not None and (place.model, place.key) != (ref.model, ref.alias):
        out.append(Finding("", f"holds alias {ref.model}@{ref.alias}, but its path is for "
                                f"{place.model}@{place.key}"))  # fmt: skip
    if refs.store is not None:
        out.extend(refs.check_side(ref.model, ref.version, ref.id, "version"))
    return out


def _version_state(doc: dict[str, Any], place: Place | None, refs: References) -> list[Finding]:
    tags = doc.get("tags") or []
    if len(set(tags)) != len(tags):
        return [Finding("tags", "a tag is listed twice")]
    if refs.store is not None and place is not None and place.model and place.key:
        if refs.manifest_id(place.model, place.key) is None:
            msg = f"{place.model}@{place.key} does not exist in the store"
            return [Finding("", f"state of a version that does not exist: {msg}", "reference")]
    return []


def _store_config(doc: dict[str, Any], place: Place | None, refs: References) -> list[Finding]:
    """Findings of a store config: none once it parses.

    Every gate parses then, and the search language already refuses, with the column, an
    ordering of a number against a value that is not one.
    """
    try:
        StoreConfig.from_dict(doc, "config")
    except IntegrityError as exc:
        return [Finding("", str(exc).removeprefix("config: "), unreadable=True)]
    return []


def _rollout(doc: dict[str, Any], place: Place | None, refs: References) -> list[Finding]:
    from modelreg.release.bucketing import FULL
    from modelreg.release.rollout import LIVE, PROMOTED, Rollout

    try:
        r = Rollout.from_dict(doc)
    except InvalidInput as exc:
        return [Finding("", str(exc), unreadable=True)]
    out = list(_increasing([e.generation for e in r.history], r.generation, "change"))
    if r.history:
        last = r.history[-1]
        for field in ("release", "state", "weight", "shadow"):
            if getattr(last, field) != getattr(r, field):
                out.append(Finding(field, "differs from the last change in the history"))
    if r.shadow and r.weight:
        out.append(Finding("weight", "must be 0 in shadow mode (the canary only mirrors)"))
    if r.state == PROMOTED and r.weight != FULL:
        out.append(Finding("weight", "must be 100 once the release is promoted"))
    if r.state not in LIVE and r.state != PROMOTED and r.weight:
        out.append(Finding("weight", "must be 0 once the release is aborted"))
    if r.state in LIVE and r.production_generation is not None:
        out.append(Finding("production_generation", "is set only when a release has ended"))
    out.extend(_rule_findings(r))
    if r.analysis:
        out.extend(_analysis_findings(r.analysis))
    if place is not None and place.model != r.model:
        out.append(Finding("model", f"is {r.model!r}, but the file is the release of "
                                     f"{place.model!r}"))  # fmt: skip
    if refs.store is not None:
        out.extend(refs.check_side(r.model, r.baseline.version, r.baseline.id, "baseline"))
        out.extend(refs.check_side(r.model, r.canary.version, r.canary.id, "canary"))
    return out


Test = tuple[str, frozenset[str]]
"""A rule condition as (op, values): `eq`/`in` with the accepted values, or `prefix`."""


def _conditions(rule: Any) -> dict[str, Test]:
    out: dict[str, Test] = {m.key: ("prefix" if m.op == "prefix" else "in", frozenset(m.values))
                            for m in rule.when}  # fmt: skip
    if rule.users:
        out["user_id"] = ("in", frozenset(rule.users))
    return out


def _implies(narrow: Test, broad: Test) -> bool:
    """True when every value that passes `narrow` passes `broad`."""
    (n_op, n_vals), (b_op, b_vals) = narrow, broad
    if b_op == "in":
        return n_op == "in" and n_vals <= b_vals
    prefix = next(iter(b_vals))
    return all(v.startswith(prefix) for v in n_vals)  # an `in` set or a longer prefix


def _rule_findings(r: Any) -> Iterable[Finding]:
    """Duplicate names, and rules that an earlier rule shadows (first match wins)."""
    names: dict[str, int] = {}
    earlier: list[tuple[int, dict[str, Test]]] = []
    for i, rule in enumerate(r.rules, 1):
        if rule.name and rule.name in names:
            yield Finding(f"rules[{i - 1}].name", f"{rule.name!r} is also rule {names[rule.name]}")
        names.setdefault(rule.name, i)
        mine = _conditions(rule)
        for j, theirs in earlier:
            if all(k in mine and _implies(mine[k], t) for k, t in theirs.items()):
                yield Finding(
                    f"rules[{i - 1}]",
                    f"can never match: rule {j} comes first and matches every request it matches",
                )
                break
        earlier.append((i, mine))


def _analysis_findings(analysis: Sequence[dict[str, Any]]) -> Iterable[Finding]:
    try:
        from modelreg.analysis.checks import checks_from_list
    except ImportError:  # pragma: no cover (the analysis package ships with mreg)
        return
    try:
        checks_from_list(list(analysis))
    except InvalidInput as exc:
        yield Finding("analysis", str(exc))


MEANING: dict[str, Callable[[dict[str, Any], Place | None, References], list[Finding]]] = {
    "ModelVersion": _model_version,
    "Alias": _alias,
    "VersionState": _version_state,
    "StoreConfig": _store_config,
    "Rollout": _rollout,
}
