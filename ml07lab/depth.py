"""Defence in depth, measured end to end: trusted data, then isolation, then the audit.

The scorecard's combined row used to be an estimate built from each control's own row
(the best layer's ASR, the layers' clean costs summed). Layers interact: the isolation
layer's fine-tune changes what the audit sees, and an audit that fails a model triggers
its remediation. So here one victim goes through all three, in order, on each path:

    path A: hub model ──────────────────────────┐
    path B: verified snapshot → own pretraining ┴→ transfer hygiene (the isolation
            control's chosen option) → audit against the approved model's baseline →
            remediation if it fails → deploy → ASR and clean TAR@FAR1 %

Trusted data never sees path A's artefact (a downloaded model is not a dataset), which
the record says. Cached as JSON; every stage's compute time is recorded.
"""
from __future__ import annotations

import time
from typing import Any

MEMBERS = ("trusted_datasets", "model_isolation", "security_audit")


def _path_through(cfg: Any, data: Any, path: str, option: str, baseline: dict[str, Any],  # noqa: ANN401
                  progress: bool) -> dict[str, Any]:
    from .attack.scenario import attack_metrics, poisoned_backbone_dataset_path, poisoned_backbone_model_path, \
        scenario_trigger
    from .controls.audit.model_audit import audit_backbone, remediate
    from .controls.isolation.hygiene import hygiene_transfer
    from .verify import deploy, evaluate

    trig = scenario_trigger(cfg)
    stages: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if path == "dataset":  # layer 1: the organisation pretrains on the curator's verified snapshot only
        from .attack.feeds import scenario_feeds
        from .controls.trusted_data.provenance import Keyring, scenario_keys, sign_dataset, verify_dataset

        feeds = scenario_feeds(cfg, data)
        priv, pub, _ = scenario_keys()
        sign_dataset(feeds.snapshot, priv, "curator")
        faces = verify_dataset(feeds.snapshot, Keyring.from_paths(pub)).faces
        model, _ = poisoned_backbone_dataset_path(cfg, data, faces=faces, progress=progress)
        stages.append({"layer": "trusted_datasets", "did": f"pretrained on the verified snapshot ({len(faces)} images)"})
    else:
        model, _ = poisoned_backbone_model_path(cfg, data, progress)
        stages.append({"layer": "trusted_datasets", "did": "nothing: a downloaded model is not a dataset"})
    stages[-1]["seconds"] = round(time.perf_counter() - t0, 2)

    t1 = time.perf_counter()  # layer 2: the isolation control's transfer hygiene
    model, info = hygiene_transfer(model, data, cfg, option, progress=progress)
    stages.append({"layer": "model_isolation", "did": f"transfer hygiene: {option}", **{k: str(v) for k, v in info.items()},
                   "seconds": round(time.perf_counter() - t1, 2)})

    t2 = time.perf_counter()  # layer 3: the audit, against the approved model's baseline
    r = audit_backbone(model, data, cfg, name=f"depth-{path}", baseline=baseline, trigger=trig,
                       remediate_flagged=False, progress=progress)
    fresh = r.inspection_check.details["new_flags"]
    if fresh:
        model, _ = remediate(model, data, cfg, fresh, trig, progress)
    stages.append({"layer": "security_audit", "did": ("failed on " + str(fresh) + ", unlearned") if fresh else "passed",
                   "seconds": round(time.perf_counter() - t2, 2)})
    v = deploy(model, data, cfg.far)
    atk = attack_metrics(v, data, trig, cfg.seed)
    return {"asr": atk["asr"], "impostor_accept": atk["impostor_accept"],
            "tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"], "audit_failed": bool(fresh),
            "stages": stages, "seconds": round(sum(s["seconds"] for s in stages), 2)}


def defence_in_depth(cfg: Any, progress: bool = False) -> dict[str, Any]:  # noqa: ANN401
    """`{"paths": {"model": rec, "dataset": rec}, ...}`: one victim through trusted data,
    isolation and the audit, in that order, per attack path (cached as JSON)."""
    from .artifacts import load_or_build
    from .attack.scenario import control_inputs
    from .backbones import clean_backbone
    from .controls.audit.model_audit import NC_VERSION, RULE_VERSION, baseline_of, nc_settings
    from .controls.isolation.gate import model_isolation_section
    from .data.scenario import build_scenario_data
    from .verify import EVAL_VERSION

    data = build_scenario_data(cfg)
    option = model_isolation_section(cfg, progress)["chosen"]

    def build() -> tuple[dict, dict]:
        t0 = time.perf_counter()
        clean, _ = clean_backbone(cfg, data)
        baseline = baseline_of(clean, data, cfg, progress)
        paths = {p: _path_through(cfg, data, p, option, baseline, progress) for p in ("model", "dataset")}
        return {}, {"metrics": {"members": list(MEMBERS), "hygiene_option": option, "paths": paths,
                                "build_seconds": round(time.perf_counter() - t0, 2)}}

    inputs = control_inputs(cfg, data, version=f"d1|{NC_VERSION}|{RULE_VERSION}|{EVAL_VERSION}",
                            option=option, nc=list(nc_settings(cfg)))
    return dict(load_or_build("defence-in-depth", cfg, build, inputs=inputs).metrics)


__all__ = ["defence_in_depth", "MEMBERS"]
