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


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Import LFW and AT&T from the offline mirror into the data dir (idempotent, seconds).
    Without the mirror: skip, or fail under CI=true, where the mirror is part of the contract."""
    from ml07lab.config import data_dir, mirror_dir
    from ml07lab.data import fetch

    m = mirror_dir()
    if not (m / "SHA256SUMS").is_file():
        msg = (f"Real-face mirror not found at {m} (no SHA256SUMS). Put the mirror at "
               "../shared/data beside the checkout or set ML07LAB_MIRROR=/path/to/mirror.")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    for name in ("att", "lfw"):
        fetch.import_mirror(name, m, data_dir())
    return m
