"""Read a version's requirements file: detect its format, list its packages, refuse secrets.

`mreg register --requirements FILE` stores FILE as an object and lists its packages in the
manifest (`dependencies.packages`). Both are immutable and pushed to remotes, so a file
holding a credential in a URL (`https://user:token@host/simple`, `git+https://TOKEN@host/r`,
`pkg @ https://u:p@host/x.whl`, `?token=...`, conda's `/t/TOKEN/` channels) is refused with
the file and line, before anything is written. Refusing rather than redacting keeps the
stored object byte for byte the user's file (so it stays installable and its digest is the
file's), and never pretends a file is safe because one spelling of a secret was masked. An
environment variable reference (`${PIP_TOKEN}`, which pip expands at install time) is not a
credential and is kept.

Formats, chosen by the file name (see `detect_format`):

- requirements.txt (pip's format; also `*.in`, `*.pip`, rye's `requirements.lock`, any name
  without a known suffix): PEP 508 lines parsed by `packaging`, `-r`/`-c` includes recorded as
  such (not followed), `-e`, URLs and paths kept as written (`#egg=` included), pip's
  global and per-requirement options (`--index-url`, `--hash=`...) accepted and left out of
  the package list, line continuations, `#` comments at line start or after whitespace;
  a conda explicit spec (`@EXPLICIT`, from `conda list --explicit`) is read too;
- conda `environment.yml` / any `*.yml`/`*.yaml`: conda specs, then the nested `pip:` list
  read as requirements.txt lines;
- lock files: `uv.lock`, `poetry.lock`, `Pipfile.lock` (its `default` section) and PEP 751
  `pylock.toml` / `pylock.NAME.toml`: one exact pin or direct reference per locked package.

Anything else is refused as an unknown format. Pure apart from `read_requirements`' read.
The formats' parsers live in `modelreg.requirements_pip` (with the credential scan),
`modelreg.requirements_conda` and `modelreg.requirements_lock`; this module is their front.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from modelreg.credentials import refusal
from modelreg.errors import InvalidInput
from modelreg.requirements_conda import (
    is_conda_explicit,
    parse_conda_environment,
    parse_conda_explicit,
)
from modelreg.requirements_lock import (
    parse_pipfile_lock,
    parse_poetry_lock,
    parse_pylock,
    parse_uv_lock,
)
from modelreg.requirements_pip import FIX, KNOWN, find_credential, parse_requirements_txt

__all__ = [
    "FORMATS",
    "MAX_BYTES",
    "Requirements",
    "detect_format",
    "find_credential",
    "parse_requirements",
    "read_requirements",
]

MAX_BYTES = 16 * 1024 * 1024
"""Largest requirements file read (lock files of big projects are a few MB)."""

FORMATS = (
    "requirements",
    "conda-explicit",
    "conda-environment",
    "uv-lock",
    "poetry-lock",
    "pipfile-lock",
    "pylock",
)
"""Values of `dependencies.requirements.format` in a manifest, one per format read."""


@dataclass(frozen=True)
class Requirements:
    """A requirements file as read: its name, format, exact bytes and package list.

    Attributes:
        name: The file's name, its path inside the version (`requirements.txt`).
        format: One of `FORMATS`.
        data: The bytes read, which are what gets stored (never re-read from disk).
        packages: One entry per package: a PEP 508 string, a conda spec, a URL or path as
            written, `-e URL`, or an include (`-r FILE`, `-c FILE`).
    """

    name: str
    format: str
    data: bytes
    packages: tuple[str, ...]


# -- entry points -----------------------------------------------------------------------------


def read_requirements(path: str | os.PathLike[str]) -> Requirements:
    """Read and parse the requirements file at `path` (see the module docstring).

    Args:
        path: The file given to `--requirements`.

    Returns:
        The parsed file, holding the exact bytes that were checked.

    Raises:
        NotFound: There is no such file.
        InvalidInput: It cannot be read, is too large, is of an unknown format, is malformed,
            or holds a credential in a URL.
    """
    from modelreg.fsutil import read_bounded

    p = Path(path)
    data = read_bounded(p, MAX_BYTES, "--requirements ")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"--requirements {path}: larger than {MAX_BYTES // 2**20} MiB")
    return parse_requirements(data, p.name, str(path))


def parse_requirements(data: bytes, name: str, source: str | None = None) -> Requirements:
    """Parse a requirements file's bytes; `name` (its file name) selects the format.

    Args:
        data: The file's content.
        name: The file's name, e.g. `requirements.txt` or `environment.yml`.
        source: How to name the file in messages (default: `name`).

    Returns:
        The parsed file.

    Raises:
        InvalidInput: Unknown format, malformed content, or a credential in a URL.
    """
    src = source or name
    fmt = detect_format(name)
    if fmt is None:
        raise InvalidInput(f"--requirements {src}: unknown format; mreg reads {KNOWN}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{src}: not valid UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    hit = find_credential(text)
    if hit is not None:
        raise InvalidInput(refusal(f"{src}:{hit.line}", hit, FIX))
    if fmt == "requirements" and is_conda_explicit(text):
        fmt = "conda-explicit"
    packages = _PARSERS[fmt](text, src)
    return Requirements(name, fmt, data, tuple(packages))


def detect_format(name: str) -> str | None:
    """The format of a requirements file, from its name alone; None when unknown.

    Args:
        name: The file name (a path's last component).

    Returns:
        One of `FORMATS` (`requirements` stands for `conda-explicit` too, which is told
        apart by content), or None.
    """
    lower = name.lower()
    if lower == "uv.lock":
        return "uv-lock"
    if lower == "poetry.lock":
        return "poetry-lock"
    if lower == "pipfile.lock":
        return "pipfile-lock"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", lower):
        return "pylock"
    suffix = Path(lower).suffix
    if suffix in (".yml", ".yaml"):
        return "conda-environment"
    if suffix in ("", ".txt", ".in", ".pip") or lower.startswith("requirements"):
        return "requirements"
    return None


_PARSERS = {
    "requirements": parse_requirements_txt,
    "conda-explicit": parse_conda_explicit,
    "conda-environment": parse_conda_environment,
    "uv-lock": parse_uv_lock,
    "poetry-lock": parse_poetry_lock,
    "pipfile-lock": parse_pipfile_lock,
    "pylock": parse_pylock,
}
