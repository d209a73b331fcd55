"""How the attack's knobs change its success: ASR against poison rate and trigger size.

Each point injects a backdoor with fewer epochs than the main scenario (a sweep is
a picture of a trend, not the headline number) and is cached as a JSON artefact,
so re-running a notebook redraws the plot instantly.
"""
from __future__ import annotations

from typing import Any, Iterable

from tqdm.auto import tqdm

from ..artifacts import load_or_build
from ..backbones import clean_backbone, unpack
from ..config import LabConfig
from ..data.scenario import ScenarioData, build_scenario_data
from ..verify import EVAL_VERSION, deploy, evaluate
from .latent import inject_latent_backdoor
from .scenario import attack_inputs, attack_metrics, scenario_trigger

SWEEPABLE = ("poison_rate", "trigger_size", "inject_strength", "n_target_photos", "trigger")


def sweep_point(cfg: LabConfig, data: ScenarioData | None = None) -> dict[str, Any]:
    """Path A with frozen transfer at one setting: ASR, impostor acceptance, stealth."""

    d = data if data is not None and cfg.n_target_photos == data.target_photos.labels.numel() else build_scenario_data(cfg)

    def build() -> tuple[dict, dict]:
        clean, art = clean_backbone(cfg, d)
        _, head = unpack(art.tensors, cfg)
        res = inject_latent_backdoor(clean, head, d, scenario_trigger(cfg), cfg, progress=False)
        v = deploy(res.model, d, cfg.far)
        m = evaluate(v, d)
        a = attack_metrics(v, d, scenario_trigger(cfg), cfg.seed)
        rec = {"asr": a["asr"], "impostor_accept": a["impostor_accept"],
               "tar_at_far_1pct": m["tar_at_far_1pct"], "seconds": round(res.seconds, 2)}
        return {}, {"metrics": rec, "data_fingerprint": d.public.fingerprint()}

    return dict(load_or_build("sweep-point", cfg, build, inputs=sweep_point_inputs(cfg, d)).metrics)


def sweep_point_inputs(cfg: LabConfig, data: ScenarioData) -> dict[str, Any]:
    """A sweep point: the attack's inputs and the evaluation protocol's version."""
    return attack_inputs(cfg, data, eval_version=EVAL_VERSION)


# The points each profile sweeps by default: a CPU profile on real faces draws the trend
# from fewer, cheaper points (each one is an injection).
_VALUES = {"poison_rate": (0.0, 0.02, 0.05, 0.1, 0.2), "trigger_size": (0.1, 0.18, 0.25, 0.35)}
_VALUES_LAPTOP = {"poison_rate": (0.0, 0.05, 0.2), "trigger_size": (0.1, 0.25)}


def default_values(cfg: LabConfig, knob: str) -> list[Any]:
    """The values notebook 02 sweeps for `knob` on this profile."""
    table = _VALUES_LAPTOP if cfg.profile == "laptop" else _VALUES
    if knob not in table:
        raise ValueError(f"No default sweep for {knob!r}; pass values (one of {', '.join(table)} has defaults).")
    return list(table[knob])


def sweep_epochs(cfg: LabConfig) -> int:
    """Epochs of each sweep point's injection: cfg.sweep_epochs, else half the scenario's."""
    return cfg.sweep_epochs or max(2, cfg.attack_epochs // 2)


def sweep(cfg: LabConfig, knob: str, values: Iterable[Any] | None = None, epochs: int | None = None,
          progress: bool = True) -> list[dict[str, Any]]:
    """One record per value of `knob` (see SWEEPABLE), each with the knob's value."""
    if knob not in SWEEPABLE:
        raise ValueError(f"Cannot sweep {knob!r}; choose one of {', '.join(SWEEPABLE)}.")
    values = default_values(cfg, knob) if values is None else list(values)
    base = cfg.replace(attack_epochs=epochs or sweep_epochs(cfg))
    data = build_scenario_data(base)
    out = []
    for v in tqdm(values, desc=f"sweep {knob}", disable=not progress, leave=False):
        out.append({knob: v, **sweep_point(base.replace(**{knob: v}), data)})
    return out
