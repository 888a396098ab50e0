"""The `--data` entries of a registration: their profiles and production lineage. Issue 21.

`describe_data` turns the `--data` arguments into the manifest's data entries, before the
store is written (step 1 of `register`):

- each is hashed or recorded as given (`lineage.data_lineage`);
- with `profile`, a local CSV, JSON Lines or Parquet file is profiled
  (`profiling.profile_file`); the profile's canonical JSON bytes become an object of the
  version, referenced from the entry (`manifest.ProfileRef`: digest, size, rows, features,
  missing cells). A file of another kind, a directory, or a format whose extra is not
  installed is not profiled, and gets a `skipped:` note as unread model cards do; a
  malformed file is refused (`InvalidInput`): the user asked for its profile;
- a local file whose digest is that of an export record (`mreg data export`, kept in the
  store's `exports/`, `modelreg.exportrecords`) is production data of the exported
  version: the entry records the link (`manifest.ProductionRef`), shown by `show` and the
  web view. A damaged record gives an `unreadable:` note, not a refusal. With `profile`,
  an export's profile is that of its rows' `features` (what the model was given, under
  their own names, as drift compares them), not of its bookkeeping fields.

`store_profiles` writes the profile objects (step 3, before the manifest names them);
`read_profile` reads one back, verified (`Store.profile`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.lineage import data_lineage
from modelreg.manifest import DataRef, ModelVersion, ProductionRef, ProfileRef

if TYPE_CHECKING:
    from modelreg.dataprofile import Profile

__all__ = ["DataEntries", "describe_data", "production_link", "read_profile", "store_profiles"]

_EXTRAS = {"csv": "profile", "jsonl": "profile", "parquet": "parquet"}
_NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet"}


@dataclass(frozen=True)
class DataEntries:
    """The data entries, the profile objects' bytes to store, and a note per file skipped."""

    refs: tuple[DataRef, ...]
    profiles: tuple[bytes, ...] = ()
    notes: tuple[str, ...] = ()


def production_link(store: StoreHandle, sha256: str) -> tuple[ProductionRef, str] | None:
    """The production sample a file of this digest was exported from, and the file's format.

    None when the store has no export record of that digest.

    Raises:
        InvalidInput: The export record exists but is damaged.
    """
    from modelreg.exportrecords import read_export_record

    record = read_export_record(store.root, sha256)
    if record is None:
        return None
    link = ProductionRef(
        record["model"], record["model_version"], record["since"], record["until"],
        record["rows"],
    )  # fmt: skip
    return link, record["format"]


def _export_features(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """The `features` of each row of a data export: what the model was given.

    The other fields (request id, time, variant, prediction, outcomes) are bookkeeping: a
    request id would fill a category's top values, and a profile of them is no reference
    for the drift of inputs.
    """
    from modelreg.profiling import CHUNK, MAX_LINE

    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK, columns=["features"]):
                yield from (f or {} for f in batch.column(0).to_pylist())
        except (OSError, ValueError, KeyError):  # pyarrow's ArrowInvalid is a ValueError
            raise InvalidInput(f"{path}: not a readable data export (no features)") from None
        return
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(iter(lambda: fh.readline(MAX_LINE + 1), ""), 1):
                if len(line) > MAX_LINE:
                    raise InvalidInput(f"{path}:{lineno}: line longer than {MAX_LINE} characters")
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    row = None
                features = row.get("features") if isinstance(row, dict) else None
                if not isinstance(features, dict):
                    raise InvalidInput(f"{path}:{lineno}: not a data export row (no features)")
                yield features
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None


def _extra_installed(fmt: str) -> bool:
    from modelreg.profilebuilder import sketches

    try:
        sketches()
        if fmt == "parquet":
            import pyarrow.parquet  # noqa: F401
    except (MregError, ImportError):
        return False
    return True


def _profile(spec: str, export: str | None) -> tuple[bytes | None, str | None]:
    """(profile bytes, None) or (None, a `skipped:` note) for one local data file.

    `export`: the file is a data export in this format; its features are profiled.
    """
    from modelreg.profiling import SUFFIXES, profile_file, profile_rows

    path = Path(spec)
    fmt = export or (SUFFIXES.get(path.suffix.lower()) if path.is_file() else None)
    if fmt is None:
        what = "a directory" if path.is_dir() else "not CSV, JSON Lines or Parquet"
        return None, f"skipped: {spec} (no profile: {what})"
    if not _extra_installed(fmt):
        extra = _EXTRAS[fmt]
        return None, f"skipped: {spec} (install modelreg[{extra}] to profile {_NAMES[fmt]})"
    if export:
        return profile_rows(_export_features(path, fmt), format=fmt).to_json(), None
    return profile_file(path, format=fmt).to_json(), None


def describe_data(store: StoreHandle, specs: Sequence[str], *, profile: bool) -> DataEntries:
    """The data entries of `specs` (hashed, profiled if asked, linked to production data).

    Writes nothing. Raises what `data_lineage` and `profile_file` raise for bad input.
    """
    from modelreg.dataprofile import from_json

    refs: list[DataRef] = []
    blobs: list[bytes] = []
    notes: list[str] = []
    for spec in specs:
        ref = data_lineage(spec)
        export = None
        if ref.kind == "path" and ref.files == 1 and ref.sha256:
            try:
                found = production_link(store, ref.sha256)
            except InvalidInput as exc:  # the store's record, not the user's input: a note
                notes.append(f"unreadable: {spec} (no lineage link: {exc})")
                found = None
            if found is not None:
                ref, export = replace(ref, from_production=found[0]), found[1]
        if profile and ref.kind == "path":
            data, note = _profile(spec, export)
            if note:
                notes.append(note)
            if data is not None:
                parsed = from_json(data, f"profile of {spec}")
                ref = replace(
                    ref,
                    profile=ProfileRef(
                        hash_bytes(data), len(data), parsed.rows, len(parsed.features),
                        sum(f.missing + f.invalid for f in parsed.features),
                    ),
                )  # fmt: skip
                blobs.append(data)
        refs.append(ref)
    return DataEntries(tuple(refs), tuple(blobs), tuple(notes))


def store_profiles(store: StoreHandle, entries: DataEntries) -> None:
    """Put the profile objects into `objects/` (write-once; before the manifest names them)."""
    for data in entries.profiles:
        store.objects.put_bytes(data)


def read_profile(store: StoreHandle, mv: ModelVersion, data_uri: str | None = None) -> Profile:
    """The stored profile of `mv`'s data file `data_uri` (default: its only profiled one).

    The object is read bounded (`dataprofile.MAX_BYTES`), its digest checked, and the
    document validated (`dataprofile.from_json`).

    Raises:
        NotFound: The version has no (such) profiled data file, or the object is missing.
        InvalidInput: `data_uri` is not given and several data files were profiled.
        IntegrityError: The object's bytes are not those the manifest names, or not a profile.
    """
    from modelreg.dataprofile import MAX_BYTES, from_json

    spec = f"{mv.name}@{mv.version}"
    profiled = [d for d in mv.data if d.profile is not None]
    if data_uri is not None:
        profiled = [d for d in profiled if d.uri == data_uri]
    if not profiled:
        which = f" of data {data_uri}" if data_uri is not None else ""
        raise NotFound(f"{spec} has no stored profile{which}")
    if len(profiled) > 1:
        uris = ", ".join(d.uri for d in profiled)
        raise InvalidInput(f"{spec} has profiles of several data files ({uris}): name one")
    ref = profiled[0].profile
    assert ref is not None
    try:
        with store.objects.open(ref.sha256) as fh:
            data = fh.read(MAX_BYTES + 1)
    except (FileNotFoundError, NotFound):
        raise NotFound(f"{spec}: profile object {ref.sha256[:12]} is not in the store") from None
    source = f"{spec}: profile object {ref.sha256[:12]}"
    if len(data) != ref.size or hash_bytes(data) != ref.sha256:
        raise IntegrityError(f"{source} is damaged (its digest does not match); run mreg fsck")
    try:
        return from_json(data, source)
    except InvalidInput as exc:
        raise IntegrityError(str(exc)) from None
