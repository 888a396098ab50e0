"""A remote's driver: which fsspec driver a URL needs, its options, and what it answers.

Part of `modelreg.remote.backend` (see its docstring for the four kinds of backend): the
errors a remote raises, a file's `Entry` (size and change token), the check that a
protocol's driver is installed, the driver's keyword arguments from a remote's options, and
how to read an S3 refusal or an fsspec listing. fsspec is imported here only inside
`check_driver`. Storage layer (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidInput, MregError
from modelreg.fsutil import safe_join
from modelreg.remote.spec import RemoteSpec

__all__ = [
    "OBJECT_STORES",
    "Entry",
    "MissingBucket",
    "MissingDriver",
    "RemoteError",
    "check_driver",
    "check_rel",
    "fs_options",
    "human_limit",
    "is_precondition_failure",
    "token",
]

OBJECT_STORES = frozenset({"gcs", "gs", "az", "abfs", "abfss", "adl", "oss", "r2", "b2"})
"""Protocols of object stores without conditional writes through fsspec (the `object` kind)."""
# Transport checksums are redundant with mreg's end-to-end SHA-256 (every object is re-hashed
# on receive) and cost a copy of every part; the user can turn them back on per remote.
_S3_DEFAULTS = {
    "config_kwargs.request_checksum_calculation": "when_required",
    "config_kwargs.response_checksum_validation": "when_required",
}


class MissingDriver(InvalidInput):
    """The fsspec driver for a remote's protocol is not installed."""


class RemoteError(MregError):
    """The remote could not be reached or refused an operation (network, permissions)."""


class MissingBucket(RemoteError):
    """The remote's bucket does not exist (mreg never creates buckets): exit 1."""


@dataclass(frozen=True)
class Entry:
    """A file on the remote: its size and a token that changes whenever it is replaced."""

    size: int
    token: str


def check_driver(protocol: str) -> None:
    """Raise InvalidInput for an unknown protocol, MissingDriver naming the package to install."""
    import fsspec
    from fsspec.registry import known_implementations, registry

    if protocol not in known_implementations and protocol not in registry:
        raise InvalidInput(f"unknown remote protocol '{protocol}://' (no fsspec driver has it)")
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        impl = known_implementations.get(protocol, {})
        package = str(impl.get("class", "")).split(".")[0]
        if package in ("", "fsspec"):
            hint = impl.get("err", "a missing dependency")
            raise MissingDriver(f"the {protocol}:// remote needs a driver: {hint}") from None
        raise MissingDriver(
            f"the {protocol}:// remote needs the fsspec driver {package!r}: pip install {package}"
        ) from None


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InvalidInput(f"option {key!r} conflicts with a scalar option")
        node[last] = value
    return out


def fs_options(spec: RemoteSpec) -> dict[str, Any]:
    """The keyword arguments for the fsspec driver: options minus `mreg.*`, nested by dots.

    For s3: `region` becomes `client_kwargs.region_name` and `path_style=true` becomes
    `config_kwargs.s3.addressing_style=path`; s3fs reads `endpoint_url` and `profile` itself.
    """
    flat = {k: v for k, v in spec.options.items() if not k.startswith("mreg.")}
    if spec.protocol not in ("file", "local", "memory"):
        # mreg keeps its own view of the remote (one listing per command): a driver's
        # directory cache would only serve stale listings after our own writes.
        flat = {"use_listings_cache": False, **flat}
    if spec.protocol in ("s3", "s3a"):
        flat = {**_S3_DEFAULTS, **flat}
        if "region" in flat:
            flat["client_kwargs.region_name"] = flat.pop("region")
        if flat.pop("path_style", False) is True:
            flat["config_kwargs.s3.addressing_style"] = "path"
    return _nest(flat)


def check_rel(rel: str) -> str:
    """`rel`, once it is a safe remote-relative path (InvalidInput otherwise)."""
    safe_join(Path("/"), rel)  # raises on absolute paths, '..', empty or control characters
    return rel


def is_precondition_failure(exc: BaseException) -> bool:
    """True when an S3 call failed because a conditional write's condition did not hold."""
    if isinstance(exc, FileExistsError):
        return True
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return True
    return False


def human_limit(limit: int) -> str:
    """A size limit as people read it: `16 MiB`, `512 KiB`, `100 bytes`."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def token(info: dict[str, Any]) -> str:
    """A file's change token from an fsspec listing: its ETag, else its size and time."""
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if etag:
        return str(etag)
    stamp = info.get("mtime") or info.get("created") or info.get("LastModified") or ""
    if hasattr(stamp, "timestamp"):  # drivers give a datetime from info(), a float from find()
        stamp = stamp.timestamp()
    return f"{info.get('size')}-{stamp}"
