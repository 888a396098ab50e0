"""Imports from other registries (issue 20): MLflow (`importing.mlflow`), GTO (`importing.gto`).

Domain layer (docs/architecture.md); what they share is in `importing.common`, the guide is
docs/import.md.
"""
