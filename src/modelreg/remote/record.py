"""Audit entries of the commands that move or remove what a store holds (issue 13).

`push`, `pull`, `gc` (here or on a remote) and `fsck --repair` append one entry each to the
store's hash-chained audit trail (docs/store-format.md), naming the remote by its name and
its URL without anything that could be a credential, and counting what moved. A run that
changed nothing records nothing, so an idempotent re-run stays a no-op.

Moving audit entries is not itself recorded: a push that sends only audit entries, or a pull
that receives only audit entries, appends nothing. Otherwise two stores that push and pull in
turn would each record the other's transfer of the previous record, forever.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modelreg.audit import AuditEntry
from modelreg.handle import StoreHandle
from modelreg.lineage import default_author

__all__ = ["public_url", "record"]


def public_url(url: str) -> str:
    """`url` without user info, query or fragment: what may name a remote in the audit trail.

    mreg refuses URLs with a password, but a user name, a signed query (`?sig=...`) or a
    token in the fragment of some other fsspec URL must not reach an audit entry either.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def record(store: StoreHandle, action: str, **details: Any) -> AuditEntry:
    """Append one entry for a store-wide change (`model` is null), under the store lock.

    Raises:
        IntegrityError: the audit log's last entry is unreadable (nothing can be chained).
    """
    with store.locked():
        return store.record(default_author(), action, None, **details)
