"""Typed errors of mreg. Each carries the process exit code the CLI uses for it.

Exit codes are an API (see docs/cli.md): 0 ok, 1 failure (conflict, failed gate or check,
integrity problem, lock timeout), 2 usage or invalid input (including names that do not
exist). The library raises these; only the CLI turns them into exit codes.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "GateFailed",
    "IntegrityError",
    "InvalidInput",
    "LockTimeout",
    "MregError",
    "NotFound",
    "StoreNotFound",
    "TransitionRefused",
]


class MregError(Exception):
    """Base class of every expected mreg failure; `exit_code` is the CLI's exit status."""

    exit_code: int = 1


class InvalidInput(MregError):
    """The caller gave something malformed: a bad name, semver, param, path or file."""

    exit_code = 2


class NotFound(InvalidInput):
    """A model, version, alias, object or file that was named does not exist."""


class StoreNotFound(NotFound):
    """No `.modelreg/` store was found where one was looked for."""


class Conflict(MregError):
    """The operation contradicts the store's state (e.g. same version, other content)."""


class GateFailed(MregError):
    """A promotion gate refused a version."""


class TransitionRefused(MregError):
    """A state change is not allowed from the current state (e.g. promoting a deprecated one)."""


class IntegrityError(MregError):
    """Stored data does not match its digest or cannot be parsed: the store is damaged."""


class LockTimeout(MregError):
    """Another process held a store lock for longer than the timeout."""
