"""`Store`: the library's facade, one method per CLI command (as sqlite-utils mirrors its CLI).

`Store` is the storage layer's `StoreHandle` (open, create, find, paths, lock, audit,
objects) plus a method for each command, each a thin call into the domain module that
implements it (`register`, `catalog`, `aliases`, `remote`, `bundle`...), so the CLI command
`mreg X` is `store.X(...)`. Domain modules take the handle, never this class
(docs/architecture.md). The layout is spelled in `modelreg.layout` (see
docs/store-format.md), the config in `modelreg.config`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.config import FORMAT, StoreConfig
from modelreg.handle import Clock, StoreHandle, utc_now
from modelreg.layout import DIRNAME

if TYPE_CHECKING:
    from modelreg.aliases import AliasChange, AliasEvent, Deprecation, TagChange
    from modelreg.analysis.watch import Analysis, Source, WatchEvent, WatchReport
    from modelreg.audit import AuditEntry
    from modelreg.bundle import PackResult, UnpackResult
    from modelreg.catalog import Materialized, ModelSummary, VersionDiff, VersionInfo
    from modelreg.conditions import Condition
    from modelreg.fsck import FsckReport
    from modelreg.gc import GcReport
    from modelreg.manifest import ModelVersion
    from modelreg.register import ProgressStart, RegisterResult
    from modelreg.release.export.plan import Export, ExportOptions
    from modelreg.release.export.watch import WatchReport as ExportWatchReport
    from modelreg.release.ops import ReleaseChange, ReleaseStatus
    from modelreg.release.rollout import Event
    from modelreg.release.rules import Rule
    from modelreg.remote.sync import FetchResult, PullResult, PushResult, StatusReport
    from modelreg.remote.transfer import TransferProgress
    from modelreg.validate import LargeFilesReport, ValidationReport
    from modelreg.verify import VerifyReport

__all__ = ["DIRNAME", "FORMAT", "Clock", "Store", "StoreConfig", "utc_now"]

# The defaults of `modelreg.validate.check_large_models`, spelled here so that importing the
# facade does not import the validator (tests/test_facade.py checks they are the same).
_MODEL_EXTENSIONS = (
    ".onnx", ".pt", ".pth", ".pb", ".tflite", ".h5", ".keras", ".safetensors", ".pkl", ".pickle",
    ".joblib", ".gguf", ".mlmodel", ".xgb", ".ubj", ".lgb", ".cbm", ".ckpt", ".bin",
)  # fmt: skip


class Store(StoreHandle):
    """A model registry store rooted at a `.modelreg/` directory."""

    # -- the API: one method per command -----------------------------------------------------

    def register(
        self,
        name: str,
        paths: Sequence[str | os.PathLike[str]],
        *,
        version: str | None = None,
        bump: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, dict[str, float]] | None = None,
        data: Sequence[str] = (),
        code: str | os.PathLike[str] | None = None,
        detect_code: bool = True,
        requirements: str | os.PathLike[str] | None = None,
        message: str = "",
        tags: Sequence[str] = (),
        author: str | None = None,
        progress: ProgressStart | None = None,
    ) -> RegisterResult:
        """Register files or directories as version `version` (or bumped) of model `name`."""
        from modelreg.register import register

        return register(
            self, name, paths, version=version, bump=bump, params=params, metrics=metrics,
            data=data, code=code, detect_code=detect_code, requirements=requirements,
            message=message, tags=tags, author=author, progress=progress,
        )  # fmt: skip

    def resolve(self, spec: str) -> ModelVersion:
        """The version named by `NAME[@REF]` (REF: version, alias or `latest`)."""
        from modelreg.catalog import resolve

        return resolve(self, spec)

    def models(self) -> list[ModelSummary]:
        """Every model with its version count, latest version and aliases."""
        from modelreg.catalog import models

        return models(self)

    def versions(
        self,
        name: str | None = None,
        *,
        tags: Sequence[str] = (),
        alias: str | None = None,
        where: Sequence[Condition | str] = (),
        sort: str = "version",
        descending: bool = False,
        include_deprecated: bool = True,
    ) -> list[VersionInfo]:
        """Versions of one model (or all), filtered and sorted as `mreg list` does."""
        from modelreg.catalog import versions

        return versions(
            self, name, tags=tags, alias=alias, where=where, sort=sort,
            descending=descending, include_deprecated=include_deprecated,
        )  # fmt: skip

    def info(self, spec: str) -> VersionInfo:
        """A version with its aliases, current tags and deprecation (what `show` displays)."""
        from modelreg.catalog import info

        return info(self, spec)

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, files, data, code."""
        from modelreg.catalog import diff

        return diff(self, a, b)

    def get(self, spec: str, out: str | os.PathLike[str], *, force: bool = False) -> Materialized:
        """Materialise a version's files under `out`, verifying every byte."""
        from modelreg.catalog import get

        return get(self, spec, Path(out), force=force)

    def promote(
        self,
        spec: str,
        alias: str,
        *,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> AliasChange:
        """Point `alias` at a version, through the alias's promotion gates."""
        from modelreg.aliases import promote

        return promote(self, spec, alias, reason=reason, force=force, actor=actor)

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        to: str | None = None,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> AliasChange:
        """Move `alias` back to the version it pointed at before (or to version `to`)."""
        from modelreg.aliases import rollback

        return rollback(self, name, alias, to=to, reason=reason, force=force, actor=actor)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of a model (or of one alias), oldest first."""
        from modelreg.aliases import history

        return history(self, name, alias)

    def deprecate(self, spec: str, *, reason: str, actor: str | None = None) -> Deprecation:
        """Mark a version deprecated: its files stay, but it can no longer be promoted."""
        from modelreg.aliases import deprecate

        return deprecate(self, spec, reason=reason, actor=actor)

    def tag(
        self,
        spec: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        actor: str | None = None,
    ) -> TagChange:
        """Add or remove tags of a version (kept beside its immutable manifest, audited)."""
        from modelreg.aliases import tag

        return tag(self, spec, add, remove, actor=actor)

    def log(self, name: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest last, optionally for one model and the last `limit`."""
        entries = [e for e in self.audit.entries() if name is None or e.model == name]
        if name is not None and not entries:
            # an unknown model is invalid input everywhere, as in `history` (issue 13)
            from modelreg.catalog import require_model

            require_model(self, name)
        return entries[-limit:] if limit else entries

    def verify(self, *, objects: bool = True) -> VerifyReport:
        """Check the audit chain, every manifest and ref, and (by default) every object digest."""
        from modelreg.verify import verify

        return verify(self, objects=objects)

    # -- remotes and bundles (issue 4): thin facades over modelreg.remote and modelreg.bundle --

    def push(
        self,
        remote: str | None = None,
        specs: Sequence[str] = (),
        *,
        jobs: int | None = None,
        progress: TransferProgress | None = None,
    ) -> PushResult:
        """Send what the remote lacks: objects, manifests, refs, audit trail (`mreg push`)."""
        from modelreg.remote.sync import push

        return push(self, remote, specs, jobs=jobs, progress=progress)

    def pull(
        self,
        remote: str | None = None,
        specs: Sequence[str] = (),
        *,
        theirs: bool = False,
        jobs: int | None = None,
        progress: TransferProgress | None = None,
    ) -> PullResult:
        """Receive what this store lacks, verifying every object (`mreg pull`)."""
        from modelreg.remote.sync import pull

        return pull(self, remote, specs, theirs=theirs, jobs=jobs, progress=progress)

    def fetch(self, remote: str | None = None, specs: Sequence[str] = ()) -> FetchResult:
        """Download the remote's metadata only, beside the store (`mreg fetch`)."""
        from modelreg.remote.sync import fetch

        return fetch(self, remote, specs)

    def remote_status(self, remote: str | None = None) -> StatusReport:
        """What differs between this store and a remote, both ways (`mreg status --remote`)."""
        from modelreg.remote.sync import status

        return status(self, remote)

    def pack(
        self, spec: str, out: str | os.PathLike[str], *, format: str = "tar", force: bool = False
    ) -> PackResult:
        """Write one version as a portable bundle or an OCI image layout (`mreg pack`)."""
        from modelreg.bundle import pack

        return pack(self, spec, Path(out), format=format, force=force)

    def unpack(self, path: str | os.PathLike[str]) -> UnpackResult:
        """Register the version in a bundle, verified and idempotent (`mreg unpack`)."""
        from modelreg.bundle import unpack

        return unpack(self, Path(path))

    # -- releases (issues 5, 6, 7): `mreg release CMD` is `store.release_CMD(...)` ------------

    def release_start(
        self,
        name: str,
        canary: str,
        *,
        baseline: str | None = None,
        weight: float | str | None = None,
        steps: str | Sequence[float | str] | None = None,
        stick_by: str = "user_id",
        rules: Sequence[Rule | str] = (),
        shadow: bool = False,
        reason: str = "",
        seed: str | None = None,
        actor: str | None = None,
        analysis: Sequence[Any] = (),
    ) -> ReleaseChange:
        """Start a canary release of `canary` against `baseline` (`mreg release start`).

        The baseline defaults to the `production` alias; the first weight is `weight`, else
        the plan's first step. `rules` are routing rules (texts or `Rule`s), `analysis` the
        checks and policy `release analyze` and `watch` judge by (`modelreg.release.ops.start`).
        """
        from modelreg.release.ops import start

        return start(
            self, name, canary, baseline=baseline, weight=weight, steps=steps,
            stick_by=stick_by, rules=rules, shadow=shadow, reason=reason, seed=seed,
            actor=actor, analysis=analysis,
        )  # fmt: skip

    def release_set(
        self,
        name: str,
        *,
        weight: float | str | None = None,
        rules: Sequence[Rule | str] | None = None,
        shadow: bool | None = None,
        analysis: Sequence[Any] | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> ReleaseChange:
        """Set the canary weight, replace the rules or checks, or go to shadow mode.

        `mreg release set` (`modelreg.release.ops.update`): None leaves a setting as it is,
        `rules=[]` removes every rule and `analysis=[]` every check.
        """
        from modelreg.release.ops import update

        return update(
            self, name, weight=weight, rules=rules, shadow=shadow, analysis=analysis,
            reason=reason, actor=actor,
        )  # fmt: skip

    def release_step(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Move the canary to the next weight of the step plan (`mreg release step`)."""
        from modelreg.release.ops import step

        return step(self, name, reason=reason, actor=actor)

    def release_pause(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Freeze the release: traffic keeps its split, set and step are refused (`pause`)."""
        from modelreg.release.ops import pause

        return pause(self, name, reason=reason, actor=actor)

    def release_resume(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Resume a paused release (`mreg release resume`)."""
        from modelreg.release.ops import resume

        return resume(self, name, reason=reason, actor=actor)

    def release_promote(
        self, name: str, *, reason: str = "", force: bool = False, actor: str | None = None
    ) -> ReleaseChange:
        """Move production to the canary, through its promotion gates, and end the release.

        `mreg release promote`; `force` (with a `reason`) overrides failed gates.
        """
        from modelreg.release.ops import promote

        return promote(self, name, reason=reason, force=force, actor=actor)

    def release_abort(
        self, name: str, *, reason: str = "", force: bool = False, actor: str | None = None
    ) -> ReleaseChange:
        """Roll back now: all traffic to the baseline, and the release ends (`release abort`).

        `force` (with a `reason`) aborts even over a damaged rollout manifest.
        """
        from modelreg.release.ops import abort

        return abort(self, name, reason=reason, force=force, actor=actor)

    def release_status(self, name: str) -> ReleaseStatus:
        """The release's state, weights, rules, steps, generation and last changes."""
        from modelreg.release.ops import status

        return status(self, name)

    def release_history(self, name: str) -> list[Event]:
        """Every change of every release of the model, oldest first (`release history`)."""
        from modelreg.release.ops import history

        return history(self, name)

    def release_analyze(self, name: str, *, source: Source | None = None) -> Analysis:
        """Judge the canary against the baseline on its metrics (`mreg release analyze`).

        `source` reads the metrics (default: the store's `metrics/`; `PrometheusSource`).
        """
        from modelreg.analysis import analyze

        return analyze(self, name, source=source)

    def release_watch(
        self,
        name: str,
        *,
        interval_s: float = 30.0,
        max_duration_s: float | None = None,
        once: bool = False,
        promote: bool = True,
        source: Source | None = None,
        actor: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> WatchReport:
        """Analyze every `interval_s`: abort on a failure, step after passes, then promote.

        `mreg release watch`; `on_event` is called after each analysis.
        """
        from modelreg.analysis import watch

        return watch(
            self, name, interval_s=interval_s, max_duration_s=max_duration_s, once=once,
            promote=promote, source=source, actor=actor, clock=clock, sleep=sleep,
            on_event=on_event,
        )  # fmt: skip

    def release_export(
        self, name: str, format: str, options: ExportOptions | None = None
    ) -> Export:
        """The release's routing as Kubernetes YAML for a mesh or gateway (`release export`).

        `format`: istio, gateway-api, smi, nginx, kserve or argo. The result lists what the
        format cannot express (`Export.losses`); `raise_for_losses()` refuses them.
        """
        from modelreg.release.export import export

        return export(self, name, format, options)

    def release_export_watch(
        self,
        name: str,
        format: str,
        options: ExportOptions | None,
        output: Path,
        *,
        interval_s: float = 1.0,
        max_duration_s: float | None = None,
        max_writes: int | None = None,
        on_write: Callable[[Export], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ExportWatchReport:
        """Keep `output` current: rewrite the export on every change (`export --watch`)."""
        from modelreg.release.export import watch

        return watch(
            self, name, format, options, output, interval_s=interval_s,
            max_duration_s=max_duration_s, max_writes=max_writes, on_write=on_write,
            clock=clock, sleep=sleep,
        )  # fmt: skip

    # -- maintenance and checks (issues 7, 8) --------------------------------------------------

    def fsck(
        self,
        *,
        quick: bool = False,
        repair: bool = False,
        remote: str | None = None,
        temp_age: float = 3600.0,
        jobs: int | None = None,
    ) -> FsckReport:
        """Check every manifest, object, alias, rollout and the audit chain (`mreg fsck`).

        `quick` checks objects' presence and size without re-hashing them; `repair` removes
        temp files older than `temp_age` seconds, cuts a torn audit line and restores missing
        or corrupt objects from `remote` (default: the default remote).
        """
        from modelreg.fsck import fsck

        return fsck(self, quick=quick, repair=repair, remote=remote, temp_age=temp_age, jobs=jobs)

    def gc(
        self, *, grace: float = 86400.0, dry_run: bool = False, remote: str | None = None
    ) -> GcReport:
        """Remove objects no manifest names, older than `grace` seconds (`mreg gc`).

        `dry_run` lists them and removes nothing; `remote` collects on that remote instead.
        """
        from modelreg.gc import gc

        return gc(self, grace=grace, dry_run=dry_run, remote=remote)

    def validate(self, paths: Sequence[str | os.PathLike[str]] = ()) -> ValidationReport:
        """Check documents (syntax, schema, meaning): `paths`, else every one of the store.

        `mreg validate`. References in a file outside any store are checked against this one.
        """
        from modelreg.validate import validate

        return validate(paths, store=self.root)

    @staticmethod
    def check_large_models(
        paths: Sequence[str | os.PathLike[str]],
        *,
        max_size: int = 1048576,
        extensions: Collection[str] = _MODEL_EXTENSIONS,
    ) -> LargeFilesReport:
        """The model files among `paths` over `max_size` bytes (`mreg check-large-models`).

        Needs no store (a pre-commit hook): `Store.check_large_models(paths)`.
        """
        from modelreg.validate import check_large_models

        return check_large_models(paths, max_size=max_size, extensions=extensions)

    @staticmethod
    def schema(kind: str) -> dict[str, Any]:
        """The JSON Schema of a document kind, as `mreg validate` uses it (`mreg schema KIND`)."""
        from modelreg.schemas import load

        return load(kind)
