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


def sweep(cfg: LabConfig, knob: str, values: Iterable[Any], epochs: int | None = None,
          progress: bool = True) -> list[dict[str, Any]]:
    """One record per value of `knob` (see SWEEPABLE), each with the knob's value."""
    if knob not in SWEEPABLE:
        raise ValueError(f"Cannot sweep {knob!r}; choose one of {', '.join(SWEEPABLE)}.")
    values = list(values)
    base = cfg.replace(attack_epochs=epochs or max(2, cfg.attack_epochs // 2))
    data = build_scenario_data(base)
    out = []
    for v in tqdm(values, desc=f"sweep {knob}", disable=not progress, leave=False):
        out.append({knob: v, **sweep_point(base.replace(**{knob: v}), data)})
    return out
