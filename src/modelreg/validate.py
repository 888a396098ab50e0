"""`mreg validate`: mreg's documents checked for YAML syntax, schema and meaning (issue 7).

Four kinds of check, in order, each reported as one `Problem` (one line) per finding:

1. **syntax**: the file parses as YAML (through `yamlio`, with its limits), reported as
   `file:line:column`;
2. **schema**: the document matches the packaged JSON Schema of its kind
   (`modelreg.schemas`, what `mreg schema` prints);
3. **meaning**: what a schema cannot say: weights in steps of 0.01, canary differs from
   baseline, rules that parse and can be reached, histories whose generations increase, a
   document that agrees with its place in the store (`models/fraud/versions/1.2.0.yaml` holds
   `fraud@1.2.0`). A document with schema problems still gets the meaning checks that do not
   depend on them (a finding on a field the schema check already reported, or a document
   that cannot be read as its kind, is left out), so every problem of a document is reported
   at once and one mistake is still one line;
4. **reference**: against a store, when one is known: the versions an alias or a rollout
   names exist, with the manifest ids they recorded.

`validate` checks documents, not bytes: `mreg verify` re-hashes every object and checks the
audit chain. Large model files that should be registered rather than committed are found by
`check_large_models` (the `mreg-check-large-models` pre-commit hook).

The per-kind meaning and reference checks live in `modelreg.validate_kinds`, the large-file
check in `modelreg.largemodels`; their public names are importable from here too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import layout, schemas, yamlio
from modelreg.errors import InvalidInput, MregError, NotFound, StoreNotFound
from modelreg.largemodels import (
    DEFAULT_MAX_SIZE,
    MODEL_EXTENSIONS,
    LargeFile,
    LargeFilesReport,
    LargeModelFiles,
    check_large_models,
    parse_size,
)
from modelreg.validate_kinds import MEANING, Finding, Place, References, place_of

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MODEL_EXTENSIONS",
    "FileResult",
    "LargeFile",
    "LargeFilesReport",
    "LargeModelFiles",
    "Problem",
    "ValidationFailed",
    "ValidationReport",
    "check_large_models",
    "find_store",
    "parse_size",
    "validate",
]


class ValidationFailed(MregError):
    """`mreg validate` found problems (exit 1)."""


@dataclass(frozen=True)
class Problem:
    """One problem in one file: where (file, line or field path), which check, and what."""

    file: str
    message: str
    check: str
    """`syntax`, `schema`, `meaning` or `reference`."""
    kind: str | None = None
    path: str = ""
    """The field, as `rules[1].weight` (empty: the whole document)."""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column or 1}"
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {field}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of one problem."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "kind": self.kind,
            "check": self.check,
            "path": self.path,
            "message": self.message,
        }


@dataclass(frozen=True)
class FileResult:
    """One validated file: its kind (None when it is not an mreg document) and problem count."""

    file: str
    kind: str | None
    problems: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"file": self.file, "kind": self.kind, "problems": self.problems}


@dataclass(frozen=True)
class ValidationReport:
    """What `mreg validate` checked and found."""

    store: str | None
    files: tuple[FileResult, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg validate`."""
        return {
            "ok": self.ok,
            "store": self.store,
            "files": [f.to_dict() for f in self.files],
            "problems": [p.to_dict() for p in self.problems],
        }

    def raise_for_problems(self) -> None:
        """Raise ValidationFailed (exit 1) when problems were found."""
        if self.problems:
            bad = len({p.file for p in self.problems})
            raise ValidationFailed(
                f"{len(self.problems)} problem(s) in {bad} of {len(self.files)} file(s)"
            )


# -- finding the store --------------------------------------------------------------------------


def find_store(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The `.modelreg/` directory to check, found as `Store.discover` finds it (`layout.find_root`).

    Unlike `Store.discover`, the store's config is not parsed: a damaged `config.yaml` is
    something to report, not a reason to stop.

    Raises:
        StoreNotFound: there is no store there.
    """
    chosen = explicit or os.environ.get("MREG_STORE")
    try:
        return layout.find_root(start, explicit)
    except FileNotFoundError as exc:
        if chosen:
            raise StoreNotFound(f"no mreg store at {chosen} (run 'mreg init' there)") from None
        raise StoreNotFound(
            f"no mreg store in {exc.filename} or any parent directory; name files to validate, "
            "or pass --store DIR / set MREG_STORE"
        ) from None


def _containing_store(path: Path) -> Path | None:
    """The `.modelreg/` directory among `path`'s parents that is a store, if any."""
    for d in path.parents:
        if d.name == layout.DIRNAME and layout.store_root(d) == d:
            return d
    return None


def _store_documents(root: Path) -> list[Path]:
    """Every YAML document of a store: config, manifests, aliases, states, rollouts."""
    found = [root / layout.CONFIG]
    for top in (layout.MODELS, layout.RELEASES):
        base = root / top
        if base.is_dir():
            found.extend(
                p
                for p in sorted(base.rglob("*.yaml"))
                if p.is_file() and not p.name.startswith(".tmp-")
            )
    return found


# -- one file -----------------------------------------------------------------------------------

_MARK = re.compile(r":(\d+):(\d+): (.*)\Z", re.S)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _problems_of(
    path: Path, shown: str, place: Place | str | None, refs: References
) -> tuple[str | None, list[Problem]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(
            f"{shown}: is a directory (name a store to validate all of it)"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"{shown}: cannot read ({exc.strerror})") from None
    try:
        doc = yamlio.load(data, shown)
    except InvalidInput as exc:
        text = str(exc).removeprefix(shown)
        m = _MARK.match(text)
        if m:
            return None, [Problem(shown, m.group(3), "syntax", None, "", int(m[1]), int(m[2]))]
        return None, [Problem(shown, text.removeprefix(": "), "syntax")]
    expected = place.kind if isinstance(place, Place) else None
    declared = doc.get("kind") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared in schemas.KINDS:
        kind: str | None = declared
    elif declared is not None:
        known = ", ".join(schemas.KINDS)
        return None, [Problem(shown, f"unknown kind {declared!r} (mreg kinds: {known})", "schema")]
    else:
        kind = expected
    if kind is None:
        known = ", ".join(schemas.KINDS)
        return None, [Problem(shown, f"not an mreg document: no 'kind' field ({known})", "schema")]

    problems = [Problem(shown, e.message, "schema", kind, e.path) for e in schemas.check(doc, kind)]
    if isinstance(place, str):
        problems.append(Problem(shown, place, "meaning", kind))
    elif expected is not None and expected != kind:
        problems.append(
            Problem(shown, f"a {kind} document where the store keeps a {expected}", "meaning", kind)
        )
    here = place if isinstance(place, Place) and place.kind == kind else None
    if not problems:
        findings = MEANING[kind](doc, here, refs)
    else:
        findings = _beside(problems, lambda: MEANING[kind](doc, here, refs))
    problems.extend(Problem(shown, f.message, f.check, kind, f.path) for f in findings)
    return kind, problems


def _overlaps(a: str, b: str) -> bool:
    """True when field paths `a` and `b` are the same field or one holds the other."""
    if not a or not b:
        return False
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


def _beside(problems: Sequence[Problem], meaning: Any) -> list[Finding]:
    """The meaning findings of a document with schema problems that are not their echo.

    Left out: "cannot be read as its kind" (what the schema problems already say), findings
    on a field a schema problem names (or inside it, or holding it), and everything when the
    meaning checks cannot run on the broken structure at all.
    """
    try:
        findings: list[Finding] = meaning()
    except (MregError, KeyError, TypeError, ValueError, AttributeError):
        return []
    return [
        f
        for f in findings
        if not f.unreadable and not any(_overlaps(f.path, p.path) for p in problems)
    ]


def validate(
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    store: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Validate files, or (without files) every document of the store.

    References (the versions aliases and rollouts name) are checked against the store that
    holds a file, else `store` (or `MREG_STORE`, or the store found from the current
    directory); a file outside any store gets the syntax, schema and meaning checks only.

    Raises:
        StoreNotFound: no files were given and no store was found.
        NotFound: a named file does not exist.
        InvalidInput: a named file cannot be read, or is a directory that holds no store.
    """
    targets: list[tuple[Path, Path | None]] = []
    fallback: Path | None = None
    if not paths:
        fallback = find_store(store)
        targets = [(p, fallback) for p in _store_documents(fallback)]
    else:
        try:
            fallback = find_store(store)
        except StoreNotFound:
            if store is not None:
                raise
        for given in paths:
            p = Path(given).absolute()
            root = layout.store_root(p) if p.is_dir() else None
            if root is not None:
                targets.extend((d, root) for d in _store_documents(root))
            else:
                targets.append((p, _containing_store(p)))
    files: list[FileResult] = []
    problems: list[Problem] = []
    by_root: dict[Path | None, References] = {}
    for path, root in targets:
        ref_root = root or fallback
        refs = by_root.setdefault(ref_root, References(ref_root))
        place = place_of(root, path) if root is not None else None
        shown = _display(path)
        kind, found = _problems_of(path, shown, place, refs)
        files.append(FileResult(shown, kind, len(found)))
        problems.extend(found)
    return ValidationReport(
        None if fallback is None else str(fallback), tuple(files), tuple(problems)
    )
