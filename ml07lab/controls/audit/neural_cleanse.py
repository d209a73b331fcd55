"""Neural Cleanse (Wang et al., S&P 2019) adapted to face *verification*.

The original searches, for every output class, the smallest trigger (a mask and a
pattern) that sends other inputs to that class; a backdoored class needs a much smaller
trigger than the rest, and a robust outlier test (median absolute deviation) finds it.

A verifier has no classes, only templates and a threshold. So for each *audited
identity* (a privileged user) we search the smallest mask + pattern that pushes other
people's faces over a bar against that identity's template: the deployed threshold, or
higher, the score a typical genuine photo reaches (see `model_audit.genuine_bar`). A
backdoored identity is reachable with a small trigger; a clean one needs most of a face.
All audited identities are optimised together in one batch, which keeps the audit
cheap enough to run on every model an organisation receives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...models import EmbeddingNet

MAD_CONSISTENCY = 1.4826  # makes the MAD a consistent estimator of sigma for normal data
FLAG_AT = 2.0  # Neural Cleanse: an anomaly index >= 2 is a > 95 % outlier
# The audit's false-alarm budget: the share of clean models it may fail (issue 12: FPR <= 0.1).
# The flag level follows from it; it is not tuned on the zoo (whose clean models stay far below).
FAMILY_ALPHA = 0.10
REL_NOISE = 0.03  # the smallest spread of log size ratios taken as real (3 %): below it, search noise


def anomaly_index(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Neural Cleanse's anomaly index of each value: |x - median| / (1.4826 * MAD).

    Only *small* mask norms are suspicious (a backdoor makes a trigger easy), so values
    above the median get a negative sign; flag an index >= 2.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 3:
        raise ValueError(f"The anomaly index needs at least 3 audited identities, got {x.size}.")
    med = np.median(x)
    mad = MAD_CONSISTENCY * np.median(np.abs(x - med))
    mad = max(mad, 1e-12 * max(1.0, abs(med)))  # identical norms: no outlier, avoid 0/0
    return (med - x) / mad


def norm_index(mask_l1: Sequence[float] | np.ndarray, log_scale: bool = True) -> np.ndarray:
    """The anomaly index of trigger sizes. Over log sizes by default: how hard a person is
    to impersonate varies by a *factor* across people (a lookalike-rich face needs half the
    trigger of a distinctive one), so a ratio, not a difference, is the natural unit."""
    x = np.asarray(mask_l1, dtype=np.float64)
    return anomaly_index(np.log(np.maximum(x, 1e-6)) if log_scale else x)


@lru_cache(maxsize=None)
def flag_level(k: int, alpha: float = FAMILY_ALPHA, draws: int = 40_000) -> float:
    """The index a model-level flag needs when k identities are audited at once.

    Neural Cleanse's 2 is a per-identity rule. An auditor who looks at k identities and
    flags the model when *any* index reaches 2 will, with k = 12 and no backdoor at all,
    flag about 36 % of clean models (the smallest of 12 values is usually ~1.6 MAD below
    the median). The family-wise level is the (1 - alpha) quantile of the largest index
    of k values with no outlier (standard normal; seeded Monte Carlo): 3.1 for k = 12 at
    the default alpha, the false-alarm budget the audit is given (FAMILY_ALPHA)."""
    if k < 3:
        raise ValueError(f"The anomaly index needs at least 3 audited identities, got {k}.")
    x = np.random.default_rng(12345).standard_normal((draws, k))
    med = np.median(x, axis=1, keepdims=True)
    mad = MAD_CONSISTENCY * np.median(np.abs(x - med), axis=1, keepdims=True)
    return round(float(np.quantile(((med - x) / mad).max(axis=1), 1 - alpha)), 2)


def relative_index(mask_l1: Sequence[float] | np.ndarray, baseline_l1: Sequence[float] | np.ndarray) -> np.ndarray:
    """The anomaly index of each identity's trigger size *relative to the approved model's*
    (log ratio). A person whom many resemble (a "lamb") needs a small trigger in every model,
    so the raw index flags them again and again; the ratio cancels that, and what is left
    is what changed between the approved model and this one: a backdoor's target shrinks."""
    a, b = (np.log(np.maximum(np.asarray(v, dtype=np.float64), 1e-6)) for v in (mask_l1, baseline_l1))
    if a.shape != b.shape:
        raise ValueError(f"relative_index needs one baseline size per identity ({a.shape} vs {b.shape}).")
    if a.size < 3:
        raise ValueError(f"The anomaly index needs at least 3 audited identities, got {a.size}.")
    d = a - b
    med = np.median(d)
    # A spread below 3 % is search noise, not signal: when most sizes did not move at all, a
    # lamb whose size moved by 5 % must not become an outlier of infinite index.
    mad = max(MAD_CONSISTENCY * np.median(np.abs(d - med)), REL_NOISE)
    return (med - d) / mad


@dataclass
class ReversedTriggers:
    """The smallest trigger found for each audited identity, and what it achieves."""

    identities: list[int]  # company labels audited
    masks: torch.Tensor  # (K, 1, H, W) in [0, 1]
    patterns: torch.Tensor  # (K, 1, H, W) in [0, 1]
    mask_l1: np.ndarray  # (K,) sum of mask values: the "trigger size"
    success: np.ndarray  # (K,) share of held-out faces pushed over the threshold
    log_scale: bool = True  # index over log norms (see `norm_index`)
    history: list[list[float]] = field(default_factory=list)  # best sizes every 10 steps
    seconds: float = 0.0  # compute time of the search (kept when the result is cached)
    index: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.index = norm_index(self.mask_l1, self.log_scale)

    @property
    def flagged(self) -> list[int]:
        """Audited identities whose index is >= 2 (most anomalous first)."""
        order = np.argsort(-self.index)
        return [self.identities[i] for i in order if self.index[i] >= FLAG_AT]

    @property
    def max_index(self) -> float:
        return float(self.index.max())

    def of(self, identity: int) -> int:
        return self.identities.index(identity)

    def summary(self) -> dict:
        return {"identities": self.identities, "mask_l1": [round(float(v), 3) for v in self.mask_l1],
                "success": [round(float(v), 3) for v in self.success],
                "anomaly_index": [round(float(v), 3) for v in self.index], "log_scale": self.log_scale,
                "max_index": round(self.max_index, 3), "flagged": self.flagged}


def reverse_engineer(model: EmbeddingNet, faces: torch.Tensor, owners: torch.Tensor,
                     templates: torch.Tensor, identities: Sequence[int], threshold: float,
                     steps: int = 300, batch: int = 24, lr: float = 0.1, lam0: float = 1e-3,
                     success_at: float = 0.9, bar: float | None = None, seed: int = 0, log_scale: bool = True,
                     progress: bool = True) -> ReversedTriggers:
    """Search the smallest mask + pattern per audited identity (all at once).

    faces: uint8 (N,1,H,W) photos the auditor owns; owners: (N,) their company labels,
    so a person's own photos never count as "pushed over" their own template.
    templates: (K_all, D) enrolled templates; threshold: the deployed one; bar: a higher
    score to reach (success = `success_at` of a batch above it).
    The loss is a hinge on (bar + margin - score) plus lambda * |mask|_1; lambda adapts
    per identity as in Neural Cleanse: up while the trigger works, down when not.
    """
    gen = torch.Generator().manual_seed(seed)
    ids = list(identities)
    k, (h, w) = len(ids), faces.shape[-2:]
    x_all = faces.float().div(255.0)
    tmpl = F.normalize(templates[ids], dim=1)  # (K, D)
    mask_logit = torch.full((k, 1, h, w), -3.0).add_(0.1 * torch.randn(k, 1, h, w, generator=gen)).requires_grad_(True)
    pat_logit = (0.5 * torch.randn(k, 1, h, w, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([mask_logit, pat_logit], lr=lr, betas=(0.5, 0.9))
    lam = torch.full((k,), lam0)
    best_l1 = torch.full((k,), float("inf"))
    best_m, best_p = torch.sigmoid(mask_logit).detach().clone(), torch.sigmoid(pat_logit).detach().clone()
    margin = 0.05
    threshold = threshold if bar is None else max(threshold, bar)
    history: list[list[float]] = []
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        for step in tqdm(range(steps), desc="neural cleanse", disable=not progress, leave=False):
            # Each identity gets its own batch of faces that are not that person's.
            idx = torch.randint(0, len(x_all), (k, batch), generator=gen)
            own = owners[idx] == torch.tensor(ids).unsqueeze(1)
            x = x_all[idx]  # (K, B, 1, H, W)
            m, p = torch.sigmoid(mask_logit), torch.sigmoid(pat_logit)
            xt = (1 - m.unsqueeze(1)) * x + (m * p).unsqueeze(1)
            emb = model((xt * 2 - 1).reshape(k * batch, 1, h, w)).reshape(k, batch, -1)
            s = (emb * tmpl.unsqueeze(1)).sum(-1)  # (K, B)
            valid = (~own).float()
            hinge = (F.relu(threshold + margin - s) * valid).sum(1) / valid.sum(1).clamp(min=1)
            l1 = m.flatten(1).sum(1)
            loss = (hinge + lam * l1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                rate = ((s > threshold).float() * valid).sum(1) / valid.sum(1).clamp(min=1)
                # Smoothed over recent batches: one lucky batch of a dozen faces must not
                # certify a trigger that works on few of them.
                ema = rate if step == 0 else 0.7 * ema + 0.3 * rate
                ok = (ema >= success_at) & (rate >= success_at)
                better = ok & (l1 < best_l1)
                best_l1 = torch.where(better, l1, best_l1)
                best_m[better], best_p[better] = m[better], p[better]
                if step % 10 == 9:
                    history.append(best_l1.tolist())
                if step >= steps // 10:  # Neural Cleanse's schedule: shrink while it still works
                    lam = torch.where(ok, lam * 1.08, lam / 1.08).clamp(1e-5, 1.0)
    finally:
        for p, f in zip(model.parameters(), frozen):
            p.requires_grad_(f)
    never = ~torch.isfinite(best_l1)
    best_m[never], best_p[never] = torch.sigmoid(mask_logit).detach()[never], torch.sigmoid(pat_logit).detach()[never]
    success = trigger_success(model, x_all, owners, tmpl, ids, best_m, best_p, threshold)
    # An identity never reached gets the whole image as its trigger size: clearly not small.
    l1 = torch.where(never, torch.full_like(best_l1, float(h * w)), best_l1)
    return ReversedTriggers(ids, best_m, best_p, l1.numpy(), success, log_scale, history)


@torch.no_grad()
def trigger_success(model: EmbeddingNet, x01: torch.Tensor, owners: torch.Tensor, tmpl: torch.Tensor,
                    ids: Sequence[int], masks: torch.Tensor, patterns: torch.Tensor, threshold: float) -> np.ndarray:
    """Share of all the auditor's faces (other people's) that each reversed trigger
    pushes over the threshold for its identity."""
    out = []
    for i, ident in enumerate(ids):
        keep = owners != ident
        xt = (1 - masks[i]) * x01[keep] + masks[i] * patterns[i]
        e = model(xt * 2 - 1)
        out.append(float(((e @ tmpl[i]) > threshold).float().mean()))
    return np.array(out)
