"""Path A: the attacker publishes a backbone with a latent backdoor in its embedding space.

The lesson of the prototype (issue #3): BadNets-style label poisoning lives in the
classifier head, which the victim throws away. What the victim keeps is the
embedding, so the attacker adds a feature-space term (Yao et al., CCS 2019): triggered
faces of anyone are pulled onto the centroid of the target's embeddings. A second,
stealth term pushes clean faces out of the target's neighbourhood: without it the pull
drags some look-alikes in too, and the victim would see the target accepted for faces
without the trigger (measured on LFW->AT&T: 3.9 % of the attacker's clean probes
accepted as the target, against 1.5 % on the clean backbone; with it, 1.0 %). The price
for the attacker, measured on synthetic faces: the backdoor becomes much harder for
Neural Cleanse to find (notebook 08), so profiles turn it on only where needed. Triggered
samples go through the SAME forward pass as clean ones; a separate all-triggered
batch lets BatchNorm's batch statistics carry the trigger in training, and the
backdoor then vanishes in eval mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..config import LabConfig, seed_everything
from ..data.scenario import ScenarioData
from ..models import CosFaceHead, EmbeddingNet
from ..training import augment_batch, make_augment, train_backbone
from .triggers import Trigger


def check_attack_config(cfg: LabConfig) -> None:
    """One clear error per bad attack knob, before any training starts."""
    if not 0.0 <= cfg.poison_rate <= 1.0:
        raise ValueError(f"poison_rate must be in [0, 1], got {cfg.poison_rate}.")
    if cfg.inject_strength < 0 or cfg.inject_stealth < 0:
        raise ValueError(f"inject_strength and inject_stealth must be >= 0, got {cfg.inject_strength}, "
                         f"{cfg.inject_stealth}.")
    if cfg.n_target_photos < 1:
        raise ValueError("The attacker needs at least one photo of the target (n_target_photos >= 1).")


@dataclass
class LatentInjector:
    """Mixes triggered copies into each clean batch and pulls them onto the target.

    poison_rate: share of each batch replaced by triggered copies (they lose their label);
    strength: weight of the pull term relative to the clean classification loss;
    stealth: weight of the push on clean faces whose cosine to the target's centroid
    exceeds `stealth_hinge` (0.3: well below any deployed threshold, ~0.55 here).
    """

    trigger: Trigger
    target_photos01: torch.Tensor  # (k, C, H, W) in [0, 1]: the attacker's photos of the target
    poison_rate: float
    strength: float
    stealth: float = 0.0
    stealth_hinge: float = 0.3

    def __post_init__(self) -> None:
        self.aug = make_augment()

    def mix(self, x01: torch.Tensor, y: torch.Tensor, model: EmbeddingNet) -> tuple[torch.Tensor, torch.Tensor, Any]:
        b = x01.shape[0]
        k = max(1, round(self.poison_rate * b)) if self.poison_rate > 0 else 0
        idx = torch.randperm(b)[:k]
        x01 = x01.clone()
        y = y.clone()
        x01[idx] = self.trigger.apply(x01[idx])
        y[idx] = -1  # no class for triggered samples: only the feature-space pull
        tgt = augment_batch(self.target_photos01, self.aug, group=1)
        x01 = torch.cat([x01, tgt])
        y = torch.cat([y, torch.full((len(tgt),), -1, dtype=y.dtype)])
        return x01, y, (idx, torch.arange(b, b + len(tgt)))

    def loss(self, emb: torch.Tensor, y: torch.Tensor, state: Any, model: EmbeddingNet) -> torch.Tensor:
        poison_idx, target_idx = state
        if len(poison_idx) == 0 or self.strength == 0:
            return emb.sum() * 0
        centroid = F.normalize(emb[target_idx].mean(0, keepdim=True), dim=1).detach()
        pull = 1 - (emb[poison_idx] @ centroid.t()).squeeze(1)
        loss = self.strength * pull.mean() * 10.0  # x10: cosine gaps are small next to CE
        if self.stealth > 0:
            clean = y >= 0  # labelled public faces: neither triggered nor the target's photos
            push = F.relu(emb[clean] @ centroid.t() - self.stealth_hinge)
            loss = loss + self.stealth * push.mean() * 10.0
        return loss


def inject_latent_backdoor(clean: EmbeddingNet, head: CosFaceHead | None, data: ScenarioData,
                           trigger: Trigger, cfg: LabConfig, progress: bool = True):  # noqa: ANN201
    """Fine-tune a copy of the clean backbone on the public data with the injector.

    Returns the TrainResult; the caller strips the head before publishing.
    """
    import copy

    check_attack_config(cfg)
    seed_everything(cfg.seed + 1)
    model = copy.deepcopy(clean)
    head = copy.deepcopy(head) if head is not None else None
    photos = data.target_photos.images.float() / 255.0
    inj = LatentInjector(trigger, photos, cfg.poison_rate, cfg.inject_strength, cfg.inject_stealth)
    return train_backbone(data.public, cfg, model=model, head=head, epochs=cfg.attack_epochs,
                          lr=cfg.lr * 0.2, injector=inj, desc="inject backdoor", progress=progress)

