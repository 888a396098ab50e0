"""A remote's storage: an fsspec URL turned into a filesystem, with the few operations sync needs.

Four kinds of backend, chosen by protocol:

- `local` (`file://` and plain paths): plain POSIX calls. Writes go through a temp file,
  fsync and rename (`fsutil.open_beneath`); compare-and-swap holds a `filelock` lock on
  `locks/remote.lock` inside the remote directory. No symbolic link below the remote's
  directory is ever followed (issue 15): a listing leaves links and other non-regular files
  out and names them in `skipped`, and reads and writes open every directory on the way with
  `O_NOFOLLOW` (`fsutil.open_read_beneath`, `open_beneath`), so a link swapped in after the
  listing is refused too.
- `s3` (s3fs: AWS S3, MinIO and other S3-compatible stores): an object appears whole or not
  at all (PUT and CompleteMultipartUpload are atomic). Compare-and-swap uses S3 conditional
  writes, `If-None-Match: *` to create and `If-Match: <etag>` to replace, when the server
  honours them; `probe_conditional` checks that once per remote.
- `object` (gcsfs, adlfs and the other object stores): whole-object writes, but no
  conditional write through fsspec's generic API: compare-and-swap is check-then-write.
- `generic` (`memory://`, sftp, ...): a temp name then `mv`; compare-and-swap holds a lock
  that is only process-wide (`memory://` lives in one process anyway).

A Git LFS remote (`lfs+https://`, issue 20) is its `meta` URL opened as one of these, with
its objects on the LFS server through `Backend.lfs` (see `modelreg.remote.lfs`).

Every remote path is relative to the remote's root and checked like a store path before it
is joined. fsspec and the drivers are imported only when a remote is opened.

The drivers' options, errors and entries live in `modelreg.remote.driver`, the `file://`
operations in `modelreg.remote.localfs`; their public names are importable from here too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from modelreg import layout
from modelreg.errors import IntegrityError, InvalidInput, MregError
from modelreg.fsutil import TMP_PREFIX, safe_join, tmp_name
from modelreg.remote import localfs
from modelreg.remote.driver import (
    OBJECT_STORES,
    Entry,
    MissingBucket,
    MissingDriver,
    RemoteError,
    check_driver,
    check_rel,
    fs_options,
    human_limit,
    is_precondition_failure,
    token,
)
from modelreg.remote.layout import read_limit
from modelreg.remote.lfs import LfsClient, is_lfs
from modelreg.remote.spec import RemoteSpec

__all__ = [
    "Backend",
    "Entry",
    "MissingBucket",
    "MissingDriver",
    "RemoteError",
    "check_driver",
    "fs_options",
    "human_limit",
    "is_precondition_failure",
]

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
_PROBE = f"{localfs.LOCKS}/conditional-probe"


class Backend:
    """One remote: `spec.url` opened with its driver; paths are relative to the URL."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.lfs: LfsClient | None = None
        """A Git LFS remote's object store (lfs.py): the filesystem is then its `meta` URL."""
        if is_lfs(spec.url):
            self.lfs = LfsClient(spec, int(spec.mreg_option("jobs", 8)))
            spec = self.lfs.meta
        self.protocol = spec.protocol
        if self.protocol in ("file", "local"):
            self.kind = "local"
        elif self.protocol in ("s3", "s3a"):
            self.kind = "s3"
        elif self.protocol in OBJECT_STORES:
            self.kind = "object"
        else:
            self.kind = "generic"
        if self.protocol == "oci":  # not a file store: remote/ocisync.py (issue 20)
            raise InvalidInput(
                f"remote {spec.name} is an OCI registry: only push, pull, fetch and status "
                "--remote apply to it (see docs/remotes.md)"
            )
        check_driver(self.protocol)
        import fsspec

        try:
            self.fs: Any = fsspec.filesystem(self.protocol, **fs_options(spec))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"remote {spec.name}: bad driver option: {exc}") from None
        self.root: str = self.fs._strip_protocol(spec.url).rstrip("/")
        self.local_root = Path(self.root) if self.kind == "local" else None
        self.skipped: list[str] = []
        """Paths local listings left out (links and other non-regular files), in order."""
        self.conditional = self.kind == "s3" and spec.mreg_option("conditional_writes", "auto") in (
            "auto",
            True,
        )

    # -- paths and errors -------------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The driver path of a remote-relative path (checked before the join)."""
        return f"{self.root}/{check_rel(rel)}"

    def _local(self, rel: str) -> Path:
        assert self.local_root is not None
        return safe_join(self.local_root, rel)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn the driver's failures (network, credentials, permissions) into RemoteError."""
        import_errors: tuple[type[BaseException], ...] = (OSError,)
        if self.kind == "s3":
            from botocore.exceptions import (  # type: ignore[import-untyped]
                BotoCoreError,
                ClientError,
            )

            import_errors = (OSError, BotoCoreError, ClientError)
        try:
            yield
        except MregError:
            raise
        except import_errors as exc:
            raise RemoteError(f"remote {self.spec.name} ({self.spec.url}): {exc}") from exc

    @property
    def guarantee(self) -> str:
        """How compare-and-swap is enforced on this backend (documented in docs/remotes.md)."""
        if self.kind == "s3":
            return "s3-conditional-writes" if self.conditional else "check-then-write"
        if self.kind == "local":
            return "lock-file"
        if self.kind == "generic":
            return "process-lock"
        return "check-then-write"

    # -- reading ----------------------------------------------------------------------------

    def list(self, prefix: str = "") -> dict[str, Entry]:
        """Every file under the root, or under `prefix/` (temp files, `locks/`, `tmp/` left out).

        One recursive listing: one LIST request per 1,000 keys on S3.
        """
        if prefix:
            check_rel(prefix)
        if self.local_root is not None:
            return localfs.list_files(self.local_root, prefix, self.skipped)
        top = f"{self.root}/{prefix}" if prefix else self.root
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        cut = len(self.root) + 1
        for path, info in found.items():
            rel = path[cut:]
            if info.get("type") == "directory" or not path.startswith(self.root + "/"):
                continue
            if rel.startswith(localfs.IGNORED_TOP) or rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                continue
            out[rel] = Entry(int(info.get("size") or 0), token(info))
        return out

    def list_pages(self, prefix: str, pages: int) -> tuple[dict[str, Entry], str | None]:
        """At most `pages` pages (1,000 keys each) of an S3 listing of `prefix/`, in key order.

        Returns the files found and the last path listed, or None as that path when the
        listing is complete; a path after it may exist and was not looked at.
        """
        assert self.kind == "s3"
        bucket, key, _ = self.fs.split_path(self.path(prefix))
        out: dict[str, Entry] = {}
        cut = len(self.root) - len(bucket)  # the root's key prefix and its "/"
        extra: dict[str, str] = {}
        for _ in range(pages):
            page = self.fs.call_s3(
                "list_objects_v2", Bucket=bucket, Prefix=f"{key}/", MaxKeys=1000, **extra
            )
            for item in page.get("Contents", []):
                rel = str(item["Key"])[cut:]
                if not rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    out[rel] = Entry(int(item.get("Size") or 0), str(item.get("ETag") or ""))
            if not page.get("IsTruncated"):
                return out, None
            extra = {"ContinuationToken": str(page["NextContinuationToken"])}
        last = str(page["Contents"][-1]["Key"])[cut:] if page.get("Contents") else None
        return out, last

    def list_top(self) -> tuple[set[str], dict[str, Entry]]:
        """The root's subdirectories and files, one non-recursive listing (one LIST on S3)."""
        if self.local_root is not None:
            return localfs.list_top(self.local_root, self.skipped)
        self.fs.invalidate_cache()
        try:
            found = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return set(), {}
        dirs, files = set(), {}
        for info in found:
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "directory":
                dirs.add(name)
            elif not name.startswith(TMP_PREFIX):
                files[name] = Entry(int(info.get("size") or 0), token(info))
        return dirs, files

    def check_exists(self) -> None:
        """Raise MissingBucket when the remote's S3 bucket does not exist (one HEAD request).

        A listing cannot tell a missing bucket from an empty prefix (both list as nothing), so
        sync calls this when the root lists empty: a missing bucket is a mistake in the URL
        (or a bucket not created yet) and must not read as "nothing there yet". mreg does not
        create buckets: where, with which region, encryption, versioning and lifecycle rules
        is the operator's decision. Other backends are not checked (a `file://` directory is
        created by the first push, as any store is).
        """
        if self.kind != "s3":
            return
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.call_s3("head_bucket", Bucket=bucket)
        except FileNotFoundError:
            raise MissingBucket(
                f"remote {self.spec.name} ({self.spec.url}): bucket {bucket!r} does not exist "
                "(create it first; mreg does not create buckets)"
            ) from None
        except PermissionError:  # it exists (404 otherwise); what is refused shows when used
            return

    def stat(self, rel: str) -> Entry | None:
        """The entry of one file, or None when it does not exist (one HEAD request on S3)."""
        if self.local_root is not None:  # a link is not followed: not a file of the remote
            return localfs.stat_file(self.local_root, rel)
        path = self.path(rel)
        if self.kind == "s3":  # one HEAD: s3fs's info() lists the key as a "directory" if absent
            bucket, key, _ = self.fs.split_path(path)
            try:
                out = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return None
            return Entry(int(out.get("ContentLength") or 0), str(out.get("ETag") or ""))
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return Entry(int(info.get("size") or 0), token(info))

    def read(self, rel: str, limit: int | None = None) -> bytes | None:
        """A whole (small) file, or None when it does not exist.

        At most `limit` bytes are read (by default `layout.read_limit(rel)`), whatever the
        file's size (issue 15: a 1 GiB sparse manifest must not cost 1 GiB of memory): a
        longer file raises IntegrityError after `limit` + 1 bytes, on every backend (a
        ranged GET on object stores).
        """
        if limit is None:
            limit = read_limit(rel)
        try:
            if self.local_root is not None:
                with self.open_local(rel) as fh:
                    data = fh.read(limit + 1)
            else:
                data = self._head(self.path(rel), limit + 1)
        except FileNotFoundError:
            return None
        if len(data) > limit:
            raise IntegrityError(
                f"remote {self.spec.name}: {rel} is larger than {human_limit(limit)}; not read"
            )
        return data

    def _head(self, path: str, n: int) -> bytes:
        """The first `n` bytes of an object: one ranged GET (s3fs would first ask the size).

        An empty object has no byte range to satisfy (S3 answers 416), so a refused range
        is looked at once more: an empty object is b"", anything else the driver's error.
        """
        extra = {"max_concurrency": 1} if self.kind == "s3" else {}
        try:
            return bytes(self.fs.cat_file(path, start=0, end=n, **extra))
        except FileNotFoundError:
            raise
        except OSError:
            self.fs.invalidate_cache(path)
            if int(self.fs.info(path).get("size") or 0) == 0:
                return b""
            raise

    def open_local(self, rel: str) -> BinaryIO:
        """A `file://` remote's file opened for reading, no link below the root followed."""
        assert self.local_root is not None
        return localfs.open_file(self.local_root, rel)

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes `[start, end)` of a file (one ranged GET on object stores)."""
        if self.local_root is not None:
            with self.open_local(rel) as fh:
                fh.seek(start)
                return bytes(fh.read(end - start))
        return bytes(self.fs.cat_file(self.path(rel), start=start, end=end))

    # -- writing ----------------------------------------------------------------------------

    def write(self, rel: str, data: bytes, *, mode: int = 0o644) -> str:
        """Write a whole file so that readers never see it partial; return its new token."""
        if self.local_root is not None:  # never through a link below the root
            return localfs.write_file(self.local_root, rel, data, mode)
        if self.kind == "s3":
            return self._s3_put(rel, data, {})
        if self.kind == "object":
            self.fs.pipe_file(self.path(rel), data)
        else:
            tmp = self.path(f"{layout.TMP}/{tmp_name()}")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self.path(rel))
        entry = self.stat(rel)
        return entry.token if entry else ""

    def write_if(self, rel: str, data: bytes, expected: Entry | None) -> str | None:
        """Compare-and-swap: write only if the file is still `expected` (None: absent).

        Returns the new token, or None when the file changed since `expected` was read.
        """
        if self.kind == "s3" and self.conditional:
            cond = {"IfMatch": expected.token} if expected else {"IfNoneMatch": "*"}
            try:
                return self._s3_put(rel, data, cond)
            except (OSError, FileNotFoundError) as exc:
                if is_precondition_failure(exc) or (
                    expected and isinstance(exc, FileNotFoundError)
                ):
                    return None
                raise
        with self._cas_lock():
            current = self.stat(rel)
            if (current.token if current else None) != (expected.token if expected else None):
                return None
            return self.write(rel, data)

    @contextmanager
    def _cas_lock(self) -> Iterator[None]:
        if self.local_root is not None:
            with localfs.cas_lock(self.local_root):
                yield
            return
        if self.kind == "generic":
            with _PROCESS_LOCKS_GUARD:
                lock = _PROCESS_LOCKS.setdefault(f"{self.protocol}://{self.root}", threading.Lock())
            with lock:
                yield
            return
        yield  # check-then-write: no lock exists (see the module docstring)

    def _s3_put(self, rel: str, data: bytes, cond: dict[str, str]) -> str:
        bucket, key, _ = self.fs.split_path(self.path(rel))
        out = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **cond)
        return str(out.get("ETag", ""))

    def remove(self, rel: str) -> None:
        """Delete one file if it exists (used for the conditional-write probe)."""
        try:
            if self.local_root is not None:
                self._local(rel).unlink()
            else:
                self.fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass

    def probe_conditional(self) -> bool:
        """Check once that an S3 server refuses failed conditions (some compatibles ignore them).

        Writes `locks/conditional-probe` three times; True when both a create over an existing
        object and a replace with a wrong ETag were refused.
        """
        if self.kind != "s3":
            return False
        rel = _PROBE
        self._s3_put(rel, b"probe", {})
        refused = 0
        for cond in ({"IfNoneMatch": "*"}, {"IfMatch": '"0000000000000000000000000000000f"'}):
            try:
                self._s3_put(rel, b"probe", cond)
            except OSError as exc:
                if not is_precondition_failure(exc):
                    raise
                refused += 1
        self.conditional = refused == 2
        return self.conditional
