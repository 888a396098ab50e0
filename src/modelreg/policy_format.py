"""The store's policy document, `policy.yaml` (issue 19): pure data, parsed and validated.

The policy travels with the registry (pushed, pulled, compared three ways like an alias):

    schema: mreg/v1
    kind: Policy
    generation: 3                   # one more per change
    gates:                          # what a version must satisfy to be moved to an alias
      production: ["test.f1 >= 0.9", "signed-by: ci"]
    keys:                           # trusted signing keys (PEM public keys or root certs)
      ci: "-----BEGIN PUBLIC KEY----- ..."
    movers:                         # who may move an alias (actors, as the audit names them)
      production: ["CI <ci@example.com>"]
    history:                        # every change: generation, actor, time, change
      - {generation: 1, actor: ..., time: ..., change: "gate production: test.f1 >= 0.9"}

A gate is a condition (`modelreg.conditions`) or `signed-by: NAME`, a signature by the key
`NAME` of `keys` that holds for the version's files. An alias without `movers` may be moved
by anyone. Model layer: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelreg import yamlio
from modelreg.conditions import Condition
from modelreg.declared import interface_gate
from modelreg.errors import InvalidInput, MregError
from modelreg.names import check_alias

__all__ = ["SIGNED_BY", "Policy", "PolicyChange", "signed_by"]

SIGNED_BY = "signed-by:"
_KEY_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def signed_by(gate: str) -> str | None:
    """The key name of a `signed-by: NAME` gate (None for a condition)."""
    text = gate.strip()
    if not text.lower().startswith(SIGNED_BY):
        return None
    return text[len(SIGNED_BY) :].strip()


def check_key_name(name: str) -> str:
    """A trusted key's name: letters, digits, `.`, `_`, `-` (InvalidInput otherwise)."""
    if not name or len(name) > 64 or not set(name) <= _KEY_NAME_CHARS:
        raise InvalidInput(f"invalid key name {name!r}: letters, digits, '.', '_', '-'")
    return name


def check_gate(gate: str, keys: Mapping[str, str]) -> str:
    """A gate as stored (InvalidInput, naming the problem, when it is not one)."""
    name = signed_by(gate)
    if name is not None:
        check_key_name(name)
        if name not in keys:
            raise InvalidInput(
                f"gate {gate!r}: no trusted key named {name!r} (mreg policy trust {name} KEY)"
            )
        return f"{SIGNED_BY} {name}"
    other = interface_gate(gate)
    if other is not None:  # `interface == ALIAS` (issue 20)
        return f"interface == {other}"
    Condition.parse(gate)  # InvalidInput with the position of the problem
    return gate.strip()


@dataclass(frozen=True)
class PolicyChange:
    """One change of the policy, as its history records it."""

    generation: int
    actor: str
    time: str
    change: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "generation": self.generation,
            "actor": self.actor,
            "time": self.time,
            "change": self.change,
        }


@dataclass(frozen=True)
class Policy:
    """Gates, trusted keys and movers of a store; generation 0 is the empty policy."""

    gates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    keys: Mapping[str, str] = field(default_factory=dict)
    movers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    generation: int = 0
    history: tuple[PolicyChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The document (`policy.yaml`, `mreg policy show --json`)."""
        return {
            "schema": "mreg/v1",
            "kind": "Policy",
            "generation": self.generation,
            "gates": {a: list(g) for a, g in sorted(self.gates.items())},
            "keys": dict(sorted(self.keys.items())),
            "movers": {a: list(m) for a, m in sorted(self.movers.items())},
            "history": [c.to_dict() for c in self.history],
        }

    def to_bytes(self) -> bytes:
        """The YAML bytes stored."""
        return yamlio.dump(self.to_dict())

    def changed(self, actor: str, time: str, change: str, **fields: Any) -> Policy:
        """A new generation with `fields` replaced and the change recorded."""
        gen = self.generation + 1
        return replace(
            self, generation=gen, history=(*self.history, PolicyChange(gen, actor, time, change)),
            **fields,
        )  # fmt: skip

    @classmethod
    def parse(cls, data: bytes, source: str, error: type[MregError] = InvalidInput) -> Policy:
        """Read and validate a policy document (`error`, naming `source`, when it is not one)."""
        doc = yamlio.load(data, source, error)
        if not isinstance(doc, dict) or doc.get("kind") != "Policy":
            raise error(f"{source}: not a Policy document")
        try:
            keys = _mapping(doc.get("keys"), "keys")
            for name, pem in keys.items():
                check_key_name(name)
                if not isinstance(pem, str) or "-----BEGIN " not in pem:
                    raise InvalidInput(f"key {name!r} is not a PEM public key or certificate")
            gates = {
                check_alias(a): tuple(check_gate(str(g), keys) for g in _list(v, f"gates.{a}"))
                for a, v in _mapping(doc.get("gates"), "gates").items()
            }
            movers = {
                check_alias(a): tuple(str(m) for m in _list(v, f"movers.{a}"))
                for a, v in _mapping(doc.get("movers"), "movers").items()
            }
            generation = doc.get("generation", 0)
            if not isinstance(generation, int) or generation < 0:
                raise InvalidInput("generation must be a number, 0 or more")
            history = tuple(
                PolicyChange(int(c["generation"]), str(c["actor"]), str(c["time"]),
                             str(c["change"]))
                for c in _list(doc.get("history"), "history")
            )  # fmt: skip
        except (InvalidInput, KeyError, TypeError, ValueError) as exc:
            raise error(f"{source}: malformed policy ({exc})") from None
        return cls(gates, keys, movers, generation, history)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a mapping")
    return {str(k): v for k, v in value.items()}


def _list(value: Any, what: str) -> Sequence[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list")
    return value
