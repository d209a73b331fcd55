"""Detection quality of the model audit, measured over many backbones, not shown once.

An audit that flags the one poisoned model in a notebook proves little: it might flag
every model. So we build a small zoo of backbones and audit each one blind:
- poisoned: the clean backbone with a latent backdoor injected (path A), varying the
  injection seed, the target and the trigger kind;
- clean: the original clean backbone, and honest re-tunes of it (the very same recipe
  minus the backdoor, with other seeds), so the only difference is the backdoor;
- when cached, path B's backbone (pretrained on the poisoned public data).
Each is audited with the same protocol (the same number of audited identities, the
variant's target among them), and the ROC over "max anomaly index" gives AUC and the
TPR / FPR at Neural Cleanse's threshold of 2.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...artifacts import load_or_build
from ...attack.latent import inject_latent_backdoor
from ...attack.scenario import attack_inputs, attack_metrics
from ...attack.triggers import Trigger, make_trigger
from ...backbones import clean_backbone, pack, unpack
from ...config import LabConfig, seed_everything
from ...data.scenario import ScenarioData, assign_roles, build_scenario_data
from ...keys import inputs_key, trigger_identity
from ...metrics import roc_auc
from ...training import train_backbone
from ...verify import EVAL_VERSION, deploy, evaluate
from .neural_cleanse import FLAG_AT, flag_level, norm_index


PATH_A = "poisoned-path-a"  # the scenario's own hub model, reused from its cache


@dataclass(frozen=True)
class Variant:
    """One backbone of the study: poisoned or not, and the knobs that made it."""

    name: str
    poisoned: bool
    seed: int
    target: int
    trigger: str
    stealth: float = 0.0  # the injector's stealth weight: 0 is the plain attacker


def study_variants(cfg: LabConfig, n_clean: int = 5, n_poisoned: int = 5) -> list[Variant]:
    """A fixed, seeded zoo: targets spread over the company, triggers cycled.

    The poisoned variants are the *plain* attacker (no stealth term), the one Neural
    Cleanse is built to find. Path A's own model joins them only where the scenario's
    attacker is plain (ci); a stealthy scenario attacker (laptop) is replaced by a plain
    twin with the same target and trigger, and audited on its own (`attacker_audits`)."""
    from .model_audit import n_audited, privileged_identities

    n_people = cfg.n_company_ids if cfg.dataset == "synthetic" else 32
    # An attacker aims at someone worth impersonating: a privileged user, whom the audit covers.
    privileged = privileged_identities(n_people, cfg.target, cfg.seed, n_audited(cfg))
    rng = np.random.default_rng([cfg.seed, 61])
    others = rng.permutation(privileged[1:]).tolist()
    targets = [cfg.target] + [int(others[i % len(others)]) for i in range(max(n_clean, n_poisoned) * 2)]
    # Localised triggers only: Neural Cleanse searches a *small* mask, so a faint full-image
    # ("blend") trigger is outside what it can find by construction. That miss is measured
    # on its own (`blend_variant`, the section's blind spots), not averaged into this study.
    kinds = ("glasses", "patch")
    out = [Variant("clean-original", False, cfg.seed, cfg.target, cfg.trigger)]
    out += [Variant(f"clean-retune-{i}", False, cfg.seed + i, targets[i], kinds[i % 2]) for i in range(1, n_clean)]
    out += [Variant(PATH_A, True, cfg.seed, cfg.target, cfg.trigger) if cfg.inject_stealth == 0
            else Variant("poisoned-0-plain", True, cfg.seed + 10, cfg.target, cfg.trigger)]
    out += [Variant(f"poisoned-{i}-{kinds[i % 2]}", True, cfg.seed + 10 + i, targets[-i], kinds[i % 2])
            for i in range(1, n_poisoned)]
    return out


def variant_trigger(cfg: LabConfig, v: Variant) -> Trigger:
    """The trigger a variant's attacker wears: its kind, at the profile's size and opacity."""
    return make_trigger(v.trigger, cfg.image_size, cfg.trigger_size, cfg.trigger_opacity)


def blend_variant(cfg: LabConfig) -> Variant:
    """The plain attacker with a faint full-image trigger (Chen et al. 2017), aimed at the
    scenario's target: Neural Cleanse's known blind spot, measured."""
    return Variant("poisoned-blend", True, cfg.seed + 20, cfg.target, "blend")


STEALTH = 1.0  # the stealthy attacker's stealth weight (the laptop scenario's)


def attacker_variants(cfg: LabConfig) -> dict[str, Variant]:
    """The two attackers side by side, with the scenario's target and trigger: *plain*
    (the pull alone) and *stealthy* (the pull plus the push that keeps clean look-alikes
    off the target). One of them is the scenario's own path A model; the other is a twin
    built like a zoo variant."""
    scen = Variant(PATH_A, True, cfg.seed, cfg.target, cfg.trigger, float(cfg.inject_stealth))
    if cfg.inject_stealth == 0:
        return {"plain": scen,
                "stealthy": Variant("poisoned-0-stealthy", True, cfg.seed + 10, cfg.target, cfg.trigger, STEALTH)}
    return {"plain": Variant("poisoned-0-plain", True, cfg.seed + 10, cfg.target, cfg.trigger), "stealthy": scen}


def attacker_model(cfg: LabConfig, kind: str, data: ScenarioData | None = None):  # noqa: ANN201
    """The backbone of the "plain" or the "stealthy" attacker (built once, then cached)."""
    variants = attacker_variants(cfg)
    if kind not in variants:
        raise ValueError(f"Unknown attacker {kind!r}: choose one of {', '.join(variants)}.")
    return variant_backbone(cfg, variants[kind], data or build_scenario_data(cfg))[0]


def attacker_audits(cfg: LabConfig, data: ScenarioData, baseline: dict[str, Any] | None,
                    progress: bool = False) -> dict[str, Any]:
    """The full audit (Neural Cleanse against the baseline, STRIP, unlearning when
    flagged) of the plain and the stealthy attacker's backbones: {kind: AuditResult}."""
    from .model_audit import audit_backbone

    out = {}
    for kind, v in attacker_variants(cfg).items():
        model, _ = variant_backbone(cfg, v, data, progress)
        trig = variant_trigger(cfg, v)
        out[kind] = audit_backbone(model, data, cfg, name=f"{kind} attacker", baseline=baseline, trigger=trig,
                                   progress=progress)
    return out


def retarget(data: ScenarioData, cfg: LabConfig, target: int) -> ScenarioData:
    """The same people with another target: only the roles (who is attacker-held) change."""
    if target == data.target:
        return data
    role = assign_roles(data.company.labels, target, cfg.n_enrol, cfg.n_finetune, cfg.n_target_photos, cfg.seed)
    return ScenarioData(data.public, data.company, data.outsiders, role, target)


def zoo_epochs(cfg: LabConfig) -> int:
    """Epochs of each zoo variant's fine-tune: the scenario's own recipe, the same for
    clean and poisoned variants, so only the backdoor differs. (Half as many epochs saves
    ~80 s in ci but left one clean re-tune with an unstable outlier: keep the recipe.)"""
    return cfg.zoo_epochs or cfg.attack_epochs


def variant_backbone(cfg: LabConfig, v: Variant, data: ScenarioData, progress: bool = False):  # noqa: ANN201
    """Build (or load) one backbone of the zoo. Every variant starts from the same cached
    clean backbone, so building one costs an injection (seconds), not a pretraining."""
    clean, art = clean_backbone(cfg, data)
    if v.name == "clean-original":
        return clean, art
    if v.name == PATH_A:
        from ...attack.scenario import poisoned_backbone_model_path

        return poisoned_backbone_model_path(cfg, data, progress)
    vdata = retarget(data, cfg, v.target)
    epochs = zoo_epochs(cfg)
    vcfg = cfg.replace(target=v.target, trigger=v.trigger, seed=v.seed, attack_epochs=epochs, inject_stealth=v.stealth)
    trig = variant_trigger(cfg, v)

    def build() -> tuple[dict, dict]:
        _, head = unpack(art.tensors, cfg)
        if v.poisoned:
            res = inject_latent_backdoor(clean, head, vdata, trig, vcfg, progress)
        else:  # the honest publisher: the same fine-tune, no injector
            seed_everything(v.seed + 1)
            res = train_backbone(data.public, cfg, model=copy.deepcopy(clean), head=copy.deepcopy(head),
                                 epochs=epochs, lr=cfg.lr * 0.2, desc="honest re-tune", progress=progress)
        return pack(res), {"data_fingerprint": data.public.fingerprint(), "variant": asdict(v),
                           "train_seconds": round(res.seconds, 2)}

    inputs = attack_inputs(cfg, data, variant=asdict(v), epochs=epochs, variant_trigger=trigger_identity(trig))
    a = load_or_build("audit-zoo", cfg, build, inputs=inputs)
    return unpack(a.tensors, cfg)[0], a


def detection_metrics(scores: list[float], poisoned: list[bool], flag_at: float = FLAG_AT) -> dict[str, float]:
    """AUC of the score (max anomaly index) separating poisoned from clean, and the
    true/false-positive rates of the rule "flag when the index >= flag_at"."""
    s, y = np.asarray(scores, float), np.asarray(poisoned, bool)
    if y.all() or not y.any():
        raise ValueError("Detection metrics need both clean and poisoned backbones.")
    return {"detection_auc": roc_auc(s[y], s[~y]), "tpr": float(np.mean(s[y] >= flag_at)),
            "fpr": float(np.mean(s[~y] >= flag_at)), "n_clean": int((~y).sum()), "n_poisoned": int(y.sum())}


def run_detection_study(cfg: LabConfig, n_clean: int = 6, n_poisoned: int = 5,
                        progress: bool = True) -> dict[str, Any]:
    """Audit every backbone of the zoo blind (cached as one JSON artefact per zoo).

    Two decision rules, each with its AUC and its TPR / FPR at its operating point:
    - Neural Cleanse alone, as published: the largest raw anomaly index, flagged at 2;
    - the deployed audit: the largest index *relative to the approved model's audit*
      (`clean-original`, the baseline, which is then not counted as a test), flagged at
      the family-wise level for the number of audited identities (`flag_level`)."""
    from .model_audit import inspect_backbone, new_flags, relative_scores

    variants = study_variants(cfg, n_clean, n_poisoned)

    def build() -> tuple[dict, dict]:
        t0 = time.perf_counter()
        data = build_scenario_data(cfg)
        rows, baseline = [], None
        for v in tqdm(variants, desc="audit study", disable=not progress):
            model, _ = variant_backbone(cfg, v, data, progress=False)
            vdata = retarget(data, cfg, v.target)
            verifier = deploy(model, vdata, cfg.far)
            trig = variant_trigger(cfg, v)
            atk = attack_metrics(verifier, vdata, trig, cfg.seed)
            t1 = time.perf_counter()
            rev = inspect_backbone(verifier, vdata, cfg, progress=False)
            if v.name == "clean-original":
                baseline = rev.summary()
            fresh = new_flags(rev, baseline) if v.name != "clean-original" else []
            rel = relative_scores(rev, baseline) if v.name != "clean-original" else {}
            rows.append({**asdict(v), "asr": atk["asr"], "tar_at_far_1pct": evaluate(verifier, vdata)["tar_at_far_1pct"],
                         "max_index": rev.max_index, "flagged": rev.flagged, "new_flags": fresh,
                         "max_relative_index": max(rel.values()) if rel else None,
                         "target_relative_index": rel.get(v.target), "flagged_with_baseline": bool(fresh),
                         "is_baseline": v.name == "clean-original",
                         "max_index_raw_scale": float(norm_index(rev.mask_l1, False).max()),
                         "target_index": float(rev.index[rev.of(v.target)]),
                         "target_mask_l1": float(rev.mask_l1[rev.of(v.target)]),
                         "median_mask_l1": float(np.median(rev.mask_l1)), "inspection": rev.summary(),
                         "audit_seconds": round(time.perf_counter() - t1, 2)})
        tested = [r for r in rows if not r["is_baseline"]]
        level = flag_level(len(baseline["identities"]))
        det = detection_metrics([r["max_relative_index"] for r in tested], [r["poisoned"] for r in tested], level)
        raw = detection_metrics([r["max_index"] for r in rows], [r["poisoned"] for r in rows], FLAG_AT)
        det.update(flag_at=level, n_baseline=1, detection_auc_raw=raw["detection_auc"], tpr_raw=raw["tpr"],
                   fpr_raw=raw["fpr"], flag_at_raw=FLAG_AT, n_clean_raw=raw["n_clean"],
                   target_found=float(np.mean([r["target"] in r["new_flags"] for r in tested if r["poisoned"]])))
        return {}, {"metrics": {**det, "rows": rows, "seconds": round(time.perf_counter() - t0, 2)}}

    return dict(load_or_build("audit-study", cfg, build, inputs=_study_inputs(cfg, n_clean, n_poisoned)).metrics)


def _study_inputs(cfg: LabConfig, n_clean: int, n_poisoned: int) -> dict[str, Any]:
    from ...attack.scenario import control_inputs
    from .model_audit import NC_VERSION, RULE_VERSION, n_audited, nc_settings

    variants = [asdict(v) for v in study_variants(cfg, n_clean, n_poisoned)]
    return control_inputs(cfg, build_scenario_data(cfg), variants=variants, epochs=zoo_epochs(cfg),
                          version=f"{NC_VERSION}{EVAL_VERSION}{RULE_VERSION}", nc=list(nc_settings(cfg)),
                          privileged=n_audited(cfg))


FULL, REDUCED = (6, 5), (3, 2)  # (clean incl. the baseline, poisoned): 10 tested backbones, or 4


def study_or_reduced(cfg: LabConfig, progress: bool = True) -> tuple[dict[str, Any], bool]:
    """The full study when it is cached (`ml07lab run` builds it), else a reduced one
    (3 clean + 2 poisoned backbones, about a minute in ci). Returns (study, reduced)."""
    from ...artifacts import artifact_dir

    if (artifact_dir("audit-study", cfg, inputs_key(_study_inputs(cfg, *FULL))) / "meta.json").is_file():
        return run_detection_study(cfg, *FULL, progress=progress), False
    return run_detection_study(cfg, *REDUCED, progress=progress), True
