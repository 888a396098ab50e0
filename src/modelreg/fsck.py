"""`fsck`: check everything a store holds, and with `repair` fix what can be fixed safely.

`mreg verify` answers "is this store intact?" with one line per problem; `fsck` is its
superset for operators (issue 8): every finding has a kind, a severity and the
store-relative path it concerns, orphans and crash leftovers are reported as warnings, and
`repair` acts on them. See docs/maintenance.md.

Checked: every manifest (parsed with its paths checked, named by its path), every object a
manifest names (present, of the size each manifest records — an object of the right content
under a manifest that lies about its size is a `bad-manifest` — and, unless `quick`,
re-hashed), every alias and state file, every rollout manifest's baseline and canary, the
audit chain and head; reported: objects no manifest names (`orphan-object`) and temp files
left by interrupted writes (`leftover-temp`).

`repair` never deletes a referenced object, a manifest or a ref. It removes leftover temp
files older than `temp_age` (and whose writer is not a live process here), cuts a torn
audit line, and restores missing or corrupt objects from a remote, verified on receive; a
corrupt object is moved to `lost+found/` only once its good copy has arrived.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg import layout
from modelreg.errors import InvalidInput, MregError
from modelreg.findings import ERROR_KINDS, WARNING_KINDS, Finding, Repair
from modelreg.fsutil import TMP_PREFIX
from modelreg.handle import StoreHandle
from modelreg.hashing import hash_file

__all__ = [
    "ERROR_KINDS",
    "WARNING_KINDS",
    "Finding",
    "FsckFailed",
    "FsckReport",
    "Repair",
    "fsck",
    "referenced_objects",
]

DEFAULT_TEMP_AGE = 3600.0
"""Seconds after its last write before `repair` removes a temp file (an hour: no write of
mreg leaves a temp file untouched that long while it is alive)."""


class FsckFailed(MregError):
    """`mreg fsck` found errors (or `--repair` could not fix them all): exit 1."""


@dataclass(frozen=True)
class FsckReport:
    """What was checked, what is wrong (after any repair), and what was repaired."""

    findings: tuple[Finding, ...]
    versions: int
    objects: int
    hashed: int
    bytes_hashed: int
    audit_entries: int
    seconds: float
    repairs: tuple[Repair, ...] = ()
    repaired: bool = False

    @property
    def errors(self) -> list[Finding]:
        """Findings that mean damage."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings that are garbage only (orphans, leftovers)."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no error remains (warnings do not count)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg fsck`."""
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "versions": self.versions,
            "objects": self.objects,
            "hashed": self.hashed,
            "bytes_hashed": self.bytes_hashed,
            "audit_entries": self.audit_entries,
            "repaired": self.repaired,
            "repairs": [r.to_dict() for r in self.repairs],
            "seconds": round(self.seconds, 3),
        }

    def raise_for_problems(self) -> None:
        """Raise FsckFailed (exit 1) when errors remain."""
        if self.errors:
            kinds = sorted({f.kind for f in self.errors})
            raise FsckFailed(f"{len(self.errors)} error(s) in the store: {', '.join(kinds)}")


@dataclass
class _Refs:
    """What the manifests name: digest -> (size, first user), and version -> manifest id."""

    objects: dict[str, tuple[int, str]] = field(default_factory=dict)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    # digest -> every (size, user, manifest path) claiming it: each manifest's size is
    # checked against the object, not only the first one's (issue 15)
    claims: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    # (name, version) -> the id its tombstone names: deleted versions (issue 19), whose
    # leftovers are one `unfinished-delete` warning, not dangling refs
    deleted: dict[tuple[str, str], str] = field(default_factory=dict)


def _rel(store: StoreHandle, path: Path) -> str:
    return path.relative_to(store.root).as_posix()


def _scan_versions(store: StoreHandle, out: list[Finding]) -> _Refs:
    from modelreg.catalog import load_version, model_names, version_list
    from modelreg.refs import read_state
    from modelreg.remote.ingest import manifest_objects

    refs = _Refs()
    for name in model_names(store):
        for v in sorted(version_list(store, name)):
            path = store.manifest_path(name, v.text)
            try:
                mv = load_version(store, name, v.text)
            except MregError as exc:
                out.append(Finding("bad-manifest", _rel(store, path), str(exc)))
                continue
            refs.ids[(name, v.text)] = mv.id
            for f in manifest_objects(mv):
                user = f"{name}@{v.text}:{f.path}"
                refs.objects.setdefault(f.sha256, (f.size, user))
                refs.claims.setdefault(f.sha256, []).append((f.size, user, _rel(store, path)))
        states = layout.state_dir(store.root, name)
        for p in sorted(states.glob("*.yaml")) if states.is_dir() else ():
            if p.name.startswith(TMP_PREFIX):  # reported as leftover-temp
                continue
            version = p.name[:-5]
            try:
                read_state(store, name, version)
            except (MregError, ValueError) as exc:
                out.append(Finding("bad-ref", _rel(store, p), str(exc)))
                continue
            if not store.manifest_path(name, version).exists():  # (an unfinished delete
                # removes the state file before the manifest)
                msg = f"state of {name}@{version}, a version this store does not have"
                out.append(Finding("dangling-state", _rel(store, p), msg))
    return refs


def _scan_signatures(store: StoreHandle, refs: _Refs, out: list[Finding]) -> None:
    """Check every signature file (issue 19).

    Each is an OMS signature, named by its digest, of a version this store has, covering
    exactly that version's files.
    """
    from modelreg import oms
    from modelreg.catalog import load_version, model_names
    from modelreg.signature_files import read_signature

    for name in model_names(store):
        base = layout.model_dir(store.root, name) / layout.SIGNATURES
        for path in sorted(base.glob("*/*")) if base.is_dir() else ():
            if path.name.startswith(TMP_PREFIX):  # reported as leftover-temp
                continue
            version, rel = path.parent.name, _rel(store, path)
            if (name, version) in refs.deleted:  # an unfinished delete: reported as such
                continue
            try:
                sig = read_signature(path, rel)
            except MregError as exc:
                out.append(Finding("bad-signature", rel, str(exc)))
                continue
            try:
                mv = load_version(store, name, version)
            except MregError:
                msg = f"signature of {name}@{version}, a version this store does not have"
                out.append(Finding("dangling-signature", rel, msg))
                continue
            problems = oms.coverage_problems(sig, {f.path: f.sha256 for f in mv.files})
            if problems:
                msg = f"not a signature of {name}@{version}'s files: {problems[0]}"
                out.append(Finding("bad-signature", rel, msg))


def _scan_policy(store: StoreHandle, out: list[Finding]) -> None:
    """The policy (issue 19), when there is one, must parse and validate."""
    from modelreg.policy import read_policy

    try:
        read_policy(store)
    except MregError as exc:
        out.append(Finding("bad-ref", layout.POLICY, str(exc)))


def _scan_aliases(store: StoreHandle, refs: _Refs, out: list[Finding]) -> None:
    from modelreg.catalog import model_names
    from modelreg.refs import read_alias

    for name in model_names(store):
        d = layout.aliases_dir(store.root, name)
        for p in sorted(d.glob("*.yaml")) if d.is_dir() else ():
            if p.name.startswith(TMP_PREFIX):  # reported as leftover-temp
                continue
            try:
                ref = read_alias(store, name, p.name[:-5])
            except MregError as exc:
                out.append(Finding("bad-ref", _rel(store, p), str(exc)))
                continue
            if ref is None:  # removed while we looked
                continue
            found = refs.ids.get((name, ref.version))
            if found is None and refs.deleted.get((name, ref.version)) == ref.id:
                continue  # an unfinished forced delete removes it (unfinished-delete)
            if found is None:
                msg = f"alias {name}@{ref.alias} points at {ref.version}, which is missing"
                out.append(Finding("dangling-alias", _rel(store, p), msg))
            elif found != ref.id:
                msg = (
                    f"alias {name}@{ref.alias} expects manifest {ref.id[:12]} of {ref.version}, "
                    f"found {found[:12]}: the manifest was changed"
                )
                out.append(Finding("dangling-alias", _rel(store, p), msg))


def _scan_rollouts(store: StoreHandle, refs: _Refs, out: list[Finding]) -> None:
    releases = layout.releases_dir(store.root)
    if not releases.is_dir():
        return
    from modelreg.release.ops import read_rollout

    for p in sorted(releases.rglob("*.yaml")):
        if p.name.startswith(TMP_PREFIX):
            continue
        name = p.relative_to(releases).as_posix()[:-5]
        try:
            rollout = read_rollout(store, name)
        except (MregError, ValueError) as exc:
            out.append(Finding("bad-ref", _rel(store, p), str(exc)))
            continue
        if rollout is None:
            continue
        for role, side in (("baseline", rollout.baseline), ("canary", rollout.canary)):
            found = refs.ids.get((name, side.version))
            if found is None and refs.deleted.get((name, side.version)) == side.id:
                continue  # an ended release's version, deleted since (a live one refuses)
            if found != side.id:
                why = "is missing" if found is None else f"is {found[:12]}: changed"
                msg = (
                    f"release {rollout.release} of {name}: {role} {side.version} "
                    f"(manifest {side.id[:12]}) {why}"
                )
                out.append(Finding("dangling-rollout-ref", _rel(store, p), msg))


def _scan_audit(store: StoreHandle, out: list[Finding]) -> int:
    rel = _rel(store, store.audit.path)
    for problem in store.audit.verify():
        if "torn line" in problem:
            out.append(Finding("audit-torn-line", rel, problem))
        else:
            out.append(Finding("audit-chain-broken", rel, problem))
    try:
        return len(store.audit.entries())
    except MregError:
        return 0


def _hash_ok(path: Path, digest: str) -> tuple[bool | None, int]:
    """(content matches, bytes hashed); None when the file vanished meanwhile."""
    try:
        got, size = hash_file(path)
    except FileNotFoundError:
        return None, 0
    return got == digest, size


def _scan_objects(
    store: StoreHandle, refs: _Refs, quick: bool, jobs: int, out: list[Finding]
) -> tuple[int, int, int]:
    """Check objects; return (objects seen, objects hashed, bytes hashed).

    Referenced objects are looked up one by one (a listing taken earlier could miss one that
    a concurrent register wrote just before its manifest), then the unreferenced ones.
    """
    objects = store.objects
    to_hash: list[tuple[str, str]] = []  # (digest, who uses it)
    extra_hashed = extra_bytes = 0  # objects hashed to settle a size mismatch
    for digest, (size, where) in sorted(refs.objects.items()):
        path = objects.path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            msg = f"object {digest[:12]} ({where}) is missing"
            out.append(Finding("missing-object", _rel(store, path), msg, digest))
            continue
        claims = refs.claims.get(digest, [(size, where, "")])
        if any(claimed != st.st_size for claimed, _, _ in claims):
            # Re-hashed even when quick: whether the object or the manifest lies decides
            # what is wrong (and repair must not replace a good object).
            good, n = _hash_ok(path, digest)
            if good is None:  # removed meanwhile: reported by the next run
                continue
            if not good:
                msg = f"object {digest[:12]} ({where}) is corrupt: {st.st_size} bytes, not {size}"
                out.append(Finding("corrupt-object", _rel(store, path), msg, digest))
                continue
            for claimed, user, manifest in claims:
                if claimed != st.st_size:
                    msg = (
                        f"{user}: the manifest says {claimed} bytes, but its object "
                        f"{digest[:12]} holds {st.st_size}"
                    )
                    out.append(Finding("bad-manifest", manifest, msg))
            extra_hashed += 1
            extra_bytes += n
        elif not quick:
            to_hash.append((digest, where))
    seen = len(refs.objects)
    for digest in objects.iter_digests():
        if digest in refs.objects:
            continue
        seen += 1
        path = objects.path(digest)
        msg = f"object {digest[:12]} is named by no manifest (gc reclaims it)"
        out.append(Finding("orphan-object", _rel(store, path), msg, digest))
        if not quick:
            to_hash.append((digest, "unreferenced"))
    hashed, nbytes = extra_hashed, extra_bytes
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = pool.map(lambda item: _hash_ok(objects.path(item[0]), item[0]), to_hash)
        for (digest, where), (good, size) in zip(to_hash, results, strict=True):
            if good is None:
                continue
            hashed += 1
            nbytes += size
            if not good:
                path = objects.path(digest)
                msg = f"object {digest[:12]} ({where}) is corrupt: content does not match"
                out.append(Finding("corrupt-object", _rel(store, path), msg, digest))
    return seen, hashed, nbytes


def referenced_objects(store: StoreHandle) -> dict[str, tuple[int, str]]:
    """Digest -> (size, first user) of every object a manifest names.

    Raises:
        IntegrityError: a manifest cannot be read, so what it names is unknown (gc refuses).
    """
    from modelreg.errors import IntegrityError

    found: list[Finding] = []
    refs = _scan_versions(store, found)
    bad = [f for f in found if f.kind == "bad-manifest"]
    if bad:
        raise IntegrityError(
            f"{bad[0].path}: manifest unreadable, so the objects it names are unknown; "
            "run mreg fsck"
        )
    return refs.objects


def fsck(
    store: StoreHandle,
    *,
    quick: bool = False,
    repair: bool = False,
    remote: str | None = None,
    temp_age: float = DEFAULT_TEMP_AGE,
    jobs: int | None = None,
) -> FsckReport:
    """Check the store (see the module docstring); with `repair`, fix what is safe to fix.

    `remote` names the remote to restore objects from (default: the default remote, if any).
    `quick` skips re-hashing objects: presence and size only.
    """
    if temp_age < 0:
        raise InvalidInput("--temp-age must be 0 or more seconds")
    t0 = time.monotonic()
    findings: list[Finding] = []
    refs = _scan_versions(store, findings)
    from modelreg.deletion import scan as scan_tombstones

    refs.deleted = scan_tombstones(store, findings)  # issue 19
    _scan_aliases(store, refs, findings)
    _scan_signatures(store, refs, findings)
    _scan_policy(store, findings)
    _scan_rollouts(store, refs, findings)
    entries = _scan_audit(store, findings)
    workers = jobs or min(4, os.cpu_count() or 1)
    seen, hashed, nbytes = _scan_objects(store, refs, quick, workers, findings)
    from modelreg.indexcheck import check as check_index
    from modelreg.repair import leftover_temps

    findings.extend(Finding("index-mismatch", layout.INDEX, p) for p in check_index(store))

    for path, age in leftover_temps(store):
        msg = f"temp file left by an interrupted write ({age:.0f}s old)"
        findings.append(Finding("leftover-temp", _rel(store, path), msg))
    repairs: list[Repair] = []
    if repair:
        from modelreg.repair import repair as run_repair

        fixed = run_repair(store, findings, refs.objects, remote, temp_age, repairs)
        findings = [f for f in findings if f not in fixed]
    return FsckReport(
        tuple(findings), len(refs.ids), seen, hashed, nbytes, entries,
        time.monotonic() - t0, tuple(repairs), repair,
    )  # fmt: skip
