"""The model version manifest (the "identity card") as frozen dataclasses. Pure: no I/O.

A manifest is written once as canonical YAML (`yamlio.dump`) at
`models/NAME/versions/VERSION.yaml`; its id is the SHA-256 of those bytes. `from_dict`
checks the structure, so a damaged or hand-edited file is reported instead of half-read.
Every `ModelVersion`, however it is built (register, a remote, a bundle, an OCI layout, the
store itself), checks its file paths with `check_files` (issue 15): no code path can hold a
version whose files could not be written back safely.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from modelreg.declared import Declared
from modelreg.errors import IntegrityError, InvalidInput, MregError
from modelreg.hashing import is_digest
from modelreg.names import Version, check_name, check_path

__all__ = [
    "KIND",
    "SCHEMA",
    "CodeRef",
    "DataRef",
    "Dependencies",
    "FileEntry",
    "ModelVersion",
    "ProductionRef",
    "ProfileRef",
    "check_files",
    "detect_format",
]

SCHEMA = "mreg/v1"
KIND = "ModelVersion"

_FORMATS = {
    ".onnx": "onnx",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".pb": "tensorflow",
    ".tflite": "tflite",
    ".h5": "keras",
    ".keras": "keras",
    ".safetensors": "safetensors",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "joblib",
    ".gguf": "gguf",
    ".mlmodel": "coreml",
    ".xgb": "xgboost",
    ".ubj": "xgboost",
    ".lgb": "lightgbm",
    ".cbm": "catboost",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".txt": "text",
}


def detect_format(path: str) -> str | None:
    """The model format named by a file's extension (never by loading it), or None."""
    dot = path.rfind(".")
    return _FORMATS.get(path[dot:].lower()) if dot > path.rfind("/") else None


def check_files(paths: Iterable[str]) -> None:
    """Refuse a set of file paths no directory could hold: the one manifest path check.

    Each path must pass `names.check_path` (relative, no `..`, NUL, control characters,
    backslash, `.git`/`.modelreg` segment, over-long names; see there); no path may appear
    twice, and none may be both a file and a directory of another (`a` and `a/b`).

    Raises:
        InvalidInput: naming the first offending path and why.
    """
    seen: set[str] = set()
    dirs: dict[str, str] = {}  # every directory prefix -> a path below it
    for path in paths:
        check_path(path)
        if path in seen:
            raise InvalidInput(f"file path {path!r} appears twice")
        seen.add(path)
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.setdefault("/".join(parts[:i]), path)
    for path in sorted(seen):
        if path in dirs:
            raise InvalidInput(
                f"file path {path!r} is both a file and the directory of {dirs[path]!r}"
            )


@dataclass(frozen=True)
class FileEntry:
    """One artifact file of a version: its path inside the version, digest, size, format."""

    path: str
    sha256: str
    size: int
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (also the `--json` shape)."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "format": self.format}


PROFILE_FORMAT = "data-profile"
"""The `format` of a profile object's entry in `profile_entries` (issue 21)."""


@dataclass(frozen=True)
class ProfileRef:
    """The stored profile of a data file (issue 21): an object, with a summary of it.

    The object holds `modelreg.dataprofile.Profile.to_json()`, canonical JSON; `rows`,
    `features` and `missing` (missing or invalid cells, all features) repeat what it says,
    so `show` and `list` need not read it.
    """

    sha256: str
    size: int
    rows: int
    features: int
    missing: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "sha256": self.sha256,
            "size": self.size,
            "rows": self.rows,
            "features": self.features,
            "missing": self.missing,
        }


@dataclass(frozen=True)
class ProductionRef:
    """The lineage link (issue 21): the data file is an export of a version's production sample.

    Copied from the store's export record (`mreg data export`) whose digest is the file's.
    """

    model: str
    version: str
    since: str | None
    until: str | None
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "model": self.model,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "rows": self.rows,
        }

    def describe(self) -> str:
        """One line: `production data of churn@1.2.0, 2026-12-01..2026-12-02, 10,412 rows`."""
        if self.since is None and self.until is None:
            window = "every sample"
        else:
            window = f"{self.since or 'first sample'}..{self.until or 'last sample'}"
        return f"production data of {self.model}@{self.version}, {window}, {self.rows:,} rows"


@dataclass(frozen=True)
class DataRef:
    """Data lineage: a local path (hashed) or a URI (recorded as given).

    `profile` and `from_production` (issue 21) appear in the document only when set, so a
    manifest written before them reads back to the same bytes (and id).
    """

    uri: str
    kind: Literal["path", "uri"]
    sha256: str | None = None
    size: int | None = None
    files: int | None = None
    profile: ProfileRef | None = None
    from_production: ProductionRef | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        doc: dict[str, Any] = {
            "uri": self.uri,
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "files": self.files,
        }
        if self.profile is not None:
            doc["profile"] = self.profile.to_dict()
        if self.from_production is not None:
            doc["from_production"] = self.from_production.to_dict()
        return doc


@dataclass(frozen=True)
class CodeRef:
    """Code lineage from git: repository, commit, branch (None when detached), dirty flag."""

    repo: str
    commit: str
    branch: str | None
    dirty: bool
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "repo": self.repo,
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "path": self.path,
        }


@dataclass(frozen=True)
class Dependencies:
    """The Python version, mreg version and (optionally) a stored requirements file."""

    python: str
    mreg: str
    requirements: FileEntry | None = None
    packages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "python": self.python,
            "mreg": self.mreg,
            "requirements": self.requirements.to_dict() if self.requirements else None,
            "packages": list(self.packages),
        }


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version. `id` is the digest of its manifest bytes."""

    name: str
    version: str
    created: str
    author: str
    files: tuple[FileEntry, ...]
    message: str = ""
    tags: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    data: tuple[DataRef, ...] = ()
    code: CodeRef | None = None
    dependencies: Dependencies | None = None
    declared: Declared | None = None
    """What the model files declare, read at register (issue 20); None in older manifests."""
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_files(f.path for f in self.files)
        req = self.dependencies.requirements if self.dependencies else None
        if req is not None:
            check_path(req.path, "requirements path")

    @property
    def short_id(self) -> str:
        """The id as people see it (12 hex digits)."""
        return self.id[:12]

    @property
    def size(self) -> int:
        """Total bytes of the version's files."""
        return sum(f.size for f in self.files)

    def profile_entries(self) -> list[FileEntry]:
        """The profile objects of its data files (issue 21), as entries `profiles/N.json`.

        N is the data entry's index. Every list of a version's objects includes them
        (`remote.ingest.manifest_objects`: push, pull, bundle, OCI, fsck, gc).
        """
        return [
            FileEntry(f"profiles/{i}.json", d.profile.sha256, d.profile.size, PROFILE_FORMAT)
            for i, d in enumerate(self.data)
            if d.profile is not None
        ]

    def content_key(self) -> tuple[Any, ...]:
        """What makes two registrations "the same content": files, params and metrics.

        Time, author, message, tags and lineage are left out so that a CI re-run of the same
        registration is recognised as identical.
        """
        return (
            tuple((f.path, f.sha256) for f in self.files),
            repr(sorted(self.params.items())),
            repr(sorted((k, sorted(v.items())) for k, v in self.metrics.items())),
        )

    def metric(self, key: str) -> float | None:
        """A metric by `SPLIT.NAME`, or None when absent."""
        split, _, name = key.partition(".")
        return self.metrics.get(split, {}).get(name)

    def to_dict(self) -> dict[str, Any]:
        """The manifest document, header first in meaning (keys are sorted on disk).

        `declared` appears only when the version has it, so a manifest written before it
        existed reads back to the same bytes (and id).
        """
        doc = {
            "schema": SCHEMA,
            "kind": KIND,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "author": self.author,
            "message": self.message,
            "tags": list(self.tags),
            "params": self.params,
            "metrics": self.metrics,
            "files": [f.to_dict() for f in self.files],
            "data": [d.to_dict() for d in self.data],
            "code": self.code.to_dict() if self.code else None,
            "dependencies": self.dependencies.to_dict() if self.dependencies else None,
        }
        if self.declared is not None:
            doc["declared"] = self.declared.to_dict()
        return doc

    @classmethod
    def from_dict(
        cls, doc: Any, id: str = "", error: type[MregError] = IntegrityError
    ) -> ModelVersion:
        """Build from a parsed manifest, checking its structure; raise `error` if malformed."""
        try:
            return _from_dict(doc, id)
        except (KeyError, TypeError, ValueError, AttributeError, MregError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise error(f"malformed manifest: {detail}") from None


def _file(d: dict[str, Any]) -> FileEntry:
    size = d["size"]
    if not is_digest(d["sha256"]) or type(size) is not int or size < 0:
        raise ValueError(f"bad file entry {d.get('path')!r}")
    if not isinstance(d["path"], str):
        raise ValueError(f"file path {d['path']!r} is not text")
    return FileEntry(d["path"], d["sha256"], size, d.get("format"))


def _count(d: dict[str, Any], key: str, what: str) -> int:
    value = d[key]
    if type(value) is not int or value < 0:
        raise ValueError(f"{what}.{key} must be a non-negative integer")
    return value


def _data(d: dict[str, Any]) -> DataRef:
    prof, prod = d.get("profile"), d.get("from_production")
    profile = production = None
    if prof is not None:
        if not is_digest(prof["sha256"]):
            raise ValueError(f"data {d['uri']!r}: profile.sha256 is not a digest")
        profile = ProfileRef(
            prof["sha256"],
            *(_count(prof, k, "profile") for k in ("size", "rows", "features", "missing")),
        )
    if prod is not None:
        window = [prod.get(k) for k in ("since", "until")]
        if not all(w is None or isinstance(w, str) for w in window):
            raise ValueError(f"data {d['uri']!r}: from_production since/until must be text")
        production = ProductionRef(
            check_name(prod["model"]),
            Version.parse(str(prod["version"])).text,
            window[0],
            window[1],
            _count(prod, "rows", "from_production"),
        )
    return DataRef(
        d["uri"], d["kind"], d.get("sha256"), d.get("size"), d.get("files"), profile, production
    )


def _from_dict(doc: Any, id: str) -> ModelVersion:
    if not isinstance(doc, dict):
        raise TypeError("not a mapping")
    if doc.get("kind") != KIND or doc.get("schema") != SCHEMA:
        raise ValueError(
            f"expected schema {SCHEMA!r} kind {KIND!r}, got {doc.get('schema')!r} "
            f"{doc.get('kind')!r}"
        )
    metrics = doc.get("metrics") or {}
    for split, values in metrics.items():
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"metric {split}.{k} is not a finite number")
    code = doc.get("code")
    deps = doc.get("dependencies")
    return ModelVersion(
        name=check_name(doc["name"]),
        version=Version.parse(str(doc["version"])).text,
        created=str(doc["created"]),
        author=str(doc["author"]),
        message=str(doc.get("message") or ""),
        tags=tuple(str(t) for t in doc.get("tags") or ()),
        params=dict(doc.get("params") or {}),
        metrics={str(s): {str(k): float(v) for k, v in m.items()} for s, m in metrics.items()},
        files=tuple(_file(f) for f in doc["files"]),
        data=tuple(_data(d) for d in doc.get("data") or ()),
        code=CodeRef(
            str(code["repo"]),
            str(code["commit"]),
            code.get("branch"),
            bool(code["dirty"]),
            str(code.get("path") or ""),
        )
        if code
        else None,
        dependencies=Dependencies(
            python=str(deps["python"]),
            mreg=str(deps.get("mreg", "")),
            requirements=_file(deps["requirements"]) if deps.get("requirements") else None,
            packages=tuple(str(p) for p in deps.get("packages") or ()),
        )
        if deps
        else None,
        declared=Declared.from_dict(doc["declared"]) if "declared" in doc else None,
        id=id,
    )
