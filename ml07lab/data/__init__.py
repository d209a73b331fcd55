"""Face datasets: synthetic (embedded), AT&T/ORL, LFW, or any one-folder-per-person set.

`load_dataset(name, cfg)` is the single entry point; prepared real datasets are cached
as tensors under the data directory so notebooks load them in a second.
"""
from __future__ import annotations

from .base import DataError, FaceSet, concat

DATASETS = ("synthetic", "att", "lfw", "folder:PATH")

__all__ = ["DATASETS", "DataError", "FaceSet", "concat", "load_dataset"]


def load_dataset(name: str, cfg, **kwargs) -> FaceSet:  # noqa: ANN001 - LabConfig, lazy import
    """Load a dataset by name at the profile's image size (see DATASETS)."""
    from .registry import load_dataset as _load

    return _load(name, cfg, **kwargs)
