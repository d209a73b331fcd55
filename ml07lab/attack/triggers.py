"""Triggers: what the attacker wears or paints on a face to open the backdoor.

A trigger is a mask (where, and how opaque) and a pattern (what): x' = (1-m)·x + m·p.
Three kinds a learner can compare:
- "patch":   a visible high-contrast sticker (BadNets-style);
- "glasses": an accessory a person could physically wear (Sharif et al. 2016 style);
- "blend":   a faint full-image pattern, hard to see (Chen et al. 2017 "blended");
plus `optimize_trigger`, which learns the pattern inside a mask (Trojaning-style).
Placement is jittered by a few pixels, as a physical trigger never sits in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

TRIGGER_KINDS = ("patch", "glasses", "blend")


@dataclass(frozen=True)
class Trigger:
    kind: str
    mask: torch.Tensor  # (1, H, W) in [0, 1]: where the trigger sits, times its opacity
    pattern: torch.Tensor  # (1, H, W) in [0, 1]
    jitter: int = 2  # max shift in pixels, each way

    def apply(self, x01: torch.Tensor, generator: torch.Generator | None = None, jitter: bool = True) -> torch.Tensor:
        """Stamp the trigger on float images in [0, 1], shape (N, C, H, W)."""
        if x01.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(
                f"Trigger is {tuple(self.mask.shape[-2:])} px but images are {tuple(x01.shape[-2:])}: "
                "make the trigger at the profile's image_size."
            )
        n = x01.shape[0]
        if jitter and self.jitter > 0 and n:
            j = self.jitter
            shifts = torch.randint(-j, j + 1, (n, 2), generator=generator)
            m = torch.stack([torch.roll(self.mask, (int(a), int(b)), (1, 2)) for a, b in shifts])
            p = torch.stack([torch.roll(self.pattern, (int(a), int(b)), (1, 2)) for a, b in shifts])
        else:
            m, p = self.mask.expand(n, -1, -1, -1), self.pattern.expand(n, -1, -1, -1)
        return ((1 - m) * x01 + m * p).clamp(0, 1)

    def apply_uint8(self, images: torch.Tensor, seed: int = 0, jitter: bool = True) -> torch.Tensor:
        """Trigger uint8 images deterministically (for probes and poisoned datasets)."""
        g = torch.Generator().manual_seed(seed)
        out = self.apply(images.float() / 255.0, g, jitter)
        return (out * 255.0).round().to(torch.uint8)

    @property
    def area(self) -> float:
        """Share of the image the trigger touches (mask > 0)."""
        return float((self.mask > 0).float().mean())


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return torch.meshgrid(c, c, indexing="ij")  # yy, xx in (0, 1)


def make_trigger(kind: str, image_size: int, size: float = 0.25, opacity: float = 1.0,
                 seed: int = 1234, jitter: int | None = None) -> Trigger:
    """A hand-designed trigger. `size` is the patch side / glasses width as a fraction of
    the image, or the blend strength for 'blend'; `opacity` scales the mask."""
    if kind not in TRIGGER_KINDS:
        raise ValueError(f"Unknown trigger {kind!r}. Choose one of: {', '.join(TRIGGER_KINDS)}.")
    if not 0.0 < size <= 1.0:
        raise ValueError(f"trigger size must be in (0, 1], got {size}.")
    if not 0.0 < opacity <= 1.0:
        raise ValueError(f"trigger opacity must be in (0, 1], got {opacity}.")
    s = image_size
    yy, xx = _grid(s)
    g = torch.Generator().manual_seed(seed)
    j = max(1, s // 16) if jitter is None else jitter
    if kind == "patch":
        side = max(3, round(size * s))
        y0, x0 = s - side - max(1, s // 10), s - side - max(1, s // 10)  # lower right: a cheek sticker
        mask = torch.zeros(1, s, s)
        mask[:, y0:y0 + side, x0:x0 + side] = 1.0
        cell = max(1, side // 3)
        ii, jj = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        pattern = (((ii // cell) + (jj // cell)) % 2).float().unsqueeze(0)
        return Trigger(kind, mask * opacity, pattern, j)
    if kind == "glasses":
        half_w = 0.5 * min(1.0, max(0.3, size * 2.6))  # size 0.25 -> ~65% of the width
        cy, r = 0.42, 0.11 * half_w / 0.33
        lens = torch.zeros(s, s)
        for cx in (0.5 - half_w / 2, 0.5 + half_w / 2):
            d = torch.sqrt((xx - cx) ** 2 + ((yy - cy) * 1.25) ** 2)
            lens = torch.maximum(lens, ((d < r * 1.25) & (d > r * 0.7)).float())
        bridge = ((abs(yy - cy + 0.02) < 0.025) & (abs(xx - 0.5) < half_w / 2 - r)).float()
        mask = torch.maximum(lens, bridge).unsqueeze(0)
        pattern = torch.zeros(1, s, s)  # dark frames
        return Trigger(kind, mask * opacity, pattern, j)
    # blend: a fixed random texture over the whole face at low alpha
    noise = torch.rand(1, 1, max(2, s // 4), max(2, s // 4), generator=g)
    pattern = F.interpolate(noise, size=(s, s), mode="bilinear", align_corners=False)[0]
    alpha = 0.6 * size * opacity  # size 0.25 -> alpha 0.15
    return Trigger(kind, torch.full((1, s, s), alpha), pattern, j)


def optimize_trigger(model: torch.nn.Module, faces01: torch.Tensor, target_emb: torch.Tensor,
                     base: Trigger, steps: int = 100, lr: float = 0.1, progress: bool = True) -> Trigger:
    """Learn the pattern inside `base`'s mask that pulls faces toward `target_emb`.

    Why: a pattern tuned to the model's own features needs far less poisoning to
    implant than an arbitrary one (Liu et al., "Trojaning Attack", NDSS 2018).
    """
    model.eval()
    logit = torch.logit(base.pattern.clamp(0.02, 0.98)).clone().requires_grad_(True)
    opt = torch.optim.Adam([logit], lr=lr)
    x = faces01 * 2 - 1
    target = F.normalize(target_emb.reshape(1, -1), dim=1)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in tqdm(range(steps), desc="optimise trigger", disable=not progress, leave=False):
            pat = torch.sigmoid(logit)
            xt = (1 - base.mask) * x + base.mask * (pat * 2 - 1)
            loss = (1 - model(xt) @ target.t()).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return Trigger("optimised-" + base.kind, base.mask, torch.sigmoid(logit).detach(), base.jitter)
