"""SQL's LIKE and ILIKE as SQLite runs them, for conditions read without the index. Pure.

Moved out of `modelreg.conditions` (which re-exports `like`) to keep that module small.
"""

from __future__ import annotations

import functools
import re

__all__ = ["like"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


def like(text: str, pattern: str, *, ignore_case: bool = False) -> bool:
    """SQL LIKE as SQLite runs it with `case_sensitive_like = ON` (ILIKE: ASCII folded).

    `%` matches any run of characters, `_` exactly one; there is no escape character.
    """
    if ignore_case:
        text, pattern = text.translate(_ASCII_LOWER), pattern.translate(_ASCII_LOWER)
    return _like_regex(pattern).fullmatch(text) is not None
