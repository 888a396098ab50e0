"""Lineage: where a version's code and data came from, and who is registering it.

Code lineage runs `git` itself (a few plumbing commands, no gitpython) in an environment
without the `GIT_*` variables that a git hook exports, so a hook run does not confuse the
lookup; the process's own `os.environ` is never changed (issue 16). Data given as a local path is
hashed (a directory as a tree digest of its sorted relative paths and file digests); a URI
(`s3://...`, `https://...`) is recorded as given.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import subprocess
from collections.abc import Iterator
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


def _git_env() -> dict[str, str]:
    """The environment of our `git` runs: this process's, without a hook's `GIT_*` paths."""
    return {k: v for k, v in os.environ.items() if k not in _GIT_ENV}


def _git(where: Path, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run `git -C where ARGS` with `env`: its exit status and stripped stdout."""
    out = subprocess.run(
        ["git", "-C", str(where), *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return out.returncode, out.stdout.strip()


def code_lineage(path: Path | None, *, required: bool = False) -> CodeRef | None:
    """Git lineage of the work tree containing `path` (default: the current directory).

    Returns None outside a git work tree, unless `required` (an explicit `--code DIR`), which
    raises InvalidInput instead. `dirty` means tracked files differ from the commit (in the
    index or the work tree; untracked files do not count).
    """
    where = (path or Path.cwd()).resolve()
    if required and not where.is_dir():
        raise NotFound(f"--code {path}: no such directory")
    if not _inside_git_work_tree(where):
        # Most registers outside a repository: answered without running git.
        if required:
            raise InvalidInput(f"--code {path}: not inside a git work tree")
        return None
    env = _git_env()
    cwd = where if where.is_dir() else where.parent
    try:
        status, inside = _git(cwd, "rev-parse", "--is-inside-work-tree", env=env)
        if status != 0:
            if required:
                raise InvalidInput(f"--code {path}: not inside a git work tree")
            return None
        if inside != "true":  # a bare repository, or inside its .git directory
            return None
        status, commit = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", env=env)
        if status != 0 or not commit:  # a repository without commits yet
            if required:
                raise InvalidInput(f"--code {path}: the repository has no commits")
            return None
        _, top = _git(cwd, "rev-parse", "--show-toplevel", env=env)
        detached, branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD", env=env)
        no_origin, url = _git(cwd, "remote", "get-url", "origin", env=env)
        dirty = any(
            _git(cwd, "diff", *cached, "--quiet", "--no-ext-diff", "--no-textconv", env=env)[0]
            for cached in (("--cached",), ())
        )
    except OSError as exc:  # no git executable
        if required:
            raise InvalidInput(f"--code {path}: cannot run git: {exc.strerror}") from None
        return None
    root = Path(top).resolve()
    rel = where.relative_to(root).as_posix() if where != root else ""
    return CodeRef(
        repo=(url if not no_origin else "") or str(root),
        commit=commit,
        branch=(branch if not detached else "") or None,
        dirty=dirty,
        path="" if rel == "." else rel,
    )


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
        out = subprocess.run(
            ["git", "config", "--get-regexp", r"^user\.(name|email)$"],
            capture_output=True, text=True, timeout=5, env=_git_env(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else ():
        key, _, value = line.partition(" ")
        if value.strip():
            found[key.lower()] = value.strip()  # the last value wins, as with `git config --get`
    return found
