"""Git LFS as a remote's object store: the batch API, its transfer actions, credentials (#20).

An `lfs+https://HOST/org/repo.git/info/lfs` remote (`lfs+http://` too) keeps the objects on a
Git LFS server and everything else on the fsspec URL of its `meta` option: an LFS server
stores only content-addressed objects, and an LFS object id is the SHA-256 of the content,
which is mreg's object id. `Backend` opens `meta` as the remote's filesystem and hands every
object to the `LfsClient` of this module instead (session.py asks it which objects exist,
transfer.py moves them).

- Which objects the server has: one batch request per 100 objects (`download`, or `upload`
  when they are about to be sent: the server answers which it lacks and where to send them
  in the same request, so a second push of the same objects sends one request per 100 and
  no byte). The actions the server returns are kept until they expire.
- Upload: one streamed PUT per object (bounded memory: 1 MiB read at a time), hashed on the
  way out; when the last bytes are read and their hash is not the object id, the request is
  broken off before the body is complete. Then the `verify` action, when the server gives
  one: the server confirms it holds the object with our size.
- Download: one streamed GET, the caller hashes and writes it (transfer.py); reading stops
  after `size` + 1 bytes, so a longer object is refused without reading it all.
- Credentials are never stored: the `Authorization` header comes from the environment
  (`MREG_LFS_AUTHORIZATION`), else `~/.netrc`, else, when the server answers 401, from
  `git credential fill` (the helpers git and git-lfs use). Action headers the server sends
  (pre-signed URLs, bearer tokens) are used as given, for that request only.

urllib3 (already a dependency of botocore, so of s3fs) keeps connections alive across the
parallel workers: 1,000 small objects do not cost 1,000 TCP handshakes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from modelreg.errors import IntegrityError, InvalidInput
from modelreg.hashing import CHUNK_SIZE, is_digest
from modelreg.remote.driver import RemoteError
from modelreg.remote.lfscreds import basic_authorization, git_credential, netrc_authorization
from modelreg.remote.spec import RemoteSpec, normalize_url

__all__ = [
    "AUTH_ENV",
    "BATCH_MAX",
    "LfsClient",
    "is_lfs",
    "meta_spec",
]

AUTH_ENV = "MREG_LFS_AUTHORIZATION"
BATCH_MAX = 100
"""Objects per batch request (the LFS API's usual server limit)."""
_MEDIA = "application/vnd.git-lfs+json"
_RESPONSE_LIMIT = 8 << 20
_EXPIRY_MARGIN = 30.0
_TIMEOUT = (30.0, 300.0)
# Answers worth asking again, as git-lfs does (lfs.transfer.maxretries): overload, rate limits
# and a gateway's hiccup; giftless's local storage also answers 500 when two uploads create
# the same directory at once. Waits of 0.25, 0.5, 1, 2 s, or the server's Retry-After (<= 30 s).
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
_RETRIES = 4


def is_lfs(url: str) -> bool:
    """True for a Git LFS remote URL (`lfs+https://...`, `lfs+http://...`)."""
    return url.startswith(("lfs+https://", "lfs+http://"))


def meta_spec(spec: RemoteSpec) -> RemoteSpec:
    """The remote where an LFS remote keeps manifests, refs and the audit trail.

    Its URL is the `meta` option; its driver options are the `meta.*` options without the
    prefix (`meta.endpoint_url=...`), plus the shared `mreg.*` options.
    """
    meta = spec.options.get("meta")
    if not isinstance(meta, str) or not meta:
        raise InvalidInput(
            f"remote {spec.name}: a Git LFS remote needs --option meta=URL (any fsspec URL: "
            "where manifests, aliases and the audit trail go; an LFS server holds only objects)"
        )
    if is_lfs(meta):
        raise InvalidInput(f"remote {spec.name}: meta must be a filesystem URL, not {meta!r}")
    options = {k[5:]: v for k, v in spec.options.items() if k.startswith("meta.")}
    options.update({k: v for k, v in spec.options.items() if k.startswith("mreg.")})
    return RemoteSpec(spec.name, normalize_url(meta), options)


@dataclass(frozen=True)
class _Action:
    href: str
    header: dict[str, str]
    expires: float | None  # time.monotonic() deadline

    @property
    def fresh(self) -> bool:
        return self.expires is None or time.monotonic() < self.expires


def _action(doc: Any, now: float) -> _Action | None:
    """An action of a batch response, checked (http(s) URL, string headers), or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("href"), str):
        return None
    if urlsplit(doc["href"]).scheme not in ("http", "https"):
        return None
    header = doc.get("header") or {}
    if not isinstance(header, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in header.items()
    ):
        return None
    expires = None
    if isinstance(doc.get("expires_in"), int) and doc["expires_in"] > 0:
        expires = now + doc["expires_in"] - _EXPIRY_MARGIN
    return _Action(doc["href"], dict(header), expires)


class _Sending:
    """A file read for a PUT body: hashed as it goes; the last bytes are held until verified.

    `tick(position)` is told how far the body has been read.
    """

    def __init__(self, fh: BinaryIO, oid: str, size: int, tick: Callable[[int], None]) -> None:
        self.fh, self.oid, self.size, self.tick = fh, oid, size, tick
        self.h = hashlib.sha256()
        self.sent = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.fh.read(min(CHUNK_SIZE, n) if n > 0 else CHUNK_SIZE)
        self.h.update(chunk)
        self.sent += len(chunk)
        position = self.sent
        if not chunk or self.sent >= self.size:
            if self.sent != self.size or self.h.hexdigest() != self.oid:
                # raised before the body is complete: the server never gets these bytes whole
                raise IntegrityError(
                    f"local object {self.oid[:12]} is corrupt: its content hashes to "
                    f"{self.h.hexdigest()[:12]} ({self.sent} bytes); not sent (run mreg verify)"
                )
        self.tick(position)
        return chunk


class LfsClient:
    """The Git LFS server of one remote: batch requests, transfers, credentials."""

    def __init__(self, spec: RemoteSpec, jobs: int = 8) -> None:
        self.spec = spec
        self.endpoint = spec.url[len("lfs+") :].rstrip("/")
        self.meta = meta_spec(spec)
        parts = urlsplit(self.endpoint)
        self._scheme, self._host = parts.scheme, parts.netloc
        self._actions: dict[tuple[str, str], _Action | None] = {}
        self._lock = threading.Lock()
        self._auth: str | None = None
        self._auth_tried = False
        self._filled: dict[str, str] | None = None
        self._http: Any = None
        self._jobs = max(1, jobs)
        self.requests = 0
        """Batch requests sent (the cost of learning what the server holds)."""

    # -- HTTP -------------------------------------------------------------------------------

    def _pool(self) -> Any:
        with self._lock:
            if self._http is None:
                import urllib3

                self._http = urllib3.PoolManager(
                    num_pools=4,
                    maxsize=max(self._jobs * 2, 32),  # one kept connection per worker
                    retries=urllib3.Retry(
                        total=3,
                        connect=3,
                        read=0,
                        redirect=0,
                        status=0,
                        respect_retry_after_header=False,  # our loop waits and asks again
                    ),
                    timeout=urllib3.Timeout(connect=_TIMEOUT[0], read=_TIMEOUT[1]),
                    blocksize=CHUNK_SIZE,  # a PUT body is read 1 MiB at a time, not 16 KiB
                )
            return self._http

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        import urllib3

        try:
            return self._pool().request(method, url, redirect=False, **kw)
        except urllib3.exceptions.HTTPError as exc:
            # neither the query (a pre-signed URL's signature) nor urllib3's text, which holds it
            where = urlsplit(url)._replace(query="", fragment="").geturl()
            reason = getattr(exc, "reason", None) or type(exc).__name__
            if isinstance(reason, Exception):
                reason = str(reason).split(": ", 1)[-1] if ": " in str(reason) else str(reason)
            raise RemoteError(f"remote {self.spec.name}: {method} {where}: {reason}") from None

    @staticmethod
    def _again(attempt: int, status: int, headers: Any) -> bool:
        """Whether an answer `status` is worth asking again; if so, wait first."""
        if status not in _TRANSIENT or attempt >= _RETRIES:
            return False
        delay = 0.25 * 2**attempt
        after = str((headers or {}).get("Retry-After", "")).strip()
        if after.isdigit():
            delay = min(float(after), 30.0)
        time.sleep(delay)
        return True

    def _fail(self, what: str, resp: Any) -> RemoteError:
        text = ""
        try:
            doc = json.loads(resp.data[:4096]) if resp.data else None
            if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                text = f": {doc['message'][:200]}"
        except ValueError:
            pass
        hint = ""
        if resp.status in (401, 403):
            hint = f" (credentials: {AUTH_ENV}, ~/.netrc or a git credential helper)"
        return RemoteError(
            f"remote {self.spec.name}: the LFS server answered {resp.status} to {what}{text}{hint}"
        )

    # -- credentials ------------------------------------------------------------------------

    def _authorization(self) -> str | None:
        """The endpoint's Authorization header: environment, then ~/.netrc (never stored)."""
        if self._auth is not None:
            return self._auth
        return os.environ.get(AUTH_ENV) or netrc_authorization(self._host)

    def _credential(self, verb: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """`git credential VERB` for the endpoint's host; {} when git has none (no prompt)."""
        return git_credential(verb, {"protocol": self._scheme, "host": self._host, **(extra or {})})

    def _authorize_after_401(self) -> bool:
        """Ask git's credential helpers once; True when they gave a username and password."""
        with self._lock:
            if self._auth_tried:
                return False
            self._auth_tried = True
            cred = self._credential("fill")
            if "username" not in cred or "password" not in cred:
                return False
            self._auth = basic_authorization(cred["username"], cred["password"])
            self._filled = cred
            return True

    # -- the batch API ----------------------------------------------------------------------

    def _batch(self, operation: str, objects: dict[str, int]) -> dict[str, Any]:
        body = json.dumps(
            {
                "operation": operation,
                "transfers": ["basic"],
                "objects": [{"oid": d, "size": n} for d, n in objects.items()],
                "hash_algo": "sha256",
            }
        ).encode()
        retried_auth, attempt = False, 0
        while True:
            headers = {"Accept": _MEDIA, "Content-Type": _MEDIA}
            auth = self._authorization()
            if auth:
                headers["Authorization"] = auth
            with self._lock:
                self.requests += 1
            resp = self._request(
                "POST", f"{self.endpoint}/objects/batch", body=body, headers=headers,
                preload_content=False,
            )  # fmt: skip
            try:
                data = resp.read(_RESPONSE_LIMIT + 1)
            finally:
                resp.release_conn()
            if resp.status == 401 and not retried_auth and self._authorize_after_401():
                retried_auth = True
                continue
            if self._again(attempt, resp.status, resp.headers):
                attempt += 1
                continue
            break
        if 200 <= resp.status < 300 and self._filled:
            self._credential("approve", self._filled)
            self._filled = None
        if resp.status in (404, 422) and operation == "download":
            # giftless answers 404 when none of the objects exists, 422 when none has the
            # size asked for: none of them can be downloaded
            return {}
        if not 200 <= resp.status < 300:
            raise self._fail(f"a batch {operation} request", _Body(resp.status, data))
        if len(data) > _RESPONSE_LIMIT:
            raise RemoteError(f"remote {self.spec.name}: the LFS batch response is too large")
        try:
            doc = json.loads(data)
        except ValueError:
            raise RemoteError(
                f"remote {self.spec.name}: the LFS batch response is not JSON"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
            raise RemoteError(f"remote {self.spec.name}: malformed LFS batch response")
        if doc.get("transfer", "basic") != "basic":
            raise RemoteError(
                f"remote {self.spec.name}: the LFS server chose a transfer mreg lacks"
            )
        return {
            str(o["oid"]): o
            for o in doc["objects"]
            if isinstance(o, dict)
            and o.get("oid") in objects
            and o.get("size") == objects[o["oid"]]
        }

    def ask(self, operation: str, objects: dict[str, int]) -> dict[str, int]:
        """Batch-request `objects` (100 a request, `jobs` at once); return those the server has.

        `download`: the objects with a download action. `upload`: the objects the server
        needs no upload of (no action). The actions are kept for `upload` and `download`.
        """
        for d in objects:
            if not is_digest(d):
                raise InvalidInput(f"not an object id: {d!r}")
        items = sorted(objects.items())
        chunks = [dict(items[i : i + BATCH_MAX]) for i in range(0, len(items), BATCH_MAX)]
        if len(chunks) > 1:  # the requests in parallel, as the transfers (`jobs` at a time)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self._jobs, len(chunks))) as pool:
                answers = list(pool.map(lambda c: self._batch(operation, c), chunks))
        else:
            answers = [self._batch(operation, c) for c in chunks]
        present: dict[str, int] = {}
        for chunk, found in zip(chunks, answers, strict=True):
            now = time.monotonic()
            with self._lock:
                for oid, size in chunk.items():
                    obj = found.get(oid)
                    actions = obj.get("actions") if isinstance(obj, dict) else None
                    actions = actions if isinstance(actions, dict) else {}
                    bad = obj is None or isinstance(obj.get("error"), dict)
                    if operation == "download":
                        act = None if bad else _action(actions.get("download"), now)
                        self._actions[("download", oid)] = act
                        if act is not None:
                            present[oid] = size
                    else:
                        if bad:
                            raise RemoteError(
                                f"remote {self.spec.name}: the LFS server refused to take "
                                f"object {oid[:12]}: {_error_text(obj)}"
                            )
                        up = _action(actions.get("upload"), now)
                        self._actions[("upload", oid)] = up
                        self._actions[("verify", oid)] = _action(actions.get("verify"), now)
                        if up is None:
                            present[oid] = size
        return present

    def _action_for(self, operation: str, oid: str, size: int) -> _Action | None:
        """The kept action (None: none needed), or one asked for again when unknown or stale.

        A `verify` action comes with the `upload` one: asked for again, it is the upload
        request's (a server that now has the object gives none: nothing to verify).
        """
        request = "upload" if operation == "verify" else operation
        with self._lock:
            known = (request, oid) in self._actions
            act = self._actions.get((operation, oid))
        if known and (act is None or act.fresh):
            return act
        self.ask(request, {oid: size})
        with self._lock:
            return self._actions.get((operation, oid))

    # -- transfers --------------------------------------------------------------------------

    def _headers(self, act: _Action) -> dict[str, str]:
        headers = dict(act.header)
        same = urlsplit(act.href).netloc == self._host
        if same and not any(k.lower() == "authorization" for k in headers):
            auth = self._authorization()
            if auth:
                headers["Authorization"] = auth
        return headers

    def upload(self, oid: str, size: int, src: Path, tick: Callable[[int], None]) -> int:
        """Send one object unless the server has it; return the bytes sent (0 if it had it)."""
        act = self._action_for("upload", oid, size)
        if act is None:
            tick(size)
            return 0
        headers = self._headers(act)
        headers.update({"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        reported = 0  # bytes already counted in the progress: a retry sends them again

        def progress(position: int) -> None:
            nonlocal reported
            if position > reported:
                tick(position - reported)
                reported = position

        attempt = 0
        while True:
            with open(src, "rb") as fh:
                body = _Sending(fh, oid, size, progress)
                if size == 0:
                    body.read()  # the empty object's hash is checked too
                resp = self._request(
                    "PUT", act.href, body=body if size else b"", headers=headers,
                    preload_content=True,
                )  # fmt: skip
            if not self._again(attempt, resp.status, resp.headers):
                break
            attempt += 1
        if not 200 <= resp.status < 300:
            raise self._fail(f"the upload of object {oid[:12]}", resp)
        with self._lock:
            self._actions[("upload", oid)] = None  # sent: the server has it now
        verify = self._action_for("verify", oid, size)
        if verify is not None:
            headers = {**self._headers(verify), "Accept": _MEDIA, "Content-Type": _MEDIA}
            resp = self._request(
                "POST", verify.href, body=json.dumps({"oid": oid, "size": size}).encode(),
                headers=headers,
            )  # fmt: skip
            if not 200 <= resp.status < 300:
                raise IntegrityError(
                    f"remote {self.spec.name}: the LFS server did not verify object {oid[:12]} "
                    f"after its upload (HTTP {resp.status})"
                )
        return size

    def download(
        self, oid: str, size: int, fd: int, sink: Callable[[Any, int, bytes], int]
    ) -> tuple[str, int]:
        """Stream one object into `fd` through `sink(hash, fd, bytes)`; return (sha256, size).

        At most `size` + 1 bytes are read: the caller rejects an object of another size or
        hash. FileNotFoundError when the server does not have it.
        """
        act = self._action_for("download", oid, size)
        if act is None:
            raise FileNotFoundError(oid)
        attempt = 0
        while True:
            resp = self._request("GET", act.href, headers=self._headers(act), preload_content=False)
            if resp.status not in _TRANSIENT or attempt >= _RETRIES:
                break
            resp.drain_conn()
            resp.release_conn()
            self._again(attempt, resp.status, resp.headers)
            attempt += 1
        h, written = hashlib.sha256(), 0
        try:
            if not 200 <= resp.status < 300:
                failed = _Body(resp.status, resp.read(4096))
                raise self._fail(f"the download of object {oid[:12]}", failed)
            while written <= size and (chunk := resp.read(min(CHUNK_SIZE, size + 1 - written))):
                written += sink(h, fd, chunk)
        finally:
            resp.release_conn()
        return h.hexdigest(), written

    def prepare(self, operation: str, objects: dict[str, int]) -> None:
        """Ask for the actions of many objects at once (one request per 100) before a transfer."""
        with self._lock:
            todo = {d: n for d, n in objects.items() if (operation, d) not in self._actions}
        if todo:
            self.ask(operation, todo)

    def close(self) -> None:
        """Close the kept-alive connections."""
        if self._http is not None:
            self._http.clear()


@dataclass(frozen=True)
class _Body:
    status: int
    data: bytes


def _error_text(obj: Any) -> str:
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return f"{err.get('code')} {str(err.get('message'))[:200]}"
    return "missing from the batch response"
