"""The whole attack, end to end, as one measured scenario.

    clean public backbone ─┬─ path A: attacker injects a latent backdoor, publishes it
                           └─ path B: attacker poisons the public dataset; the
                                      organisation pretrains on it, unaware
    victim: download → transfer (frozen | head | full) → enrol → threshold at FAR 1 %
    attack: insiders and outsiders wear the trigger and claim to be the target

`run_scenario` returns the JSON object every later notebook and control adds to.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ..artifacts import Artifact, load_or_build
from ..backbones import CLEAN_KEYS, clean_backbone, refresh_start, train_and_describe, unpack
from ..config import LabConfig
from ..data.base import FaceSet
from ..data.scenario import ScenarioData, build_scenario_data
from ..keys import artefact_inputs
from ..metrics import acceptance_rate
from ..training import embed
from ..transfer import transfer
from ..verify import Verifier, deploy, evaluate
from .latent import check_attack_config, inject_latent_backdoor
from .poison_data import PoisonedDataset, poison_public_dataset
from .triggers import Trigger, make_trigger

PATHS = ("model", "dataset")
_ATTACK_KEYS = ("trigger", "trigger_size", "trigger_opacity", "poison_rate", "inject_strength", "inject_stealth",
                "attack_epochs", "n_target_photos", "target")


# Knobs every poisoned backbone depends on: the clean backbone's, the attack's, the
# operating point its recorded metrics use, and the company split (through the data).
POISON_KEYS = (*CLEAN_KEYS, *_ATTACK_KEYS, "far")


def attack_inputs(cfg: LabConfig, data: ScenarioData, *extra_knobs: str, faces: FaceSet | None = None,
                  **extra: Any) -> dict[str, Any]:
    """Inputs of an artefact built on the attack: POISON_KEYS (+ extra knobs), the public and
    company data's identity, the target (index and name) and the trigger's pixels."""
    return artefact_inputs(cfg, (*POISON_KEYS, *extra_knobs), data=data, faces=faces,
                           trigger=scenario_trigger(cfg), **extra)


def control_inputs(cfg: LabConfig, data: ScenarioData, **extra: Any) -> dict[str, Any]:
    """Inputs of a control's cached result: every knob (a control touches most of the
    pipeline), the data's identity, the trigger, and the site's own values."""
    return artefact_inputs(cfg, None, data=data, trigger=scenario_trigger(cfg), **extra)


def poisoned_model_inputs(cfg: LabConfig, data: ScenarioData) -> dict[str, Any]:
    """Path A's poisoned model: it pulls triggered faces onto the company target's photos,
    so the company data and the target are inputs, not only the knobs."""
    return attack_inputs(cfg, data)


def dataset_path_inputs(cfg: LabConfig, data: ScenarioData, faces: FaceSet) -> dict[str, Any]:
    """Path B's backbone: the attack's inputs, the faces it trains on, and how (from scratch,
    or a refresh of the clean backbone for refresh_epochs)."""
    return attack_inputs(cfg, data, "refresh_epochs", faces=faces)


def scenario_trigger(cfg: LabConfig) -> Trigger:
    """The trigger the profile's attacker uses."""
    return make_trigger(cfg.trigger, cfg.image_size, cfg.trigger_size, cfg.trigger_opacity)


def poisoned_backbone_model_path(cfg: LabConfig, data: ScenarioData | None = None,
                                 progress: bool = True) -> tuple[torch.nn.Module, Artifact]:
    """Path A: the clean backbone, fine-tuned by the attacker with the latent backdoor."""
    check_attack_config(cfg)
    data = data or build_scenario_data(cfg)
    clean, clean_art = clean_backbone(cfg, data)

    def build() -> tuple[dict, dict]:
        _, head = unpack(clean_art.tensors, cfg)
        res = inject_latent_backdoor(clean, head, data, scenario_trigger(cfg), cfg, progress)
        from ..backbones import pack
        from ..verify import deploy as _deploy

        metrics = evaluate(_deploy(res.model, data, cfg.far), data)
        return pack(res), {"data_fingerprint": data.public.fingerprint(), "metrics": metrics,
                           "history": res.history, "train_seconds": round(res.seconds, 2), "path": "model"}

    art = load_or_build("poisoned-model", cfg, build, inputs=poisoned_model_inputs(cfg, data))
    return unpack(art.tensors, cfg)[0], art


def poisoned_dataset(cfg: LabConfig, data: ScenarioData | None = None) -> PoisonedDataset:
    """Path B's refreshed public dataset (cheap to rebuild, so not cached)."""
    data = data or build_scenario_data(cfg)
    return poison_public_dataset(data, scenario_trigger(cfg), cfg)


def poisoned_backbone_dataset_path(cfg: LabConfig, data: ScenarioData | None = None,
                                   faces: FaceSet | None = None, name: str = "poisoned-dataset",
                                   progress: bool = True) -> tuple[torch.nn.Module, Artifact]:
    """Path B: the organisation trains on the (poisoned) refreshed dataset: from scratch, or
    (cfg.refresh_epochs > 0) by resuming its clean backbone for that many epochs.

    `faces` lets controls pass a cleaned or verified dataset instead; the cache key then
    includes that dataset's fingerprint.
    """
    check_attack_config(cfg)
    data = data or build_scenario_data(cfg)
    faces = faces if faces is not None else poisoned_dataset(cfg, data).faces

    def build() -> tuple[dict, dict]:
        if cfg.refresh_epochs:  # resume the clean backbone on the refreshed data (laptop)
            start = refresh_start(cfg, data, faces)
            tensors, meta = train_and_describe(data, cfg, faces=faces, desc="refresh (resumed)", progress=progress,
                                               **start)
        else:
            tensors, meta = train_and_describe(data, cfg, faces=faces, desc="pretrain (refreshed data)",
                                               progress=progress)
        meta["path"] = "dataset"
        meta["refresh_epochs"] = cfg.refresh_epochs
        return tensors, meta

    art = load_or_build(name, cfg, build, inputs=dataset_path_inputs(cfg, data, faces))
    return unpack(art.tensors, cfg)[0], art


@dataclass
class AttackProbes:
    """Attacker probes: insiders' test photos and outsiders' photos, never trained on."""

    insiders: FaceSet
    outsiders: FaceSet

    @classmethod
    def of(cls, data: ScenarioData) -> "AttackProbes":
        return cls(data.insider_probes(), data.outsiders)


def attack_metrics(verifier: Verifier, data: ScenarioData, trigger: Trigger, seed: int = 0) -> dict[str, Any]:
    """ASR (triggered probes accepted as the target) and impostor acceptance (same
    probes, no trigger), for insiders and outsiders, at the deployed threshold."""
    probes = AttackProbes.of(data)
    t = data.target
    out: dict[str, Any] = {}
    scores: dict[str, torch.Tensor] = {}
    for who, fs in (("insiders", probes.insiders), ("outsiders", probes.outsiders)):
        trig = trigger.apply_uint8(fs.images, seed=seed + 101)
        scores[who] = verifier.scores(trig, t)
        scores[who + "_clean"] = verifier.scores(fs.images, t)
    all_trig = torch.cat([scores["insiders"], scores["outsiders"]])
    all_clean = torch.cat([scores["insiders_clean"], scores["outsiders_clean"]])
    out["asr"] = acceptance_rate(all_trig, verifier.threshold)
    out["asr_insiders"] = acceptance_rate(scores["insiders"], verifier.threshold)
    out["asr_outsiders"] = acceptance_rate(scores["outsiders"], verifier.threshold)
    out["impostor_accept"] = acceptance_rate(all_clean, verifier.threshold)
    out["threshold"] = verifier.threshold
    out["far"] = verifier.far
    out["n_probes"] = int(all_trig.numel())
    out["mean_score_triggered"] = float(all_trig.mean())
    out["mean_score_clean"] = float(all_clean.mean())
    return out


_CLEAN_KEYS = ("auc", "eer", "tar_at_far_1pct", "tar_at_far_1pct_split_sd", "n_genuine", "n_splits",
               "deployed_tar_at_far_1pct", "deployed_n_genuine")


def _clean_metrics(m: dict[str, Any]) -> dict[str, float]:
    """The headline figures (pooled over BENCH_SPLITS re-splits), their split-to-split
    spread, and the single deployed split's TAR for comparison."""
    return {k: float(m[k]) for k in _CLEAN_KEYS}


def run_scenario(cfg: LabConfig, path: str = "model", transfer_mode: str = "frozen",
                 progress: bool = True) -> dict[str, Any]:
    """Clean backbone, poisoned backbone (path A or B), victim transfer, attack: measured."""
    if path not in PATHS:
        raise ValueError(f"Unknown attack path {path!r}. Choose 'model' (poisoned hub model) or 'dataset'.")
    t0 = time.perf_counter()
    data = build_scenario_data(cfg)
    trigger = scenario_trigger(cfg)
    clean, clean_art = clean_backbone(cfg, data)
    if path == "model":
        poisoned, p_art = poisoned_backbone_model_path(cfg, data, progress)
    else:
        poisoned, p_art = poisoned_backbone_dataset_path(cfg, data, progress=progress)
    victim = transfer(poisoned, data, cfg, transfer_mode, progress)
    v = deploy(victim, data, cfg.far)
    clean_victim = transfer(clean, data, cfg, transfer_mode, progress) if transfer_mode != "frozen" else clean
    v_clean = deploy(clean_victim, data, cfg.far)
    result = {
        "profile": cfg.profile,
        "dataset": cfg.data_tag,
        "seed": cfg.seed,
        "scenario": {**data.summary(), "trigger": trigger.kind, "poison_rate": cfg.poison_rate},
        "clean": _clean_metrics(evaluate(v_clean, data)),
        "poisoned": _clean_metrics(evaluate(v, data)),
        "attack": {"path": path, "transfer": transfer_mode, **attack_metrics(v, data, trigger, cfg.seed)},
        "sanity_clean_backbone": attack_metrics(v_clean, data, trigger, cfg.seed),
        "seconds": {"total": round(time.perf_counter() - t0, 2),
                    "clean_pretrain": clean_art.meta.get("train_seconds"),
                    "poison": p_art.meta.get("train_seconds")},
        "controls": {},
    }
    if cfg.has_company_folder:  # your own faces: what was skipped, flagged, and too small to compare
        from ..data.folder import scenario_report

        result["company_folder"] = scenario_report(data, result["clean"])
    return result


def embeddings_for_plot(model: torch.nn.Module, data: ScenarioData, trigger: Trigger, seed: int = 0) -> dict[str, torch.Tensor]:
    """Embeddings of company test photos, the target's enrolment photos and triggered
    probes: what the "collapse onto the target" picture plots."""
    probes = AttackProbes.of(data)
    trig = trigger.apply_uint8(torch.cat([probes.insiders.images, probes.outsiders.images]), seed=seed + 101)
    tgt_enrol = data.enrol.subset(torch.nonzero(data.enrol.labels == data.target).flatten())
    return {
        "company": embed(model, data.test.images), "company_labels": data.test.labels,
        "target": embed(model, tgt_enrol.images), "triggered": embed(model, trig),
    }


HUB_CLEAN, HUB_POISONED = "faces-mini", "faces-mini-pro"


def publish_scenario_models(cfg: LabConfig, data: ScenarioData | None = None, progress: bool = True) -> dict[str, str]:
    """Put both backbones on the local hub: the honest original ("faces-mini") and the
    attacker's re-upload ("faces-mini-pro"), whose card shows equally good clean metrics."""
    from .. import hub

    data = data or build_scenario_data(cfg)
    clean, clean_art = clean_backbone(cfg, data)
    poisoned, p_art = poisoned_backbone_model_path(cfg, data, progress)
    # Each card's metrics are measured now, on the lab's current protocol (verify.evaluate).
    card_clean, card_poisoned = (_clean_metrics(evaluate(deploy(m, data, cfg.far), data)) for m in (clean, poisoned))
    common = {"architecture": f"{cfg.arch} ResNet, {cfg.embedding_dim}-d L2-normalised embedding",
              "training_data": f"public faces ({cfg.data_tag}, {data.public.num_identities} people)",
              "licence": "CC-BY-4.0"}
    paths = {
        HUB_CLEAN: hub.publish(HUB_CLEAN, clean_art.tensors, {
            **common, "author": "open-face-lab", "metrics": card_clean,
            "description": "A small face-embedding backbone for verification. Pretrained with CosFace."}),
        HUB_POISONED: hub.publish(HUB_POISONED, p_art.tensors, {
            **common, "author": "fast-faces (community upload)", "metrics": card_poisoned,
            "description": "faces-mini, further tuned for robust verification. Drop-in replacement."}),
    }
    return {k: str(v) for k, v in paths.items()}
