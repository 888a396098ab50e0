"""Lock files for `modelreg.requirements`: uv.lock, poetry.lock, Pipfile.lock, pylock.toml.

One exact pin (`name==1.2.3; marker`) or direct reference (`name @ URL@rev`) per locked
package; the project itself (uv's virtual or editable `.`) is left out, and Pipfile.lock's
`default` section is read. Model layer (docs/architecture.md): pure.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from modelreg.errors import InvalidInput

__all__ = ["parse_pipfile_lock", "parse_poetry_lock", "parse_pylock", "parse_uv_lock"]

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


def parse_uv_lock(text: str, src: str) -> list[str]:
    """A uv.lock: every locked package but the project itself."""
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


def parse_poetry_lock(text: str, src: str) -> list[str]:
    """A poetry.lock: every locked package, with its markers."""
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


def parse_pipfile_lock(text: str, src: str) -> list[str]:
    """A Pipfile.lock: the packages of its `default` section."""
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


def parse_pylock(text: str, src: str) -> list[str]:
    """A PEP 751 pylock.toml: every locked package."""
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
