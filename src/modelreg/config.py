"""The store's `config.yaml`: format version, promotion gates per alias, remotes (storage layer).

Parsed once when a store is opened (`StoreHandle.open`), checked as every input is: an
unknown kind or format, malformed gates or remotes are an IntegrityError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout, yamlio
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.fsutil import atomic_write
from modelreg.names import check_alias

if TYPE_CHECKING:
    from modelreg.hookspec import HookSpec
    from modelreg.release.targetspec import TargetSpec
    from modelreg.remote.spec import RemoteSpec

__all__ = ["FORMAT", "StoreConfig"]

FORMAT = 1


@dataclass(frozen=True)
class StoreConfig:
    """The parsed `config.yaml`: format version, promotion gates per alias, remotes.

    `remotes` and `default_remote` (issue 4) are written only when set, so a store without
    remotes keeps the exact `config.yaml` of format 1. They never hold secrets (see
    `modelreg.remote.spec`).
    """

    format: int = FORMAT
    gates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remotes: dict[str, RemoteSpec] = field(default_factory=dict)
    default_remote: str | None = None
    targets: dict[str, tuple[TargetSpec, ...]] = field(default_factory=dict)
    """Release targets per model (`modelreg.release.targetspec`; written only when set)."""
    hooks: dict[str, HookSpec] = field(default_factory=dict)
    """Webhooks on audit events (`modelreg.hookspec`, docs/hooks.md; written only when set)."""
    register_profile: bool = False
    """`register: {profile: true}`: profile every `--data` file by default (issue 21)."""

    def to_dict(self) -> dict[str, Any]:
        """The document written to `config.yaml`."""
        doc: dict[str, Any] = {
            "schema": "mreg/v1",
            "kind": "StoreConfig",
            "format": self.format,
            "gates": {k: list(v) for k, v in self.gates.items()},
        }
        if self.remotes:
            doc["remotes"] = {k: r.to_dict() for k, r in self.remotes.items()}
        if self.default_remote is not None:
            doc["default_remote"] = self.default_remote
        if self.targets:
            doc["targets"] = {m: [t.to_dict() for t in ts] for m, ts in self.targets.items() if ts}
        if self.hooks:
            doc["hooks"] = {n: h.to_dict() for n, h in self.hooks.items()}
        if self.register_profile:
            doc["register"] = {"profile": True}
        return doc

    @classmethod
    def read(cls, root: Path) -> StoreConfig:
        """The `config.yaml` of the store at `root`, parsed and checked."""
        path = root / layout.CONFIG
        return cls.from_dict(yamlio.load_file(path, IntegrityError), str(path))

    def write(self, root: Path) -> None:
        """Replace the `config.yaml` of the store at `root` (atomically)."""
        atomic_write(root / layout.CONFIG, yamlio.dump(self.to_dict()))

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> StoreConfig:
        """Parse and check a config document; raise IntegrityError if it is unusable."""
        if not isinstance(doc, dict) or doc.get("kind") != "StoreConfig":
            raise IntegrityError(f"{source}: not an mreg store config (kind StoreConfig)")
        fmt = doc.get("format")
        if fmt != FORMAT:
            raise IntegrityError(
                f"{source}: store format {fmt!r} is not supported by this mreg (format {FORMAT})"
            )
        gates = doc.get("gates") or {}
        if not isinstance(gates, dict):
            raise IntegrityError(f"{source}: gates must map alias names to condition lists")
        parsed: dict[str, tuple[str, ...]] = {}
        if gates:
            from modelreg.conditions import Condition
            from modelreg.declared import interface_gate
        for alias, conds in gates.items():
            try:
                check_alias(str(alias))
                if not isinstance(conds, list):
                    raise InvalidInput("expected a list of conditions")
                checked = []
                for i, c in enumerate(conds):
                    try:
                        other = interface_gate(str(c))  # `interface == ALIAS` (issue 20)
                        checked.append(
                            f"interface == {other}" if other else str(Condition.parse(str(c)))
                        )
                    except InvalidInput as exc:
                        raise InvalidInput(f"[{i}]: {exc}") from None
                parsed[str(alias)] = tuple(checked)
            except InvalidInput as exc:
                sep = "" if str(exc).startswith("[") else ": "
                raise IntegrityError(f"{source}: gates.{alias}{sep}{exc}") from None
        targets: dict[str, tuple[TargetSpec, ...]] = {}
        if doc.get("targets"):
            from modelreg.release.targetspec import targets_from_config

            try:
                targets = targets_from_config(doc["targets"], source)
            except InvalidInput as exc:
                raise IntegrityError(str(exc)) from None
        hooks: dict[str, HookSpec] = {}
        if doc.get("hooks"):
            from modelreg.hookspec import parse_hooks

            hooks = parse_hooks(doc["hooks"], source)
        profile = _register_profile(doc.get("register"), source)
        if "remotes" not in doc and "default_remote" not in doc:
            # remote.config not imported: ~3 ms less
            return cls(
                format=FORMAT, gates=parsed, targets=targets, hooks=hooks,
                register_profile=profile,
            )  # fmt: skip
        from modelreg.remote.spec import parse_remotes

        remotes, default = parse_remotes(doc, source)
        return cls(
            format=FORMAT, gates=parsed, remotes=remotes, default_remote=default, targets=targets,
            hooks=hooks, register_profile=profile,
        )  # fmt: skip


def _register_profile(section: Any, source: str) -> bool:
    """`register: {profile: BOOL}` (issue 21); absent means false."""
    if section is None:
        return False
    if not isinstance(section, dict) or set(section) - {"profile"}:
        raise IntegrityError(f"{source}: register must be a mapping with only profile")
    value = section.get("profile", False)
    if not isinstance(value, bool):
        raise IntegrityError(f"{source}: register.profile must be true or false")
    return value
