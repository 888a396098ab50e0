"""`mreg import mlflow`: copy registered models from an MLflow tracking server (issue 20).

mreg talks to the server's REST API over HTTP (no `mlflow` package): registered models
(`registered-models/search|get`), their versions (`model-versions/search`), each version's
run (`runs/get`: params, metrics, tags) and files (`model-versions/get-download-uri`, then
the proxied artifact API `mlflow-artifacts/artifacts`, which `mlflow server` serves unless
started with `--no-serve-artifacts`). docs/import.md has the mapping:

- model `Fraud Detector` -> `fraud-detector`; version `3` -> `3.0.0`, created at its
  `creation_timestamp` by its `user_id` (else the run's), its description as the message;
- the run's params as params; its metrics by split when the name starts with one
  (`test_f1`, `val/auc`, `train.loss` -> `test.f1`, `val.auc`, `train.loss`), else under
  `run`; version tags `KEY=VALUE` as tags (when they make a valid tag), plus `mlflow.run=ID`,
  `mlflow.model=m-...` and `mlflow.stage=STAGE`; the run's `mlflow.source.git.*` tags as the
  code lineage;
- registered-model aliases -> aliases (promoted through the gates and mover policy).

Files are streamed to a staging directory under the store's `tmp/` (bounded reads, sizes
checked against the listing) and registered from there by `register.register`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.handle import StoreHandle
from modelreg.importing.common import (
    ImportItem,
    ImportReport,
    Replay,
    imported_keys,
    is_tag,
    marker,
    staging,
    utc_from_ms,
)
from modelreg.manifest import CodeRef
from modelreg.names import check_alias, check_name, check_path

__all__ = ["import_mlflow", "metric_split", "model_name"]

SOURCE = "mlflow"
MAX_JSON = 64 << 20
"""The largest JSON answer read (bytes): a registry listing, never a model file."""
CHUNK = 1 << 20
SPLITS = {
    "train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test", "eval": "eval", "evaluation": "eval", "dev": "dev",
    "holdout": "holdout",
}  # fmt: skip
"""Metric name prefixes read as splits (`test_f1` is f1 on split test)."""
DEFAULT_SPLIT = "run"
"""The split of a metric whose name names none (`accuracy` -> `run.accuracy`)."""
_SPLIT_RE = re.compile(r"([A-Za-z]+)[_/.-](.+)")
_METRIC_RE = re.compile(r"[A-Za-z0-9_.@-]+")


def model_name(mlflow_name: str) -> str:
    """The mreg name of an MLflow registered model: lowercase, other characters as `-`."""
    text = re.sub(r"[^a-z0-9._-]+", "-", mlflow_name.lower()).strip("-._")[:64]
    return check_name(text.rstrip("-._") or "-")


def metric_split(key: str) -> tuple[str, str] | None:
    """(split, metric) for an MLflow metric name, or None when it cannot be one in mreg."""
    m = _SPLIT_RE.fullmatch(key)
    split, name = (SPLITS[m[1].lower()], m[2]) if m and m[1].lower() in SPLITS else (None, key)
    name = name.replace("/", ".")
    if not _METRIC_RE.fullmatch(name):
        return None
    return split or DEFAULT_SPLIT, name


def _location(uri: str) -> str:
    """The tracking URI as recorded: no user, password, query or fragment."""
    u = urllib.parse.urlsplit(uri)
    host = u.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if u.port:
        netloc += f":{u.port}"
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path.rstrip("/"), "", ""))


class _Rest:
    """A small client of the MLflow REST API: bounded JSON reads, streamed downloads."""

    def __init__(self, uri: str, timeout: float) -> None:
        u = urllib.parse.urlsplit(uri)
        self.base = _location(uri)
        self.timeout = timeout
        self.headers = {"User-Agent": "mreg-import"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = u.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
        password = u.password or os.environ.get("MLFLOW_TRACKING_PASSWORD") or ""
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user:
            pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    def _open(self, path: str, params: dict[str, Any] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        req = urllib.request.Request(f"{self.base}/{path}{query}", headers=self.headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code == 404:
                raise NotFound(f"MLflow at {self.base}: {detail}") from None
            raise MregError(f"MLflow at {self.base} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MregError(f"cannot reach MLflow at {self.base}: {reason}") from None

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """GET `api/2.0/...` and parse the JSON answer (at most MAX_JSON bytes)."""
        path = endpoint
        with self._open(path, params) as resp:
            data = resp.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise MregError(f"MLflow at {self.base}: answer to {path} over {MAX_JSON} bytes")
        try:
            doc = json.loads(data or b"{}")
        except ValueError:
            raise MregError(f"MLflow at {self.base}: {path} did not answer JSON") from None
        if not isinstance(doc, dict):
            raise MregError(f"MLflow at {self.base}: {path} answered {type(doc).__name__}")
        return doc

    def pages(self, endpoint: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing (`next_page_token`)."""
        token = None
        while True:
            doc = self.get(endpoint, **params, **({"page_token": token} if token else {}))
            for item in doc.get(key) or ():
                if isinstance(item, dict):
                    yield item
            token = doc.get("next_page_token")
            if not token:
                return

    def download(self, path: str, dst: Path, size: int | None) -> None:
        """Stream one artifact into `dst`, refusing more bytes than the listing said."""
        quoted = urllib.parse.quote(path)
        got = 0
        with (
            self._open(f"api/2.0/mlflow-artifacts/artifacts/{quoted}") as resp,
            open(dst, "xb") as out,
        ):
            while chunk := resp.read(CHUNK):
                got += len(chunk)
                if size is not None and got > size:
                    raise MregError(f"{path}: the server sent more than the {size} bytes listed")
                out.write(chunk)
        if size is not None and got != size:
            raise MregError(f"{path}: received {got} bytes, the listing said {size}")


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(exc.read(65536))
        return str(doc.get("message") or doc.get("error_code") or exc.reason)[:300]
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _number(version: Any) -> int:
    """An MLflow version number (a positive integer, sent as text)."""
    if not (isinstance(version, (str, int)) and str(version).isdigit() and int(version) > 0):
        raise MregError(f"MLflow answered a version that is not a number: {version!r:.40}")
    return int(version)


def _pairs(items: Any) -> dict[str, str]:
    """MLflow's `[{key, value}]` lists as a dict."""
    if not isinstance(items, list):
        return {}
    return {
        str(i["key"]): str(i.get("value", "")) for i in items if isinstance(i, dict) and "key" in i
    }


def _dict(value: Any) -> dict[str, Any]:
    """`value` when the server answered a JSON object there, else an empty one."""
    return value if isinstance(value, dict) else {}


def import_mlflow(
    store: StoreHandle,
    tracking_uri: str | None = None,
    models: Sequence[str] = (),
    *,
    dry_run: bool = False,
    timeout: float = 30.0,
) -> ImportReport:
    """Copy the registered models (all, or `models`) of an MLflow tracking server.

    Idempotent: what an earlier import copied is reported as `exists`; aliases are moved
    where MLflow's differ from the store's.

    Raises:
        InvalidInput: no tracking URI, or one that is not http(s) (exit 2).
        NotFound: a model named in `models` is not in the registry (exit 2).
        MregError: the server cannot be reached or answers an error (exit 1).
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        raise InvalidInput("give --tracking-uri http://HOST:PORT or set MLFLOW_TRACKING_URI")
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme not in ("http", "https"):
        raise InvalidInput(
            f"tracking URI of scheme {scheme or 'file'!r}: mreg imports from an MLflow tracking "
            "server over HTTP; run `mlflow server --backend-store-uri URI` and give its http:// URL"
        )
    rest = _Rest(uri, timeout)
    if models:
        found = [
            _dict(rest.get("api/2.0/mlflow/registered-models/get", name=m).get("registered_model"))
            for m in models
        ]
    else:
        found = list(
            rest.pages("api/2.0/mlflow/registered-models/search", "registered_models",
                       max_results=1000)
        )  # fmt: skip
    done = imported_keys(store, SOURCE)
    items: list[ImportItem] = []
    names: dict[str, str] = {}
    for rm in sorted((r for r in found if r.get("name")), key=lambda r: str(r.get("name"))):
        items.extend(_import_model(store, rest, rm, done, names, dry_run))
    return ImportReport(SOURCE, rest.base, dry_run, tuple(items))


def _import_model(
    store: StoreHandle,
    rest: _Rest,
    rm: dict[str, Any],
    done: set[str],
    names: dict[str, str],
    dry_run: bool,
) -> list[ImportItem]:
    source = str(rm.get("name"))
    try:
        name = model_name(source)
    except InvalidInput as exc:
        return [ImportItem("version", source, source, "failed", reason=str(exc))]
    if names.setdefault(name, source) != source:
        why = f"MLflow models {names[name]!r} and {source!r} both map to {name!r}"
        return [ImportItem("version", name, source, "failed", reason=why)]
    quote = '"' if "'" in source else "'"
    versions = sorted(
        rest.pages("api/2.0/mlflow/model-versions/search", "model_versions",
                   filter=f"name={quote}{source}{quote}", max_results=1000),
        key=lambda v: _number(v.get("version")),
    )  # fmt: skip
    items = [_import_version(store, rest, name, mv, done, dry_run) for mv in versions]
    present = {i.version for i in items if i.status in ("imported", "exists", "planned")}
    aliases = [a for a in rm.get("aliases") or () if isinstance(a, dict)]
    for a in sorted(aliases, key=lambda a: str(a.get("alias"))):
        items.append(_import_alias(store, name, source, a, present, dry_run, rest.base))
    return items


def _import_version(
    store: StoreHandle, rest: _Rest, name: str, mv: dict[str, Any], done: set[str], dry: bool
) -> ImportItem:
    key = f"{mv.get('name')}/{mv.get('version')}"
    version = f"{_number(mv.get('version'))}.0.0"

    def item(status: str, reason: str = "") -> ImportItem:
        return ImportItem("version", name, key, status, version=version, reason=reason)

    if key in done:
        return item("exists")
    if mv.get("status", "READY") != "READY":
        return item("skipped", f"MLflow status {mv.get('status')}: {mv.get('status_message')}")
    if store.manifest_path(name, version).exists():
        return item("failed", f"{name}@{version} exists and was not imported from {key}")
    uri = rest.get(
        "api/2.0/mlflow/model-versions/get-download-uri",
        name=mv.get("name"),
        version=mv.get("version"),
    ).get("artifact_uri", "")
    parts = urllib.parse.urlsplit(str(uri))
    if parts.scheme != "mlflow-artifacts":
        return item(
            "skipped",
            f"its files are at {parts.scheme or 'a local path'}:, which the server does not "
            "proxy (start mlflow server with --serve-artifacts --artifacts-destination)",
        )
    if dry:
        return item("planned")
    try:
        with staging(store) as tmp:
            count = _download_tree(rest, parts.path.strip("/"), tmp)
            if not count:
                return item("skipped", f"no files at {uri}")
            _register(store, rest, name, version, mv, key, tmp)
    except MregError as exc:
        return item("failed", str(exc))
    return item("imported")


def _download_tree(rest: _Rest, root: str, dst: Path) -> int:
    """Download every file under the artifact path `root` into `dst`; the number of files."""
    count = 0
    todo = [""]
    while todo:
        rel = todo.pop()
        path = f"{root}/{rel}".rstrip("/")
        listing = rest.get("api/2.0/mlflow-artifacts/artifacts", path=path)
        for f in listing.get("files") or ():
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise MregError(f"MLflow at {rest.base}: a malformed listing of {path}")
            sub = f"{rel}/{f['path']}".lstrip("/")
            check_path(sub, "artifact path")
            if f.get("is_dir"):
                todo.append(sub)
                continue
            (dst / sub).parent.mkdir(parents=True, exist_ok=True)
            size = f.get("file_size")
            known = int(size) if isinstance(size, (int, str)) and str(size).isdigit() else None
            rest.download(f"{root}/{sub}", dst / sub, known)
            count += 1
    return count


def _register(
    store: StoreHandle,
    rest: _Rest,
    name: str,
    version: str,
    mv: dict[str, Any],
    key: str,
    files: Path,
) -> None:
    from modelreg.register import register

    run: dict[str, Any] = {}
    if mv.get("run_id"):
        try:
            run = _dict(rest.get("api/2.0/mlflow/runs/get", run_id=mv["run_id"]).get("run"))
        except NotFound:  # a deleted run: the version still has its files
            run = {}
    data = _dict(run.get("data"))
    run_tags = _pairs(data.get("tags"))
    metrics: dict[str, dict[str, float]] = {}
    for m in data.get("metrics") or ():
        if not isinstance(m, dict):
            continue
        where = metric_split(str(m.get("key")))
        value = m.get("value")
        if where and isinstance(value, (int, float)) and math.isfinite(value):
            metrics.setdefault(where[0], {})[where[1]] = float(value)
    tags = [f"{k}={v}" for k, v in _pairs(mv.get("tags")).items()]
    tags.append(f"mlflow.run={mv['run_id']}" if mv.get("run_id") else "")
    src = str(mv.get("source") or "")
    if src.startswith("models:/m-"):
        tags.append(f"mlflow.model={src[len('models:/') :]}")
    if mv.get("current_stage") not in (None, "", "None"):
        tags.append(f"mlflow.stage={mv['current_stage']}")
    valid = [t for t in tags if t and is_tag(t)]
    commit = run_tags.get("mlflow.source.git.commit", "")
    code = (
        CodeRef(
            run_tags.get("mlflow.source.git.repoURL") or run_tags.get("mlflow.source.name", ""),
            commit,
            run_tags.get("mlflow.source.git.branch") or None,
            False,
        )
        if re.fullmatch(r"[0-9a-f]{40}", commit)
        else None
    )
    author = str(mv.get("user_id") or _dict(run.get("info")).get("user_id") or "mlflow")
    when = utc_from_ms(mv.get("creation_timestamp") or 0)
    replay = Replay(store, when, marker(SOURCE, key, rest.base, store.now()))
    register(
        replay, name, [files], version=version, params=_pairs(data.get("params")),
        metrics=metrics, code=code, detect_code=False, message=str(mv.get("description") or ""),
        tags=valid, author=author,
    )  # fmt: skip


def _import_alias(
    store: StoreHandle,
    name: str,
    source: str,
    a: dict[str, Any],
    present: set[str | None],
    dry: bool,
    location: str,
) -> ImportItem:
    from modelreg.aliases import promote
    from modelreg.refs import read_alias

    given = str(a.get("alias"))
    version = f"{_number(a.get('version'))}.0.0"
    key = f"{source}@{given}"
    alias = given.lower().replace(".", "-")

    def item(status: str, reason: str = "") -> ImportItem:
        return ImportItem("alias", name, key, status, version, alias, reason)

    try:
        check_alias(alias)
    except InvalidInput as exc:
        return ImportItem("alias", name, key, "skipped", version, None, str(exc))
    if version not in present:
        return item("skipped", f"version {version} was not imported")
    current = read_alias(store, name, alias)
    if current is not None and current.version == version:
        return item("exists")
    if dry:
        return item("planned")
    mark = marker(SOURCE, f"{key}={a.get('version')}", location, store.now())
    replay = Replay(store, store.clock(), mark)
    try:
        promote(
            replay, f"{name}@{version}", alias,
            reason=f"imported from MLflow: alias {given} of {source} is version {a.get('version')}",
        )  # fmt: skip
    except MregError as exc:
        return item("failed", str(exc))
    return item("imported")
