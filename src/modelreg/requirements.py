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
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from modelreg import yamlio
from modelreg.errors import InvalidInput

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

_KNOWN = "requirements.txt, conda environment.yml, uv.lock, poetry.lock, Pipfile.lock, pylock.toml"
_FIX = (
    "refer to it as an environment variable such as ${PIP_TOKEN} (pip expands it at install "
    "time) or use a keyring or .netrc; nothing was stored"
)


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
        raise InvalidInput(f"--requirements {src}: unknown format; mreg reads {_KNOWN}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{src}: not valid UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    hit = find_credential(text)
    if hit is not None:
        line, host = hit
        raise InvalidInput(f"{src}:{line}: holds a credential in a URL (for {host}); {_FIX}")
    if fmt == "requirements" and _is_conda_explicit(text):
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


# -- credentials ------------------------------------------------------------------------------

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_ENV_ONLY_RE = re.compile(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\}|:)*")
_SECRET_KEYS = ("token", "secret", "password", "passwd", "signature", "credential", "apikey")
_SECRET_NAMES = {"key", "api_key", "api-key", "access_key", "sig", "pwd", "auth"}


def find_credential(text: str) -> tuple[int, str] | None:
    """The first line (1-based) holding a URL with a credential, and that URL's host.

    A credential is a password in any URL's user info; a user name alone in a URL that is
    not ssh (`https://TOKEN@github.com/...`; `git+ssh://git@github.com/...` is fine); a
    query parameter named like a secret (`token`, `key`, `X-Amz-Signature`...); or conda's
    `/t/TOKEN/` path. `${NAME}` references are not credentials. Comments are scanned too:
    the file is stored as it is.

    Args:
        text: The whole file.

    Returns:
        (line number, host) of the first credential, or None.
    """
    for number, line in enumerate(text.splitlines(), 1):
        for match in _URL_RE.finditer(line):
            host = _credential_host(match.group())
            if host is not None:
                return number, host
    return None


def _credential_host(url: str) -> str | None:
    """The host of `url` when it holds a credential, else None."""
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    host = (hostport if at else authority).split("?", 1)[0].split("#", 1)[0] or "?"
    if at and not _env_only(userinfo):
        _user, colon, password = userinfo.partition(":")
        if password and not _env_only(password):
            return host
        if not (colon and password) and not scheme.lower().endswith("ssh"):
            return host
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        k = key.lower()
        secret_key = k in _SECRET_NAMES or any(word in k for word in _SECRET_KEYS)
        if secret_key and not _env_only(value):
            return host
    segments = parts.path.split("/")
    if len(segments) >= 3 and segments[1] == "t" and segments[2] and not _env_only(segments[2]):
        return host  # anaconda.org's https://conda.anaconda.org/t/TOKEN/channel
    return None


def _env_only(value: str) -> bool:
    """True when `value` is only `${NAME}` references (and colons): no secret written."""
    return bool(value) and _ENV_ONLY_RE.fullmatch(value) is not None


# -- requirements.txt -------------------------------------------------------------------------

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
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
_URL_START_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|(git|hg|svn|bzr)\+")
_ARCHIVE_RE = re.compile(r".*\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    r"""Yield (first physical line number, line) with continuations joined, as pip does.

    A line ending in `\` continues on the next one, unless it is a comment line; comments
    are then removed: `#` starts one at the line start or after whitespace only, so
    `#egg=name` and `#sha256=...` in URLs are kept.
    """
    parts: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not _COMMENT_RE.match(line):
            if not parts:
                start = number
            parts.append(line[:-1])
            continue
        if parts:
            parts.append(" " + line if _COMMENT_RE.match(line) else line)
            yield start, _COMMENT_RE.sub("", "".join(parts)).strip()
            parts = []
        else:
            yield number, _COMMENT_RE.sub("", line).strip()
    if parts:
        yield start, _COMMENT_RE.sub("", "".join(parts)).strip()


def _parse_requirements_txt(text: str, src: str) -> list[str]:
    out: list[str] = []
    for number, line in _logical_lines(text):
        entry = _parse_line(line, f"{src}:{number}")
        if entry is not None:
            out.append(entry)
    return out


def _parse_line(line: str, where: str) -> str | None:
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

    if _URL_START_RE.match(spec) or _looks_like_path(spec):
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
            f"{where}: not a requirement, URL, path or pip option (mreg reads {_KNOWN})"
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
    host = _credential_host(url) if "://" in url else None
    if host is not None:  # joined continuation lines can hide a URL from the line scan
        raise InvalidInput(f"{where}: holds a credential in a URL (for {host}); {_FIX}")


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


# -- conda ------------------------------------------------------------------------------------


def _is_conda_explicit(text: str) -> bool:
    for _number, line in _logical_lines(text):
        if line:
            return line == "@EXPLICIT"
    return False


def _parse_conda_explicit(text: str, src: str) -> list[str]:
    """`conda list --explicit`: one package URL per line; listed as `name-version-build`."""
    out: list[str] = []
    seen = False
    for number, line in _logical_lines(text):
        if not line:
            continue
        if not seen:
            seen = True  # the @EXPLICIT header
            continue
        url = line.split("#", 1)[0]
        file = url.rstrip("/").rsplit("/", 1)[-1]
        stem = re.sub(r"\.(conda|tar\.bz2)$", "", file)
        if not _URL_START_RE.match(url) or stem == file:
            raise InvalidInput(f"{src}:{number}: expected a conda package URL (.conda, .tar.bz2)")
        out.append(stem)
    return out


def _parse_conda_environment(text: str, src: str) -> list[str]:
    doc = yamlio.load(text.encode("utf-8"), src)
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
        raise InvalidInput(
            f"{src}: not a conda environment file (a mapping with a dependencies: list)"
        )
    channels = doc.get("channels")
    if channels is not None and (
        not isinstance(channels, list) or not all(isinstance(c, str) for c in channels)
    ):
        raise InvalidInput(f"{src}:{_Lines(text).find('channels')}: channels must be a list")
    lines = _Lines(text, text.find("dependencies"))
    out: list[str] = []
    pip: list[str] = []
    for item in doc["dependencies"]:
        if isinstance(item, str) and item.strip() and "\n" not in item:
            lines.find(item)
            out.append(item.strip())
        elif isinstance(item, dict) and list(item) == ["pip"] and isinstance(item["pip"], list):
            lines.find("pip")
            for entry in item["pip"]:
                where = f"{src}:{lines.find(entry)}"
                if not isinstance(entry, str):
                    raise InvalidInput(f"{where}: a pip: entry must be a requirement string")
                parsed = _parse_line(_COMMENT_RE.sub("", entry).strip(), where)
                if parsed is not None:
                    pip.append(parsed)
        else:
            where = f"{src}:{lines.find(item)}"
            raise InvalidInput(f"{where}: a dependency must be a conda spec or a pip: list")
    return out + pip


class _Lines:
    """Line numbers of parsed YAML items for messages, found by searching the text in order.

    `yamlio` gives plain data without positions; items are looked up one after the other
    from where the previous one was found, which names the right line in practice.
    """

    def __init__(self, text: str, start: int = 0) -> None:
        self.text = text
        self.pos = max(start, 0)

    def find(self, item: Any) -> int:
        """The line of `item` (a mapping by its first key) at or after the last one found."""
        needle = str(next(iter(item), "")) if isinstance(item, dict) else str(item)
        index = self.text.find(needle, self.pos) if needle else -1
        if index < 0:
            index = self.pos
        else:
            self.pos = index + len(needle)
        return self.text.count("\n", 0, index) + 1


# -- lock files -------------------------------------------------------------------------------


def _toml(text: str, src: str) -> dict[str, Any]:
    try:
        toml = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python 3.10
        try:
            toml = importlib.import_module("tomli")
        except ModuleNotFoundError:
            raise InvalidInput(f"{src}: reading it needs Python 3.11+ or tomli") from None
    try:
        doc: dict[str, Any] = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        where = f"{src}:{found.group(1)}" if found else src
        raise InvalidInput(f"{where}: not valid TOML") from None
    return doc


def _tables(doc: dict[str, Any], key: str, src: str, what: str) -> list[dict[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] for t in items
    ):
        raise InvalidInput(f"{src}: not a {what} ([[{key}]] tables with a name)")
    return items


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pin(name: str, version: Any, marker: Any = None, extras: Any = ()) -> str:
    extra = f"[{','.join(str(e) for e in extras)}]" if extras else ""
    if isinstance(version, str) and version and version != "*":
        ver = version if version[0] in "=<>!~" else f"=={version}"
    else:
        ver = ""
    out = f"{name}{extra}{ver}"
    return f"{out}; {marker}" if isinstance(marker, str) and marker else out


def _ref(name: str, url: str, rev: Any, marker: Any = None) -> str:
    out = f"{name} @ {url}@{rev}" if isinstance(rev, str) and rev else f"{name} @ {url}"
    return f"{out}; {marker}" if isinstance(marker, str) and marker else out


def _parse_uv_lock(text: str, src: str) -> list[str]:
    doc = _toml(text, src)
    if not isinstance(doc.get("version"), int):
        raise InvalidInput(f"{src}: not a uv.lock (no version)")
    out = []
    for pkg in _tables(doc, "package", src, "uv.lock"):
        source = _mapping(pkg.get("source"))
        if source.get("virtual") == "." or source.get("editable") == ".":
            continue  # the project itself, not one of its dependencies
        if isinstance(source.get("git"), str):  # https://host/repo?rev=main#<commit>
            base, _, commit = source["git"].partition("#")
            out.append(_ref(pkg["name"], "git+" + base.split("?", 1)[0], commit))
        elif isinstance(source.get("url"), str):
            out.append(_ref(pkg["name"], source["url"], None))
        elif local := next(
            (v for k, v in source.items() if k != "registry" and isinstance(v, str)), ""
        ):
            out.append(_ref(pkg["name"], local, None))  # path, directory, editable
        else:
            out.append(_pin(pkg["name"], pkg.get("version")))
    return out


def _parse_poetry_lock(text: str, src: str) -> list[str]:
    doc = _toml(text, src)
    if not isinstance(doc.get("metadata"), dict):
        raise InvalidInput(f"{src}: not a poetry.lock (no [metadata])")
    out = []
    for pkg in _tables(doc, "package", src, "poetry.lock"):
        source = _mapping(pkg.get("source"))
        kind, url, marker = source.get("type"), source.get("url"), pkg.get("markers")
        if kind == "git" and isinstance(url, str):
            rev = source.get("resolved_reference") or source.get("reference")
            out.append(_ref(pkg["name"], "git+" + url, rev, marker))
        elif kind in ("url", "file", "directory") and isinstance(url, str):
            out.append(_ref(pkg["name"], url, None, marker))
        else:
            out.append(_pin(pkg["name"], pkg.get("version"), marker))
    return out


def _parse_pipfile_lock(text: str, src: str) -> list[str]:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise InvalidInput(f"{src}: nested too deeply") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InvalidInput(
            f"{src}:{line}: not valid JSON" if line else f"{src}: not JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("_meta"), dict):
        raise InvalidInput(f"{src}: not a Pipfile.lock (no _meta)")
    default = doc.get("default", {})
    if not isinstance(default, dict) or not all(isinstance(v, dict) for v in default.values()):
        raise InvalidInput(f"{src}: not a Pipfile.lock (default: must map names to entries)")
    out = []
    for name, entry in default.items():
        marker, extras = entry.get("markers"), entry.get("extras") or ()
        base = _pin(name, None, None, extras)
        if isinstance(entry.get("git"), str):
            out.append(_ref(base, "git+" + entry["git"], entry.get("ref"), marker))
        elif isinstance(entry.get("file"), str):
            out.append(_ref(base, entry["file"], None, marker))
        elif isinstance(entry.get("path"), str):
            out.append(_ref(base, entry["path"], None, marker))
        else:
            out.append(_pin(name, entry.get("version"), marker, extras))
    return out


def _parse_pylock(text: str, src: str) -> list[str]:
    doc = _toml(text, src)
    if not isinstance(doc.get("lock-version"), str):
        raise InvalidInput(f"{src}: not a pylock.toml (no lock-version)")
    out = []
    for pkg in _tables(doc, "packages", src, "pylock.toml"):
        name, marker = pkg["name"], pkg.get("marker")
        vcs, archive, directory = pkg.get("vcs"), pkg.get("archive"), pkg.get("directory")
        if isinstance(vcs, dict) and isinstance(vcs.get("url"), str):
            url = f"{vcs.get('type', 'git')}+{vcs['url']}"
            out.append(_ref(name, url, vcs.get("commit-id"), marker))
        elif isinstance(archive, dict) and isinstance(archive.get("url"), str):
            out.append(_ref(name, archive["url"], None, marker))
        elif isinstance(directory, dict) and isinstance(directory.get("path"), str):
            out.append(_ref(name, directory["path"], None, marker))
        else:
            out.append(_pin(name, pkg.get("version"), marker))
    return out


_PARSERS = {
    "requirements": _parse_requirements_txt,
    "conda-explicit": _parse_conda_explicit,
    "conda-environment": _parse_conda_environment,
    "uv-lock": _parse_uv_lock,
    "poetry-lock": _parse_poetry_lock,
    "pipfile-lock": _parse_pipfile_lock,
    "pylock": _parse_pylock,
}
