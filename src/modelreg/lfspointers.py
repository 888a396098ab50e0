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


def _lfs_cache(src: Path, oid: str) -> Path | None:
    """The object in the LFS cache of the git repository holding `src`, if it is there."""
    # the repository of the file, not one a GIT_DIR of the environment points at
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=src.parent, capture_output=True, text=True, env=env, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    path = Path(out.stdout.strip()) / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    return path if path.is_file() else None


def fetch_pointers(
    store: StoreHandle, found: dict[str, tuple[str, int]], sources: dict[str, Path]
) -> int:
    """Put the objects the pointers name into the store, verified; return the bytes fetched.

    NotFound (nothing written for that pointer) when neither the repository's LFS cache nor
    a Git LFS remote of the store has the object.
    """
    from modelreg.remote.ingest import receive_object

    fetched = 0
    for rel, (oid, size) in sorted(found.items()):
        if store.objects.has(oid):
            store.objects.freshen(oid)
            continue
        what = f"the Git LFS object of {sources[rel]}"
        cached = _lfs_cache(sources[rel], oid)
        if cached is not None:

            def copy(fd: int, path: Path = cached) -> tuple[str, int]:
                with open(path, "rb") as fh:
                    return copy_and_hash(fh, fd)

            receive_object(store.objects, oid, size, what, copy)
            continue
        fetched += _from_remotes(store, oid, size, what, sources[rel])
    return fetched


def _from_remotes(store: StoreHandle, oid: str, size: int, what: str, src: Path) -> int:
    from modelreg.remote.backend import Backend
    from modelreg.remote.lfs import is_lfs
    from modelreg.remote.transfer import Transfer

    cfg = store.config
    names = sorted(cfg.remotes, key=lambda n: (n != cfg.default_remote, n))
    problems = []
    for name in [n for n in names if is_lfs(cfg.remotes[n].url)]:
        backend = Backend(cfg.remotes[name])
        assert backend.lfs is not None
        try:
            with backend.errors():
                if not backend.lfs.ask("download", {oid: size}):
                    problems.append(f"not on {name}")
                    continue
                with Transfer(backend, store.objects, jobs=1) as t:
                    return t.download(oid, size)
        except IntegrityError:
            raise
        except MregError as exc:
            problems.append(str(exc))
        finally:
            backend.lfs.close()
    tried = f" nor on a remote ({'; '.join(problems)})" if problems else " (no Git LFS remote)"
    raise NotFound(
        f"{src} is a Git LFS pointer, and its object {oid[:12]} is not in the repository's "
        f"LFS cache{tried}: run git lfs fetch, or add its LFS server as a remote "
        "(mreg remote add NAME lfs+https://...)"
    )
