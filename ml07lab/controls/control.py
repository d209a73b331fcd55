"""The one interface every control implements, so that the scorecard and `ml07lab run`
iterate over five objects instead of looking functions up by name.

Why a frozen dataclass holding a function: a control is data (its JSON key, title,
notebook, the attack paths it acts on) plus one computation. The computation imports
its measurement lazily, so listing the controls costs nothing (no torch, no data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..config import LabConfig


class SectionFn(Protocol):
    """Compute (or load from the cache) one control's scenario-JSON section."""

    def __call__(self, cfg: LabConfig, progress: bool = False) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Control:
    """One OWASP ML07 control as the scorecard sees it.

    name:     its key in the scenario JSON, `result["controls"][name]`;
    title:    its label in the scorecard;
    notebook: the lab notebook that teaches it (labs/<notebook>.ipynb);
    paths:    the attack paths it acts on ("model": path A, "dataset": path B); on the
              others it never sees the attacker's artefact;
    section:  `section(cfg, progress=False)`, the measured section (ASR, clean TAR@FAR1%,
              seconds, ...), cached by the artefacts it measured.
    """

    name: str
    title: str
    notebook: str
    paths: tuple[str, ...]
    section: SectionFn


__all__ = ["Control", "SectionFn"]
