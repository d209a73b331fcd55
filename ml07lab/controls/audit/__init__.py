"""Control 5, notebook 08: a security audit of every backbone received.

model_audit.py inspects (neural_cleanse.py) and remediates one backbone; artefact_checks.py
checks the files; strip.py is the run-time gate; study.py measures detection over many
backbones; section.py writes the scorecard section; report.py is `ml07lab audit`;
viz.py plots it all."""
from __future__ import annotations

from typing import Any

from ...config import LabConfig
from ..control import Control


def _section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    from .section import security_audit_section

    return security_audit_section(cfg, progress=progress)


CONTROL = Control(name="security_audit", title="Security audit", notebook="08_control_security_audit",
                  paths=("model", "dataset"), section=_section)
