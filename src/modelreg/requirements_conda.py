"""conda's formats for `modelreg.requirements`: explicit specs and environment.yml.

`conda list --explicit` output (`@EXPLICIT`, one package URL per line) and an environment
file (conda specs, then its nested `pip:` list read as requirements.txt lines). Model layer
(docs/architecture.md): pure.
"""

from __future__ import annotations

import re
from typing import Any

from modelreg import yamlio
from modelreg.errors import InvalidInput
from modelreg.requirements_pip import COMMENT_RE, URL_START_RE, logical_lines, parse_line

__all__ = ["is_conda_explicit", "parse_conda_environment", "parse_conda_explicit"]

# -- conda ------------------------------------------------------------------------------------


def is_conda_explicit(text: str) -> bool:
    """True when the first non-blank line is `@EXPLICIT` (`conda list --explicit`)."""
    for _number, line in logical_lines(text):
        if line:
            return line == "@EXPLICIT"
    return False


def parse_conda_explicit(text: str, src: str) -> list[str]:
    """`conda list --explicit`: one package URL per line; listed as `name-version-build`."""
    out: list[str] = []
    seen = False
    for number, line in logical_lines(text):
        if not line:
            continue
        if not seen:
            seen = True  # the @EXPLICIT header
            continue
        url = line.split("#", 1)[0]
        file = url.rstrip("/").rsplit("/", 1)[-1]
        stem = re.sub(r"\.(conda|tar\.bz2)$", "", file)
        if not URL_START_RE.match(url) or stem == file:
            raise InvalidInput(f"{src}:{number}: expected a conda package URL (.conda, .tar.bz2)")
        out.append(stem)
    return out


def parse_conda_environment(text: str, src: str) -> list[str]:
    """An environment.yml: its conda specs, then its `pip:` entries."""
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
                parsed = parse_line(COMMENT_RE.sub("", entry).strip(), where)
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
