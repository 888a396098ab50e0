"""The import commands of the `Store` facade (issue 20): `mreg import mlflow|gto`.

Facade layer (docs/architecture.md): each method is a lazy import of the domain function
(`importing.mlflow`, `importing.gto`) and one call; `Store` inherits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.importing.common import ImportReport

__all__ = ["ImportCommands"]


class ImportCommands(StoreHandle):
    """`import mlflow`, `import gto`."""

    def import_mlflow(
        self,
        tracking_uri: str | None = None,
        models: Sequence[str] = (),
        *,
        dry_run: bool = False,
        timeout: float = 30.0,
    ) -> ImportReport:
        """Copy registered models from an MLflow tracking server (`mreg import mlflow`)."""
        from modelreg.importing.mlflow import import_mlflow

        return import_mlflow(self, tracking_uri, models, dry_run=dry_run, timeout=timeout)

    def import_gto(
        self, repo: str = ".", models: Sequence[str] = (), *, dry_run: bool = False
    ) -> ImportReport:
        """Copy the artifacts GTO registered in a git repository (`mreg import gto`)."""
        from modelreg.importing.gto import import_gto

        return import_gto(self, repo, models, dry_run=dry_run)
