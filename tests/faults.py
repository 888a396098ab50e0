"""Damage done to a file mreg watches, as a broken editor, a full disk or an attacker would.

One list of faults for the suites that damage a rollout manifest under a live router
(`tests/reliability/test_serving_faults.py`) or before a forced abort
(`tests/release/test_forced_abort.py`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

__all__ = ["damage_file", "write_in_place"]


def write_in_place(path: Path, data: bytes) -> None:
    """Replace `path` in place (not atomically), whatever is there now."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.chmod(0o644)
        path.unlink()
    path.write_bytes(data)


def damage_file(kind: str, path: Path, valid: bytes) -> None:
    """Damage `path`, whose valid bytes are `valid`, in the way `kind` names."""
    if kind == "deleted":
        path.unlink()
    elif kind == "truncated":
        write_in_place(path, valid[: len(valid) // 3])
    elif kind == "empty":
        write_in_place(path, b"")
    elif kind == "garbage":
        write_in_place(path, random.Random(7).randbytes(4096))
    elif kind == "invalid UTF-8":
        write_in_place(path, valid.replace(b"model: m", b"model: \xff\xfe"))
    elif kind == "deep nesting":  # used to kill the process (SIGSEGV in libyaml's composer)
        write_in_place(path, b"a: " + b"[" * 300_000 + b"]" * 300_000)
    elif kind == "billion laughs":
        write_in_place(path, b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n")
    elif kind == "python tag":
        write_in_place(path, b'!!python/object/apply:os.system ["touch pwned"]\n')
    elif kind == "huge":
        write_in_place(path, b"# " + b"x" * (17 * 1024 * 1024) + b"\n")
    elif kind == "a directory":
        path.unlink()
        path.mkdir()
    elif kind == "a FIFO":  # opening it for reading used to block the router forever
        path.unlink()
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.unlink()
        path.symlink_to(path.parent / "nowhere.yaml")
    elif kind == "unreadable":
        path.chmod(0o000)
    else:  # pragma: no cover (a typo in the parameter list)
        raise AssertionError(kind)
