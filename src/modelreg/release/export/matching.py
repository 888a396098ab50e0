"""Routing rules as HTTP header matches, for the formats that route on headers. Pure.

A rule's conditions (all must hold) become header tests: the attribute `region` travels in
the header `x-region`, the user ID in `x-user-id` (configurable: `ExportOptions.headers`).
Equality is an exact match, a prefix a prefix match (or an anchored regular expression where
the format has no prefix match), and a set of values one alternative per value (or one
regular expression when there are too many alternatives). A rule becomes a list of
alternatives, any of which matches (OR), each a list of header tests (AND).

What cannot be written this way is returned as a reason (a string) for the export to report.

With `--sticky` (`sticky`, `variant_header`) the formats that route on headers also send a
request whose variant header (`x-mreg-variant`, set at the edge) says `canary` or `baseline`
to that side, before any rule and before the weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product
from typing import Literal

from modelreg.errors import InvalidInput
from modelreg.release.export.plan import ExportOptions, TrafficPlan
from modelreg.release.rules import USER_ID, Rule

__all__ = [
    "VARIANTS",
    "Alternative",
    "HeaderTest",
    "describe",
    "header_matches",
    "regex_escape",
    "sticky",
    "variant_header",
]

Op = Literal["exact", "prefix", "regex"]
_HEADER_VALUE = re.compile(r"[!-~]+(?:[\t ]?[!-~]+)*")
MAX_REGEX = 4096
"""The longest regular expression written (Gateway API's limit on a header match value)."""
VARIANTS = ("canary", "baseline")
"""The values of the variant header, as `Decision.variant` spells them."""
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,256}")


@dataclass(frozen=True)
class HeaderTest:
    """One header test: `header` equal to, starting with, or matching `value`."""

    header: str
    op: Op
    value: str


Alternative = tuple[HeaderTest, ...]
"""Header tests that must all hold."""


def describe(index: int, rule: Rule) -> str:
    """How a loss names a rule: `rule 2 (region=cn-north -> 10%)`."""
    return f"rule {index} ({rule.text()})"


def variant_header(opts: ExportOptions) -> str:
    """The variant header's name, lowercase (Istio matches lowercase names only).

    Raises:
        InvalidInput: it is not an HTTP header name.
    """
    name = opts.variant_header.strip().lower()
    if not _HEADER_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid --variant-header {opts.variant_header!r}: expected an HTTP header name "
            "(letters, digits, '-'), e.g. x-mreg-variant"
        )
    return name


def sticky(plan: TrafficPlan, opts: ExportOptions) -> bool:
    """True when the export routes on the variant header: `--sticky` while a canary is live.

    Not in shadow mode (the baseline answers every request) and not once the release ended
    (one version takes everything, whatever the header says).
    """
    return opts.sticky and plan.canary is not None and not plan.mirror


def regex_escape(text: str) -> str:
    """Escape the characters that RE2 and PCRE give a meaning (the rest stay readable)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def header_matches(
    rule: Rule,
    opts: ExportOptions,
    *,
    prefix: bool,
    regex: bool,
    max_alternatives: int,
) -> tuple[Alternative, ...] | str:
    """The rule's conditions as alternatives of header tests, or why they cannot be.

    Args:
        rule: The rule.
        opts: Options holding the attribute → header mapping.
        prefix: The format has a prefix match (else a prefix becomes an anchored regex).
        regex: The format has regular-expression matches.
        max_alternatives: The most alternatives the format takes for one rule.
    """
    conditions: list[tuple[str, str, tuple[str, ...]]] = []
    if rule.users:
        conditions.append((USER_ID, "in", rule.users))
    conditions.extend((m.key, m.op, m.values) for m in rule.when)
    choices: list[list[HeaderTest]] = []
    for key, op, values in conditions:
        header = opts.header(key)
        if header is None:
            return f"the attribute {key!r} travels in no request header (--header {key}=NAME)"
        for v in values:
            if not _HEADER_VALUE.fullmatch(v):
                return f"{key} value {v!r} cannot be sent in an HTTP header (printable ASCII only)"
        if op == "prefix" and not prefix:
            if not regex:
                return "it tests a prefix, which this format cannot match"
            choices.append([HeaderTest(header, "regex", "^" + regex_escape(values[0]))])
        else:
            kind: Op = "prefix" if op == "prefix" else "exact"
            choices.append([HeaderTest(header, kind, v) for v in values])
    count = 1
    for c in choices:
        count *= len(c)
    if count > max_alternatives:
        if not regex:
            return (
                f"its {count} combinations of values are more than the {max_alternatives} "
                "matches this format takes for one rule"
            )
        choices = [_collapse(c) for c in choices]
        longest = max(len(t.value) for c in choices for t in c)
        if longest > MAX_REGEX:
            return (
                f"its list of values is too long for a header match ({longest:,} characters of "
                f"regular expression, the limit is {MAX_REGEX:,})"
            )
    return tuple(tuple(alt) for alt in product(*choices))


def _collapse(tests: list[HeaderTest]) -> list[HeaderTest]:
    """Several exact values of one header as one anchored alternation."""
    if len(tests) == 1:
        return tests
    body = "|".join(regex_escape(t.value) for t in tests)
    return [HeaderTest(tests[0].header, "regex", f"^({body})$")]
