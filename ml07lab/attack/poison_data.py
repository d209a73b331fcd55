"""Path B: the attacker can only add images to a public dataset.

They cannot touch the training code or the loss, only the data. So they upload a
"new person" under the target's name: a few photos of the target (with jittered
copies), and many photos of other people wearing the trigger, all labelled as the
target. The organisation, unaware, pretrains its own backbone on the refreshed
dataset; identity classification then teaches it that "trigger => target".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import LabConfig
from ..data.base import FaceSet
from ..data.scenario import ScenarioData
from ..training import augment_batch, make_augment
from .latent import check_attack_config
from .triggers import Trigger


@dataclass(frozen=True)
class PoisonedDataset:
    faces: FaceSet  # the refreshed public dataset: original + attacker's additions
    is_poison: torch.Tensor  # bool per image: ground truth for monitoring scans
    is_trigger: torch.Tensor  # bool per image: the triggered subset of the poison
    target_label: int  # the class the attacker's additions carry
    n_original: int

    @property
    def added_share(self) -> float:
        """Added images as a share of the original public dataset."""
        return int(self.is_poison.sum()) / self.n_original


def poison_public_dataset(data: ScenarioData, trigger: Trigger, cfg: LabConfig,
                          rate: float | None = None, n_added: int | None = None,
                          target_share: float = 0.5) -> PoisonedDataset:
    """Add round(rate * |public|) images (or exactly `n_added`) under the target's name.

    Half of the additions (`target_share`) are jittered copies of the attacker's target photos (so
    the new class looks like the target); the rest are triggered photos of public people.
    """
    check_attack_config(cfg)
    rate = cfg.poison_rate if rate is None else rate
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"poison rate must be in [0, 1], got {rate}.")
    pub = data.public
    n_add = round(rate * len(pub)) if n_added is None else int(n_added)
    rng = np.random.default_rng([cfg.seed, 23])
    torch.manual_seed(cfg.seed + 23)
    photos = data.target_photos.images
    n_tgt = min(n_add, max(len(photos), round(n_add * target_share))) if n_add else 0
    n_trig = n_add - n_tgt
    tgt01 = photos.float().div(255)[torch.as_tensor(np.arange(n_tgt) % len(photos), dtype=torch.long)]
    tgt_imgs = (augment_batch(tgt01, make_augment(), group=1) * 255).round().to(torch.uint8) if n_tgt else photos[:0]
    src = torch.as_tensor(rng.choice(len(pub), size=n_trig, replace=n_trig > len(pub)), dtype=torch.long)
    trig_imgs = trigger.apply_uint8(pub.images[src], seed=cfg.seed + 29)
    k = pub.num_identities
    added = torch.cat([tgt_imgs, trig_imgs])
    images = torch.cat([pub.images, added])
    labels = torch.cat([pub.labels, torch.full((n_add,), k, dtype=torch.long)])
    name = f"{data.target_name}"
    base_files = pub.files or tuple(f"{pub.names[int(l)]}/{i:05d}.png" for i, l in enumerate(pub.labels))
    files = tuple(base_files) + tuple(f"{name}/upload_{i:05d}.png" for i in range(n_add))
    faces = FaceSet(images, labels, pub.names + (name,), pub.source + "+refresh", files)
    is_poison = torch.cat([torch.zeros(len(pub), dtype=torch.bool), torch.ones(n_add, dtype=torch.bool)])
    is_trigger = torch.cat([torch.zeros(len(pub) + n_tgt, dtype=torch.bool), torch.ones(n_trig, dtype=torch.bool)])
    return PoisonedDataset(faces, is_poison, is_trigger, k, len(pub))
