"""Shared test setup: the small 'ci' profile by default, one data/ cache for tests and notebooks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Set at import, before any test module imports ml07lab (which reads these lazily).
os.environ.setdefault("ML07LAB_PROFILE", "ci")
os.environ.setdefault("ML07LAB_DATA", str(REPO / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Where prepared datasets and cached artefacts live (shared with the notebooks)."""
    path = Path(os.environ["ML07LAB_DATA"])
    path.mkdir(parents=True, exist_ok=True)
    return path
