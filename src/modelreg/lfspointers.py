"""Registering files that Git LFS tracks: a pointer in the work tree stands for its object (#20).

A file tracked by Git LFS is, in a git work tree, either its content (smudged: `git lfs
pull` ran) or a pointer, a text of at most a few hundred bytes:

    version https://git-lfs.github.com/spec/v1
    oid sha256:4d7a2146...
    size 12345

A smudged file is registered like any file. A pointer is registered as the object it names
(its oid is the SHA-256 of the content, mreg's object id) and never as the pointer text:
the version's file has the object's digest and size. The store never claims an object it
cannot verify, so the object's bytes enter `objects/` at register, hashed on the way:

1. from the repository's own LFS cache (`.git/lfs/objects/OI/D/OID`, where `git lfs fetch`
   and `git lfs push` leave it): no network;
2. else from the store's Git LFS remotes, the default first (one batch request, one GET).

A pointer found in neither is refused (nothing is written) with a one-line hint. A push to
the LFS server the object came from then sends none of its bytes: the batch API's upload
answer says the server has it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from modelreg.errors import IntegrityError, MregError, NotFound
from modelreg.handle import StoreHandle
from modelreg.hashing import copy_and_hash

__all__ = ["MAX_POINTER", "fetch_pointers", "parse_pointer", "pointers"]

MAX_POINTER = 1024
"""Git LFS never writes a pointer of this size or more (its own limit)."""
_MIN_POINTER = 126
"""The shortest pointer: the version line, the oid line and `size 0`."""
_POINTER_RE = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n"
    rb"oid sha256:([0-9a-f]{64})\n"
    rb"size (0|[1-9][0-9]{0,18})\n"
)


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    """The (oid, size) of a Git LFS pointer text, or None when `data` is not one."""
    m = _POINTER_RE.fullmatch(data) if len(data) < MAX_POINTER else None
    return (m.group(1).decode(), int(m.group(2))) if m else None


def pointers(inputs: Sequence[tuple[str, Path]]) -> dict[str, tuple[str, int]]:
    """The inputs that are Git LFS pointers: {path in the version: (oid, size)}."""
    out = {}
    for rel, src in inputs:
        if _MIN_POINTER <= src.stat().st_size < MAX_POINTER:
            found = parse_pointer(src.read_bytes())
            if found is not None:
                out[rel] = found
    return out


def _git_dir(where: Path, known: dict[Path, Path | None]) -> Path | None:
    """The common git directory of the repository holding `where` (asked once per directory)."""
    if where in known:
        return known[where]
    # the repository of the file, not one a GIT_DIR of the environment points at
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    found = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=where, capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            found = Path(out.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    known[where] = found
    return found


def fetch_pointers(
    store: StoreHandle, found: dict[str, tuple[str, int]], sources: dict[str, Path]
) -> int:
    """Put the objects the pointers name into the store, verified; return the bytes fetched.

    Each from the repository's LFS cache if it is there, the others from the store's Git LFS
    remotes (one batch request per 100, downloads in parallel). NotFound when an object is
    in neither (the objects already received stay, unreferenced, for gc).
    """
    from modelreg.remote.ingest import receive_object

    todo: dict[str, int] = {}
    named: dict[str, Path] = {}
    git_dirs: dict[Path, Path | None] = {}
    for rel, (oid, size) in sorted(found.items()):
        if oid in todo or store.objects.freshen(oid):
            continue
        git_dir = _git_dir(sources[rel].parent, git_dirs)
        cached = git_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid if git_dir else None
        if cached is not None and cached.is_file():

            def copy(fd: int, path: Path = cached) -> tuple[str, int]:
                with open(path, "rb") as fh:
                    return copy_and_hash(fh, fd)

            receive_object(store.objects, oid, size, f"the Git LFS object of {sources[rel]}", copy)
            continue
        todo[oid] = size
        named[oid] = sources[rel]
    return _from_remotes(store, todo, named) if todo else 0


def _from_remotes(store: StoreHandle, todo: dict[str, int], named: dict[str, Path]) -> int:
    from modelreg.remote.backend import Backend
    from modelreg.remote.lfs import is_lfs
    from modelreg.remote.transfer import Transfer, wait_all

    cfg = store.config
    names = sorted(cfg.remotes, key=lambda n: (n != cfg.default_remote, n))
    problems = []
    fetched = 0
    for name in [n for n in names if is_lfs(cfg.remotes[n].url)]:
        if not todo:
            break
        backend = Backend(cfg.remotes[name])
        assert backend.lfs is not None
        try:
            with backend.errors():
                have = backend.lfs.ask("download", todo)
                if len(have) < len(todo):
                    problems.append(f"not on {name}")
                with Transfer(backend, store.objects) as t:
                    got, failed = wait_all({t.submit(t.download, d, n): d for d, n in have.items()})
            if failed:
                raise IntegrityError(next(iter(failed.values())))
            fetched += got
            for oid in have:
                del todo[oid]
        except IntegrityError:
            raise
        except MregError as exc:
            problems.append(str(exc))
        finally:
            backend.lfs.close()
    if not todo:
        return fetched
    oid = sorted(todo, key=lambda d: str(named[d]))[0]
    tried = f" nor on a remote ({'; '.join(problems)})" if problems else " (no Git LFS remote)"
    more = f" (and {len(todo) - 1} more)" if len(todo) > 1 else ""
    raise NotFound(
        f"{named[oid]} is a Git LFS pointer, and its object {oid[:12]} is not in the "
        f"repository's LFS cache{tried}{more}: run git lfs fetch, or add its LFS server as a "
        "remote (mreg remote add NAME lfs+https://...)"
    )
