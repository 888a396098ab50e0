"""Sticky, monotonic bucketing: the language-neutral hash that splits traffic (issue 5).

The algorithm, exactly (docs/release.md has test vectors that a test checks)::

    data   = UTF-8 bytes of  SEED + ":" + KEY
    digest = SHA-256(data)
    bucket = (first 8 bytes of digest as an unsigned big-endian integer) mod 1,000,000
    canary = bucket < weight_in_hundredths_of_a_percent * 100

`SEED` is the release's seed (32 lowercase hex characters, drawn fresh by every
`release start`, so each release samples other users); `KEY` is the stickiness key (by
default the user ID). A weight of 5% is 500 hundredths, so buckets 0 to 49,999 (5% of the
1,000,000 buckets) go to the canary. Raising the weight only adds buckets at the top of the
range, and lowering it removes exactly the most recently added ones: the split is monotonic.

This module is pure and imports only the standard library, so serving processes and
gateways in other languages can reproduce it bit for bit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from decimal import Decimal

from modelreg.errors import InvalidInput

__all__ = [
    "BUCKETS",
    "BUCKETS_PER_HUNDREDTH",
    "FULL",
    "Bucketer",
    "bucket",
    "check_seed",
    "format_weight",
    "in_canary",
    "new_seed",
    "parse_weight",
    "threshold",
    "unpack_u64",
]

BUCKETS = 1_000_000
"""The number of buckets: 100 per hundredth of a percent, the finest weight step."""
FULL = 10_000
"""100% expressed in hundredths of a percent (the unit weights are kept in)."""
BUCKETS_PER_HUNDREDTH = BUCKETS // FULL

_SEED_RE = re.compile(r"[0-9a-f]{32}")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HUNDREDTH = Decimal("0.01")
_U64 = struct.Struct(">Q")
unpack_u64 = _U64.unpack_from
"""`unpack_u64(digest)[0]`: the first 8 bytes of a digest as a big-endian unsigned integer."""


def new_seed() -> str:
    """A fresh random seed: 32 lowercase hex characters (128 bits)."""
    return secrets.token_hex(16)


def check_seed(seed: object) -> str:
    """Return `seed` if it is 32 lowercase hex characters, else raise InvalidInput."""
    if not isinstance(seed, str) or not _SEED_RE.fullmatch(seed):
        raise InvalidInput(f"invalid seed {seed!r}: expected 32 lowercase hex characters")
    return seed


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep routing rather than fail the request
        return text.encode("utf-8", "surrogatepass")


def bucket(seed: str, key: str) -> int:
    """The bucket (0 to 999,999) of `key` under `seed`: see the module docstring."""
    digest = hashlib.sha256(_encode(f"{seed}:{key}")).digest()
    return int(_U64.unpack_from(digest)[0]) % BUCKETS


def threshold(weight: int) -> int:
    """The first bucket *not* on the canary for a weight in hundredths of a percent."""
    return weight * BUCKETS_PER_HUNDREDTH


def in_canary(bucket_: int, weight: int) -> bool:
    """True when a bucket falls on the canary side at `weight` (hundredths of a percent)."""
    return bucket_ < threshold(weight)


class Bucketer:
    """`bucket(seed, key)` with the seed's hash state precomputed (the router's hot path).

    Calling it gives the same result as `bucket(seed, key)`; it only avoids re-hashing the
    seed and building a string per call.
    """

    __slots__ = ("prefix", "seed")

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.prefix = hashlib.sha256(_encode(f"{seed}:"))
        """SHA-256 state after `SEED:`; `copy()` it and feed the key's UTF-8 bytes."""

    def __call__(self, key: str) -> int:
        """The bucket of `key`."""
        h = self.prefix.copy()
        try:
            h.update(key.encode())
        except UnicodeEncodeError:
            h.update(key.encode("utf-8", "surrogatepass"))
        return int(_U64.unpack_from(h.digest())[0]) % BUCKETS


def parse_weight(value: object) -> int:
    """A traffic weight in percent (0-100, at most two decimals) as hundredths of a percent.

    Accepts integers, floats and strings such as `5`, `0.01`, `12.5` or `"7.5%"`, exactly:
    a string is a decimal numeral (`[+-]digits[.digits][e[+-]digits]`, ASCII, optionally
    followed by `%`, spaces around it ignored) read without rounding; a float must be the
    double nearest to a multiple of 0.01 (what the literal `0.07` or YAML's `0.07` gives),
    so `5.000000001` and `0.1 * 3` are refused rather than rounded.

    Raises:
        InvalidInput: the value is not a number, is out of range, or is finer than 0.01%.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"invalid weight {value!r}: expected a percentage such as 5 or 0.5")
    if not isinstance(value, (int, float, str)):
        try:  # other numbers (numpy scalars, Decimal...): as a float, as before
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(
                f"invalid weight {value!r}: expected a percentage such as 5 or 0.5"
            ) from None
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        if not _DECIMAL_RE.fullmatch(text):
            raise InvalidInput(f"invalid weight {value!r}: expected a percentage such as 5 or 0.5")
        exact = Decimal(text)  # exact: no context rounding on construction
        if not 0 <= exact <= 100:
            raise InvalidInput(f"invalid weight {value!r}: must be between 0 and 100 (percent)")
        hundredths = exact.quantize(_HUNDREDTH)  # at most 100.00: exact in any context
        if hundredths != exact:
            raise InvalidInput(f"invalid weight {value!r}: the finest step is 0.01%")
        return int(hundredths.scaleb(2))
    if not 0 <= value <= 100:  # NaN fails too
        raise InvalidInput(f"invalid weight {value!r}: must be between 0 and 100 (percent)")
    if isinstance(value, int):
        return value * 100
    whole = round(value * 100)
    if whole / 100 != value:  # not the double nearest to a multiple of 0.01
        raise InvalidInput(f"invalid weight {value!r}: the finest step is 0.01%")
    return whole


def format_weight(weight: int) -> int | float:
    """Hundredths of a percent as the percentage written in files: 500 → 5, 1 → 0.01."""
    return weight // 100 if weight % 100 == 0 else weight / 100
