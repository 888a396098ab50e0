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
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from modelreg import schemas, yamlio
from modelreg.config import StoreConfig
from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound, StoreNotFound
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_bytes
from modelreg.layout import DIRNAME
from modelreg.names import Version, check_alias, check_name

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

MODEL_EXTENSIONS = (
    ".onnx", ".pt", ".pth", ".pb", ".tflite", ".h5", ".keras", ".safetensors", ".pkl",
    ".pickle", ".joblib", ".gguf", ".mlmodel", ".xgb", ".ubj", ".lgb", ".cbm", ".ckpt", ".bin",
)  # fmt: skip
"""What `check_large_models` treats as a model file by default (the formats `register` detects)."""
DEFAULT_MAX_SIZE = 1024 * 1024
"""Model files above this size (1 MiB) should be registered, not committed."""


class ValidationFailed(MregError):
    """`mreg validate` found problems (exit 1)."""


class LargeModelFiles(MregError):
    """`mreg check-large-models` found model files that should be registered (exit 1)."""


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


def _store_root(p: Path) -> Path | None:
    """`p` itself or `p/.modelreg` when it is a store directory (has config.yaml)."""
    for root in (p, p / DIRNAME) if p.name == DIRNAME else (p / DIRNAME,):
        if (root / "config.yaml").is_file():
            return root
    return None


def find_store(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The `.modelreg/` directory to check, found as `Store.discover` finds it.

    Unlike `Store.discover`, the store's config is not parsed: a damaged `config.yaml` is
    something to report, not a reason to stop.

    Raises:
        StoreNotFound: there is no store there.
    """
    chosen = explicit or os.environ.get("MREG_STORE")
    if chosen:
        root = _store_root(Path(chosen).absolute())
        if root is None:
            raise StoreNotFound(f"no mreg store at {chosen} (run 'mreg init' there)")
        return root
    here = (start or Path.cwd()).absolute()
    ceilings = {Path(c).absolute() for c in os.environ.get("MREG_CEILING_DIRS", "").split(":") if c}
    for d in (here, *here.parents):
        if (found := _store_root(d)) is not None:
            return found
        if d in ceilings:
            break
    raise StoreNotFound(
        f"no mreg store in {here} or any parent directory; name files to validate, "
        "or pass --store DIR / set MREG_STORE"
    )


def _containing_store(path: Path) -> Path | None:
    for d in path.parents:
        if d.name == DIRNAME and (d / "config.yaml").is_file():
            return d
    return None


# -- where a document sits in a store -----------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """What a store path says a document is: its kind, model and key (version or alias)."""

    kind: str
    model: str | None = None
    key: str | None = None


def _place(root: Path, path: Path) -> _Place | str:
    """The kind a store-relative path implies, or why the path is not a document's place."""
    parts = path.relative_to(root).parts
    stem = parts[-1].removesuffix(".yaml")
    try:
        if parts == ("config.yaml",):
            return _Place("StoreConfig")
        if parts[0] == "models" and len(parts) in (4, 5):
            model, sub = check_name("/".join(parts[1:-2])), parts[-2]
            if sub == "aliases":
                return _Place("Alias", model, check_alias(stem))
            if sub in ("versions", "state"):
                v = Version.parse(stem).text
                return _Place("ModelVersion" if sub == "versions" else "VersionState", model, v)
        elif parts[0] == "releases" and len(parts) in (2, 3):
            return _Place("Rollout", check_name("/".join(parts[1:])[: -len(".yaml")]))
    except InvalidInput as exc:
        return f"not a valid store path: {exc}"
    return "not a place where the store keeps documents"


def _store_documents(root: Path) -> list[Path]:
    """Every YAML document of a store: config, manifests, aliases, states, rollouts."""
    found = [root / "config.yaml"]
    for top in ("models", "releases"):
        base = root / top
        if base.is_dir():
            found.extend(
                p
                for p in sorted(base.rglob("*.yaml"))
                if p.is_file() and not p.name.startswith(".tmp-")
            )
    return found


# -- references ---------------------------------------------------------------------------------


class _References:
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

    def check_side(self, model: str, version: str, id: str, what: str) -> Iterable[_Finding]:
        """The version `what` names must exist and have the manifest id it recorded."""
        found = self.manifest_id(model, version)
        if found is None:
            yield _Finding(what, f"{model}@{version} does not exist in the store", "reference")
        elif found != id:
            yield _Finding(
                what,
                f"{model}@{version} has manifest {found[:12]}, not {id[:12]} as recorded: "
                "the manifest was changed, or this file is from another store",
                "reference",
            )


@dataclass(frozen=True)
class _Finding:
    path: str
    message: str
    check: str = "meaning"
    unreadable: bool = False
    """The document cannot be read as its kind (a consequence of its schema problems, if any)."""


# -- meaning, per kind --------------------------------------------------------------------------


def _increasing(generations: Sequence[int], current: int, what: str) -> Iterable[_Finding]:
    if any(b <= a for a, b in pairwise(generations)):
        yield _Finding("history", f"{what} generations must increase")
    if generations and generations[-1] != current:
        yield _Finding(
            "generation", f"is {current}, but the last history entry has {generations[-1]}"
        )


def _model_version(doc: dict[str, Any], place: _Place | None, refs: _References) -> list[_Finding]:
    from modelreg.manifest import ModelVersion

    # File paths first, one finding per file: a manifest refuses to load with an unsafe or
    # repeated path (manifest.check_files), and would otherwise name only the first one.
    out = list(_file_path_findings(doc.get("files")))
    if out:
        return out
    try:
        mv = ModelVersion.from_dict(doc, error=InvalidInput)
    except InvalidInput as exc:
        return [_Finding("", str(exc), unreadable=True)]
    if place is not None and (place.model, place.key) != (mv.name, mv.version):
        out.append(_Finding("", f"holds {mv.name}@{mv.version}, but its path is for "
                                f"{place.model}@{place.key}"))  # fmt: skip
    return out


def _file_path_findings(files: Any) -> Iterable[_Finding]:
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
            yield _Finding(f"files[{i}].path", str(exc))
        if path in seen:
            yield _Finding(f"files[{i}].path", f"{path!r} is listed twice")
        seen.add(path)


def _alias(doc: dict[str, Any], place: _Place | None, refs: _References) -> list[_Finding]:
    from modelreg.refs import AliasRef

    try:
        ref = AliasRef.from_dict(doc)
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        return [_Finding("", f"malformed alias: {exc}", unreadable=True)]
    out = list(_increasing([e.generation for e in ref.history], ref.generation, "move"))
    if ref.history and (ref.history[-1].version, ref.history[-1].id) != (ref.version, ref.id):
        out.append(_Finding("version", "differs from the last move in the history"))
    out.extend(
        _Finding(f"history[{i}].alias", f"is {e.alias!r}, in the file of alias {ref.alias!r}")
        for i, e in enumerate(ref.history)
        if e.alias != ref.alias
    )
    if place is not None and (place.model, place.key) != (ref.model, ref.alias):
        out.append(_Finding("", f"holds alias {ref.model}@{ref.alias}, but its path is for "
                                f"{place.model}@{place.key}"))  # fmt: skip
    if refs.store is not None:
        out.extend(refs.check_side(ref.model, ref.version, ref.id, "version"))
    return out


def _version_state(doc: dict[str, Any], place: _Place | None, refs: _References) -> list[_Finding]:
    tags = doc.get("tags") or []
    if len(set(tags)) != len(tags):
        return [_Finding("tags", "a tag is listed twice")]
    if refs.store is not None and place is not None and place.model and place.key:
        if refs.manifest_id(place.model, place.key) is None:
            msg = f"{place.model}@{place.key} does not exist in the store"
            return [_Finding("", f"state of a version that does not exist: {msg}", "reference")]
    return []


def _store_config(doc: dict[str, Any], place: _Place | None, refs: _References) -> list[_Finding]:
    from modelreg.conditions import Condition

    try:
        config = StoreConfig.from_dict(doc, "config")
    except IntegrityError as exc:
        return [_Finding("", str(exc).removeprefix("config: "), unreadable=True)]
    out = []
    for alias, conditions in config.gates.items():
        for i, text in enumerate(conditions):
            c = Condition.parse(text)
            number = isinstance(c.value, (int, float)) and not isinstance(c.value, bool)
            if c.op not in ("==", "!=") and not number:
                out.append(_Finding(f"gates.{alias}[{i}]", f"{text!r} can never hold: {c.op} "
                                    f"compares numbers, and {c.value!r} is not one"))  # fmt: skip
    return out


def _rollout(doc: dict[str, Any], place: _Place | None, refs: _References) -> list[_Finding]:
    from modelreg.release.bucketing import FULL
    from modelreg.release.rollout import LIVE, PROMOTED, Rollout

    try:
        r = Rollout.from_dict(doc)
    except InvalidInput as exc:
        return [_Finding("", str(exc), unreadable=True)]
    out = list(_increasing([e.generation for e in r.history], r.generation, "change"))
    if r.history:
        last = r.history[-1]
        for field in ("release", "state", "weight", "shadow"):
            if getattr(last, field) != getattr(r, field):
                out.append(_Finding(field, "differs from the last change in the history"))
    if r.shadow and r.weight:
        out.append(_Finding("weight", "must be 0 in shadow mode (the canary only mirrors)"))
    if r.state == PROMOTED and r.weight != FULL:
        out.append(_Finding("weight", "must be 100 once the release is promoted"))
    if r.state not in LIVE and r.state != PROMOTED and r.weight:
        out.append(_Finding("weight", "must be 0 once the release is aborted"))
    if r.state in LIVE and r.production_generation is not None:
        out.append(_Finding("production_generation", "is set only when a release has ended"))
    out.extend(_rule_findings(r))
    if r.analysis:
        out.extend(_analysis_findings(r.analysis))
    if place is not None and place.model != r.model:
        out.append(_Finding("model", f"is {r.model!r}, but the file is the release of "
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


def _rule_findings(r: Any) -> Iterable[_Finding]:
    """Duplicate names, and rules that an earlier rule shadows (first match wins)."""
    names: dict[str, int] = {}
    earlier: list[tuple[int, dict[str, Test]]] = []
    for i, rule in enumerate(r.rules, 1):
        if rule.name and rule.name in names:
            yield _Finding(f"rules[{i - 1}].name", f"{rule.name!r} is also rule {names[rule.name]}")
        names.setdefault(rule.name, i)
        mine = _conditions(rule)
        for j, theirs in earlier:
            if all(k in mine and _implies(mine[k], t) for k, t in theirs.items()):
                yield _Finding(
                    f"rules[{i - 1}]",
                    f"can never match: rule {j} comes first and matches every request it matches",
                )
                break
        earlier.append((i, mine))


def _analysis_findings(analysis: Sequence[dict[str, Any]]) -> Iterable[_Finding]:
    try:
        from modelreg.analysis.checks import checks_from_list
    except ImportError:  # pragma: no cover (the analysis package ships with mreg)
        return
    try:
        checks_from_list(list(analysis))
    except InvalidInput as exc:
        yield _Finding("analysis", str(exc))


_MEANING = {
    "ModelVersion": _model_version,
    "Alias": _alias,
    "VersionState": _version_state,
    "StoreConfig": _store_config,
    "Rollout": _rollout,
}


# -- one file -----------------------------------------------------------------------------------

_MARK = re.compile(r":(\d+):(\d+): (.*)\Z", re.S)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _problems_of(
    path: Path, shown: str, place: _Place | str | None, refs: _References
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
    expected = place.kind if isinstance(place, _Place) else None
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
    here = place if isinstance(place, _Place) and place.kind == kind else None
    if not problems:
        findings = _MEANING[kind](doc, here, refs)
    else:
        findings = _beside(problems, lambda: _MEANING[kind](doc, here, refs))
    problems.extend(Problem(shown, f.message, f.check, kind, f.path) for f in findings)
    return kind, problems


def _overlaps(a: str, b: str) -> bool:
    """True when field paths `a` and `b` are the same field or one holds the other."""
    if not a or not b:
        return False
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


def _beside(problems: Sequence[Problem], meaning: Any) -> list[_Finding]:
    """The meaning findings of a document with schema problems that are not their echo.

    Left out: "cannot be read as its kind" (what the schema problems already say), findings
    on a field a schema problem names (or inside it, or holding it), and everything when the
    meaning checks cannot run on the broken structure at all.
    """
    try:
        findings: list[_Finding] = meaning()
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
            root = _store_root(p) if p.is_dir() else None
            if root is not None:
                targets.extend((d, root) for d in _store_documents(root))
            else:
                targets.append((p, _containing_store(p)))
    files: list[FileResult] = []
    problems: list[Problem] = []
    by_root: dict[Path | None, _References] = {}
    for path, root in targets:
        ref_root = root or fallback
        refs = by_root.setdefault(ref_root, _References(ref_root))
        place = _place(root, path) if root is not None else None
        shown = _display(path)
        kind, found = _problems_of(path, shown, place, refs)
        files.append(FileResult(shown, kind, len(found)))
        problems.extend(found)
    return ValidationReport(
        None if fallback is None else str(fallback), tuple(files), tuple(problems)
    )


# -- large model files --------------------------------------------------------------------------


@dataclass(frozen=True)
class LargeFile:
    """A model file over the size limit."""

    file: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"file": self.file, "size": self.size}


@dataclass(frozen=True)
class LargeFilesReport:
    """What `mreg check-large-models` checked and found."""

    checked: int
    max_size: int
    large: tuple[LargeFile, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg check-large-models`."""
        return {
            "ok": not self.large,
            "checked": self.checked,
            "max_size": self.max_size,
            "large": [f.to_dict() for f in self.large],
        }

    def raise_for_problems(self) -> None:
        """Raise LargeModelFiles (exit 1) when a model file is over the limit."""
        if self.large:
            raise LargeModelFiles(
                f"{len(self.large)} model file(s) over {self.max_size:,} bytes: register them "
                "(mreg register NAME FILE) and commit code, not weights"
            )


_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(|b|[kmgt](?:b|ib|i)?)\s*\Z", re.I)


def parse_size(text: str) -> int:
    """Bytes from `1048576`, `500KB`, `10MiB`, `1.5G` (KB, MB, GB: powers of 1000; K, KiB: 1024)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise InvalidInput(f"invalid size {text!r}: expected e.g. 500KB, 10MiB or 1048576")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit in ("", "b"):
        return int(number)
    power = "kmgt".index(unit[0]) + 1
    return int(number * (1000 if unit.endswith("b") and len(unit) == 2 else 1024) ** power)


def check_large_models(
    paths: Sequence[str | os.PathLike[str]],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    extensions: Collection[str] = MODEL_EXTENSIONS,
) -> LargeFilesReport:
    """Find model files (by extension) larger than `max_size` bytes among `paths`.

    Paths that do not exist (deleted files) or are not model files are skipped.
    """
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    large = []
    checked = 0
    for given in paths:
        p = Path(given)
        if p.suffix.lower() not in wanted or not p.is_file():
            continue
        checked += 1
        size = p.stat().st_size
        if size > max_size:
            large.append(LargeFile(str(given), size))
    return LargeFilesReport(checked, max_size, tuple(large))
