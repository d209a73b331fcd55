"""Control 3, notebook 06: model isolation.

gate.py is the deployment gate (environments, signing, the format allowlist, release);
model_files.py reads model files without running them; hygiene.py is the ML half
(transfer options that keep inherited behaviour out); cli.py is `ml07lab deploy|sign`;
viz.py plots the hygiene trade-off."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ..control import Control


def _section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    from .gate import model_isolation_section

    return model_isolation_section(cfg, progress=progress)


CONTROL = Control(name="model_isolation", title="Model isolation", notebook="06_control_model_isolation",
                  paths=("model",), section=_section)
