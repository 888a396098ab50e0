"""`mreg import gto`: copy what GTO registered in a git repository (issue 20).

GTO keeps a registry in annotated git tags (its `tag_re`, gto/constants.py):

| tag | event | mreg |
|---|---|---|
| `NAME@v1.2.0` | registration | `register NAME 1.2.0` with the files at the tagged commit |
| `NAME@v1.2.0!` | deregistration | `deprecate NAME@1.2.0` |
| `NAME#STAGE#N` (`NAME#STAGE`) | assignment | `promote` the version of that commit to alias STAGE |
| `NAME#STAGE!#N` | unassignment | the alias goes back to the stage's previous version |
| `NAME@deprecated` | deprecation | `deprecate` every version of NAME |

Each event's author and time are the tag's tagger and date, its message the tag's message.
The artifact (`path`, `type`, `description`, `labels`) is read from `artifacts.yaml` (GTO)
or the `artifacts:` section of `dvc.yaml` at the tagged commit, and its files from the
commit's tree (`git ls-tree`, `git cat-file`): never from the work tree, never checked out.
A Git LFS pointer is replaced by its object from `.git/lfs/objects` when it was fetched
(the LFS oid is the SHA-256 mreg stores); else the version is skipped, saying so. A path
tracked by DVC (`PATH.dvc`) is skipped: its bytes are not in git.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from modelreg import yamlio
from modelreg.errors import InvalidInput, MregError
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_file
from modelreg.importing.common import (
    ImportItem,
    ImportReport,
    Replay,
    imported_keys,
    is_tag,
    marker,
    staging,
)
from modelreg.manifest import CodeRef
from modelreg.names import Version, check_alias, check_name, check_path

__all__ = ["GtoEvent", "import_gto", "parse_tag"]

SOURCE = "gto"
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?:(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)
TAG_RE = re.compile(
    rf"^(?P<artifact>(?:[a-zA-Z0-9-_./]+=)?{_NAME})"
    rf"(((#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?))"
    r"|@((?P<deprecated>deprecated)|(?P<created>created)))(#(?P<counter>[0-9]+))?$"
)
"""GTO's tag grammar (gto 1.x, gto/constants.py `tag_re`); `=` stands for `:` in names."""
_ORDER = {"register": 0, "assign": 1, "unassign": 2, "deregister": 3, "deprecate": 4}
_LFS_HEAD = b"version https://git-lfs.github.com/spec/v1"
_MAX_INDEX = 1 << 20
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY")


@dataclass(frozen=True)
class GtoEvent:
    """One GTO tag, parsed: what it does, to which artifact, by whom, when."""

    tag: str
    action: str
    """`register`, `deregister`, `assign`, `unassign` or `deprecate`."""
    artifact: str
    """GTO's name (`dir:name` for an artifact of `dir/dvc.yaml`)."""
    commit: str
    author: str
    time: datetime
    message: str
    version: str | None = None
    stage: str | None = None
    counter: int = 0


def parse_tag(tag: str) -> dict[str, Any] | None:
    """The parts of a GTO tag name (action, artifact, version, stage, counter), or None."""
    m = TAG_RE.match(tag)
    if m is None or m["created"]:
        return None
    cancel = bool(m["cancel"])
    if m["deprecated"]:
        action = "deprecate"
    elif m["version"]:
        action = "deregister" if cancel else "register"
    else:
        action = "unassign" if cancel else "assign"
    return {
        "action": action,
        "artifact": m["artifact"].replace("=", ":"),
        "version": m["version"],
        "stage": m["stage"],
        "counter": int(m["counter"] or 0),
    }


def model_name(artifact: str) -> str:
    """The mreg name of a GTO artifact: `clf` -> `clf`, `dir/sub:clf` -> `dir-sub/clf`."""
    full = artifact.replace(":", "/").lower()
    *ns, last = full.split("/")
    return check_name(f"{'-'.join(ns)}/{last}" if ns else last)


class _Git:
    """`git` in one repository, without a hook's `GIT_*` paths."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV}

    def run(self, *args: str, check: bool = True) -> bytes:
        proc = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            capture_output=True, env=self.env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise MregError(f"git {args[0]} in {self.repo}: {err[-1] if err else 'failed'}")
        return proc.stdout

    def blob(self, commit: str, path: str, limit: int) -> bytes | None:
        """A small file at a commit (None when absent), refusing more than `limit` bytes."""
        spec = f"{commit}:{path}"
        out = self.run("cat-file", "-s", spec, check=False)
        if not out.strip().isdigit():
            return None
        if int(out) > limit:
            raise MregError(f"{spec}: over {limit} bytes")
        return self.run("cat-file", "blob", spec)

    def copy_blob(self, sha: str, dst: Path) -> None:
        """Stream a blob into `dst` (bounded memory)."""
        with open(dst, "xb") as out:
            proc = subprocess.run(
                ["git", "-C", str(self.repo), "cat-file", "blob", sha],
                stdout=out, stderr=subprocess.PIPE, env=self.env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if proc.returncode != 0:
            raise MregError(f"git cat-file blob {sha}: {proc.stderr.decode(errors='replace')}")


def _events(git: _Git) -> list[GtoEvent]:
    fields = (
        "%(refname:strip=2)", "%(objecttype)", "%(*objectname)", "%(objectname)",
        "%(taggername) %(taggeremail)", "%(taggerdate:iso-strict)",
        "%(authorname) %(authoremail)", "%(authordate:iso-strict)", "%(contents)",
    )  # fmt: skip
    out = git.run("for-each-ref", "refs/tags", "--format=" + "%00".join(fields) + "%00%01")
    events = []
    for record in out.decode("utf-8", errors="replace").split("\0\x01"):
        parts = record.lstrip("\n").split("\0")
        if len(parts) != len(fields):
            continue
        name, kind, peeled, target, tagger, tdate, author, adate, message = parts
        parsed = parse_tag(name)
        annotated = kind == "tag"
        if parsed is None or not (tdate if annotated else adate):
            continue  # not GTO's, or a tag of a tree or blob: no author, no date
        events.append(
            GtoEvent(
                tag=name,
                commit=peeled if annotated else target,
                author=(tagger if annotated else author).strip(),
                time=_when(tdate if annotated else adate),
                message=message.strip(),
                **parsed,
            )
        )
    events.sort(key=lambda e: (e.time, _ORDER[e.action], e.counter, e.tag))
    return events


def import_gto(
    store: StoreHandle, repo: str = ".", models: Sequence[str] = (), *, dry_run: bool = False
) -> ImportReport:
    """Replay GTO's tags of a local git repository (all artifacts, or those in `models`).

    Idempotent: each tag is imported once (its name is the key in the audit trail).

    Raises:
        InvalidInput: `repo` is not a local git repository (exit 2).
    """
    path = Path(repo)
    if not path.is_dir():
        raise InvalidInput(f"{repo}: not a directory (clone a remote repository first)")
    git = _Git(path)
    try:
        top = git.run("rev-parse", "--show-toplevel").decode().strip()
        common = git.run("rev-parse", "--path-format=absolute", "--git-common-dir")
    except MregError:
        raise InvalidInput(f"{repo}: not a git repository") from None
    git = _Git(Path(top))
    lfs_dir = Path(common.decode().strip()) / "lfs" / "objects"
    events = [e for e in _events(git) if not models or e.artifact in models]
    done = imported_keys(store, SOURCE)
    run = _Run(store, git, lfs_dir, done, dry_run)
    for e in events:
        run.event(e)
    return ImportReport(SOURCE, top, dry_run, tuple(run.items))


class _Run:
    """One import: the events replayed in order, with each stage's assigned versions."""

    def __init__(
        self, store: StoreHandle, git: _Git, lfs_dir: Path, done: set[str], dry: bool
    ) -> None:
        self.store, self.git, self.lfs_dir, self.done, self.dry = store, git, lfs_dir, done, dry
        self.items: list[ImportItem] = []
        self.versions: dict[tuple[str, str], str] = {}  # (artifact, commit) -> mreg version
        self.present: set[tuple[str, str]] = set()  # (model, version) imported or planned
        self.stages: dict[tuple[str, str], list[str]] = {}  # (artifact, stage) -> versions

    def event(self, e: GtoEvent) -> None:
        try:
            name = model_name(e.artifact)
        except InvalidInput as exc:
            self.items.append(ImportItem("version", e.artifact, e.tag, "skipped", reason=str(exc)))
            return
        getattr(self, f"_{e.action}")(e, name)

    def _replay(self, e: GtoEvent) -> Replay:
        return Replay(
            self.store, e.time, marker(SOURCE, e.tag, str(self.git.repo), self.store.now())
        )

    # -- registration -------------------------------------------------------------------------

    def _register(self, e: GtoEvent, name: str) -> None:
        version = (e.version or "v")[1:]

        def item(status: str, reason: str = "") -> None:
            self.items.append(ImportItem("version", name, e.tag, status, version, reason=reason))

        try:
            Version.parse(version)
        except InvalidInput as exc:
            return item("skipped", str(exc))
        self.versions[(e.artifact, e.commit)] = version
        if e.tag in self.done:
            self.present.add((name, version))
            return item("exists")
        if self.store.manifest_path(name, version).exists():
            return item("failed", f"{name}@{version} exists and was not imported from {e.tag}")
        try:
            art = self._artifact(e)
            if isinstance(art, str):
                return item("skipped", art)
            files = self._tree(e.commit, art["path"])
            if isinstance(files, str):
                return item("skipped", files)
            if self.dry:
                self.present.add((name, version))
                return item("planned")
            with staging(self.store) as tmp:
                self._copy(files, tmp)
                self._register_files(e, name, version, art, tmp)
        except MregError as exc:
            return item("failed", str(exc))
        self.present.add((name, version))
        return item("imported")

    def _artifact(self, e: GtoEvent) -> dict[str, Any] | str:
        """The artifact's entry at the tagged commit, or why there is none to import."""
        dirname, _, short = e.artifact.rpartition(":")
        base = f"{dirname}/" if dirname else ""
        for index, section, desc in (
            ("artifacts.yaml", None, "description"), ("dvc.yaml", "artifacts", "desc")
        ):  # fmt: skip
            if dirname and index == "artifacts.yaml":
                continue
            data = self.git.blob(e.commit, base + index, _MAX_INDEX)
            if data is None:
                continue
            doc = yamlio.load(data, f"{e.commit[:12]}:{base}{index}")
            table = (doc or {}).get(section) if section else doc
            entry = table.get(short) if isinstance(table, dict) else None
            if isinstance(entry, dict):
                path = entry.get("path")
                if not isinstance(path, str) or "://" in path:
                    return f"a virtual artifact (path {path!r} is not in the repository)"
                rel = os.path.normpath(base + path)
                check_path(rel, "artifact path")
                labels = entry.get("labels") or []
                return {
                    "path": rel, "type": entry.get("type"), "description": entry.get(desc) or "",
                    "labels": [str(x) for x in labels] if isinstance(labels, list) else [],
                }  # fmt: skip
        return f"{e.artifact!r} is in neither artifacts.yaml nor dvc.yaml at {e.commit[:12]}"

    def _tree(self, commit: str, path: str) -> list[tuple[str, str, bytes | None]] | str:
        """The artifact's files at `commit` as (path in the version, blob, LFS oid or None).

        Or why they cannot be imported: a DVC-tracked or absent path, a link, a submodule,
        a Git LFS object not in the local cache.
        """
        if self.git.blob(commit, f"{path}.dvc", _MAX_INDEX) is not None:
            return f"{path} is tracked by DVC ({path}.dvc): its bytes are not in git"
        out = self.git.run("ls-tree", "-r", "-z", "--long", "--full-tree", commit, "--", path)
        entries = [x for x in out.decode("utf-8", errors="surrogateescape").split("\0") if x]
        if not entries:
            return f"{path} is not in the repository at {commit[:12]} (a virtual artifact)"
        files: list[tuple[str, str, bytes | None]] = []
        for line in entries:
            meta, _, full = line.partition("\t")
            mode, kind, sha, size = meta.split()
            rel = PurePosixPath(full).name if full == path else full[len(path) + 1 :]
            check_path(rel, "artifact file")
            if kind != "blob" or mode == "120000":
                return f"{full} is a {'symbolic link' if kind == 'blob' else kind}, not a file"
            oid = None
            if int(size) < 1024:
                data = self.git.run("cat-file", "blob", sha)
                m = re.search(rb"^oid sha256:([0-9a-f]{64})$", data, re.M)
                if data.startswith(_LFS_HEAD) and m is None:
                    return f"{full}: a malformed Git LFS pointer"
                if data.startswith(_LFS_HEAD) and m is not None:
                    oid = m[1]
                    if not self._lfs_path(oid).is_file():
                        return f"{full} is a Git LFS pointer whose object is not here " \
                            "(run git lfs fetch)"  # fmt: skip
            files.append((rel, sha, oid))
        return files

    def _lfs_path(self, oid: bytes) -> Path:
        text = oid.decode()
        return self.lfs_dir / text[:2] / text[2:4] / text

    def _copy(self, files: list[tuple[str, str, bytes | None]], dst: Path) -> None:
        """Copy the files of `_tree` into `dst`: blobs streamed, LFS objects verified."""
        for rel, sha, oid in files:
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if oid is None:
                self.git.copy_blob(sha, target)
                continue
            shutil.copyfile(self._lfs_path(oid), target, follow_symlinks=False)
            if hash_file(target)[0] != oid.decode():
                raise MregError(f"{rel}: the Git LFS object {oid[:12]!r} does not match its id")

    def _register_files(
        self, e: GtoEvent, name: str, version: str, art: dict[str, Any], files: Path
    ) -> None:
        from modelreg.register import register

        tags = [t for t in (*art["labels"], f"gto.type={art['type']}" if art["type"] else "")
                if t and is_tag(t)]  # fmt: skip
        message = "\n\n".join(x for x in (e.message, art["description"]) if x)
        code = CodeRef(str(self.git.repo), e.commit, None, False, art["path"])
        register(
            self._replay(e), name, [files], version=version, code=code, detect_code=False,
            message=message, tags=tags, author=e.author or "gto",
        )  # fmt: skip

    # -- stages and deprecations --------------------------------------------------------------

    def _assign(self, e: GtoEvent, name: str) -> None:
        version = self.versions.get((e.artifact, e.commit))
        stage = self.stages.setdefault((e.artifact, e.stage or ""), [])
        if version is not None:
            stage[:] = [v for v in stage if v != version] + [version]
        self._alias(e, name, version, "assigned")

    def _unassign(self, e: GtoEvent, name: str) -> None:
        version = self.versions.get((e.artifact, e.commit))
        stage = self.stages.setdefault((e.artifact, e.stage or ""), [])
        if version in stage:
            stage.remove(version)
        if not stage:
            alias = (e.stage or "").lower()
            why = (
                f"{e.stage} has no version left, and mreg keeps an alias once set: "
                f"{name}@{alias} stays where it is"
            )
            self.items.append(ImportItem("alias", name, e.tag, "skipped", version, alias, why))
            return
        if (name, stage[-1]) in self.present and _deprecated(self.store, name, stage[-1]):
            alias = (e.stage or "").lower()
            why = f"{name}@{alias} stays where it is: the stage's previous version is deprecated"
            self.items.append(ImportItem("alias", name, e.tag, "skipped", stage[-1], alias, why))
            return
        self._alias(e, name, stage[-1], "unassigned")

    def _alias(self, e: GtoEvent, name: str, version: str | None, what: str) -> None:
        from modelreg.aliases import promote
        from modelreg.refs import read_alias

        alias = (e.stage or "").lower().replace("/", "-")

        def item(status: str, reason: str = "") -> None:
            self.items.append(ImportItem("alias", name, e.tag, status, version, alias, reason))

        try:
            check_alias(alias)
        except InvalidInput as exc:
            return item("skipped", str(exc))
        if version is None:
            return item("skipped", f"{e.commit[:12]} has no registered version of {e.artifact}")
        if e.tag in self.done:
            return item("exists")
        if (name, version) not in self.present:
            return item("skipped", f"{name}@{version} was not imported")
        current = read_alias(self.store, name, alias)
        if current is not None and current.version == version:
            return item("exists")
        if self.dry:
            return item("planned")
        why = f"{what} in GTO ({e.tag})" + (f": {e.message}" if e.message else "")
        try:
            moved = promote(
                self._replay(e), f"{name}@{version}", alias, reason=why[:500], actor=e.author
            )
        except MregError as exc:
            return item("failed", str(exc))
        return item("imported" if moved.changed else "exists")

    def _deregister(self, e: GtoEvent, name: str) -> None:
        self._deprecate_versions(e, name, [(e.version or "v")[1:]], "deregistered")

    def _deprecate(self, e: GtoEvent, name: str) -> None:
        versions = sorted((v for n, v in self.present if n == name), key=Version)
        self._deprecate_versions(e, name, versions, "deprecated")

    def _deprecate_versions(self, e: GtoEvent, name: str, versions: list[str], what: str) -> None:
        from modelreg.aliases import deprecate

        for version in versions:

            def item(status: str, reason: str = "", v: str = version) -> None:
                self.items.append(ImportItem("deprecation", name, e.tag, status, v, reason=reason))

            if e.tag in self.done:
                item("exists")
            elif (name, version) not in self.present:
                item("skipped", f"{name}@{version} was not imported")
            elif self.dry:
                item("planned")
            else:
                reason = f"{what} in GTO ({e.tag})" + (f": {e.message}" if e.message else "")
                try:
                    dep = deprecate(
                        self._replay(e), f"{name}@{version}", reason=reason, actor=e.author
                    )
                except MregError as exc:
                    item("failed", str(exc))
                else:
                    item("imported" if dep.changed else "exists")


def _deprecated(store: StoreHandle, name: str, version: str) -> bool:
    from modelreg.refs import read_state

    return store.manifest_path(name, version).exists() and bool(
        read_state(store, name, version).deprecated
    )


def _when(text: str) -> datetime:
    """A git `iso-strict` date (`...+02:00` or `...Z`) in UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
