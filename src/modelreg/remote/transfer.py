"""Moving objects between the local store and a remote: bounded parallelism, bounded memory.

- A pool of `jobs` workers moves objects; a second pool of the same size moves the parts of
  large objects, so one 1 GiB object and many small ones are both sent in parallel.
- Memory is bounded by a fixed set of part buffers (`buffers` x `part_size`, 4 x 8 MiB by
  default) shared by every upload; a download streams (S3: one GET read 1 MiB at a time;
  other object stores: as many ranged reads in flight as there are buffers): a 1 GiB
  object needs the same few MiB as a 10 MiB one.
- Uploads are verified on the way out (the bytes sent are hashed and an upload whose hash
  is not the object's name is aborted before it completes) and atomic on the remote (S3:
  PUT or CompleteMultipartUpload; local: temp file and rename; others: temp name and `mv`).
  An S3 multipart upload cut short (kill, network) is resumed by the next push: the parts
  the server holds with our size and MD5 are not sent again.
- A Git LFS remote moves each object in one streamed request (`modelreg.remote.lfs`),
  hashed on the way out and on the way in like the others.
- Downloads are verified on the way in: the bytes are hashed while they are written to the
  store's `tmp/`, and only an object whose hash is its name is renamed into `objects/`.
  Anything else is deleted and reported; it never enters the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from modelreg.errors import IntegrityError, MregError
from modelreg.fsutil import open_beneath, tmp_name
from modelreg.hashing import CHUNK_SIZE, copy_and_hash, hash_bytes, hash_file
from modelreg.layout import object_rel
from modelreg.objects import ObjectStore
from modelreg.remote.backend import Backend
from modelreg.remote.ingest import check_received, receive_object

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_PART_MIB",
    "Transfer",
    "TransferProgress",
    "object_rel",
    "wait_all",
]

DEFAULT_JOBS = 8
DEFAULT_PART_MIB = 8
DEFAULT_BUFFERS = 4
SMALL = 1 << 20
"""Objects up to this size are moved in one request, read whole (jobs x 1 MiB at most)."""


class TransferProgress(Protocol):
    """Told what a transfer will move and what it moved (called from worker threads)."""

    def start(self, objects: int, nbytes: int) -> None:
        """The totals, once, before anything moves."""

    def advance(self, objects: int, nbytes: int) -> None:
        """More objects completed and/or more bytes moved."""


def wait_all(futures: dict[Future[Any], str]) -> tuple[int, dict[str, str]]:
    """Wait for every transfer; return bytes moved and {digest: error} for the failed ones."""
    total, failed = 0, {}
    for fut, digest in futures.items():
        try:
            total += fut.result()
        except MregError as exc:
            failed[digest] = str(exc)
    return total, failed


class _View(io.RawIOBase):
    """A read-only file over a buffer slice: lets botocore stream a part without copying it."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), len(self._view) - self._pos)
        b[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._view))[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _Buffers:
    """At most `count` part buffers of `size` bytes, allocated on first use and reused."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._left = count
        self._lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(count)

    def take(self) -> bytearray:
        with self._lock:
            if self._left and self._free.empty():
                self._left -= 1
                return bytearray(self.size)
        return self._free.get()

    def give(self, buf: bytearray) -> None:
        self._free.put(buf)


def _md5(view: memoryview) -> str:
    # S3's ETag of a part is the MD5 of its bytes: what identifies a part already sent.
    return hashlib.md5(view, usedforsecurity=False).hexdigest()


def _resolved(value: dict[str, Any]) -> Future[dict[str, Any]]:
    fut: Future[dict[str, Any]] = Future()
    fut.set_result(value)
    return fut


def _read_full(fh: Any, buf: bytearray) -> int:
    view, got = memoryview(buf), 0
    while got < len(buf) and (n := fh.readinto(view[got:])):
        got += n
    return got


class Transfer:
    """The worker pools and buffers of one push or pull; use it as a context manager."""

    def __init__(
        self,
        backend: Backend,
        objects: ObjectStore,
        *,
        jobs: int = DEFAULT_JOBS,
        part_size: int = DEFAULT_PART_MIB << 20,
        progress: TransferProgress | None = None,
    ) -> None:
        self.backend = backend
        self.objects = objects
        self.part_size = max(5 << 20, part_size)  # S3 refuses parts under 5 MiB
        self.progress = progress
        self.pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="mreg-xfer")
        self.parts = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="mreg-part")
        self.buffers = _Buffers(DEFAULT_BUFFERS, self.part_size)

    def __enter__(self) -> Transfer:
        return self

    def __exit__(self, *exc: object) -> None:
        interrupted = exc[0] is not None
        self.pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        self.parts.shutdown(wait=not interrupted, cancel_futures=interrupted)

    def prepare(self, operation: str, objects: dict[str, int]) -> None:
        """Say which objects will move: a Git LFS remote asks for their actions in batches."""
        if self.backend.lfs is not None:
            self.backend.lfs.prepare(operation, objects)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the object pool."""
        return self.pool.submit(fn, *args)

    def _tick(self, objects: int, nbytes: int) -> None:
        if self.progress is not None:
            self.progress.advance(objects, nbytes)

    # -- upload -----------------------------------------------------------------------------

    def upload(self, digest: str, size: int) -> int:
        """Send one local object to the remote, verified and atomic; return the bytes sent."""
        src = self.objects.path(digest)
        rel = object_rel(digest)
        b = self.backend
        if b.lfs is not None:  # Git LFS: a streamed PUT, hashed on the way (lfs.py, #20)
            n = b.lfs.upload(digest, size, src, lambda k: self._tick(0, k))
        elif b.local_root is not None:
            with open(src, "rb") as fh, open_beneath(b.local_root, rel, 0o444) as out:
                got, n = copy_and_hash(fh, out.fileno(), lambda k: self._tick(0, k))
                check_received(got, digest, "local object")
        elif b.kind == "s3":
            n = self._s3_upload(rel, src, digest, size)
        elif b.kind == "object":
            got, n = hash_file(src)
            check_received(got, digest, "local object")
            b.fs.put_file(str(src), b.path(rel))
            self._tick(0, n)
        else:
            tmp = b.path(f"tmp/{tmp_name()}")
            h, n = hashlib.sha256(), 0
            with open(src, "rb") as fh, b.fs.open(tmp, "wb") as out:
                while chunk := fh.read(CHUNK_SIZE):
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
                    self._tick(0, len(chunk))
            try:
                check_received(h.hexdigest(), digest, "local object")
            except IntegrityError:
                b.fs.rm_file(tmp)
                raise
            b.fs.mv(tmp, b.path(rel))
        self._tick(1, 0)
        return n

    def _s3_upload(self, rel: str, src: Path, digest: str, size: int) -> int:
        fs = self.backend.fs
        bucket, key, _ = fs.split_path(self.backend.path(rel))
        if size <= SMALL:
            data = src.read_bytes()
            check_received(hash_bytes(data), digest, "local object")
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data)
            self._tick(0, len(data))
            return len(data)
        if size <= self.part_size:  # one PUT, streamed from a pooled buffer
            buf = self.buffers.take()
            try:
                with open(src, "rb", buffering=0) as fh:
                    got = _read_full(fh, buf)
                check_received(
                    hashlib.sha256(memoryview(buf)[:got]).hexdigest(), digest, "local object"
                )
                body = _View(memoryview(buf)[:got])
                fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, ContentLength=got)
            finally:
                self.buffers.give(buf)
            self._tick(0, got)
            return got
        upload_id, arrived = self._s3_pending(bucket, key)
        if upload_id is None:
            upload_id = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
        futures: list[Future[dict[str, Any]]] = []
        sent = 0
        try:
            h = hashlib.sha256()
            with open(src, "rb", buffering=0) as fh:
                while not any(f.done() and f.exception() for f in futures):
                    buf = self.buffers.take()
                    got = _read_full(fh, buf)
                    if not got:
                        self.buffers.give(buf)
                        break
                    view = memoryview(buf)[:got]
                    h.update(view)
                    number = len(futures) + 1
                    if number in arrived and arrived[number] == (got, _md5(view)):
                        # sent before an interruption, and the server has these very bytes
                        self.buffers.give(buf)
                        self._tick(0, got)
                        futures.append(
                            _resolved({"PartNumber": number, "ETag": arrived[number][1]})
                        )
                        continue
                    sent += got
                    futures.append(
                        self.parts.submit(self._s3_part, bucket, key, upload_id, number, buf, got)
                    )
            parts = [f.result() for f in futures]
            check_received(h.hexdigest(), digest, "local object")
            fs.call_s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as exc:
            for f in futures:
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    f.exception()  # wait: its buffer must come back before we go on
            if isinstance(exc, IntegrityError):  # never complete bad bytes; else keep, resume
                try:
                    fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
                except OSError:  # pragma: no cover (best effort: lifecycle rules reap the rest)
                    pass
            raise
        return sent

    def _s3_pending(self, bucket: str, key: str) -> tuple[str | None, dict[int, tuple[int, str]]]:
        """The latest unfinished multipart upload of `key`: its id and {part: (size, md5)}.

        A push interrupted in the middle of a large object resumes that upload: each part the
        server holds with the same size and MD5 as ours is not sent again.
        """
        fs = self.backend.fs
        try:
            out = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
            uploads = [u for u in out.get("Uploads", []) if u.get("Key") == key]
            if not uploads:
                return None, {}
            upload_id = str(max(uploads, key=lambda u: str(u.get("Initiated")))["UploadId"])
            parts: dict[int, tuple[int, str]] = {}
            marker = 0
            while True:
                page = fs.call_s3(
                    "list_parts", Bucket=bucket, Key=key, UploadId=upload_id,
                    PartNumberMarker=marker,
                )  # fmt: skip
                for part in page.get("Parts", []):
                    etag = str(part["ETag"]).strip('"')
                    parts[int(part["PartNumber"])] = (int(part["Size"]), etag)
                if not page.get("IsTruncated"):
                    return upload_id, parts
                marker = int(page["NextPartNumberMarker"])
        except (OSError, KeyError, ValueError):  # a server without these calls: start afresh
            return None, {}

    def _s3_part(
        self, bucket: str, key: str, upload_id: str, number: int, buf: bytearray, n: int
    ) -> dict[str, Any]:
        try:
            out = self.backend.fs.call_s3(
                "upload_part",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_View(memoryview(buf)[:n]),
                ContentLength=n,
            )
        finally:
            self.buffers.give(buf)
        self._tick(0, n)
        return {"PartNumber": number, "ETag": out["ETag"]}

    # -- download ---------------------------------------------------------------------------

    def download(self, digest: str, size: int) -> int:
        """Fetch one object into the local store if its bytes hash to `digest`.

        Raises IntegrityError (after deleting what was received) when they do not: a
        tampered or truncated remote object never enters the store.
        """
        try:
            return self._download(digest, size)
        except FileNotFoundError:
            raise IntegrityError(
                f"remote object {object_rel(digest)} is missing on the remote; rejected"
            ) from None

    def _download(self, digest: str, size: int) -> int:
        rel = object_rel(digest)
        b = self.backend
        if b.lfs is not None:  # Git LFS: one streamed GET, hashed here (#20)
            lfs = b.lfs

            def write(fd: int) -> tuple[str, int]:
                return lfs.download(digest, size, fd, self._sink)

            n = receive_object(self.objects, digest, size, "remote LFS object", write)
            self._tick(1, 0)
            return n
        if size <= SMALL and b.local_root is None:
            data = b.read_range(rel, 0, size) if size else b""
            check_received(hash_bytes(data), digest, f"remote object {rel}", len(data), size)
            self.objects.put_bytes(data)
            self._tick(1, len(data))
            return len(data)
        if b.local_root is not None:

            def write(fd: int) -> tuple[str, int]:
                with b.open_local(rel) as src:  # no link below the remote followed (#15)
                    n = os.fstat(src.fileno()).st_size
                    if n > size:  # never copy more than the manifest allows (#15)
                        raise IntegrityError(
                            f"remote object {rel} {digest[:12]} has {n} bytes, but the "
                            f"manifest says {size}; rejected"
                        )
                    return copy_and_hash(src, fd, lambda k: self._tick(0, k))

        elif b.kind == "s3":

            def write(fd: int) -> tuple[str, int]:
                return self._s3_stream(rel, fd, size)

        else:

            def write(fd: int) -> tuple[str, int]:
                return self._ranged_copy(rel, size, fd)

        n = receive_object(self.objects, digest, size, f"remote object {rel}", write)
        self._tick(1, 0)
        return n

    def _sink(self, h: Any, fd: int, data: bytes) -> int:
        """Hash and write received bytes in order; return how many."""
        h.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        self._tick(0, len(data))
        return len(data)

    def _s3_stream(self, rel: str, fd: int, size: int) -> tuple[str, int]:
        """One streamed GET, read 1 MiB at a time, hashed and written in order.

        One request per object: a store that serves ranges by copying the whole object (as
        moto does) is not asked for it 128 times, and memory stays at one chunk in flight.
        Reading stops once more than `size` bytes came: a longer object is refused without
        filling the disk with the rest of it (#15).
        """
        from fsspec.asyn import sync

        fs = self.backend.fs
        bucket, key, _ = fs.split_path(self.backend.path(rel))
        body = fs.call_s3("get_object", Bucket=bucket, Key=key)["Body"]
        h, written = hashlib.sha256(), 0
        try:
            while written <= size and (chunk := sync(fs.loop, body.read, CHUNK_SIZE)):
                written += self._sink(h, fd, chunk)
        finally:
            body.close()
        return h.hexdigest(), written

    def _ranged_copy(self, rel: str, size: int, fd: int) -> tuple[str, int]:
        """Ranged reads, `buffers` in flight, written and hashed in order."""
        h, written = hashlib.sha256(), 0
        pending: deque[Future[bytes]] = deque()
        offsets = iter(range(0, size, self.part_size))

        def fetch(start: int) -> bytes:
            try:
                return self.backend.read_range(rel, start, min(size, start + self.part_size))
            finally:
                self.buffers.slots.release()

        try:
            while True:
                while len(pending) < DEFAULT_BUFFERS and (start := next(offsets, None)) is not None:
                    self.buffers.slots.acquire()
                    pending.append(self.parts.submit(fetch, start))
                if not pending:
                    break
                data = pending.popleft().result()
                if not data:  # the object is shorter than its manifest says: verify fails
                    break
                written += self._sink(h, fd, data)
        finally:
            for f in pending:
                if f.cancel():  # never started: give its slot back
                    self.buffers.slots.release()
        return h.hexdigest(), written
