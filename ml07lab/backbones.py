"""Building, caching and loading backbones: the clean "public" one and its relatives.

Why cached: pretraining is the slowest step of the lab; `clean_backbone(cfg)` trains
once per profile/seed and every later notebook reuses the safetensors artefact.
"""
from __future__ import annotations

from typing import Any

import torch

from .artifacts import Artifact, load_or_build
from .config import LabConfig, seed_everything
from .data.scenario import ScenarioData, build_scenario_data
from .keys import artefact_inputs, normalise
from .models import CosFaceHead, EmbeddingNet, build_backbone
from .training import TrainResult, train_backbone
from .verify import deploy, evaluate

HEAD_PREFIX = "head."
# The knobs that decide a pretrained backbone's weights: every cache key of a model built
# on top of one includes them, so a new architecture knob is added here, once.
PRETRAIN_KEYS = ("profile", "seed", "dataset", "public_dataset", "image_size", "lfw_min_images",
                 "n_public_ids", "images_per_id", "arch", "width", "stem_pool", "channels_last", "embedding_dim",
                 "pretrain_epochs", "batch_size", "lr", "margin", "scale")
# What the clean backbone's weights depend on: the pretraining knobs and the public faces.
CLEAN_KEYS = (*PRETRAIN_KEYS, "weight_decay")


def pack(res: TrainResult, keep_head: bool = True) -> dict[str, torch.Tensor]:
    """Flatten backbone (+ optionally the classifier head) into one tensor dict."""
    out = dict(res.model.state_dict())
    if keep_head:
        out.update({HEAD_PREFIX + k: v for k, v in res.head.state_dict().items()})
    return out


def unpack(tensors: dict[str, torch.Tensor], cfg: LabConfig, norm: str = "batch") -> tuple[EmbeddingNet, CosFaceHead | None]:
    """Rebuild the backbone (and head, when the artefact kept one) from a tensor dict."""
    model = build_backbone(cfg, norm=norm)
    body = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    model.load_state_dict(body)
    model.eval()
    head = None
    hw = tensors.get(HEAD_PREFIX + "weight")
    if hw is not None:
        head = CosFaceHead(hw.shape[1], hw.shape[0], cfg.scale, cfg.margin)
        head.load_state_dict({"weight": hw})
        head.eval()
    return model, head


def train_and_describe(data: ScenarioData, cfg: LabConfig, faces=None, **train_kwargs: Any) -> tuple[dict, dict]:  # noqa: ANN001
    """Pretrain on `faces` (default: the public people), evaluate transfer to the company,
    and return (tensors, meta) ready for `load_or_build`."""
    seed_everything(cfg.seed)
    faces = faces if faces is not None else data.public
    res = train_backbone(faces, cfg, **train_kwargs)
    metrics = evaluate(deploy(res.model, data, cfg.far), data)
    meta = {
        "data_fingerprint": faces.fingerprint(),
        "data_tag": cfg.data_tag,
        "metrics": metrics,
        "metrics_inputs": metrics_inputs(cfg, data),
        "history": res.history,
        "train_seconds": round(res.seconds, 2),
        "num_classes": faces.num_identities,
    }
    return pack(res), meta


def carried_head(head: CosFaceHead, known_names: tuple[str, ...], faces, model: EmbeddingNet) -> CosFaceHead:  # noqa: ANN001
    """A classifier head for `faces`' people, started from a trained one: a person the
    old head knows keeps their row (matched by name, so a relabelled subset still fits);
    a new person's row is imprinted from the mean embedding of their photos."""
    from .training import embed

    out = CosFaceHead(head.weight.shape[1], faces.num_identities, head.scale, head.margin)
    rows = {n: i for i, n in enumerate(known_names)}
    norm = float(head.weight.detach().norm(dim=1).mean())
    with torch.no_grad():
        for c, name in enumerate(faces.names):
            if name in rows:
                out.weight[c] = head.weight[rows[name]]
            else:
                mine = faces.images[faces.labels == c]
                mean = embed(model, mine).mean(0) if len(mine) else out.weight[c]
                out.weight[c] = torch.nn.functional.normalize(mean, dim=0) * norm
    return out


def refresh_start(cfg: LabConfig, data: ScenarioData, faces) -> dict[str, Any]:  # noqa: ANN001
    """Where a *refresh* starts (cfg.refresh_epochs > 0): copies of the clean backbone and
    its head, carried over to the refreshed dataset's people. Organisations retrain on a
    refreshed dataset this way far more often than from scratch; the attacker's uploads
    are learned all the same (notebook 02, path B)."""
    import copy

    clean, art = clean_backbone(cfg, data)
    _, head = unpack(art.tensors, cfg)
    model = copy.deepcopy(clean)
    return {"model": model, "head": carried_head(head, data.public.names, faces, model),
            "epochs": cfg.refresh_epochs, "lr": cfg.lr * 0.2}


def clean_backbone_inputs(cfg: LabConfig, data: ScenarioData) -> dict[str, Any]:
    """The clean backbone's weights depend on the pretraining knobs and the public faces only,
    so every company dataset, target and attack setting shares one trained backbone."""
    return artefact_inputs(cfg, CLEAN_KEYS, data=data, company=False)


def metrics_inputs(cfg: LabConfig, data: ScenarioData) -> dict[str, Any]:
    """What a backbone's recorded company metrics were measured on: the company data,
    its roles and target, and the operating point."""
    return artefact_inputs(cfg, ("far",), data=data)


def clean_backbone(cfg: LabConfig, data: ScenarioData | None = None, rebuild: bool = False) -> tuple[EmbeddingNet, Artifact]:
    """The clean public backbone for this profile: trained once, then loaded from cache.

    Its weights are shared by every company dataset; its recorded metrics were measured
    on one. When this call's company data differs, the metrics are measured again (in
    memory, seconds) so they never describe another company's people."""
    data = data or build_scenario_data(cfg)
    art = load_or_build("clean-backbone", cfg, lambda: train_and_describe(data, cfg),
                        inputs=clean_backbone_inputs(cfg, data), rebuild=rebuild)
    model, _ = unpack(art.tensors, cfg)
    want = normalise(metrics_inputs(cfg, data))
    if art.meta.get("metrics_inputs") != want:
        meta = {**art.meta, "metrics": evaluate(deploy(model, data, cfg.far), data), "metrics_inputs": want,
                "metrics_remeasured": True}
        art = Artifact(art.path, art.tensors, meta, art.built)
    return model, art
