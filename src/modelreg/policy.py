"""Policy that travels (issue 19): gates, trusted keys and who may move which alias.

The policy lives in the store (`policy.yaml`, `modelreg.policy_format`), is changed only
through these functions (`mreg policy gate|trust|allow`, each an audited `policy.*` entry
and a new generation) and is pushed and pulled like an alias. A store enforces the policy it
has: `promote` checks the policy's gates (and `config.yaml`'s, read as local additions),
`promote` and `rollback` check who may move the alias, and a pull refuses an alias move the
policy (as pulled) forbids (`incoming_move_problems`). Domain layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg import layout
from modelreg.conditions import Condition
from modelreg.declared import interface_gate
from modelreg.errors import IntegrityError, InvalidInput, NotFound
from modelreg.fsutil import atomic_write
from modelreg.handle import StoreHandle
from modelreg.lineage import default_author
from modelreg.manifest import ModelVersion
from modelreg.names import check_alias
from modelreg.policy_format import Policy, check_gate, check_key_name, signed_by
from modelreg.yamlio import MAX_BYTES

if TYPE_CHECKING:
    from modelreg.signatures import TrustedKey

__all__ = [
    "allow",
    "gate",
    "gate_problems",
    "incoming_move_problems",
    "mover_problem",
    "read_policy",
    "trust",
    "trusted_keys",
]


def read_policy(store: StoreHandle) -> Policy:
    """The store's policy (the empty policy, generation 0, when it has none)."""
    path = layout.policy_path(store.root)
    try:
        if path.is_symlink():
            raise IntegrityError(f"{path}: a symbolic link, not a policy")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return Policy()
    return Policy.parse(data, str(path), IntegrityError)


def _save(
    store: StoreHandle, before: Policy, after: Policy, action: str, **details: object
) -> Policy:
    """Write a changed policy and its audit entry (the caller holds the lock).

    A "change" that changes nothing is a no-op: no new generation, no entry (CI re-runs).
    """
    if (after.gates, after.keys, after.movers) == (before.gates, before.keys, before.movers):
        return before
    atomic_write(layout.policy_path(store.root), after.to_bytes())
    last = after.history[-1]
    store.record(last.actor, action, None, generation=after.generation, change=last.change,
                 **details)  # fmt: skip
    return after


def _set(
    lists: Mapping[str, tuple[str, ...]], alias: str, values: list[str]
) -> dict[str, tuple[str, ...]]:
    """`lists` with the alias's list replaced by `values` (removed when empty)."""
    out = {a: v for a, v in lists.items() if a != alias}
    if values:
        out[alias] = tuple(values)
    return out


def gate(
    store: StoreHandle,
    alias: str,
    conditions: Sequence[str] = (),
    *,
    remove: Sequence[str] = (),
    clear: bool = False,
    actor: str | None = None,
) -> Policy:
    """Add (or remove, or clear) the gates of `alias`; a gate already there is kept once."""
    check_alias(alias)
    who = actor or default_author()
    with store.writing():
        before = read_policy(store)
        current = [] if clear else list(before.gates.get(alias, ()))
        for text in conditions:
            g = check_gate(text, before.keys)
            if g not in current:
                current.append(g)
        for text in remove:
            g = check_gate(text, before.keys)
            if g not in current:
                raise NotFound(f"{alias} has no gate {text!r}")
            current.remove(g)
        change = f"gates of {alias}: {', '.join(current) or '(none)'}"
        after = before.changed(who, store.now(), change, gates=_set(before.gates, alias, current))
        return _save(store, before, after, "policy.gate", alias=alias, gates=current)


def trust(
    store: StoreHandle,
    name: str,
    key: Path | None = None,
    *,
    remove: bool = False,
    actor: str | None = None,
) -> Policy:
    """Trust a public key or root certificate (PEM) as `name`, or stop trusting it."""
    from modelreg.signatures import trusted_keys as load_keys

    check_key_name(name)
    who = actor or default_author()
    pem = None
    if not remove:
        if key is None:
            raise InvalidInput("give the key's PEM file, or --remove")
        (loaded,) = load_keys([f"{name}={key}"])  # a bad key is refused here
        pem = loaded.pem.decode("ascii", "replace")
    with store.writing():
        before = read_policy(store)
        keys = dict(before.keys)
        if remove:
            if name not in keys:
                raise NotFound(f"no trusted key named {name!r}")
            used = [a for a, gs in before.gates.items() if any(signed_by(g) == name for g in gs)]
            if used:
                raise InvalidInput(
                    f"key {name!r} is required by the gates of {', '.join(used)}: remove those "
                    "gates first"
                )
            del keys[name]
            change = f"key {name} no longer trusted"
        else:
            assert pem is not None
            keys[name] = pem
            change = f"key {name} trusted"
        after = before.changed(who, store.now(), change, keys=keys)
        return _save(store, before, after, "policy.trust", key=name, removed=remove)


def allow(
    store: StoreHandle,
    alias: str,
    actors: Sequence[str] = (),
    *,
    clear: bool = False,
    actor: str | None = None,
) -> Policy:
    """Say who may move `alias` (added to those allowed; `clear`: anyone may again)."""
    check_alias(alias)
    who = actor or default_author()
    if not clear and not actors:
        raise InvalidInput("name at least one actor, or --clear")
    with store.writing():
        before = read_policy(store)
        current = [] if clear else list(before.movers.get(alias, ()))
        for a in actors:
            if not a.strip():
                raise InvalidInput("an actor cannot be empty")
            if a not in current:
                current.append(a)
        change = f"movers of {alias}: {', '.join(current) or 'anyone'}"
        after = before.changed(who, store.now(), change, movers=_set(before.movers, alias, current))
        return _save(store, before, after, "policy.allow", alias=alias, movers=current)


# -- enforcement ------------------------------------------------------------------------------


def gate_problems(
    store: StoreHandle, alias: str, mv: ModelVersion, policy: Policy | None = None
) -> list[str]:
    """The gates of `alias` that `mv` fails, each saying why: the policy's, then config.yaml's."""
    pol = policy if policy is not None else read_policy(store)
    failed = []
    for text in (*pol.gates.get(alias, ()), *store.config.gates.get(alias, ())):
        key_name = signed_by(text)
        if key_name is not None:
            why = _signature_problem(store, mv, pol, key_name)
            if why:
                failed.append(f"{text} ({why})")
            continue
        other = interface_gate(text)
        if other is not None:
            whys = _interface_problems(store, mv, other)
            if whys:
                failed.append(f"{text} ({'; '.join(whys)})")
            continue
        cond = Condition.parse(text)
        if not cond.holds(mv):
            actual = cond.lookup(mv)
            failed.append(f"{cond} (has {'no value' if actual is None else actual})")
    return failed


def _interface_problems(store: StoreHandle, mv: ModelVersion, alias: str) -> list[str]:
    """How `mv`'s declared inputs and outputs differ from the version `alias` points at now.

    None to compare with (the alias is not set, or points at `mv` itself): no problem.
    """
    from modelreg.catalog import load_version
    from modelreg.declared import interface_problems
    from modelreg.refs import read_alias

    ref = read_alias(store, mv.name, alias)
    if ref is None or ref.version == mv.version:
        return []
    current = load_version(store, mv.name, ref.version)
    return interface_problems(mv.declared, current.declared, f"{alias} {current.version}")


def trusted_keys(policy: Policy) -> list[TrustedKey]:
    """The policy's trusted keys and root certificates, ready to verify with."""
    from modelreg.signatures import trusted_key

    return [
        trusted_key(name, pem.encode(), f"policy key {name}") for name, pem in policy.keys.items()
    ]


def _signature_problem(store: StoreHandle, mv: ModelVersion, pol: Policy, name: str) -> str:
    """Why `mv` has no signature by the policy's key `name` that holds ('' when it has one)."""
    from modelreg.signatures import check

    keys = [k for k in trusted_keys(pol) if k.name == name]
    if not keys:
        return f"no trusted key named {name!r}"
    results = check(store, mv, keys)
    if any(r.status == "valid" for r in results):
        return ""
    bad = [r for r in results if r.status == "invalid"]
    if bad:
        return f"its signature by {name} does not hold: {bad[0].detail}"
    return f"not signed by {name}"


def mover_problem(alias: str, actor: str, policy: Policy) -> str | None:
    """Why `actor` may not move `alias` under `policy` (None: it may)."""
    allowed = policy.movers.get(alias)
    if not allowed or actor in allowed:
        return None
    return f"{actor} may not move {alias} (the policy allows {', '.join(allowed)})"


def incoming_move_problems(
    store: StoreHandle, alias: str, target: ModelVersion, actor: str, policy: Policy
) -> list[str]:
    """Why a pulled alias move to `target` by `actor` breaks `policy` ([] when it does not).

    A forced move (the audit says so) is judged like any other: the policy a store has is
    the one it enforces, whoever forced what elsewhere.
    """
    problems = gate_problems(store, alias, target, policy)
    mover = mover_problem(alias, actor, policy)
    return problems + ([mover] if mover else [])
