"""`register`: store a model version's files and write its manifest.

Order of work, so that bad input changes nothing and a crash leaves the store valid:

1. validate every argument and open every input (no store writes yet), and refuse any
   credential that would be written (`modelreg.manifest_credentials`, issue 19);
2. if the version already exists, hash the inputs read-only and compare: identical content
   is a no-op, other content a Conflict (nothing was written either way);
3. copy the files into `objects/` while hashing (outside the lock: objects are immutable);
   a Git LFS pointer brings its object instead, verified (`modelreg.lfspointers`, issue 20);
4. under the store lock: settle the version number (a bump reads the latest), re-check for
   a concurrent registration, write the manifest (temp, fsync, rename), append to the log.
"""

from __future__ import annotations

import math
import os
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import yamlio
from modelreg.catalog import check_namespace
from modelreg.declared import Declared
from modelreg.errors import Conflict, InvalidInput, NotFound
from modelreg.fsutil import atomic_write
from modelreg.handle import StoreHandle
from modelreg.hashing import Progress, hash_bytes, hash_file
from modelreg.lfspointers import fetch_pointers, pointers
from modelreg.lineage import code_lineage, default_author, walk_files
from modelreg.manifest import (
    CodeRef,
    DataRef,
    Dependencies,
    FileEntry,
    ModelVersion,
    check_files,
    detect_format,
)
from modelreg.manifest_credentials import refuse_credentials
from modelreg.names import FIRST_BASE, Version, check_name, check_path, check_tag
from modelreg.trainingdata import describe_data, store_profiles
from modelreg.version import __version__

if TYPE_CHECKING:
    from modelreg.requirements import Requirements

__all__ = ["RegisterResult", "check_namespace", "check_tag", "register"]
# check_namespace (catalog) and check_tag (names) are re-exported: they were defined here.

_SPLIT_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_BUMPS = ("major", "minor", "patch")
DEFAULT_BUMP = "minor"
"""Without --version or --bump, a registration bumps the minor version (first one: 0.1.0)."""

ProgressStart = Callable[[int], Progress]
"""Called once with the total bytes to copy; returns the per-chunk progress callback."""


@dataclass(frozen=True)
class RegisterResult:
    """What `register` did: the version, and whether it was created or already there."""

    version: ModelVersion
    created: bool
    signature: str | None = None
    """With `--sign`: the digest of the signature made (issue 19)."""
    data_notes: tuple[str, ...] = ()
    """With `--profile`: one line per data file not profiled (issue 21)."""

    @property
    def notes(self) -> list[str]:
        """One line per model file whose card was not read (issue 20).

        For example `skipped: model.onnx (install modelreg[onnx] to read ONNX)`.
        """
        declared = self.version.declared
        unread = sorted(declared.unread.items()) if declared else []
        cards = [f"{u['reason']}: {path} ({u.get('detail', '')})" for path, u in unread]
        return cards + list(self.data_notes)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg register`."""
        declared = self.version.declared
        return {
            "name": self.version.name,
            "version": self.version.version,
            "id": self.version.id,
            "created": self.created,
            "files": [f.to_dict() for f in self.version.files],
            "size": self.version.size,
            "declared": declared.to_dict() if declared else None,
            "notes": self.notes,
            **({"signature": self.signature} if self.signature else {}),
        }


def check_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Validate metrics per split: split names, metric names, finite numbers."""
    out: dict[str, dict[str, float]] = {}
    if not isinstance(metrics, dict):
        raise InvalidInput("metrics must map split names (train, validation, test...) to values")
    for split, values in metrics.items():
        if not isinstance(split, str) or not _SPLIT_RE.fullmatch(split) or split == "params":
            raise InvalidInput(f"invalid metric split {split!r}: e.g. train, validation, test")
        if not isinstance(values, dict):
            raise InvalidInput(f"metrics of split {split!r} must map metric names to numbers")
        for key, value in values.items():
            if not isinstance(key, str) or not key or not re.fullmatch(r"[A-Za-z0-9_.@-]+", key):
                raise InvalidInput(f"invalid metric name {split}.{key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"metric {split}.{key} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidInput(f"metric {split}.{key} must be finite, got {value!r}")
            out.setdefault(split, {})[key] = float(value)
    return out


def _check_text(value: str, what: str) -> str:
    """Refuse text that cannot be stored as UTF-8 (e.g. undecodable bytes from argv)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8 text") from None
    if any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise InvalidInput(f"{what} contains control characters")
    return value


def _normalize_params(params: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(params, dict) or not all(isinstance(k, str) and k for k in params):
        raise InvalidInput("params must map non-empty string keys to values")
    try:
        doc = yamlio.load(yamlio.dump(params), "params")
    except Exception as exc:  # the YAML dumper raises a bare RepresenterError for objects
        raise InvalidInput(f"params are not plain data: {exc}") from None
    return dict(doc or {})


def _collect(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, Path]]:
    """Map every input to (path inside the version, source file), checking readability."""
    if not paths:
        raise InvalidInput("nothing to register: give at least one file or directory")
    found: dict[str, Path] = {}
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise NotFound(f"{given}: no such file or directory")
        entries = [(p.name, p)] if p.is_file() else list(walk_files(p)) if p.is_dir() else None
        if entries is None:
            raise InvalidInput(f"{given}: not a regular file or directory")
        for rel, src in entries:
            _check_path(rel, src)
            if rel in found:
                raise InvalidInput(f"two inputs map to the same path {rel!r} in the version")
            try:
                with open(src, "rb"):
                    pass
            except OSError as exc:
                raise InvalidInput(f"{src}: cannot read ({exc.strerror})") from None
            found[rel] = src
    if not found:
        raise InvalidInput("nothing to register: the given directories hold no files")
    check_files(found)  # `a` and `a/b` from two inputs: refused before any object is written
    return sorted(found.items())


def _check_path(rel: str, src: Path) -> None:
    """Refuse a file name no store could hold or give back (issue 8), before any object is written.

    The path inside the version must pass `names.check_path`, the check every manifest
    path goes through (issue 15): UTF-8 (manifests are UTF-8 text), no control characters
    (a newline in a file name), no backslashes, no `.git` or `.modelreg` segment, no
    over-long names.
    """
    try:
        check_path(rel)
    except InvalidInput as exc:
        raise InvalidInput(f"{str(src)!r}: cannot be registered: {exc}") from None


def _requirements(path: str | os.PathLike[str]) -> Requirements:
    """Read, parse and check the `--requirements` file (see `modelreg.requirements`).

    The bytes checked here are the bytes stored: the file is not read a second time.
    """
    from modelreg.requirements import read_requirements  # only when a file is given

    req = read_requirements(path)
    _check_path(req.name, Path(path))
    return req


def _target_version(store: StoreHandle, name: str, version: str | None, bump: str | None) -> str:
    if version is not None:
        return Version.parse(version).text
    from modelreg.catalog import version_list
    from modelreg.tombstones import deleted_versions

    # a deleted version's number is never given again (issue 19): bump past it too
    existing = [*version_list(store, name), *map(Version, deleted_versions(store.root, name))]
    base = max(existing) if existing else FIRST_BASE
    return base.bump(bump or DEFAULT_BUMP).text  # type: ignore[arg-type]


def _existing(store: StoreHandle, name: str, version: str) -> ModelVersion | None:
    from modelreg.catalog import load_version
    from modelreg.tombstones import read_tombstone

    deleted = read_tombstone(store.root, name, version)
    if deleted is not None:  # as PyPI never takes a file name again (issue 19)
        raise Conflict(f"{deleted.describe()}; a deleted version's number is never reused")

    path = store.manifest_path(name, version)
    return load_version(store, name, version) if path.exists() else None


def register(
    store: StoreHandle,
    name: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    version: str | None = None,
    bump: str | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, dict[str, Any]] | None = None,
    data: Sequence[str] = (),
    profile: bool | None = None,
    code: str | os.PathLike[str] | CodeRef | None = None,
    detect_code: bool = True,
    requirements: str | os.PathLike[str] | None = None,
    message: str = "",
    tags: Sequence[str] = (),
    author: str | None = None,
    progress: ProgressStart | None = None,
) -> RegisterResult:
    """Register `paths` as a version of `name` (see the module docstring for the steps).

    `code` is a git work tree to read the lineage from, or (importers, issue 20) a `CodeRef`
    recorded as given. `profile`: store the profile of each CSV, JSON Lines or Parquet
    `data` file with the version (issue 21, `modelreg.trainingdata`); None: the store's
    default (`register: {profile: true}` in config.yaml).
    """
    # 1. validate everything before touching the store
    check_name(name)
    if version is not None and bump is not None:
        raise InvalidInput("give either --version or --bump, not both")
    if bump is not None and bump not in _BUMPS:
        raise InvalidInput(f"invalid --bump {bump!r}: use major, minor or patch")
    if version is not None:
        Version.parse(version)
    check_namespace(store, name)
    _check_text(message, "--message")
    tags = tuple(dict.fromkeys(check_tag(t) for t in tags))
    norm_params = _normalize_params(params or {})
    norm_metrics = check_metrics(metrics or {})
    inputs = _collect(paths)
    lfs = pointers(inputs)  # Git LFS pointers stand for their objects (issue 20)
    req = _requirements(requirements) if requirements is not None else None
    if profile is None:
        profile = store.config.register_profile
    entries = describe_data(store, data, profile=profile)  # issue 21
    data_refs: tuple[DataRef, ...] = entries.refs
    code_ref: CodeRef | None = (
        code
        if isinstance(code, CodeRef)
        else code_lineage(Path(code), required=True)
        if code is not None
        else code_lineage(None)
        if detect_code
        else None
    )
    who = _check_text(author or default_author(), "--author")
    # Issue 19: no credential enters a manifest (the requirements file was checked as read).
    refuse_credentials(
        params=norm_params, metrics=norm_metrics, message=message, tags=tags, author=who,
        data=data_refs, code=code_ref, paths=[rel for rel, _ in inputs],
    )  # fmt: skip

    def build(
        files: tuple[FileEntry, ...],
        ver: str,
        req_entry: FileEntry | None,
        declared: Declared | None = None,
    ) -> ModelVersion:
        return ModelVersion(
            name=name, version=ver, created=store.now(), author=who, files=files,
            message=message, tags=tags, params=norm_params, metrics=norm_metrics,
            data=data_refs, code=code_ref,
            dependencies=Dependencies(
                python=platform.python_version(), mreg=__version__, requirements=req_entry,
                packages=req.packages if req else (),
            ),
            declared=declared,
        )  # fmt: skip

    # 2. an explicit version that exists: compare without writing anything
    if version is not None:
        old = _existing(store, name, Version.parse(version).text)
        if old is not None:
            hashed = tuple(
                FileEntry(rel, *(lfs.get(rel) or hash_file(src)), detect_format(rel))
                for rel, src in inputs
            )
            return _same_or_conflict(old, build(hashed, old.version, None))

    # 3. copy into objects/, hashing on the way; first make sure the change can be audited,
    # so a refusal writes nothing, not even an orphan object (issue 15)
    store.audit.last()
    if lfs:
        fetch_pointers(store, lfs, dict(inputs))
    store_profiles(store, entries)
    total = sum(src.stat().st_size for rel, src in inputs if rel not in lfs)
    tick = progress(total) if progress else None
    files = tuple(
        FileEntry(rel, *(lfs.get(rel) or store.objects.put_file(src, tick)), detect_format(rel))
        for rel, src in inputs
    )
    # what the files declare, read from the stored objects: the card describes exactly the
    # bytes the version holds (issue 20); no reader is imported for a file that needs none
    declared = _declared(store, files)
    req_entry = None
    if req is not None:
        digest = store.objects.put_bytes(req.data)
        req_entry = FileEntry(req.name, digest, len(req.data), req.format)

    # 4. under the lock: settle the number, write the manifest, audit
    with store.writing():
        check_namespace(store, name)
        ver = _target_version(store, name, version, bump)
        candidate = build(files, ver, req_entry, declared)
        old = _existing(store, name, ver)
        if old is not None:
            return _same_or_conflict(old, candidate)
        data_bytes = yamlio.dump(candidate.to_dict())
        mv = ModelVersion.from_dict(yamlio.load(data_bytes), hash_bytes(data_bytes))
        atomic_write(store.manifest_path(name, ver), data_bytes, mode=0o444)
        store.record(who, "register", name, version=ver, id=mv.id, files=len(files))
    return RegisterResult(mv, created=True, data_notes=entries.notes)


def _declared(store: StoreHandle, files: tuple[FileEntry, ...]) -> Declared:
    """What the stored files declare; no credential found in them is kept (issue 19).

    A metadata entry holding one is left out; a card holding one elsewhere is not kept, and
    the file is listed as unreadable. Never refused: the file is not the user's to edit.
    """
    from modelreg.credentials import find_in_data
    from modelreg.filecards import card_reader, read_cards

    wanted = [(f.path, store.objects.path(f.sha256)) for f in files if card_reader(f.path)]
    if not wanted:
        return Declared()
    reading = read_cards(wanted)
    cards, unread = {}, dict(reading.unread)
    for path, card in reading.cards.items():
        meta = card.get("metadata")
        if isinstance(meta, dict):
            card["metadata"] = {k: v for k, v in meta.items() if not find_in_data({k: v}, "m")}
        if find_in_data(card, path):
            unread[path] = {"reason": "unreadable", "detail": "declares a credential: not kept"}
        else:
            cards[path] = card
    return Declared(cards, unread)


def _same_or_conflict(old: ModelVersion, new: ModelVersion) -> RegisterResult:
    if old.content_key() == new.content_key():
        return RegisterResult(old, created=False)
    raise Conflict(
        f"{old.name}@{old.version} already exists with other content "
        f"(id {old.short_id}); register a new version instead"
    )
