"""Controls (defences) against ML07, one subpackage per control and notebook:
monitoring (04), trusted_data (05), isolation (06), privacy (07), audit (08).

Each subpackage exposes `CONTROL`, a `Control` (control.py); `CONTROLS` lists the five in
the lab's order. Importing this package is cheap: the measurements load on first use.
"""
from __future__ import annotations

from .audit import CONTROL as _AUDIT
from .control import Control
from .isolation import CONTROL as _ISOLATION
from .monitoring import CONTROL as _MONITORING
from .privacy import CONTROL as _PRIVACY
from .trusted_data import CONTROL as _TRUSTED_DATA

CONTROLS: dict[str, Control] = {c.name: c for c in (_MONITORING, _TRUSTED_DATA, _ISOLATION, _PRIVACY, _AUDIT)}

__all__ = ["CONTROLS", "Control"]
