"""The one call at the top of every notebook: pick the profile, seed, style plots."""
from __future__ import annotations

from typing import Any

from .config import LabConfig, data_dir, get_config, resolve_device, seed_everything
from .runtime import apply_threads, prefer_passive_wait


def start(profile: str | None = None, **overrides: Any) -> LabConfig:
    """Return the lab config for this session, seeded, with the lab's plot style on.

    Profile: argument, else $ML07LAB_PROFILE, else 'ci' under CI=true, else 'laptop'.
    `company="folder:PATH"` (else $ML07LAB_COMPANY) runs the scenario on your own faces.
    """
    prefer_passive_wait()  # before torch loads: idle threads sleep instead of spinning
    cfg = get_config(profile, **overrides)
    threads = apply_threads(cfg)
    seed_everything(cfg.seed)
    try:
        from .viz import use_style

        use_style()
    except ImportError:  # matplotlib is a dependency, but a headless CLI may lack it
        pass
    print(f"ml07lab | profile={cfg.profile} | data={cfg.data_tag} | {cfg.image_size}px | "
          f"device={resolve_device(cfg.device)} | threads={threads} | seed={cfg.seed} | cache={data_dir()}")
    return cfg
