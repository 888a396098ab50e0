"""`Store`: the library's facade, one method per CLI command (as sqlite-utils mirrors its CLI).

`Store` is the storage layer's `StoreHandle` (open, create, find, paths, lock, audit,
objects) plus a method for each command, each a thin call into the domain module that
implements it (`register`, `catalog`, `aliases`, `remote`, `bundle`...), so the CLI command
`mreg X` is `store.X(...)`. Domain modules take the handle, never this class
(docs/architecture.md). Layout: `modelreg.layout` (docs/store-format.md); config: `.config`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.config import FORMAT, StoreConfig
from modelreg.facade_import import ImportCommands
from modelreg.facade_monitor import MonitorCommands
from modelreg.facade_release import ReleaseCommands
from modelreg.facade_trust import TrustCommands
from modelreg.handle import Clock, utc_now
from modelreg.layout import DIRNAME

if TYPE_CHECKING:
    from datetime import datetime

    from modelreg.aliasat import AliasAt
    from modelreg.aliases import AliasChange, AliasEvent, Deprecation, TagChange
    from modelreg.audit import AuditEntry
    from modelreg.bundle import PackResult, UnpackResult
    from modelreg.catalog import Materialized, ModelSummary, VersionDiff, VersionInfo
    from modelreg.conditions import Condition
    from modelreg.dataexport import DataExport
    from modelreg.dataprofile import Profile
    from modelreg.deletion import DeleteResult
    from modelreg.fsck import FsckReport
    from modelreg.gc import GcReport
    from modelreg.hookdelivery import DeliveryReport
    from modelreg.hooks import HookInfo, HookTest
    from modelreg.hookspec import HookSpec
    from modelreg.listing import VersionPage
    from modelreg.manifest import ModelVersion
    from modelreg.register import ProgressStart, RegisterResult
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


class Store(ReleaseCommands, TrustCommands, ImportCommands, MonitorCommands):
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
        profile: bool | None = None,
        code: str | os.PathLike[str] | None = None,
        detect_code: bool = True,
        requirements: str | os.PathLike[str] | None = None,
        message: str = "",
        tags: Sequence[str] = (),
        author: str | None = None,
        progress: ProgressStart | None = None,
        sign: str | os.PathLike[str] | None = None,
        sign_password: str | None = None,
    ) -> RegisterResult:
        """Register files or directories as version `version` (or bumped) of model `name`.

        `sign`: a private key (PEM) that signs the version once registered (issue 19); the
        key is loaded first, so a bad key registers nothing. `profile`: issue 21 (None: the
        store's default, `register: {profile: true}` in config.yaml).
        """
        from dataclasses import replace

        from modelreg.register import register

        signer = None
        if sign is not None:
            from modelreg.signatures import signer as load_signer

            signer = load_signer(Path(sign), password=sign_password)
        result = register(
            self, name, paths, version=version, bump=bump, params=params, metrics=metrics,
            data=data, profile=profile, code=code, detect_code=detect_code,
            requirements=requirements, message=message, tags=tags, author=author, progress=progress,
        )  # fmt: skip
        if signer is None:
            return result
        from modelreg.signatures import sign as sign_version

        mv = result.version
        signed = sign_version(self, f"{mv.name}@{mv.version}", signer, actor=author)
        return replace(result, signature=signed.signature.digest)

    def resolve(self, spec: str) -> ModelVersion:
        """The version named by `NAME[@REF]` (REF: version, alias or `latest`)."""
        from modelreg.catalog import resolve

        return resolve(self, spec)

    def profile(self, spec: str, data_uri: str | None = None) -> Profile:
        """A version's stored data profile, read back verified (issue 21; `read_profile`)."""
        from modelreg.trainingdata import read_profile

        return read_profile(self, self.resolve(spec), data_uri)

    def models(self) -> list[ModelSummary]:
        """Every model with its version count, latest version and aliases."""
        from modelreg.listing import models

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
        limit: int | None = None,
        offset: int = 0,
        count_limit: int | None = 10_000,
    ) -> VersionPage:
        """Versions of one model (or all), filtered, sorted and paged as `mreg list` does.

        The result is a list with `total` (how many match; with a `limit`, counted up to
        `count_limit`, after which `exact` is False) and `more` (after this page).
        """
        from modelreg.listing import versions

        return versions(
            self, name, tags=tags, alias=alias, where=where, sort=sort,
            descending=descending, include_deprecated=include_deprecated, limit=limit,
            offset=offset, count_limit=count_limit,
        )  # fmt: skip

    def info(self, spec: str) -> VersionInfo:
        """A version with its aliases, current tags and deprecation (what `show` displays)."""
        from modelreg.catalog import info

        return info(self, spec)

    def data_export(
        self, spec: str, out: str | os.PathLike[str], *, since: float | None = None,
        until: float | None = None, with_outcomes: bool = False, format: str = "jsonl",
    ) -> DataExport:  # fmt: skip
        """The sample routers captured of a version, to a file, with its digest (issue 21)."""
        from modelreg.dataexport import export

        return export(self, spec, Path(out), since=since, until=until,
                      with_outcomes=with_outcomes, format=format)  # fmt: skip

    def diff(self, a: str, b: str) -> VersionDiff:
        """What differs between two versions: params, metrics, files, data, code."""
        from modelreg.catalog import diff

        return diff(self, a, b)

    def get(
        self,
        spec: str,
        out: str | os.PathLike[str],
        *,
        force: bool = False,
        signature: str | os.PathLike[str] | None = None,
        keys: Sequence[str] = (),
    ) -> Materialized:
        """Materialise a version's files under `out`, verifying every byte.

        `signature`: also write the version's OMS signature to that file (the one made with
        `keys`' key when it has several), which `model_signing verify` accepts on `out`.
        """
        from modelreg.catalog import get

        if signature is not None:
            from modelreg.signatures import choose_signature, trusted_keys

            chosen = choose_signature(self, spec, trusted_keys(keys))  # refused before writing
        done = get(self, spec, Path(out), force=force)
        if signature is not None:
            from modelreg.fsutil import atomic_write

            atomic_write(Path(signature), chosen.read_bytes())
        return done

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

    def history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]:
        """Every alias move of a model (or of one alias), oldest first; `limit`: the newest N."""
        from modelreg.aliases import history

        return history(self, name, alias, limit=limit)

    def deprecate(self, spec: str, *, reason: str, actor: str | None = None) -> Deprecation:
        """Mark a version deprecated: its files stay, but it can no longer be promoted."""
        from modelreg.aliases import deprecate

        return deprecate(self, spec, reason=reason, actor=actor)

    def delete(
        self, spec: str, *, reason: str, force: bool = False, actor: str | None = None
    ) -> DeleteResult:
        """Delete `NAME@VERSION` (or every version of `NAME`): a tombstone, audited (#19).

        An alias pointing at it refuses unless `force` (which removes it); a live release, always.
        """
        from modelreg.deletion import delete

        return delete(self, spec, reason=reason, force=force, actor=actor)

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

    def log(
        self,
        name: str | None = None,
        limit: int | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, newest last, filtered as `mreg log` does (`auditquery.entries`).

        Of model `name`, with `since <= time < until`, by `actor`, of `action` (exact, or a
        prefix ending in `*`), the newest `limit`; `modelreg.auditquery.entries` spells out
        the exact semantics.
        """
        from modelreg.auditquery import entries

        return entries(
            self, model=name, since=since, until=until, actor=actor, action=action, limit=limit
        )

    def alias_at(self, name: str, alias: str, when: datetime) -> AliasAt:
        """Which version `name@alias` pointed at, at `when`: the move, by whom, why, until when.

        `mreg show NAME@ALIAS --at TIME`. From the alias history, cross-checked with the audit
        trail (IntegrityError when they disagree); see `modelreg.aliasat.alias_at`.
        """
        from modelreg.aliasat import alias_at

        return alias_at(self, name, alias, when)

    def verify(
        self, *, objects: bool = True, signatures: bool = False, keys: Sequence[str] = ()
    ) -> VerifyReport:
        """Check the audit chain, every manifest and ref, and (by default) every object digest.

        `signatures`: also every version's signatures, against the trusted public `keys`.
        """
        from modelreg.verify import verify

        return verify(self, objects=objects, signatures=signatures, keys=keys)

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
        from modelreg.remote import ocisync
        from modelreg.remote.sync import push

        if ocisync.handles(self, remote):  # an OCI registry (issue 20)
            return ocisync.push(self, remote, specs, jobs=jobs, progress=progress)
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
        from modelreg.remote import ocisync
        from modelreg.remote.sync import pull

        if ocisync.handles(self, remote):  # an OCI registry (issue 20)
            return ocisync.pull(self, remote, specs, theirs=theirs, jobs=jobs, progress=progress)
        return pull(self, remote, specs, theirs=theirs, jobs=jobs, progress=progress)

    def fetch(self, remote: str | None = None, specs: Sequence[str] = ()) -> FetchResult:
        """Download the remote's metadata only, beside the store (`mreg fetch`)."""
        from modelreg.remote import ocisync
        from modelreg.remote.sync import fetch

        if ocisync.handles(self, remote):  # an OCI registry (issue 20)
            return ocisync.fetch(self, remote, specs)
        return fetch(self, remote, specs)

    def remote_status(self, remote: str | None = None) -> StatusReport:
        """What differs between this store and a remote, both ways (`mreg status --remote`)."""
        from modelreg.remote import ocisync
        from modelreg.remote.sync import status

        if ocisync.handles(self, remote):  # an OCI registry (issue 20)
            return ocisync.status(self, remote)
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

    # -- webhooks on audit events (issue 19): thin facades over modelreg.hooks -----------------

    def hook_add(
        self,
        url: str,
        *,
        name: str | None = None,
        events: Sequence[str] = (),
        secret_env: str | None = None,
        format: str = "json",
        from_start: bool = False,
    ) -> HookInfo:
        """Configure a webhook on audit events, signed with the secret in `secret_env`."""
        from modelreg.hooks import add

        return add(
            self, url, name=name, events=events, secret_env=secret_env, format=format,
            from_start=from_start,
        )  # fmt: skip

    def hook_list(self) -> list[HookInfo]:
        """Every webhook with its backlog and its last delivery or error (`mreg hook list`)."""
        from modelreg.hooks import hooks

        return hooks(self)

    def hook_remove(self, name: str) -> HookSpec:
        """Remove a webhook and its delivery cursor (`mreg hook remove`)."""
        from modelreg.hooks import remove

        return remove(self, name)

    def hook_test(self, name: str, *, timeout: float = 10.0) -> HookTest:
        """Send a signed `ping` to a webhook now (`mreg hook test`)."""
        from modelreg.hooks import test

        return test(self, name, timeout=timeout)

    def hook_deliver(
        self,
        *,
        loop: bool = False,
        interval: float = 5.0,
        timeout: float = 10.0,
        on_round: Callable[[DeliveryReport], None] | None = None,
        rounds: int | None = None,
    ) -> DeliveryReport:
        """Deliver the waiting webhook events now, or every `interval` seconds (`loop`)."""
        from modelreg.hooks import deliver_now

        return deliver_now(
            self, loop=loop, interval=interval, timeout=timeout, on_round=on_round, rounds=rounds
        )

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
