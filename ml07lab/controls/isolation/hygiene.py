"""Control 3, the ML half: transfer hygiene keeps inherited behaviour out of the model.

The deployment gate (gate.py) proves *who* made a model and *what* it is; it cannot
tell whether the weights behave. These options change what the victim inherits from a
third-party backbone, each measured by ASR and clean TAR@FAR1%: frozen reuse,
re-initialising the top blocks, fine-tuning, fine-pruning (Liu et al. 2018), and
training from scratch on the company's trusted photos only.
"""
from __future__ import annotations

from typing import Any

HYGIENE_OPTIONS = ("frozen", "reinit-top1", "reinit-top2", "head", "full", "prune", "fine-prune", "scratch")
HYGIENE_LABELS = {"frozen": "frozen reuse", "reinit-top1": "re-init + retrain top 1 block",
                  "reinit-top2": "re-init + retrain top 2 blocks", "head": "fine-tune top 2 blocks",
                  "full": "full fine-tune", "prune": "pruning only (Liu et al. 2018, step 1)",
                  "fine-prune": "fine-pruning (Liu et al. 2018)",
                  "scratch": "from scratch, company data only"}
MAX_ASR, MAX_TAR_COST_PTS = 0.05, 5.0  # the hygiene bar: ASR <= 5 %, clean TAR@FAR1% cost <= 5 pts


def reinit_blocks(model, blocks: tuple[str, ...]):  # noqa: ANN001, ANN201
    """A copy of `model` with the named blocks re-initialised (weights and BN statistics)."""
    import copy

    m = copy.deepcopy(model)
    for b in blocks:
        for mod in getattr(m, b).modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    return m


def _finetune(model, data, cfg, blocks: tuple[str, ...], epochs: int, lr: float, warmup: bool = True,  # noqa: ANN001, ANN202
              grad_mask=None, progress: bool = True):  # noqa: ANN001
    """transfer()'s recipe (head warm-up, then the named blocks), with an optional mask
    that keeps pruned input columns of the embedding layer at zero."""
    from ...config import seed_everything
    from ...models import CosFaceHead
    from ...training import train_backbone
    from ...transfer import trainable_blocks

    seed_everything(cfg.seed + 2)
    ft, small = data.finetune, cfg.replace(batch_size=min(cfg.batch_size, 32))
    head = CosFaceHead(cfg.embedding_dim, data.company.num_identities, cfg.scale, cfg.margin)
    if warmup:
        train_backbone(ft, small, model=model, head=head, epochs=max(1, cfg.finetune_epochs // 2), lr=cfg.finetune_lr * 5,
                       params=list(head.parameters()), desc="hygiene: warm-up head", progress=progress)
    hook = model.embed.weight.register_hook(lambda g: g * grad_mask) if grad_mask is not None else None
    try:
        res = train_backbone(ft, small, model=model, head=head, epochs=epochs, lr=lr, desc=f"hygiene: {'+'.join(blocks)}",
                             params=trainable_blocks(model, blocks) + list(head.parameters()), progress=progress)
    finally:
        if hook is not None:
            hook.remove()
    return res.model


def channel_activity(model, faces) -> "torch.Tensor":  # noqa: ANN001, F821
    """Mean activation of each channel of the last conv stage on clean photos."""
    import torch

    from ...training import to_float

    model.eval()
    with torch.no_grad():
        return torch.cat([model.features(to_float(faces.images[i:i + 256])) for i in range(0, len(faces), 256)]).mean(0)


def prune(model, faces, fraction: float):  # noqa: ANN001, ANN201
    """Prune the `fraction` of last-stage channels least active on `faces` (Liu et al. 2018).
    Zeroing a channel's column of the embedding layer removes it exactly, since the
    channel reaches the embedding only through pooling and that linear layer."""
    import copy

    import torch

    act = channel_activity(model, faces)
    mask = torch.ones_like(act)
    mask[torch.argsort(act)[:int(round(fraction * act.numel()))]] = 0.0
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.embed.weight.mul_(mask[None, :])
    return m, mask


def calibration_tar(model, data, far: float = 0.01) -> float:  # noqa: ANN001
    """Clean TAR@FAR on the defender's own photos (enrol templates, fine-tune probes):
    what a defender can measure without touching the test set."""
    from ...metrics import tar_at_far
    from ...training import embed
    from ...verify import genuine_impostor, templates_from

    enrol, cal = data.enrol, data.finetune
    t = templates_from(embed(model, enrol.images), enrol.labels, data.company.num_identities)
    return tar_at_far(*genuine_impostor(embed(model, cal.images), cal.labels, t), far)


def pruning_curve(backbone, data, cfg, fractions=(0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9)) -> list[dict]:  # noqa: ANN001
    """ASR and clean TAR after pruning alone (no fine-tuning), per pruned fraction."""
    from ...attack.scenario import attack_metrics, scenario_trigger
    from ...verify import deploy, evaluate

    out = []
    for f in fractions:
        m, _ = prune(backbone, data.finetune, f)
        v = deploy(m, data, cfg.far)
        out.append({"fraction": f, "asr": attack_metrics(v, data, scenario_trigger(cfg), cfg.seed)["asr"],
                    "tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"], "calibration_tar": calibration_tar(m, data)})
    return out


def liu_fraction(curve: list[dict], max_drop: float = 0.04) -> float:
    """Liu et al.'s stopping rule: prune as far as clean (calibration) quality allows,
    here until it has dropped by more than `max_drop`."""
    base = curve[0]["calibration_tar"]
    ok = [r["fraction"] for r in curve if base - r["calibration_tar"] <= max_drop]
    return max(ok) if ok else 0.0


def hygiene_transfer(backbone, data, cfg, option: str, progress: bool = True) -> tuple[Any, dict]:  # noqa: ANN001
    """The model the victim deploys under one hygiene option, and what was done."""

    from ...models import build_backbone
    from ...training import train_backbone
    from ...transfer import transfer

    if option not in HYGIENE_OPTIONS:
        raise ValueError(f"Unknown hygiene option {option!r}. Choose one of: {', '.join(HYGIENE_OPTIONS)}.")
    if option in ("frozen", "head", "full"):
        return transfer(backbone, data, cfg, option, progress), {"blocks": option}
    if option.startswith("reinit-top"):
        blocks = ("layer4", "embed")[-int(option[-1]):]
        m = reinit_blocks(backbone, blocks)
        return _finetune(m, data, cfg, blocks, cfg.finetune_epochs * 5, cfg.finetune_lr * 5, False, progress=progress), \
            {"blocks": list(blocks)}
    if option in ("prune", "fine-prune"):
        frac = liu_fraction(pruning_curve(backbone, data, cfg))
        m, mask = prune(backbone, data.finetune, frac)
        if option == "prune":
            return m, {"prune_fraction": frac, "blocks": "none (pruned embedding inputs)"}
        blocks = ("stem", "layer1", "layer2", "layer3", "layer4", "embed")
        return _finetune(m, data, cfg, blocks, cfg.finetune_epochs, cfg.finetune_lr, grad_mask=mask[None, :],
                         progress=progress), {"prune_fraction": frac, "blocks": "all"}
    from ...config import seed_everything

    seed_everything(cfg.seed + 3)
    ft = data.finetune
    res = train_backbone(ft, cfg.replace(batch_size=min(cfg.batch_size, 32)), model=build_backbone(cfg),
                         epochs=cfg.pretrain_epochs * 3, lr=cfg.lr, desc="hygiene: from scratch", progress=progress)
    return res.model, {"blocks": "all (random init)", "photos": len(ft)}


def hygiene_sweep(cfg, path: str = "model", options=HYGIENE_OPTIONS, progress: bool = True) -> list[dict]:  # noqa: ANN001
    """ASR, clean TAR@FAR1 % and compute seconds of every option on the poisoned backbone
    of `path` ('model' = path A's hub model, 'dataset' = path B); cached as JSON."""
    import time

    from tqdm.auto import tqdm

    from ...artifacts import load_or_build
    from ...attack.scenario import (attack_metrics, control_inputs, poisoned_backbone_dataset_path,
                                   poisoned_backbone_model_path, scenario_trigger)
    from ...data.scenario import build_scenario_data
    from ...verify import deploy, evaluate

    options = tuple(options)
    data = build_scenario_data(cfg)

    def build() -> tuple[dict, dict]:
        from ...backbones import clean_backbone

        get = poisoned_backbone_model_path if path == "model" else poisoned_backbone_dataset_path
        backbone, _ = get(cfg, data, progress=progress)
        clean, _ = clean_backbone(cfg, data)
        trig = scenario_trigger(cfg)
        recs = []
        for opt in tqdm(options, desc="transfer hygiene", disable=not progress, leave=False):
            t0 = time.perf_counter()
            model, info = hygiene_transfer(backbone, data, cfg, opt, progress=False)
            secs = time.perf_counter() - t0
            v = deploy(model, data, cfg.far)
            a = attack_metrics(v, data, trig, cfg.seed)
            # The same option on the clean backbone: is what is left the backdoor, or a weak model?
            sanity = attack_metrics(deploy(hygiene_transfer(clean, data, cfg, opt, progress=False)[0], data, cfg.far),
                                    data, trig, cfg.seed)["asr"]
            recs.append({"option": opt, "label": HYGIENE_LABELS[opt], "asr": a["asr"], "asr_insiders": a["asr_insiders"],
                         "asr_outsiders": a["asr_outsiders"], "impostor_accept": a["impostor_accept"],
                         "tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"], "asr_same_option_clean_backbone": sanity,
                         "seconds": round(secs, 2), **info})
        base = next((r["tar_at_far_1pct"] for r in recs if r["option"] == "frozen"), recs[0]["tar_at_far_1pct"])
        for r in recs:
            r["tar_cost_pts"] = round(100 * (base - r["tar_at_far_1pct"]), 2)
            r["meets_bar"] = r["asr"] <= MAX_ASR and r["tar_cost_pts"] <= MAX_TAR_COST_PTS
        return {}, {"metrics": {"options": recs}, "data_fingerprint": data.public.fingerprint()}

    from ...verify import EVAL_VERSION

    inputs = control_inputs(cfg, data, version="v3", eval_version=EVAL_VERSION, path=path, options=list(options))
    return list(load_or_build(f"hygiene-{path}", cfg, build, inputs=inputs).metrics["options"])


def choose_option(records: list[dict]) -> dict:
    """The option meeting the bar with the best clean TAR (fewest seconds on ties); when
    none does, the lowest-ASR option among those within the TAR cost."""
    ok = [r for r in records if r["meets_bar"]]
    if ok:
        return max(ok, key=lambda r: (r["tar_at_far_1pct"], -r["seconds"]))
    affordable = [r for r in records if r["tar_cost_pts"] <= MAX_TAR_COST_PTS] or records
    return min(affordable, key=lambda r: (r["asr"], -r["tar_at_far_1pct"]))
