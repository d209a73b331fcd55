"""Control 2, notebook 05: train only on signed, verified datasets.

provenance.py signs a dataset manifest and verifies it before training; tampering.py is
the red team that measures it; measure.py runs both in the scenario and writes the
section; cli.py is `ml07lab data manifest|diff|scan|keygen|sign|verify`."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ..control import Control


def _section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    from .measure import trusted_datasets_section

    return trusted_datasets_section(cfg, progress=progress)


CONTROL = Control(name="trusted_datasets", title="Trusted datasets", notebook="05_control_trusted_datasets",
                  paths=("dataset",), section=_section)
