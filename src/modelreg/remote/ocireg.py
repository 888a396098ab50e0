"""A small client of the OCI distribution API, for the `oci://` remote (issue 20).

What mreg asks of a registry (distribution-spec v1.1, which CNCF distribution, Harbor,
Zot, GHCR, ECR... serve): HEAD and GET of blobs and manifests, blob uploads (POST, then one
PUT for a blob up to the part size, else PATCHes of one part each, streamed from the file,
then a PUT with the digest: the registry refuses bytes that do not hash to it), PUT of a
manifest under a tag, the tag list and the catalog with `Link` pagination. Authentication
follows the registry's `WWW-Authenticate` challenge: Basic with the Docker config's
credentials, or Bearer (the distribution token flow: GET the realm with `service` and
`scope`, Basic-authenticated when there are credentials, anonymous otherwise).

The HTTP library is `requests` (the `oci` extra), imported when a registry is first asked.
Every body read is bounded before memory is spent on it; blobs are streamed to the caller.
Storage layer (docs/architecture.md).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.remote.driver import MissingDriver, RemoteError
from modelreg.remote.ocicreds import Credentials, find_credentials
from modelreg.remote.spec import RemoteSpec

if TYPE_CHECKING:
    import requests

__all__ = ["MANIFEST_ACCEPT", "Registry", "RegistryURL", "Unreachable", "check_repository"]

MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")  # distribution-spec
_MAX_SMALL = 16 * 1024 * 1024  # a manifest, a tag list page, an error, a token answer
_TIMEOUT = (30.0, 300.0)  # connect, read
_PAGE = 1000


def check_repository(path: str, what: str) -> str:
    """`path` if it is a valid repository name (lowercase components, `/`-separated)."""
    if not path or len(path) > 255 or not all(_COMPONENT.fullmatch(c) for c in path.split("/")):
        raise InvalidInput(
            f"{what} {path!r} is not a valid OCI repository name (lowercase letters and "
            "digits, separated by one '.', '_', '__' or dashes, components joined by '/')"
        )
    return path


@dataclass(frozen=True)
class RegistryURL:
    """`oci://HOST[:PORT]/REPOSITORY`: where the repositories of a remote are."""

    scheme: str
    host: str
    repository: str

    @classmethod
    def parse(cls, spec: RemoteSpec) -> RegistryURL:
        """Parse a remote's URL; plain HTTP for loopback hosts or with `insecure=true`."""
        parts = urlsplit(spec.url)
        if parts.scheme != "oci" or not parts.netloc or parts.query or parts.fragment:
            raise InvalidInput(f"invalid OCI remote URL {spec.url!r}: expected oci://HOST/REPO")
        if "@" in parts.netloc:
            raise InvalidInput(
                "an oci:// URL holds no user: credentials come from the Docker config file"
            )
        repo = check_repository(parts.path.strip("/"), "the remote's repository")
        insecure = spec.options.get("insecure", False)
        if not isinstance(insecure, bool):
            raise InvalidInput("option insecure must be true or false")
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        return cls("http" if insecure or local else "https", parts.netloc, repo)


class Unreachable(RemoteError):
    """The registry (or its token service) could not be reached: exit 1."""


def _requests() -> Any:
    try:
        import requests
    except ImportError:  # pragma: no cover (the oci extra is installed where tests run)
        raise MissingDriver(
            "the oci:// remote needs the HTTP library requests: pip install 'modelreg[oci]'"
        ) from None
    return requests


class _Limited:
    """At most `limit` bytes of `raw`, read with `readinto` (what `copy_and_hash` reads)."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw, self._left = raw, limit

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        try:
            n = int(self._raw.readinto(memoryview(b)[: self._left]))
        except OSError as exc:  # urllib3's errors are OSErrors or wrap them
            raise RemoteError(f"the blob stopped while it was read: {exc}") from None
        self._left -= n
        return n


class _Window(io.RawIOBase):
    """`length` bytes of `fh` from `start`, read in place (a PATCH part, never in memory)."""

    def __init__(self, fh: IO[bytes], start: int, length: int) -> None:
        self._fh, self._start, self._length, self._pos = fh, start, length, 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        n = left if n is None or n < 0 else min(n, left)
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:  # pragma: no cover (http.client calls read)
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _error_code(resp: requests.Response) -> str:
    """The registry's error code (`MANIFEST_UNKNOWN`...) from a small JSON error body."""
    try:
        body = resp.raw.read(64 * 1024, decode_content=True) if resp.raw else b""
        doc = json.loads(body)
        errors = doc.get("errors") if isinstance(doc, dict) else None
        return str(errors[0].get("code", "")) if errors else ""
    except (ValueError, OSError, AttributeError, TypeError, IndexError):
        return ""


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Registry:
    """One registry, for one command: connection pool, credentials, tokens (thread-safe)."""

    def __init__(self, spec: RemoteSpec, jobs: int = 8) -> None:
        self.url = RegistryURL.parse(spec)
        self.base = f"{self.url.scheme}://{self.url.host}"
        self._creds: Credentials | None = None
        self._creds_read = False
        self._auth: dict[str, str] = {}  # repository ("" for the catalog) -> Authorization
        self._tried: dict[str, set[str]] = {}  # repository -> scopes asked for, or "basic"
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()
        requests = _requests()
        self._http = requests.Session()
        self._http.trust_env = False  # no ~/.netrc credentials nor proxies for the registry
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(4, jobs))
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- requests and the auth challenge --------------------------------------------------

    def _credentials(self) -> Credentials | None:
        with self._lock:
            if not self._creds_read:
                self._creds = find_credentials(self.url.host)
                self._creds_read = True
            return self._creds

    def _authorize(self, repo: str, header: str, sent: str | None) -> bool:
        with self._auth_lock:  # one token request at a time; others wait and reuse it
            with self._lock:
                if self._auth.get(repo) != sent:
                    return True  # another thread has answered a challenge meanwhile
            return self._answer(repo, header)

    def _answer(self, repo: str, header: str) -> bool:
        """Answer a 401's challenge; False when there is nothing more to try.

        A Bearer challenge names the scope the request needs (`repository:R:pull`, then
        `...:pull,push` for an upload): each new one is asked for together with those
        already granted, so one token covers them all; a scope asked for before and still
        refused is a refusal.
        """
        requests = _requests()
        scheme, params = _challenge(header)
        creds = self._credentials()
        if scheme == "basic":
            with self._lock:
                if creds is None or "basic" in self._tried.setdefault(repo, set()):
                    return False
                self._tried[repo].add("basic")
                self._auth[repo] = _basic(creds)
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        scope = params.get("scope") or f"repository:{repo}:pull,push"
        with self._lock:
            tried = self._tried.setdefault(repo, set())
            if scope in tried:
                return False
            tried.add(scope)
            scopes = sorted(s for s in tried if s != "basic")
        query = {"service": params.get("service", ""), "scope": scopes}
        try:
            resp = self._http.get(
                params["realm"], params=query, auth=creds, timeout=_TIMEOUT, stream=True
            )
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach the token service of {self.url.host}: {exc}") from None
        with resp:
            if resp.status_code != 200:
                return False
            doc = _json(resp, f"the token service of {self.url.host}")
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            return False
        with self._lock:
            self._auth[repo] = f"Bearer {token}"
        return True

    def request(
        self,
        method: str,
        url: str,
        repo: str,
        *,
        ok: tuple[int, ...] = (200,),
        missing: tuple[int, ...] = (),
        body: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response | None:
        """One call, authenticated as the registry asks; None for a `missing` status.

        `body` makes the request body (again after a 401, so a stream is re-read).
        """
        requests = _requests()
        full = url if "://" in url else urljoin(self.base, url)
        for _ in range(3):
            headers = dict(kwargs.pop("headers", None) or {})
            kwargs["headers"] = headers
            with self._lock:
                auth = self._auth.get(repo)
            if auth and urlsplit(full).netloc == self.url.host:  # never to another host
                headers["Authorization"] = auth
            try:
                resp = self._http.request(
                    method, full, data=body() if body else None, timeout=_TIMEOUT, stream=True,
                    allow_redirects=method in ("GET", "HEAD"), **kwargs,
                )  # fmt: skip
            except requests.RequestException as exc:
                raise Unreachable(f"cannot reach the registry {self.url.host}: {exc}") from None
            if resp.status_code == 401:
                header = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                if self._authorize(repo, header, headers.get("Authorization")):
                    continue
                hint = "" if self._credentials() else " (no credentials in the Docker config)"
                raise RemoteError(f"the registry {self.url.host} refused access to {repo}{hint}")
            if resp.status_code in ok:
                return resp  # type: ignore[no-any-return]
            if resp.status_code in missing:
                resp.close()
                return None
            code = _error_code(resp)
            resp.close()
            where = urlsplit(full).path
            raise RemoteError(
                f"the registry {self.url.host} answered {resp.status_code}"
                f"{' ' + code if code else ''} to {method} {where}"
            )
        raise RemoteError(
            f"the registry {self.url.host} refused access to {repo}"
        )  # pragma: no cover

    # -- reading --------------------------------------------------------------------------

    def _pages(self, path: str, repo: str, key: str) -> Iterator[str]:
        url: str | None = f"{path}?n={_PAGE}"
        while url is not None:
            resp = self.request("GET", url, repo, missing=(404,))
            if resp is None:
                return
            with resp:
                doc = _json(resp, f"{self.url.host}{path}")
                items = doc.get(key) or []
                if not isinstance(items, list):
                    raise RemoteError(f"{self.url.host}{path}: {key} is not a list")
                yield from (str(i) for i in items)
                nxt = re.match(r"\s*<([^>]+)>", resp.headers.get("Link", ""))
                url = urljoin(self.base, nxt.group(1)) if nxt else None

    def tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (none when the repository does not exist)."""
        return list(self._pages(f"/v2/{repo}/tags/list", repo, "tags"))

    def catalog(self) -> list[str] | None:
        """Every repository the registry lists (`/v2/_catalog`); None if it lists none to us.

        Registries may refuse the catalog (to this client, or to all); an unreachable
        registry is still an error.
        """
        try:
            return list(self._pages("/v2/_catalog", "", "repositories"))
        except Unreachable:
            raise
        except RemoteError:
            return None

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        """The digest (`sha256:...`) of the manifest `repo:ref`, or None if there is none."""
        headers = {"Accept": MANIFEST_ACCEPT}
        resp = self.request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", repo, missing=(404,), headers=headers
        )
        if resp is None:
            return None
        resp.close()
        digest = resp.headers.get("Docker-Content-Digest")
        if digest is None:  # pragma: no cover (every registry sends it on HEAD)
            digest = self.get_manifest(repo, ref)[1]
        return digest

    def get_manifest(self, repo: str, ref: str, limit: int = _MAX_SMALL) -> tuple[bytes, str]:
        """The manifest `repo:ref`: (its bytes, the digest the registry gives); NotFound."""
        headers = {"Accept": MANIFEST_ACCEPT}
        resp = self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", repo, missing=(404,), headers=headers
        )
        if resp is None:
            raise NotFound(f"{self.url.host}/{repo}: no manifest {ref}")
        with resp:
            data = _bounded(resp, limit, f"{self.url.host}/{repo}:{ref}")
            return data, resp.headers.get("Docker-Content-Digest", "")

    def blob_size(self, repo: str, digest: str) -> int | None:
        """The size of blob `sha256:<digest>` in `repo`, or None if it is not there."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/sha256:{digest}", repo, missing=(404,))
        if resp is None:
            return None
        resp.close()
        try:
            return int(resp.headers.get("Content-Length", "-1"))
        except ValueError:
            return -1

    @contextmanager
    def open_blob(self, repo: str, digest: str, limit: int) -> Iterator[_Limited]:
        """A reader of a blob's bytes (`readinto`), which stops one byte past `limit`."""
        resp = self.request("GET", f"/v2/{repo}/blobs/sha256:{digest}", repo, missing=(404,))
        if resp is None:
            raise NotFound(f"{self.url.host}/{repo}: no blob sha256:{digest[:12]}")
        with resp:
            resp.raw.decode_content = True
            yield _Limited(resp.raw, limit + 1)

    def get_blob(self, repo: str, digest: str, limit: int) -> bytes:
        """A small blob's bytes (at most `limit` + 1: one too many is refused by the caller)."""
        out = bytearray()
        with self.open_blob(repo, digest, limit) as fh:
            buf = bytearray(1 << 16)
            while n := fh.readinto(buf):
                out += buf[:n]
        return bytes(out)

    # -- writing --------------------------------------------------------------------------

    def upload_blob(
        self, repo: str, digest: str, size: int, open_file: Callable[[], IO[bytes]], part: int
    ) -> None:
        """Upload a blob, streamed from `open_file()`; the registry checks its digest."""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo, ok=(202,))
        assert resp is not None
        resp.close()
        location = _location(resp, self.base)
        with open_file() as fh:
            start = 0
            if size > part:  # PATCH one part at a time, each streamed from the file
                while start < size:
                    n = min(part, size - start)
                    headers = {
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + n - 1}",
                        "Content-Length": str(n),
                    }
                    s = start
                    resp = self.request(
                        "PATCH", location, repo, ok=(202,), headers=headers,
                        body=lambda s=s, n=n: _Window(fh, s, n),  # type: ignore[misc]
                    )  # fmt: skip
                    assert resp is not None
                    resp.close()
                    location = _location(resp, self.base)
                    start += n
            n = size - start
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n)}
            sep = "&" if "?" in location else "?"
            resp = self.request(
                "PUT", f"{location}{sep}digest=sha256:{digest}", repo, ok=(201, 400),
                headers=headers, body=lambda: _Window(fh, start, n),
            )  # fmt: skip
            assert resp is not None
            code = _error_code(resp) if resp.status_code == 400 else ""
            resp.close()
            if resp.status_code == 400:
                if code == "DIGEST_INVALID":  # the bytes sent are not the object's
                    raise IntegrityError(
                        f"object {digest[:12]}: the registry found that the bytes sent do not "
                        "hash to it (a damaged local object? run mreg verify); nothing was tagged"
                    )
                raise RemoteError(
                    f"the registry {self.url.host} answered 400 {code} to the upload of "
                    f"sha256:{digest[:12]}"
                )

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        """Put a manifest under `tag`; return the digest the registry gives."""
        resp = self.request(
            "PUT", f"/v2/{repo}/manifests/{tag}", repo, ok=(201,),
            headers={"Content-Type": media_type}, body=lambda: data,
        )  # fmt: skip
        assert resp is not None
        resp.close()
        return str(resp.headers.get("Docker-Content-Digest", ""))


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _location(resp: requests.Response, base: str) -> str:
    location = resp.headers.get("Location")
    if not location:
        raise RemoteError(f"the registry gave no upload location ({resp.status_code})")
    return urljoin(base, location)


def _bounded(resp: requests.Response, limit: int, what: str) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RemoteError(f"{what} is {int(declared):,} bytes, over the {limit:,}-byte limit")
    data = resp.raw.read(limit + 1, decode_content=True)
    if len(data) > limit:
        raise RemoteError(f"{what} is over the {limit:,}-byte limit")
    return bytes(data)


def _json(resp: requests.Response, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(_bounded(resp, _MAX_SMALL, what))
    except (ValueError, RecursionError):
        raise RemoteError(f"{what}: not a JSON answer") from None
    if not isinstance(doc, dict):
        raise RemoteError(f"{what}: not a JSON object")
    return doc
