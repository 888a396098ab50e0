"""pip's requirements.txt format, and the credentials no requirements file may hold.

Part of `modelreg.requirements` (see its docstring for the formats and why a credential is
refused rather than redacted): `find_credential` scans a whole file, `parse_requirements_txt`
lists a requirements.txt's packages, and `parse_line` reads one logical line (also used for
the `pip:` list of a conda environment). Model layer (docs/architecture.md): pure.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from modelreg.credentials import Credential, find_in_text, find_in_url, refusal
from modelreg.errors import InvalidInput

__all__ = [
    "COMMENT_RE",
    "FIX",
    "KNOWN",
    "URL_START_RE",
    "find_credential",
    "logical_lines",
    "parse_line",
    "parse_requirements_txt",
]

KNOWN = "requirements.txt, conda environment.yml, uv.lock, poetry.lock, Pipfile.lock, pylock.toml"
FIX = (
    "refer to it as an environment variable such as ${PIP_TOKEN} (pip expands it at install "
    "time) or use a keyring or .netrc; nothing was stored"
)


# -- credentials ------------------------------------------------------------------------------


def find_credential(text: str) -> Credential | None:
    """The first credential in a requirements file (with its 1-based line), or None.

    Every URL is read as a package index URL (`modelreg.credentials.find_in_url` with
    `index=True`): a password in any URL's user info; a user name alone in a URL that is
    not ssh (`https://TOKEN@github.com/...`; `git+ssh://git@github.com/...` is fine); a
    query parameter named like a secret (`token`, `key`, `X-Amz-Signature`...); or conda's
    `/t/TOKEN/` path. The well-known key shapes and `NAME=VALUE` assignments to a secret's
    name count too (`modelreg.credentials.find_in_text`). `${NAME}` references are not
    credentials. Comments are scanned too: the file is stored as it is.

    Args:
        text: The whole file.

    Returns:
        The first credential, its `line` set, or None.
    """
    hits = find_in_text(text, index=True)
    return hits[0] if hits else None


# -- requirements.txt -------------------------------------------------------------------------

COMMENT_RE = re.compile(r"(^|\s+)#.*$")
_INCLUDES = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
_EDITABLE = {"-e", "--editable"}
_GLOBAL_VALUED = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-binary",
    "--only-binary",
    "--use-feature",
}
_GLOBAL_FLAGS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}
_PER_REQUIREMENT = {"--hash", "--config-settings", "--global-option"}
_SHORT_VALUED = {"-r", "-c", "-e", "-i", "-f"}
URL_START_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|(git|hg|svn|bzr)\+")
_ARCHIVE_RE = re.compile(r".*\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    r"""Yield (first physical line number, line) with continuations joined, as pip does.

    A line ending in `\` continues on the next one, unless it is a comment line; comments
    are then removed: `#` starts one at the line start or after whitespace only, so
    `#egg=name` and `#sha256=...` in URLs are kept.
    """
    parts: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not COMMENT_RE.match(line):
            if not parts:
                start = number
            parts.append(line[:-1])
            continue
        if parts:
            parts.append(" " + line if COMMENT_RE.match(line) else line)
            yield start, COMMENT_RE.sub("", "".join(parts)).strip()
            parts = []
        else:
            yield number, COMMENT_RE.sub("", line).strip()
    if parts:
        yield start, COMMENT_RE.sub("", "".join(parts)).strip()


def parse_requirements_txt(text: str, src: str) -> list[str]:
    """A requirements.txt: one entry per requirement or include (options left out)."""
    out: list[str] = []
    for number, line in logical_lines(text):
        entry = parse_line(line, f"{src}:{number}")
        if entry is not None:
            out.append(entry)
    return out


def parse_line(line: str, where: str) -> str | None:
    """One logical requirements.txt line: its package-list entry, or None (options, blank)."""
    if not line:
        return None
    if line.startswith("-"):
        return _parse_options(line, where)
    # as pip does: the requirement runs up to the first word that starts with "-"
    words = line.split(" ")
    cut = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    spec = " ".join(words[:cut]).strip()
    _check_per_requirement(" ".join(words[cut:]), where)
    return _requirement(spec, where)


def _requirement(spec: str, where: str) -> str:
    """A requirement: PEP 508 (normalised by `packaging`), or a URL or path as written."""
    from packaging.markers import InvalidMarker, Marker  # only when a file is read
    from packaging.requirements import InvalidRequirement, Requirement

    if URL_START_RE.match(spec) or _looks_like_path(spec):
        url, sep, marker = spec.partition("; ")  # as pip: ";" alone may be part of a URL
        if sep:
            try:
                Marker(marker.strip())
            except InvalidMarker:
                raise InvalidInput(f"{where}: invalid environment marker") from None
        _check_url(url.strip(), where)
        return spec
    try:
        req = Requirement(spec)
    except InvalidRequirement:
        raise InvalidInput(
            f"{where}: not a requirement, URL, path or pip option (mreg reads {KNOWN})"
        ) from None
    if req.url:
        _check_url(req.url, where)
    return str(req)


def _looks_like_path(spec: str) -> bool:
    head = spec.split(";", 1)[0].strip()
    return (
        head.startswith((".", "/", "~"))
        or ("/" in head.split("@", 1)[0] and " " not in head)
        or bool(_ARCHIVE_RE.match(head))
    )


def _check_url(url: str, where: str) -> None:
    hit = find_in_url(url, index=True) if "://" in url else None
    if hit is not None:  # joined continuation lines can hide a URL from the line scan
        raise InvalidInput(refusal(where, hit, FIX))


def _split_options(text: str, where: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        raise InvalidInput(f"{where}: unbalanced quotes in pip options") from None


def _option(tokens: list[str], i: int, where: str, valued: set[str]) -> tuple[str, str, int]:
    """Split the option at tokens[i] into (name, value, next index)."""
    tok = tokens[i]
    if tok.startswith("--"):
        name, eq, value = tok.partition("=")
        if eq or name not in valued:
            return name, value, i + 1
    elif tok[:2] in _SHORT_VALUED and len(tok) > 2:
        return tok[:2], tok[2:].lstrip("="), i + 1
    else:
        name = tok
    if name in valued:
        if i + 1 >= len(tokens):
            raise InvalidInput(f"{where}: pip option {name} needs a value")
        return name, tokens[i + 1], i + 2
    return name, "", i + 1


def _parse_options(line: str, where: str) -> str | None:
    tokens = _split_options(line, where)
    valued = set(_INCLUDES) | _EDITABLE | _GLOBAL_VALUED
    entry: str | None = None
    i = 0
    while i < len(tokens):
        name, value, i = _option(tokens, i, where, valued)
        if name in _INCLUDES:
            entry = f"{_INCLUDES[name]} {value}"
        elif name in _EDITABLE:
            _check_url(value, where)
            entry = f"-e {value}"
        elif name in _GLOBAL_VALUED:
            _check_url(value, where)
        elif name not in _GLOBAL_FLAGS:
            raise InvalidInput(f"{where}: unknown pip option {name!r}")
    return entry


def _check_per_requirement(text: str, where: str) -> None:
    tokens = _split_options(text, where)
    i = 0
    while i < len(tokens):
        name, _value, i = _option(tokens, i, where, _PER_REQUIREMENT)
        if name not in _PER_REQUIREMENT:
            raise InvalidInput(f"{where}: pip option {name!r} cannot follow a requirement")
