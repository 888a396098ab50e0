"""Reading the registry: resolve refs, list and filter versions, show, diff, get.

Readers take no lock: manifests are immutable and refs are replaced atomically, so every
file read is either the old or the new whole document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import indexrows, layout
from modelreg.errors import Conflict, IntegrityError, InvalidInput, NotFound
from modelreg.handle import StoreHandle
from modelreg.manifest import ModelVersion
from modelreg.names import Version, parse_ref
from modelreg.oms import Signature
from modelreg.refs import AliasEvent, AliasRef, list_aliases, read_alias, read_state
from modelreg.signature_files import read_signatures
from modelreg.tombstones import deleted_versions, read_tombstone

if TYPE_CHECKING:
    pass

__all__ = [
    "Materialized",
    "ModelSummary",
    "VersionDiff",
    "VersionInfo",
    "diff",
    "flatten",
    "get",
    "info",
    "load_version",
    "model_names",
    "require_model",
    "resolve",
    "version_list",
]


@dataclass(frozen=True)
class VersionInfo:
    """A version with what lives beside its manifest: aliases here, tags, deprecation."""

    version: ModelVersion
    aliases: tuple[str, ...]
    tags: tuple[str, ...]
    deprecated: dict[str, str] | None
    # the move that put each of `aliases` here: who, when, why (issue 13)
    alias_moves: tuple[AliasEvent, ...] = ()
    # what each of its OMS signatures says (issue 19; whether it holds: `mreg verify`)
    signatures: tuple[Signature, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg show` (and each row of `mreg list NAME`)."""
        doc = self.version.to_dict()
        del doc["schema"], doc["kind"]
        return {
            "id": self.version.id,
            **doc,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "alias_moves": {e.alias: _move_dict(e) for e in self.alias_moves},
            "deprecated": self.deprecated,
            "signatures": [s.to_dict() for s in self.signatures],
            "size": self.version.size,
        }


def _move_dict(e: AliasEvent) -> dict[str, Any]:
    keys = ("action", "actor", "time", "generation", "reason", "forced")
    return {k: getattr(e, k) for k in keys}


@dataclass(frozen=True)
class ModelSummary:
    """One model in `mreg list`."""

    name: str
    versions: int
    latest: str | None
    aliases: dict[str, str]
    updated: str | None

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of each row of `mreg list`."""
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": self.latest,
            "aliases": self.aliases,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class VersionDiff:
    """Differences between two versions, section by section: {key: [a_value, b_value]}."""

    a: ModelVersion
    b: ModelVersion
    params: dict[str, tuple[Any, Any]]
    metrics: dict[str, tuple[Any, Any]]
    files: dict[str, tuple[Any, Any]]
    data: dict[str, tuple[Any, Any]]
    code: dict[str, tuple[Any, Any]]
    dependencies: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    identity: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    declared: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """What the model files declare (issue 20): `PATH: input NAME` -> `float32 [None, 30]`..."""

    SECTIONS = (
        "identity", "params", "metrics", "files", "declared", "data", "code", "dependencies",
    )  # fmt: skip

    @property
    def identical(self) -> bool:
        """True when no section of content differs (identity: author, message, date aside)."""
        return not (
            self.params or self.metrics or self.files or self.data or self.code
            or self.dependencies or self.declared
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg diff`."""

        def section(d: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
            return {k: {"a": a, "b": b} for k, (a, b) in d.items()}

        return {
            "a": {"name": self.a.name, "version": self.a.version, "id": self.a.id},
            "b": {"name": self.b.name, "version": self.b.version, "id": self.b.id},
            "params": section(self.params),
            "metrics": section(self.metrics),
            "files": section(self.files),
            "data": section(self.data),
            "code": section(self.code),
            "dependencies": section(self.dependencies),
            "identity": section(self.identity),
            "declared": section(self.declared),
        }


def model_names(store: StoreHandle) -> list[str]:
    """Every registered model name, sorted (namespaced names included)."""
    return indexrows.model_names(store.root)


def version_list(store: StoreHandle, name: str) -> list[Version]:
    """Every version of a model (unsorted); empty for an unknown model."""
    return [Version(v) for v in indexrows.version_names(store.root, name)]


def load_version(store: StoreHandle, name: str, version: str) -> ModelVersion:
    """Read and check one manifest; IntegrityError if the file is damaged.

    NotFound when there is none, or when the version was deleted (its tombstone says when,
    by whom and why, issue 19), even if a delete cut short left the manifest.
    """
    deleted = read_tombstone(store.root, name, version)
    if deleted is not None:
        raise NotFound(deleted.describe())
    mv = indexrows.load_manifest(store.root, name, version)
    if mv is None:
        raise NotFound(f"{name}@{version}: no such version")
    return mv


def has_versions(store: StoreHandle, name: str) -> bool:
    """True when the model has at least one version (stops at the first manifest found)."""
    try:
        entries = os.scandir(layout.versions_dir(store.root, name))
    except (FileNotFoundError, NotADirectoryError):
        return False
    with entries:
        found = (e.name[:-5] for e in entries if e.name.endswith(".yaml"))
        return any(
            Version.is_version(v) and not layout.tombstone_path(store.root, name, v).exists()
            for v in found
        )


def require_model(store: StoreHandle, name: str) -> list[Version]:
    """The versions of `name`; NotFound (exit 2) when there is no such model."""
    vs = version_list(store, name)
    if not vs:
        raise NotFound(f"no model named {name!r}")
    return vs


def check_model(store: StoreHandle, name: str) -> None:
    """NotFound (exit 2) when there is no model `name`; flat in the number of versions.

    A model whose every version was deleted is named as such, with its last deletion.
    """
    if not has_versions(store, name):
        last = max(deleted_versions(store.root, name), key=Version, default=None)
        t = read_tombstone(store.root, name, last) if last else None
        if t is not None:
            raise NotFound(f"every version of {name!r} was deleted; last, {t.describe()}")
        raise NotFound(f"no model named {name!r}")


def latest_version(store: StoreHandle, name: str) -> str:
    """The highest version of a model (from the index when it can answer)."""
    from modelreg.index import open_index

    with open_index(store) as idx:
        if idx is not None:
            row = idx.conn.execute(
                "SELECT version FROM versions WHERE model = ? ORDER BY vkey DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is not None:
                return str(row[0])
    return max(require_model(store, name)).text


def resolve(store: StoreHandle, spec: str) -> ModelVersion:
    """The version named by `NAME[@REF]`: a version, an alias, or `latest` (the default)."""
    ref = parse_ref(spec)
    check_model(store, ref.name)
    if ref.kind == "latest":
        return load_version(store, ref.name, latest_version(store, ref.name))
    if ref.kind == "version":
        return load_version(store, ref.name, ref.ref)
    alias = _alias(store, ref.name, ref.ref)
    if alias is None:
        raise NotFound(f"{ref.name}@{ref.ref}: no such alias")
    mv = load_version(store, ref.name, alias.version)
    if mv.id != alias.id:
        raise IntegrityError(
            f"alias {ref.name}@{ref.ref} expects manifest {alias.id[:12]} but "
            f"{alias.version} is {mv.short_id}: the manifest was changed"
        )
    return mv


def _info(mv: ModelVersion, aliases: list[AliasRef], store: StoreHandle) -> VersionInfo:
    state = read_state(store, mv.name, mv.version)
    here = [a for a in aliases if a.version == mv.version]
    return VersionInfo(
        version=mv,
        aliases=tuple(a.alias for a in here),
        tags=state.tags if state.tags is not None else mv.tags,
        deprecated=state.deprecated,
        alias_moves=tuple(a.history[-1] for a in here if a.history),
        signatures=tuple(s for s, _ in read_signatures(store.root, mv.name, mv.version)),
    )


def info(store: StoreHandle, spec: str) -> VersionInfo:
    """`resolve` plus aliases, current tags and deprecation."""
    mv = resolve(store, spec)
    return _info(mv, _aliases(store, mv.name), store)


def _aliases(store: StoreHandle, name: str) -> list[AliasRef]:
    """A model's aliases with their last moves.

    From the index when it can be used (flat in the number of moves), else the alias files.
    """
    from modelreg.index import open_index, path_of

    if not path_of(store.root).exists():  # no index yet: a show does not build one
        return list_aliases(store, name)
    with open_index(store) as idx:
        if idx is not None:
            return indexrows.index_aliases(idx.conn, name)
    return list_aliases(store, name)


def _alias(store: StoreHandle, name: str, alias: str) -> AliasRef | None:
    """One alias (its target and last move), as `_aliases` reads them."""
    from modelreg.names import check_alias

    check_alias(alias)
    if store.writing_now:  # inside a write: the files, as the write sees them
        return read_alias(store, name, alias)
    return next((a for a in _aliases(store, name) if a.alias == alias), None)


def _dict_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: {"a": {"b": 1}} → {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def diff(store: StoreHandle, spec_a: str, spec_b: str) -> VersionDiff:
    """Compare two versions (of the same or different models)."""
    from modelreg.declared import flat

    a, b = resolve(store, spec_a), resolve(store, spec_b)
    code_a = a.code.to_dict() if a.code else {}
    code_b = b.code.to_dict() if b.code else {}
    return VersionDiff(
        a=a,
        b=b,
        params=_dict_diff(flatten(a.params), flatten(b.params)),
        metrics=_dict_diff(flatten(a.metrics), flatten(b.metrics)),
        files=_dict_diff({f.path: f.sha256 for f in a.files}, {f.path: f.sha256 for f in b.files}),
        data=_dict_diff(
            {d.uri: d.sha256 or "(uri)" for d in a.data},
            {d.uri: d.sha256 or "(uri)" for d in b.data},
        ),
        code=_dict_diff(code_a, code_b),
        dependencies=_dict_diff(_dependencies(a), _dependencies(b)),
        identity=_dict_diff(_identity(a), _identity(b)),
        declared=_dict_diff(flat(a.declared), flat(b.declared)),
    )


def _identity(mv: ModelVersion) -> dict[str, Any]:
    return {"author": mv.author, "message": mv.message, "created": mv.created}


def _dependencies(mv: ModelVersion) -> dict[str, Any]:
    """Python, mreg, the requirements file and each package by name (`numpy`: `numpy==2.1`)."""
    import re

    d = mv.dependencies
    if d is None:
        return {}
    out: dict[str, Any] = {"python": d.python, "mreg": d.mreg}
    if d.requirements is not None:
        out["requirements"] = d.requirements.sha256
    for line in d.packages:
        name = re.split(r"[\s<>=!~;\[@(]", line, maxsplit=1)[0] or line
        out[f"package {name.lower()}"] = line
    return out


@dataclass(frozen=True)
class Materialized:
    """The result of `get`: which version, where, and which files were (re)written."""

    version: ModelVersion
    out: Path
    written: tuple[Path, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg get`."""
        return {
            "name": self.version.name,
            "version": self.version.version,
            "id": self.version.id,
            "out": str(self.out),
            "written": [str(p) for p in self.written],
            "files": len(self.version.files),
        }


def get(store: StoreHandle, spec: str, out: Path, *, force: bool = False) -> Materialized:
    """Write a version's files under `out`, re-hashing every byte.

    A destination file that already holds the right content is left alone; one with other
    content, or a symbolic link in a file's place, is refused (InvalidInput) unless `force`,
    which replaces it (the link itself, never what it points to). No link below `out` is
    ever followed (issue 15): a directory on a file's way that is a symbolic link, wherever
    it points, is refused, even with `force`. Nothing is written until every destination has
    been checked.
    """
    import stat

    from modelreg.fsutil import lstat_beneath, safe_join
    from modelreg.hashing import hash_file

    mv = resolve(store, spec)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out}: exists and is not a directory")
    plan = []
    for f in mv.files:
        dst = safe_join(out, f.path)
        st = lstat_beneath(out, f.path)  # a linked or non-directory parent: InvalidInput
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"{dst} is a directory, where the version has a file")
            if stat.S_ISREG(st.st_mode) and hash_file(dst)[0] == f.sha256:
                continue
            if not force:
                what = (
                    "is a symbolic link"
                    if stat.S_ISLNK(st.st_mode)
                    else "exists with other content"
                )
                raise InvalidInput(f"{dst} {what} (use --force to overwrite)")
        plan.append((f, dst))
    for f, _ in plan:
        if not store.objects.has(f.sha256):
            raise IntegrityError(f"object {f.sha256[:12]} of {f.path} is missing from the store")
    written = []
    for f, dst in plan:
        store.objects.copy_out(f.sha256, dst, beneath=out)
        written.append(dst)
    return Materialized(mv, out, tuple(written))


def check_namespace(store: StoreHandle, name: str) -> None:
    """A name cannot be both a model and a namespace (as git refuses refs a and a/b)."""
    ns, sep, _ = name.partition("/")
    if sep and (store.models_dir / ns / "versions").exists():
        raise Conflict(f"cannot register {name!r}: {ns!r} is already a model, not a namespace")
    if not sep:
        d = store.models_dir / name
        if d.is_dir() and not (d / "versions").exists():
            raise Conflict(f"cannot register {name!r}: it is a namespace of other models")
