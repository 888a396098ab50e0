"""Lineage: where a version's code and data came from, and who is registering it.

Code lineage uses gitpython (imported lazily) with the `GIT_*` variables that a git hook
exports scrubbed, so a hook run does not confuse the lookup. Data given as a local path is
hashed (a directory as a tree digest of its sorted relative paths and file digests); a URI
(`s3://...`, `https://...`) is recorded as given.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelreg.errors import InvalidInput, NotFound
from modelreg.hashing import hash_file
from modelreg.manifest import CodeRef, DataRef

__all__ = ["code_lineage", "data_lineage", "default_author", "is_uri", "walk_files"]

_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY")


def is_uri(spec: str) -> bool:
    """True for `scheme://...` data references, which are recorded rather than hashed."""
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum()


def walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative POSIX path, path) for every regular file under `root`, sorted.

    Symbolic links inside a directory are refused (InvalidInput): following them could pull
    in files from outside the directory, and skipping them would silently drop content.
    """
    stack = [root]
    found: list[tuple[str, Path]] = []
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except PermissionError:
            raise InvalidInput(f"{d}: permission denied") from None
        for entry in entries:
            p = Path(entry.path)
            if entry.is_symlink():
                raise InvalidInput(
                    f"{p}: symbolic links inside a directory are not registered; "
                    "replace it with the file or pass its target explicitly"
                )
            if entry.is_dir():
                stack.append(p)
            elif entry.is_file():
                found.append((p.relative_to(root).as_posix(), p))
            else:
                raise InvalidInput(f"{p}: not a regular file")
    found.sort()
    yield from found


def data_lineage(spec: str) -> DataRef:
    """Describe one `--data` argument: hash a local path, record a URI as given."""
    if is_uri(spec):
        return DataRef(uri=spec, kind="uri")
    path = Path(spec)
    if not path.exists():
        raise NotFound(f"--data {spec}: no such file or directory")
    if path.is_file():
        digest, size = _hash_readable(path)
        return DataRef(uri=spec, kind="path", sha256=digest, size=size, files=1)
    tree = hashlib.sha256()
    total = count = 0
    for rel, p in walk_files(path):
        digest, size = _hash_readable(p)
        tree.update(f"{rel}\0{digest}\n".encode())
        total += size
        count += 1
    return DataRef(uri=spec, kind="path", sha256=tree.hexdigest(), size=total, files=count)


def _hash_readable(path: Path) -> tuple[str, int]:
    try:
        return hash_file(path)
    except PermissionError:
        raise InvalidInput(f"{path}: permission denied") from None


@contextmanager
def _scrubbed_git_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in _GIT_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def code_lineage(path: Path | None, *, required: bool = False) -> CodeRef | None:
    """Git lineage of the work tree containing `path` (default: the current directory).

    Returns None outside a git work tree, unless `required` (an explicit `--code DIR`), which
    raises InvalidInput instead. `dirty` means tracked files differ from the commit.
    """
    where = (path or Path.cwd()).resolve()
    if required and not where.is_dir():
        raise NotFound(f"--code {path}: no such directory")
    if not _inside_git_work_tree(where):
        # Most registers outside a repository: answered without importing gitpython (~35 ms).
        if required:
            raise InvalidInput(f"--code {path}: not inside a git work tree")
        return None
    import git  # lazy: gitpython costs ~35-70 ms to import

    with _scrubbed_git_env():
        try:
            repo = git.Repo(where, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            if required:
                raise InvalidInput(f"--code {path}: not inside a git work tree") from None
            return None
        try:
            if repo.bare or repo.working_tree_dir is None:
                return None
            try:
                commit = repo.head.commit.hexsha
            except ValueError:  # a repository without commits yet
                if required:
                    raise InvalidInput(f"--code {path}: the repository has no commits") from None
                return None
            branch = None if repo.head.is_detached else repo.active_branch.name
            origin = next((r for r in repo.remotes if r.name == "origin"), None)
            url = next(iter(origin.urls), None) if origin is not None else None
            root = Path(repo.working_tree_dir).resolve()
            rel = where.relative_to(root).as_posix() if where != root else ""
            return CodeRef(
                repo=url or str(root),
                commit=commit,
                branch=branch,
                dirty=repo.is_dirty(untracked_files=False),
                path="" if rel == "." else rel,
            )
        finally:
            repo.close()


def _inside_git_work_tree(where: Path) -> bool:
    """True if `where` or a parent holds `.git` (a directory, or a file for worktrees)."""
    return any((d / ".git").exists() for d in (where, *where.parents))


def default_author() -> str:
    """Who is acting: `MREG_AUTHOR`, else git's user.name <user.email>, else the OS user."""
    env = os.environ.get("MREG_AUTHOR", "").strip()
    if env:
        return env
    config = _git_user_config()
    name, email = config.get("user.name"), config.get("user.email")
    if name:
        return f"{name} <{email}>" if email else name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover (no passwd entry)
        return "unknown"


def _git_user_config() -> dict[str, str]:
    """The `user.name` and `user.email` git has (those set), read with one `git config` run."""
    try:
        with _scrubbed_git_env():
            out = subprocess.run(
                ["git", "config", "--get-regexp", r"^user\.(name|email)$"],
                capture_output=True, text=True, timeout=5,
            )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else ():
        key, _, value = line.partition(" ")
        if value.strip():
            found[key.lower()] = value.strip()  # the last value wins, as with `git config --get`
    return found
