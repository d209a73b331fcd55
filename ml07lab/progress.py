"""One line before a slow build: what is being built, why, and roughly how long.

Why: a learner who presses "Run All" on a cold cache otherwise waits minutes on a silent
cell. `load_or_build` calls `announce_build` just before it trains something that is not
cached; the build's own tqdm bar follows. The estimate is the median `build_seconds` of
earlier builds of the same artefact for this profile on this machine (any config), else
the kit's measured times on a 2-core laptop (docs/instructor.md), else "unknown".
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

# Measured build times in seconds on a quiet 2-core machine (docs/instructor.md, README):
# only a fallback until this machine has built the artefact once.
KIT_SECONDS: dict[str, dict[str, float]] = {
    "ci": {"clean-backbone": 47},
    "laptop": {"clean-backbone": 353, "poisoned-model": 122, "sweep-point": 60, "audit-zoo": 1500},
}

WHAT: dict[str, str] = {
    "clean-backbone": "the clean public backbone",
    "poisoned-model": "the attacker's poisoned backbone",
    "sweep-point": "one point of the attack sweep",
    "audit-zoo": "the audit zoo (clean and poisoned backbones)",
    "audit-inspection": "a Neural Cleanse inspection",
    "dp-pretrain": "a DP-SGD pretraining",
    "dp-sweep": "the DP-SGD sweep",
}


def recorded_seconds(root: Path, name: str) -> list[float]:
    """build_seconds of every cached artefact called `name` under `root` (one profile)."""
    out: list[float] = []
    for meta in root.glob(f"{name}-*/meta.json"):
        try:
            m = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and m.get("name") == name and isinstance(m.get("build_seconds"), (int, float)):
            out.append(float(m["build_seconds"]))
    return out


def estimate(name: str, profile: str, root: Path | None) -> tuple[float | None, str]:
    """(seconds, where the figure comes from), or (None, why not)."""
    seen = recorded_seconds(root, name) if root is not None and root.is_dir() else []
    if seen:
        return statistics.median(seen), f"{len(seen)} earlier build{'s' if len(seen) > 1 else ''} here"
    kit = KIT_SECONDS.get(profile, {}).get(name)
    if kit is not None:
        return kit, "the kit's timing on a 2-core laptop"
    return None, "not measured yet"


def human(seconds: float) -> str:
    """12 s, 3 min, 1.2 h: rounded, as a rough figure should be."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def build_message(name: str, cfg: Any, folder: Path | None = None) -> str:  # noqa: ANN401
    """The announcement line (kept separate from printing so it can be tested)."""
    secs, src = estimate(name, cfg.profile, folder.parent if folder is not None else None)
    what = WHAT.get(name, name)
    how_long = f"about {human(secs)} ({src})" if secs is not None else f"time {src}"
    return f"Building {what} [{name}, profile {cfg.profile}]: not cached yet, so it is computed now; {how_long}."


def _in_notebook() -> bool:
    ipy = sys.modules.get("IPython")
    shell = ipy.get_ipython() if ipy is not None and hasattr(ipy, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def announce_build(name: str, cfg: Any, folder: Path | None = None) -> None:  # noqa: ANN401
    """Print the one line, flushed, so it shows before the build's progress bar: to stdout
    in a notebook (plain text, not a red stderr box), to stderr in a terminal, where stdout
    may be the JSON a CLI command promised."""
    stream = sys.stdout if _in_notebook() else sys.stderr
    print(build_message(name, cfg, folder), file=stream, flush=True)
