"""Shared setup for release and serving tests: a real store with a model and three versions."""

from __future__ import annotations

from pathlib import Path

from modelreg import Store

SEED = "5bd083fc3cca355d3919f43df0a2c630"
SEED2 = "00000000000000000000000000000000"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")


def make_model(
    store: Store, tmp_path: Path, name: str = "m", production: str | None = "1.0.0"
) -> Store:
    """Register `name` 1.0.0 (test.f1 0.80), 1.1.0 (0.92), 1.2.0 (0.95); production → 1.0.0."""
    for version, f1 in zip(VERSIONS, (0.80, 0.92, 0.95), strict=True):
        f = tmp_path / "inputs" / name.replace("/", "_") / version / "model.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(f"weights of {name} {version}".encode())
        store.register(name, [f], version=version, metrics={"test": {"f1": f1}}, detect_code=False)
    if production:
        store.promote(f"{name}@{production}", "production")
    return store
