"""mreg: a model registry and canary-release tool.

The public API is the `Store` class and the typed errors::

    from modelreg import Store
    store = Store.init("/tmp/demo")
    mv = store.register("fraud-detector", ["model.onnx"], version="1.0.0")
    store.promote("fraud-detector@1.0.0", "production", reason="first release")
    store.resolve("fraud-detector@production").version  # '1.0.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelreg.errors import (
    Conflict,
    GateFailed,
    IntegrityError,
    InvalidInput,
    LockTimeout,
    MregError,
    NotFound,
    StoreNotFound,
    TransitionRefused,
)
from modelreg.version import __version__

__all__ = [
    "Conflict",
    "GateFailed",
    "IntegrityError",
    "InvalidInput",
    "LockTimeout",
    "MregError",
    "NotFound",
    "Store",
    "StoreNotFound",
    "TransitionRefused",
    "__version__",
]

if TYPE_CHECKING:
    from modelreg.store import Store


def __getattr__(name: str) -> Any:
    # Lazy so that `import modelreg` (and `mreg --help`) does not pay for the store's imports.
    if name == "Store":
        from modelreg.store import Store

        return Store
    raise AttributeError(f"module 'modelreg' has no attribute {name!r}")
