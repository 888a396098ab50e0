"""The `NAME[@REF]` grammar: model names, alias names, versions and `latest`, as data.

- A model name is one or two segments joined by `/` (one namespace level). Each segment is
  1-64 characters of lowercase letters, digits, `-`, `_` and `.`, starts with a letter or
  digit, and is not `.`/`..`. Anything else (uppercase, spaces, `..`, absolute paths, NUL,
  control characters) is refused before any path is built.
- An alias name starts with a lowercase letter and has up to 63 more lowercase letters,
  digits, `-` or `_`. `latest` is reserved: it always means the highest version.
- A version is a SemVer 2.0 string (`1.2.0`, `2.0.0-rc.1`). Build metadata (`1.2.0+abc`) is
  refused: SemVer gives it no precedence, so `1.2.0+a` and `1.2.0+b` would be two versions
  that compare equal.
- A REF is a version, an alias or `latest`.
- A file path inside a version (`check_path`) is a relative POSIX path of UTF-8 segments:
  no absolute path, NUL or other control character, backslash, empty, `.` or `..` segment,
  no segment over 255 bytes or path over 4096 bytes, and (for manifest files) no `.git` or
  `.modelreg` segment. It is the one check every path into or out of a store goes through
  (`fsutil.safe_join`, `ModelVersion`, register, pull, unpack, get).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import total_ordering
from typing import TYPE_CHECKING, Literal

from modelreg.errors import InvalidInput

if TYPE_CHECKING:
    import semver

__all__ = [
    "LATEST",
    "MAX_PATH_BYTES",
    "MAX_SEGMENT_BYTES",
    "RESERVED_SEGMENTS",
    "Ref",
    "Version",
    "check_alias",
    "check_name",
    "check_path",
    "check_setting_name",
    "check_tag",
    "parse_ref",
]

LATEST = "latest"
_SEGMENT = r"[a-z0-9][a-z0-9._-]{0,63}"
_NAME_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})?")
_ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
# The official SemVer 2.0 regex (semver.org), without the build-metadata group.
_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)

Bump = Literal["major", "minor", "patch"]

MAX_SEGMENT_BYTES = 255
"""The longest path segment (UTF-8 bytes) a version may hold: NAME_MAX on Linux and macOS."""
MAX_PATH_BYTES = 4096
"""The longest path (UTF-8 bytes) a version may hold: PATH_MAX on Linux."""
RESERVED_SEGMENTS = (".git", ".modelreg")
"""Segments no file of a version may have (compared case-insensitively): materialising one
would write into a git repository's or a store's own metadata."""


def _control(c: str) -> bool:
    """C0 controls, DEL and C1 controls (which terminals interpret as escapes)."""
    o = ord(c)
    return o < 32 or 0x7F <= o <= 0x9F


def check_path(
    path: str, what: str = "path", *, reserved: Collection[str] = RESERVED_SEGMENTS
) -> str:
    """Return `path` if it is a safe relative POSIX path inside a version, else raise.

    Refused (InvalidInput, "unsafe path ..."): anything but a non-empty string; an absolute
    path; a backslash; NUL and other control characters; text that is not valid UTF-8
    (undecodable bytes arrive as lone surrogates); an empty, `.` or `..` segment; a segment
    over 255 bytes or a path over 4096; a segment in `reserved` (`.git`, `.modelreg` by
    default, case-insensitively; `fsutil.safe_join` passes none for the store's own paths).
    """
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"unsafe {what} {path!r}: must be a non-empty relative POSIX path")
    if path.startswith("/") or "\\" in path:
        raise InvalidInput(f"unsafe {what} {path!r}: must be a relative POSIX path")
    if any(_control(c) for c in path):
        raise InvalidInput(f"unsafe {what} {path!r}: control characters are not allowed")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"unsafe {what} {path!r}: not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise InvalidInput(f"unsafe {what} {path[:40]!r}...: {size} bytes, over {MAX_PATH_BYTES}")
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            raise InvalidInput(f"unsafe {what} {path!r}: empty, '.' or '..' segment")
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidInput(
                f"unsafe {what} {path[:40]!r}...: a segment over {MAX_SEGMENT_BYTES} bytes"
            )
        if reserved and seg.casefold() in reserved:
            raise InvalidInput(f"unsafe {what} {path!r}: a {seg!r} segment is reserved")
    return path


def check_name(name: str) -> str:
    """Return `name` if it is a safe model name, else raise InvalidInput saying why."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use lowercase letters, digits, '-', '_', '.', "
            "starting with a letter or digit, and at most one '/' namespace level"
        )
    if any(seg in (".", "..") or seg.endswith(".") for seg in name.split("/")):
        raise InvalidInput(f"invalid model name {name!r}: a segment may not end with '.'")
    return name


def check_setting_name(kind: str, name: str) -> str:
    """Return `name` if it names a store setting (a remote, a hook: `origin`, `ci-notify`)."""
    if not isinstance(name, str) or not _ALIAS_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use a lowercase letter, then up to 63 lowercase "
            "letters, digits, '-' or '_'"
        )
    return name


def check_alias(alias: str) -> str:
    """Return `alias` if it is a valid alias name, else raise InvalidInput."""
    if alias == LATEST:
        raise InvalidInput("'latest' is reserved: it always means the highest version")
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: use a lowercase letter then letters, digits, '-' or '_'"
        )
    return alias


@total_ordering
@dataclass(frozen=True)
class Version:
    """A SemVer version without build metadata, ordered by SemVer precedence."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse and validate a version string."""
        if isinstance(text, str) and "+" in text:
            raise InvalidInput(
                f"invalid version {text!r}: build metadata ('+...') is not allowed, since "
                "SemVer ignores it for precedence; use a pre-release (1.2.0-rc.1) instead"
            )
        if not isinstance(text, str) or not _SEMVER_RE.fullmatch(text):
            raise InvalidInput(f"invalid version {text!r}: expected SemVer such as 1.2.0")
        return cls(text)

    @staticmethod
    def is_version(text: str) -> bool:
        """True when `text` is a valid version string."""
        return "+" not in text and _SEMVER_RE.fullmatch(text) is not None

    def _semver(self) -> semver.Version:
        import semver

        return semver.Version.parse(self.text)

    def bump(self, part: Bump) -> Version:
        """The next version: `major`, `minor` or `patch` (pre-release parts are dropped)."""
        v = self._semver()
        nxt = {"major": v.bump_major, "minor": v.bump_minor, "patch": v.bump_patch}[part]()
        return Version(str(nxt))

    @property
    def is_prerelease(self) -> bool:
        """True for versions such as 1.2.0-rc.1."""
        return "-" in self.text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._semver() < other._semver())

    def __str__(self) -> str:
        return self.text


FIRST_BASE = Version("0.0.0")
"""Bumping a model with no versions bumps from 0.0.0: major→1.0.0, minor→0.1.0, patch→0.0.1."""


RefKind = Literal["version", "alias", "latest"]


@dataclass(frozen=True)
class Ref:
    """A parsed `NAME[@REF]`: the model name and what the ref part names."""

    name: str
    ref: str
    kind: RefKind

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}"


def parse_ref(spec: str, default: str | None = LATEST) -> Ref:
    """Parse `NAME[@REF]`. Without `@REF`, `default` is used (None makes REF required)."""
    name, sep, ref = spec.partition("@")
    check_name(name)
    if not sep:
        if default is None:
            raise InvalidInput(f"{spec!r} needs a version: write NAME@VERSION")
        ref = default
    if ref == LATEST:
        return Ref(name, ref, "latest")
    if Version.is_version(ref):
        return Ref(name, ref, "version")
    if ref[:1].isdigit() or "+" in ref:
        Version.parse(ref)  # raises the precise semver error
    check_alias(ref)
    return Ref(name, ref, "alias")


_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=/-]{0,127}")


def check_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag (1-128 of letters, digits, `._:=/-`), else raise."""
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise InvalidInput(f"invalid tag {tag!r}: use letters, digits and '._:=/-'")
    return tag
