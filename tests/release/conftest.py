from __future__ import annotations

from pathlib import Path

import pytest

from modelreg import Store
from tests.release.util import make_model


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    """A store with model `m` (1.0.0, 1.1.0, 1.2.0) and production → 1.0.0."""
    return make_model(store, tmp_path)
