"""Control 4, notebook 07: differential privacy (DP-SGD with Opacus).

dp.py trains with DP and sweeps ε against poisons, quality and membership inference;
membership.py is the membership-inference attack and its DP bounds; viz.py plots the sweep."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ..control import Control


def _section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    from .dp import differential_privacy_section

    return differential_privacy_section(cfg, progress=progress)


CONTROL = Control(name="differential_privacy", title="Differential privacy", notebook="07_control_differential_privacy",
                  paths=("dataset",), section=_section)
