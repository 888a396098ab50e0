"""The store layout as seen by sync: which paths are metadata, and which a command selects.

A remote mirrors `.modelreg/` path for path (docs/store-format.md), so one classifier
serves both sides. A path that does not parse as a store path with valid names is not
metadata: it is never downloaded or joined to a local path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from modelreg import layout, oms
from modelreg.errors import InvalidInput, NotFound
from modelreg.fsutil import TMP_PREFIX
from modelreg.names import Version, check_alias, check_name, parse_ref
from modelreg.yamlio import MAX_BYTES

__all__ = [
    "AUDIT",
    "MAX_AUDIT_BYTES",
    "REF_KINDS",
    "Meta",
    "Scope",
    "classify",
    "local_metadata",
    "read_limit",
]

AUDIT = layout.AUDIT_LOG
MAX_AUDIT_BYTES = 64 * 1024 * 1024
"""The largest remote audit log a command reads (issue 15): about 150,000 entries."""
REF_KINDS = ("alias", "state", "release", "policy")
"""The moving refs: compared three ways on sync (merge.py), never overwritten blindly."""
Kind = Literal["manifest", "alias", "state", "release", "audit", "signature", "policy", "tombstone"]
_SUBDIRS: dict[str, Kind] = {
    layout.VERSIONS: "manifest",
    layout.ALIASES: "alias",
    layout.STATE: "state",
    layout.TOMBSTONES: "tombstone",  # a deleted version's record, immutable (issue 19)
}


@dataclass(frozen=True)
class Meta:
    """A metadata path: its kind, the model it belongs to and its key (version or alias)."""

    rel: str
    kind: Kind
    model: str | None = None
    key: str | None = None


def read_limit(rel: str) -> int:
    """How many bytes of a remote metadata file may be read (the log's, a signature's, YAML's)."""
    if rel == AUDIT:
        return MAX_AUDIT_BYTES
    return oms.MAX_BYTES if rel.endswith(layout.SIGNATURE_SUFFIX) else MAX_BYTES


def _signature(rel: str, parts: list[str]) -> Meta | None:
    """`models/NAME/signatures/V/<sha256>.sig`: a version's signature (issue 19)."""
    digest = parts[-1][: -len(layout.SIGNATURE_SUFFIX)]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    name, version = check_name("/".join(parts[1:-3])), parts[-2]
    if Version.parse(version).text != version:
        return None
    return Meta(rel, "signature", name, version)


def classify(rel: str) -> Meta | None:
    """The metadata a store-relative path holds, or None if it holds none (or is unsafe)."""
    if rel == AUDIT:
        return Meta(rel, "audit")
    if rel == layout.POLICY:
        return Meta(rel, "policy")
    parts = rel.split("/")
    if any(p.startswith(TMP_PREFIX) for p in parts):
        return None
    if rel.endswith(layout.SIGNATURE_SUFFIX):
        if parts[0] != layout.MODELS or len(parts) not in (5, 6) or parts[-3] != layout.SIGNATURES:
            return None
        try:
            return _signature(rel, parts)
        except InvalidInput:
            return None
    if not rel.endswith(".yaml"):
        return None
    try:
        if parts[0] == layout.MODELS and len(parts) in (4, 5) and parts[-2] in _SUBDIRS:
            name, kind, stem = (
                check_name("/".join(parts[1:-2])),
                _SUBDIRS[parts[-2]],
                parts[-1][:-5],
            )
            if kind == "alias":
                return Meta(rel, kind, name, check_alias(stem))
            if Version.parse(stem).text == stem:
                return Meta(rel, kind, name, stem)
        elif parts[0] == layout.RELEASES and len(parts) >= 2:  # the model's name, as a store has it
            return Meta(rel, "release", check_name(rel[len(layout.RELEASES) + 1 : -len(".yaml")]))
    except InvalidInput:
        return None
    return None


def local_metadata(root: Path) -> dict[str, Meta]:
    """Every metadata file of a local store: manifests, signatures, tombstones, refs, the log."""
    out: dict[str, Meta] = {}
    for top in (layout.MODELS, layout.RELEASES):
        base = root / top
        if not base.is_dir():
            continue
        for pattern in ("*.yaml", f"*{layout.SIGNATURE_SUFFIX}"):
            for path in base.rglob(pattern):
                rel = path.relative_to(root).as_posix()
                meta = classify(rel)
                if meta is not None and path.is_file():
                    out[rel] = meta
    if (root / AUDIT).is_file():
        out[AUDIT] = Meta(AUDIT, "audit")
    if (root / layout.POLICY).is_file():
        out[layout.POLICY] = Meta(layout.POLICY, "policy")
    return out


@dataclass
class Scope:
    """What `push`/`pull NAME[@REF]...` selects; empty specs select everything."""

    specs: Sequence[str] = ()
    remote_hint: str | None = None
    """Set when no remote was named: the first spec may have been meant as one (`mreg push
    orign`), so an unknown bare name there is "no remote or model", with this hint (#13)."""
    models: set[str] = field(default_factory=set)
    versions: set[tuple[str, str]] = field(default_factory=set)
    aliases: set[tuple[str, str]] = field(default_factory=set)

    @property
    def everything(self) -> bool:
        """True when no spec was given."""
        return not self.specs

    def resolve(
        self,
        versions_of: Callable[[str], Iterable[str]],
        alias_target: Callable[[str, str], str | None],
    ) -> Scope:
        """Resolve each spec on the sending side: `latest` and aliases become versions."""
        for i, spec in enumerate(self.specs):
            ref = parse_ref(spec)
            known = sorted(Version(v) for v in versions_of(ref.name))
            if not known and i == 0 and self.remote_hint is not None and "@" not in spec:
                raise NotFound(f"no remote or model named {ref.name!r} ({self.remote_hint})")
            if not known:
                raise NotFound(f"no model named {ref.name!r}")
            if ref.kind == "latest" and "@" not in spec:
                self.models.add(ref.name)
            elif ref.kind == "latest":
                self.versions.add((ref.name, known[-1].text))
            elif ref.kind == "version":
                if Version(ref.ref) not in known:
                    raise NotFound(f"{ref.name}@{ref.ref}: no such version")
                self.versions.add((ref.name, ref.ref))
            else:
                target = alias_target(ref.name, ref.ref)
                if target is None:
                    raise NotFound(f"{ref.name}@{ref.ref}: no such alias")
                self.aliases.add((ref.name, ref.ref))
                self.versions.add((ref.name, target))
        return self

    def selects(self, meta: Meta) -> bool:
        """True when the metadata file is part of the selection (the log and policy always are)."""
        if self.everything or meta.kind in ("audit", "policy"):
            return True
        if meta.model in self.models:
            return True
        if meta.kind in ("manifest", "state", "signature", "tombstone"):
            return (str(meta.model), str(meta.key)) in self.versions
        if meta.kind == "alias":
            return (str(meta.model), str(meta.key)) in self.aliases
        return False
