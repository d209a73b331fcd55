"""Training loops: margin-loss pretraining of a backbone, with a hook for the attacker.

Why one loop: the clean "public" backbone, the attacker's poisoned backbone (path A)
and the organisation's own pretraining on a poisoned dataset (path B) differ only in
the data and one extra loss term, so they share this code. That also makes the
lesson visible: the poisoned model is trained exactly like a clean one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .config import LabConfig, resolve_device
from .data.base import FaceSet
from .models import BLOCKS, CosFaceHead, EmbeddingNet, build_backbone
from .runtime import apply_threads


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N,C,H,W) in [0,255] -> float in [-1, 1], the network's input range."""
    return images.float().div_(127.5).sub_(1.0)


def make_augment() -> v2.Compose:
    """Mild geometric and photometric jitter (torchvision v2): the nuisances a kiosk sees."""
    return v2.Compose([
        v2.RandomAffine(degrees=8, translate=(0.06, 0.06), scale=(0.92, 1.08)),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.25, contrast=0.25),
    ])


def augment_batch(x: torch.Tensor, aug: v2.Compose, group: int = 4) -> torch.Tensor:
    """Apply `aug` with fresh random parameters to every `group` images.

    Why groups: torchvision draws one set of parameters per call; one call per image
    costs ~0.2 ms on a CPU, and groups of 4 keep most of the diversity at a quarter of it.
    Input and output are in [0, 1].
    """
    return torch.cat([aug(c) for c in x.split(group)]).clamp_(0, 1)


class Injector(Protocol):
    """What an attack adds to a training loop (see ml07lab.attack).

    `mix` returns the batch to train on (it may swap in triggered images, in the SAME
    forward pass as the clean ones, which matters for BatchNorm), and `loss` returns an
    extra term computed from that batch's embeddings.
    """

    def mix(self, x01: torch.Tensor, y: torch.Tensor, model: EmbeddingNet) -> tuple[torch.Tensor, torch.Tensor, Any]: ...

    def loss(self, emb: torch.Tensor, y: torch.Tensor, state: Any, model: EmbeddingNet) -> torch.Tensor: ...


def _freeze_untrained_blocks(model: EmbeddingNet, trainable: list[nn.Parameter]) -> None:
    """Blocks with no trainable parameter stay in eval mode, so their BatchNorm
    statistics do not drift either: "frozen" must mean frozen."""
    ids = {id(p) for p in trainable}
    for name in BLOCKS:
        block = getattr(model, name, None)
        if block is not None and not any(id(p) in ids for p in block.parameters()):
            block.eval()


@dataclass
class TrainResult:
    model: EmbeddingNet
    head: CosFaceHead
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_backbone(
    faces: FaceSet,
    cfg: LabConfig,
    model: EmbeddingNet | None = None,
    head: CosFaceHead | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    injector: Injector | None = None,
    params: list[nn.Parameter] | None = None,
    desc: str = "pretrain",
    progress: bool = True,
) -> TrainResult:
    """Identity classification with a CosFace margin, SGD + cosine schedule.

    `params` restricts which parameters move (e.g. only the top blocks); by default all
    of the backbone and the head train. Returns the model in eval mode on the CPU.
    """
    device = resolve_device(cfg.device)
    apply_threads(cfg)  # the CPUs this process may use, not the host's core count
    model = model if model is not None else build_backbone(cfg)
    head = head if head is not None else CosFaceHead(cfg.embedding_dim, faces.num_identities, cfg.scale, cfg.margin)
    # NHWC (channels_last) is a layout, not a change of function: ~16 % faster convolutions
    # on a CPU. The model goes back to the default layout before it is saved or returned.
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device, memory_format=fmt)
    head.to(device)
    epochs = cfg.pretrain_epochs if epochs is None else epochs
    lr = cfg.lr if lr is None else lr
    trainable = params if params is not None else [*model.parameters(), *head.parameters()]
    opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    n = len(faces)
    steps_per_epoch = max(1, n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    aug = make_augment()
    x_all = faces.images.float().div(255.0)
    y_all = faces.labels
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        head.train()
        _freeze_untrained_blocks(model, trainable)
        perm = torch.randperm(n)
        tot = {"loss": 0.0, "ce": 0.0, "extra": 0.0, "acc": 0.0}
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x01, y = augment_batch(x_all[idx], aug), y_all[idx]
            state = None
            if injector is not None:
                x01, y, state = injector.mix(x01, y, model)
            x, y = (x01 * 2 - 1).to(device, memory_format=fmt), y.to(device)
            emb = model(x)
            valid = y >= 0  # injected samples may carry label -1: no class, only the extra loss
            logits = head(emb[valid], y[valid])
            ce = F.cross_entropy(logits, y[valid]) if valid.any() else emb.sum() * 0
            extra = injector.loss(emb, y, state, model) if injector is not None else ce * 0
            loss = ce + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot["loss"] += loss.item()
            tot["ce"] += ce.item()
            tot["extra"] += extra.item()
            with torch.no_grad():
                tot["acc"] += (head(emb[valid]).argmax(1) == y[valid]).float().mean().item() if valid.any() else 0.0
        rec = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in tot.items()}}
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['acc']:.2f}")
    model.eval().cpu().to(memory_format=torch.contiguous_format)
    head.eval().cpu()
    return TrainResult(model, head, history, time.perf_counter() - t0)


@torch.no_grad()
def embed(model: EmbeddingNet, images: torch.Tensor, device: Any = "cpu", batch: int = 512) -> torch.Tensor:
    """Embeddings of uint8 images, in eval mode, on the CPU."""
    model.eval()
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    model.to(dev)
    out = [model(to_float(images[i:i + batch]).to(dev)).cpu() for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.empty(0, model.embedding_dim)
