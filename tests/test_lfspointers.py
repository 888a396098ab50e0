"""Git LFS pointer texts (issue 20): what register takes for the object a pointer names."""

from __future__ import annotations

import pytest

from modelreg.lfspointers import MAX_POINTER, parse_pointer

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
GOOD = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n".encode()


def test_a_pointer_names_its_object() -> None:
    assert parse_pointer(GOOD) == (OID, 12345)
    assert parse_pointer(GOOD.replace(b"12345", b"0")) == (OID, 0)


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace(b"\n", b"\r\n"),  # not what git-lfs writes
        GOOD.replace(OID.encode(), OID.upper().encode()),
        GOOD.replace(b"sha256:", b"sha1:"),
        GOOD.replace(b"12345", b"012345"),
        GOOD.replace(b"12345", b"-5"),
        GOOD[:-1],  # no final newline
        GOOD + b"ext-0-foo sha256:" + OID.encode() + b"\n",  # extensions: content transformed
        GOOD.replace(b"spec/v1", b"spec/v2"),
        GOOD + b" " * MAX_POINTER,
        b"weights",
    ],
)
def test_anything_else_is_a_plain_file(text: bytes) -> None:
    assert parse_pointer(text) is None
