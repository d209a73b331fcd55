"""Face embedding networks and the margin head used to pretrain them.

Why a small ResNet: it trains on 2 CPU cores in minutes at 32-64 px, yet has the same
shape as real face models (stem, stages, pooled features, an embedding layer), so
"which blocks does the victim fine-tune?" means the same thing as in the papers.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, resnet18

from .config import LabConfig

# The order of blocks from input to output; transfer modes and fine-pruning name them.
BLOCKS = ("stem", "layer1", "layer2", "layer3", "layer4", "embed")


def group_norm(channels: int) -> nn.Module:
    """GroupNorm keeps per-sample statistics, which DP-SGD needs (BatchNorm mixes samples)."""
    return nn.GroupNorm(min(8, channels), channels)


def _stage(cin: int, cout: int, stride: int, norm: Callable[[int], nn.Module]) -> nn.Sequential:
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))
    return nn.Sequential(BasicBlock(cin, cout, stride, down, norm_layer=norm))


class EmbeddingNet(nn.Module):
    """A four-stage ResNet (torchvision BasicBlocks) ending in an L2-normalised embedding."""

    def __init__(self, image_size: int = 32, width: int = 32, embedding_dim: int = 128,
                 in_channels: int = 1, norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 stem_pool: bool = False):
        super().__init__()
        w = width
        # Stride-2 stem: on 2 CPU cores most of the cost of a small ResNet is its first,
        # full-resolution stage, and faces survive 2x downsampling. A further 2x pool
        # (stem_pool) halves the cost again but loses the detail that tells faces apart:
        # on LFW->AT&T at 64 px it measured EER 8.7 % / TAR@FAR1% 0.82 with the pool,
        # 4.0 % / 0.91 without (6 min of training instead of 2.5 on 2 cores).
        pool = [nn.MaxPool2d(2)] if stem_pool else []
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 2, 1, bias=False), norm(w), nn.ReLU(inplace=True), *pool
        )
        self.layer1 = _stage(w, w, 1, norm)
        self.layer2 = _stage(w, 2 * w, 2, norm)
        self.layer3 = _stage(2 * w, 4 * w, 2, norm)
        self.layer4 = _stage(4 * w, 8 * w, 2, norm)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Linear(8 * w, embedding_dim)
        self.embedding_dim = embedding_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the embedding layer (what fine-pruning inspects)."""
        for name in BLOCKS[:-1]:
            x = getattr(self, name)(x)
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.features(x)), dim=1)


class ResNet18Embedding(EmbeddingNet):
    """torchvision's resnet18 re-wired for grey faces, for the `full` (GPU) profile."""

    def __init__(self, embedding_dim: int = 128, in_channels: int = 1,
                 norm: Callable[[int], nn.Module] = nn.BatchNorm2d):
        nn.Module.__init__(self)
        r = resnet18(weights=None, norm_layer=norm)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), r.bn1, r.relu
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Linear(512, embedding_dim)
        self.embedding_dim = embedding_dim


def build_backbone(cfg: LabConfig, norm: str = "batch") -> EmbeddingNet:
    """The backbone named by cfg.arch. norm='group' gives the DP-SGD-friendly variant."""
    norm_fn: Callable[[int], nn.Module] = group_norm if norm == "group" else nn.BatchNorm2d
    if cfg.arch == "small":
        return EmbeddingNet(cfg.image_size, cfg.width, cfg.embedding_dim, 1, norm_fn, cfg.stem_pool)
    if cfg.arch == "resnet18":
        return ResNet18Embedding(cfg.embedding_dim, 1, norm_fn)
    raise ValueError(f"Unknown arch {cfg.arch!r}: use 'small' or 'resnet18'.")


class CosFaceHead(nn.Module):
    """CosFace (Wang et al. 2018): logits s*(cos θ − m) for the true class, s*cos θ otherwise.

    Why a margin loss: it shapes the embedding space so that a cosine threshold
    separates people, which is exactly what verification uses after transfer.
    """

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 16.0, margin: float = 0.35):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = emb @ F.normalize(self.weight, dim=1).t()
        if labels is not None:
            cos = cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * cos


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
