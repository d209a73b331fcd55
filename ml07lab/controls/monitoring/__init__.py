"""Control 1, notebook 04: monitor and update the training data.

monitor.py scans a refresh (drift, duplicates, label disagreement, spectral signatures,
activation clustering), removes what it flags, retrains and measures; viz.py plots it
(for notebook 05 too)."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ..control import Control


def _section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    from .monitor import dataset_monitoring_section

    return dataset_monitoring_section(cfg, progress=progress)


CONTROL = Control(name="dataset_monitoring", title="Dataset monitoring", notebook="04_control_dataset_monitoring",
                  paths=("dataset",), section=_section)
