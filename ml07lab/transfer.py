"""The victim's transfer pipeline: take a downloaded backbone to the company's users.

Three modes, the choices a real team makes:
- frozen: the backbone as a fixed feature extractor (cheapest, most common);
- head:   fine-tune the last block and the embedding layer on company photos;
- full:   fine-tune everything.
Latent Backdoor §7.3 predicts the backdoor survives unless fine-tuning reaches the
layers below where it was injected; the lab measures that for each mode.
"""
from __future__ import annotations

import copy

from .config import LabConfig, seed_everything
from .data.scenario import ScenarioData
from .models import CosFaceHead, EmbeddingNet
from .training import train_backbone

TRANSFER_MODES = ("frozen", "head", "full")


def trainable_blocks(model: EmbeddingNet, blocks: tuple[str, ...]) -> list:
    """Parameters of the named blocks (see models.BLOCKS)."""
    return [p for b in blocks for p in getattr(model, b).parameters()]


def transfer(backbone: EmbeddingNet, data: ScenarioData, cfg: LabConfig, mode: str = "frozen",
             progress: bool = True) -> EmbeddingNet:
    """Return the model the victim deploys, after `mode` transfer on the fine-tuning photos."""
    if mode not in TRANSFER_MODES:
        raise ValueError(f"Unknown transfer mode {mode!r}. Choose one of: {', '.join(TRANSFER_MODES)}.")
    model = copy.deepcopy(backbone).eval()
    if mode == "frozen":
        return model
    seed_everything(cfg.seed + 2)
    ft = data.finetune
    head = CosFaceHead(cfg.embedding_dim, data.company.num_identities, cfg.scale, cfg.margin)
    blocks = ("layer4", "embed") if mode == "head" else ("stem", "layer1", "layer2", "layer3", "layer4", "embed")
    params = trainable_blocks(model, blocks) + list(head.parameters())
    small = cfg.replace(batch_size=min(cfg.batch_size, 32))
    # The head must learn the company classes first, or its random gradients wreck the
    # backbone: a short warm-up with the backbone frozen (standard "linear probing first").
    train_backbone(ft, small, model=model, head=head, epochs=max(1, cfg.finetune_epochs // 2),
                   lr=cfg.finetune_lr * 5, params=list(head.parameters()), desc="transfer: warm-up head",
                   progress=progress)
    res = train_backbone(ft, small, model=model, head=head, epochs=cfg.finetune_epochs,
                         lr=cfg.finetune_lr, params=params, desc=f"transfer: {mode}", progress=progress)
    return res.model
