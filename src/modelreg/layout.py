"""The store's layout: every directory name and relative path of `.modelreg/`, spelled once.

The on-disk contract is docs/store-format.md::

    .modelreg/
      config.yaml                       format version, promotion gates, remotes
      policy.yaml                       the policy that travels: gates, trusted keys, movers
      objects/ab/<sha256>               artifacts, content-addressed, read-only
      models/NAME/versions/V.yaml       immutable version manifests
      models/NAME/aliases/A.yaml        alias refs: current version, generation, history
      models/NAME/state/V.yaml          mutable per-version state: tags, deprecation
      models/NAME/signatures/V/<sha256>.sig   OMS signatures of a version, content-addressed
      models/NAME/tombstones/V.yaml     immutable record of a deleted version (issue 19)
      releases/NAME.yaml                rollout manifests
      metrics/NAME/...                  what routers recorded (serving/metrics.py's format)
      samples/NAME/V/<proc>-<window>.jsonl   requests routers sampled (serving/capture.py, issue 21)
      exports/<sha256>.yaml             the record of a `mreg data export` (exportrecords.py)
      audit/log.jsonl, audit/head.json  hash-chained audit trail and its head
      remotes/NAME/                     what this store tracks of each remote
      hooks/NAME.json                   each webhook's delivery cursor (local, never pushed)
      locks/store.lock                  the write lock
      cache/versions/<id>/              versions materialised for routers (serving)
      tmp/                              staging for objects

This module is the base layer (docs/architecture.md): it knows names and paths and the one
walk that finds a store, and imports nothing of mreg but `names` and `errors`. Paths are
relative POSIX strings (`rel_*`, what a remote mirrors) or `Path`s under a root (`*_path`);
names and versions are validated before they are joined.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modelreg.errors import InvalidInput
from modelreg.names import Version, check_alias, check_name

__all__ = [
    "ALIASES",
    "ANALYSIS",
    "AUDIT_HEAD",
    "AUDIT_LOG",
    "CACHE",
    "CONFIG",
    "DIRNAME",
    "EXPORTS",
    "HOOKS",
    "HOOKS_LOCK",
    "INDEX",
    "INDEX_MARK",
    "LOCK",
    "LOCKS",
    "METRICS",
    "MODELS",
    "OBJECTS",
    "POLICY",
    "RELEASES",
    "REMOTES",
    "SAMPLES",
    "SIGNATURES",
    "SIGNATURE_SUFFIX",
    "STATE",
    "SUBDIRS",
    "TMP",
    "TOMBSTONES",
    "VERSIONS",
    "alias_path",
    "aliases_dir",
    "analysis_log",
    "export_record_path",
    "exports_dir",
    "find_root",
    "hook_state",
    "manifest_path",
    "metrics_dir",
    "model_dir",
    "object_rel",
    "policy_path",
    "rel_alias",
    "rel_manifest",
    "rel_release",
    "rel_signature",
    "rel_signatures",
    "rel_state",
    "rel_tombstone",
    "rel_versions",
    "release_path",
    "releases_dir",
    "remote_dir",
    "samples_dir",
    "signatures_dir",
    "state_dir",
    "state_path",
    "store_root",
    "target_state",
    "tombstone_path",
    "tombstones_dir",
    "version_cache",
    "versions_dir",
    "watch_lock",
]

DIRNAME = ".modelreg"
CONFIG = "config.yaml"
POLICY = "policy.yaml"
"""The policy (issue 19): a ref at the store's top, pushed and pulled."""
OBJECTS = "objects"
MODELS = "models"
RELEASES = "releases"
METRICS = "metrics"
ANALYSIS = "analysis"
SAMPLES = "samples"
"""Requests sampled by routers, per model and version (issue 21)."""
EXPORTS = "exports"
"""The records of `mreg data export`, named by the export's SHA-256 (issue 21)."""
TARGETS = "targets"
INDEX = "index.sqlite"
"""The derived index (issue 18): rebuilt from the files when missing; never pushed."""
INDEX_MARK = "index.dirty"
"""Present while a write is in progress or after one was cut short: the index rescans."""
CACHE = "cache"
VERSIONS = "versions"
ALIASES = "aliases"
STATE = "state"
SIGNATURES = "signatures"
SIGNATURE_SUFFIX = ".sig"
TOMBSTONES = "tombstones"
"""Where a model keeps the tombstones of its deleted versions (issue 19: deletion, audited)."""
LOCKS = "locks"
REMOTES = "remotes"
TMP = "tmp"
LOCK = "locks/store.lock"
HOOKS = "hooks"
HOOKS_LOCK = "locks/hooks.lock"
"""Held by the one process delivering webhooks; commands skip delivery while it is taken."""
AUDIT_LOG = "audit/log.jsonl"
AUDIT_HEAD = "audit/head.json"
_DIGEST = re.compile(r"[0-9a-f]{64}")
SUBDIRS = (OBJECTS, MODELS, "audit", LOCKS, TMP)
"""The directories `mreg init` creates."""


# -- relative paths (a remote mirrors them) -----------------------------------------------------


def _model_rel(name: str) -> str:
    return f"{MODELS}/{check_name(name)}"


def rel_versions(name: str) -> str:
    """`models/NAME/versions`: where a model's manifests are."""
    return f"{_model_rel(name)}/{VERSIONS}"


def rel_manifest(name: str, version: str) -> str:
    """`models/NAME/versions/V.yaml` (`version` must already be validated)."""
    return f"{rel_versions(name)}/{version}.yaml"


def rel_alias(name: str, alias: str) -> str:
    """`models/NAME/aliases/A.yaml`."""
    return f"{_model_rel(name)}/{ALIASES}/{check_alias(alias)}.yaml"


def rel_state(name: str, version: str) -> str:
    """`models/NAME/state/V.yaml` (`version` must already be validated)."""
    return f"{_model_rel(name)}/{STATE}/{version}.yaml"


def rel_signatures(name: str, version: str) -> str:
    """`models/NAME/signatures/V`: a version's signatures (`version` already validated)."""
    return f"{_model_rel(name)}/{SIGNATURES}/{version}"


def rel_signature(name: str, version: str, digest: str) -> str:
    """`models/NAME/signatures/V/<sha256>.sig`: one signature, named by its own digest."""
    return f"{rel_signatures(name, version)}/{digest}{SIGNATURE_SUFFIX}"


def rel_tombstone(name: str, version: str) -> str:
    """`models/NAME/tombstones/V.yaml`: a deleted version's tombstone (`version` validated)."""
    return f"{_model_rel(name)}/{TOMBSTONES}/{version}.yaml"


def rel_release(name: str) -> str:
    """`releases/NAME.yaml` (`releases/team/name.yaml` for a namespaced name)."""
    return f"{RELEASES}/{check_name(name)}.yaml"


def object_rel(digest: str) -> str:
    """`objects/ab/<sha256>` (the digest is the caller's to check)."""
    return f"{OBJECTS}/{digest[:2]}/{digest}"


# -- paths under a store root --------------------------------------------------------------------


def _under(root: Path, rel: str) -> Path:
    return root.joinpath(*rel.split("/"))


def model_dir(root: Path, name: str) -> Path:
    """The directory of a model (two levels for namespaced names)."""
    return _under(root, _model_rel(name))


def manifest_path(root: Path, name: str, version: str) -> Path:
    """Where a version's manifest lives."""
    return _under(root, rel_manifest(name, version))


def alias_path(root: Path, name: str, alias: str) -> Path:
    """Where an alias ref lives."""
    return _under(root, rel_alias(name, alias))


def state_path(root: Path, name: str, version: str) -> Path:
    """Where a version's mutable state (tags, deprecation) lives."""
    return _under(root, rel_state(name, version))


def release_path(root: Path, name: str) -> Path:
    """Where a model's rollout manifest lives."""
    return _under(root, rel_release(name))


def versions_dir(root: Path, name: str) -> Path:
    """A model's manifests (`models/NAME/versions/`)."""
    return model_dir(root, name) / VERSIONS


def aliases_dir(root: Path, name: str) -> Path:
    """A model's alias refs (`models/NAME/aliases/`)."""
    return model_dir(root, name) / ALIASES


def state_dir(root: Path, name: str) -> Path:
    """A model's per-version state files (`models/NAME/state/`)."""
    return model_dir(root, name) / STATE


def signatures_dir(root: Path, name: str, version: str) -> Path:
    """A version's signatures (`models/NAME/signatures/V/`)."""
    return _under(root, rel_signatures(name, version))


def policy_path(root: Path) -> Path:
    """Where the store's policy lives (`policy.yaml`)."""
    return root / POLICY


def tombstone_path(root: Path, name: str, version: str) -> Path:
    """Where a deleted version's tombstone lives (`models/NAME/tombstones/V.yaml`)."""
    return _under(root, rel_tombstone(name, version))


def tombstones_dir(root: Path, name: str) -> Path:
    """A model's tombstones (`models/NAME/tombstones/`)."""
    return model_dir(root, name) / TOMBSTONES


def releases_dir(root: Path) -> Path:
    """Every model's rollout manifest (`releases/`)."""
    return root / RELEASES


def analysis_log(root: Path, name: str, release: int) -> Path:
    """`analysis/NAME/<release>.jsonl`: the judgments `release watch` made of one release."""
    return _under(root, f"{ANALYSIS}/{check_name(name)}/{release}.jsonl")


def target_state(root: Path, name: str) -> Path:
    """`targets/NAME.json`: which generation each release target of a model applied (local)."""
    return _under(root, f"{TARGETS}/{check_name(name)}.json")


def watch_lock(root: Path, name: str) -> Path:
    """The lock one `release watch` of a model holds (`locks/watch-NAME.lock`)."""
    return root / LOCKS / f"watch-{check_name(name).replace('/', '--')}.lock"


def hook_state(root: Path, hook: str) -> Path:
    """`hooks/NAME.json`: a webhook's delivery cursor (the name is checked by `hookspec`)."""
    return root / HOOKS / f"{hook}.json"


def metrics_dir(root: Path, name: str) -> Path:
    """Where routers flush a model's metrics (`metrics/NAME/`)."""
    return _under(root, f"{METRICS}/{check_name(name)}")


def samples_dir(root: Path, name: str, version: str) -> Path:
    """`samples/NAME/V/`: what routers sampled of a version (`version` already validated)."""
    return _under(root, f"{SAMPLES}/{check_name(name)}/{Version.parse(version).text}")


def exports_dir(root: Path) -> Path:
    """`exports/`: the records of data exports."""
    return root / EXPORTS


def export_record_path(root: Path, sha256: str) -> Path:
    """`exports/<sha256>.yaml`: the record of the export whose file has this SHA-256."""
    if not _DIGEST.fullmatch(sha256):
        raise InvalidInput(f"invalid sha256 digest {sha256!r}")
    return root / EXPORTS / f"{sha256}.yaml"


def version_cache(root: Path) -> Path:
    """Where routers materialise versions by default (`cache/versions/`)."""
    return root / CACHE / VERSIONS


def remote_dir(root: Path, remote: str) -> Path:
    """What this store tracks of one remote (`remotes/NAME/`; the name is checked by config)."""
    return root / REMOTES / remote


# -- finding a store ---------------------------------------------------------------------------


def store_root(path: Path) -> Path | None:
    """`path` itself when it is a `.modelreg` directory, else `path/.modelreg`, if a store.

    A store is a directory holding `config.yaml`; its content is not read here.
    """
    candidates = (path, path / DIRNAME) if path.name == DIRNAME else (path / DIRNAME,)
    for root in candidates:
        if (root / CONFIG).is_file():
            return root
    return None


def find_root(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The store's root, found as git finds a repository; the one discovery walk of mreg.

    `explicit`, else `MREG_STORE`, names the store (its directory or the one holding it);
    else the walk goes up from `start` (default: the working directory) and stops at the
    directories in `MREG_CEILING_DIRS` (colon-separated, like `GIT_CEILING_DIRECTORIES`).

    Raises:
        FileNotFoundError: no store there; its `filename` is the directory named or walked
            from, and `args[1]` says which ("named" or "walked"), for the caller's message.
    """
    chosen = explicit or os.environ.get("MREG_STORE")
    if chosen:
        p = Path(chosen).absolute()
        if (root := store_root(p)) is not None:
            return root
        raise FileNotFoundError(2, "named", str(p))
    here = (start or Path.cwd()).absolute()
    ceilings = {Path(c).absolute() for c in os.environ.get("MREG_CEILING_DIRS", "").split(":") if c}
    for d in (here, *here.parents):
        if (root := store_root(d)) is not None:
            return root
        if d in ceilings:
            break
    raise FileNotFoundError(2, "walked", str(here))
