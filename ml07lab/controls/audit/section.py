"""The scenario JSON's `controls.security_audit`: the audit on both attack paths, the
detection study and the blind spot, as the scorecard reads them.

Why a module of its own: the section runs the detection study (`study.py`), and the
study audits backbones with `model_audit.py`; keeping the section here keeps that a
line, not a circle.
"""
from __future__ import annotations

import time
from typing import Any

from ...artifacts import load_or_build
from ...config import LabConfig
from ...keys import artefact_inputs
from ...verify import EVAL_VERSION, deploy
from .model_audit import (NC_VERSION, RULE_VERSION, AuditResult, audit_backbone, audited_identities, baseline_of,
                          inspect_backbone, model_digest, n_audited, nc_settings, new_flags, relative_scores)


def does_not_stop(paths: dict[str, Any], blind: dict[str, Any]) -> str:
    """One sentence, from the measured rows: the first path the audit missed, else its blind spot."""
    for path, rec in paths.items():
        if not rec["flagged"]:
            kind = "learnt from poisoned training data (path B)" if path == "dataset" else "in a downloaded model (path A)"
            rel = rec.get("target_relative_index")
            score = (f"target's index against the approved model {rel:.1f} < {rec['flag_at']:g}" if rel is not None
                     else f"target's index {rec['target_index']:.1f} < 2")
            return f"A backdoor {kind}: the audit did not flag it ({score}), so ASR stays {rec['asr']:.0%}."
    if not blind["new_flags"]:
        return (f"A backdoor aimed at someone it does not audit: with the target left out, nothing new is flagged "
                f"(max index {blind['max_index']:.1f}).")
    return (f"A target it does not audit is found only through a lookalike (flagged {blind['new_flags']} "
            f"with the target left out); an attacker who picks a distinctive person goes unseen.")


def _path_record(r: AuditResult) -> dict[str, Any]:
    rem = r.remediation
    after = rem["unlearned"] if rem else {"asr": r.lab["asr"], "tar_at_far_1pct": r.measured["tar_at_far_1pct"]}
    ins = r.inspection
    inspection = r.inspection_check
    return {"asr_before": r.lab["asr"], "asr": after["asr"], "tar_before": r.measured["tar_at_far_1pct"],
            "tar_at_far_1pct": after["tar_at_far_1pct"], "flagged": not r.passed,
            "new_flags": inspection.details["new_flags"],
            "target_flagged": r.lab["target_flagged"], "max_index": ins.max_index,
            "target_relative_index": inspection.details["relative_index"].get(str(r.lab["target"])),
            "flag_at": inspection.details["flag_at"],
            "target_index": float(ins.index[ins.of(r.lab["target"])]), "inspection": ins.summary(),
            "strip_far_at_frr_5pct": r.strip["far_at_frr_5pct"], "strip_frr": r.strip["frr_measured"],
            "strip_auc": r.strip.get("auc"),
            "strip_asr_after": r.strip["asr_after"],
            "unlearning": {k: v for k, v in (rem or {}).items() if k != "model"} or None,
            "seconds": round(r.seconds, 2), "strip_seconds": r.strip.get("seconds", 0.0)}


def security_audit_section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    """The scenario JSON's `controls.security_audit`: both attack paths audited against
    the approved model's baseline, remediated when flagged, the STRIP gate, the detection
    study over >= 10 backbones, and the blind spot. Cached as JSON by the models' digests."""
    from ...attack.scenario import (poisoned_backbone_dataset_path, poisoned_backbone_model_path,
                                    scenario_trigger)
    from ...backbones import clean_backbone
    from ...data.scenario import build_scenario_data
    from .study import (attacker_audits, attacker_variants, blend_variant, run_detection_study, variant_backbone,
                        variant_trigger)

    data = build_scenario_data(cfg)
    clean, _ = clean_backbone(cfg, data)
    models = {"model": poisoned_backbone_model_path(cfg, data, progress)[0],
              "dataset": poisoned_backbone_dataset_path(cfg, data, progress=progress)[0]}

    def build() -> tuple[dict, dict]:
        t0 = time.perf_counter()
        trig = scenario_trigger(cfg)
        baseline = baseline_of(clean, data, cfg, progress)
        paths = {}
        for path, model in models.items():
            r = audit_backbone(model, data, cfg, name=path, baseline=baseline, trigger=trig, progress=progress)
            paths[path] = _path_record(r)
        # The blind spot, measured: audit path A's model without the target among the audited.
        others = [i for i in audited_identities(data, cfg, n_audited(cfg) + 1) if i != data.target]
        blind = inspect_backbone(deploy(models["model"], data, cfg.far), data, cfg, identities=others, progress=progress)
        study = run_detection_study(cfg, progress=progress)
        variants = attacker_variants(cfg)
        attackers = {kind: {**_path_record(r), "stealth": float(variants[kind].stealth), "variant": variants[kind].name}
                     for kind, r in attacker_audits(cfg, data, baseline, progress).items()}
        # The second blind spot, measured: a faint full-image trigger, which a small-mask search cannot represent.
        bv = blend_variant(cfg)
        bmodel, _ = variant_backbone(cfg, bv, data, progress)
        bver = deploy(bmodel, data, cfg.far)
        brev = inspect_backbone(bver, data, cfg, progress=progress)
        from ...attack.scenario import attack_metrics

        btrig = variant_trigger(cfg, bv)
        brel = relative_scores(brev, baseline)
        blend = {"asr": attack_metrics(bver, data, btrig, cfg.seed)["asr"], "new_flags": new_flags(brev, baseline),
                 "target_relative_index": brel.get(data.target), "max_relative_index": max(brel.values()),
                 "target_index": float(brev.index[brev.of(data.target)])}
        a = paths["model"]
        out = {
            "asr_before": a["asr_before"], "asr": a["asr"], "tar_before": a["tar_before"],
            "tar_at_far_1pct": a["tar_at_far_1pct"], "seconds": a["seconds"],
            "paths": paths, "baseline": baseline, "attackers": attackers,
            **{k: study[k] for k in ("detection_auc", "tpr", "fpr", "flag_at", "detection_auc_raw", "tpr_raw",
                                     "fpr_raw", "n_clean", "n_poisoned")},
            "anomaly_index_clean": [r["max_relative_index"] for r in study["rows"]
                                    if not r["poisoned"] and not r["is_baseline"]],
            "anomaly_index_poisoned": [r["max_relative_index"] for r in study["rows"] if r["poisoned"]],
            "study": study,
            "strip_far_at_frr_5pct": a["strip_far_at_frr_5pct"], "strip_frr": a["strip_frr"],
            "unlearning_asr": (a["unlearning"] or {}).get("unlearned", {}).get("asr", a["asr"]),
            "unlearning_tar_cost_pts": round(100 * (a["tar_before"] - a["tar_at_far_1pct"]), 2),
            "blind_spot": {"identities": others, "max_index": blind.max_index,
                           "new_flags": new_flags(blind, baseline), "flagged": blind.flagged},
            "blind_spot_blend": blend,
            "does_not_stop": does_not_stop(paths, {"new_flags": new_flags(blind, baseline), "max_index": blind.max_index}),
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
        return {}, {"metrics": out}

    digests = "|".join(model_digest(m)[:16] for m in (clean, *models.values()))
    inputs = artefact_inputs(cfg, data=data, trigger=scenario_trigger(cfg), site=f"{digests}|{NC_VERSION}|{EVAL_VERSION}|{RULE_VERSION}|two-attackers",
                             nc=list(nc_settings(cfg)), privileged=n_audited(cfg))
    return dict(load_or_build("security-audit", cfg, build, inputs=inputs).metrics)


__all__ = ["security_audit_section", "does_not_stop"]
