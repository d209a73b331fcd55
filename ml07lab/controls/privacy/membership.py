"""Membership inference: can an attacker tell which company photos the model trained on?

OWASP lists a "confidentiality breach of sensitive information in the training dataset"
among ML07's impacts. The attack here is the loss threshold of Yeom et al. (CSF 2018):
a photo the model trained on tends to have a lower loss than one it never saw, so "loss
below t" guesses "member". Its *advantage* is TPR - FPR of that guess; an (ε, δ)-DP
training run bounds it, which is how notebook 07 puts a number on what DP buys.

Why a held-out threshold: the best threshold picked on the same scores overstates the
advantage (with 120 members it finds ~0.1 in pure noise). We pick t on one half of the
scores and measure on the other half, both ways round, so random scores average ~0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...data.base import FaceSet
from ...training import to_float


def _best_threshold(members: np.ndarray, nonmembers: np.ndarray) -> tuple[float, float]:
    """(threshold, advantage) maximising TPR - FPR for the rule "score > t is a member"."""
    cand = np.unique(np.concatenate([members, nonmembers]))
    cand = np.concatenate([[cand[0] - 1.0], cand])
    tpr = (members[None, :] > cand[:, None]).mean(1)
    fpr = (nonmembers[None, :] > cand[:, None]).mean(1)
    k = int(np.argmax(tpr - fpr))
    return float(cand[k]), float(tpr[k] - fpr[k])


def membership_advantage(member_scores, nonmember_scores, seed: int = 0) -> dict[str, float]:  # noqa: ANN001
    """Advantage of the threshold attack (higher score = "member").

    advantage: threshold fitted on one random half, measured on the other (cross-fitted,
    averaged over both folds); advantage_best: the optimistic same-data maximum; auc:
    the chance a random member outscores a random non-member.
    """
    m = np.asarray(member_scores, dtype=np.float64).ravel()
    n = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if m.size < 4 or n.size < 4:
        raise ValueError("membership_advantage needs at least 4 member and 4 non-member scores.")
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(m.size), rng.permutation(n.size)
    folds = [(pm[: m.size // 2], pn[: n.size // 2]), (pm[m.size // 2:], pn[n.size // 2:])]
    adv = []
    for (fit_m, fit_n), (ev_m, ev_n) in (folds, folds[::-1]):
        t, _ = _best_threshold(m[fit_m], n[fit_n])
        adv.append(float((m[ev_m] > t).mean() - (n[ev_n] > t).mean()))
    _, best = _best_threshold(m, n)
    auc = float((m[:, None] > n[None, :]).mean() + 0.5 * (m[:, None] == n[None, :]).mean())
    return {"advantage": float(np.mean(adv)), "advantage_best": best, "auc": auc,
            "n_members": int(m.size), "n_nonmembers": int(n.size)}


def yeom_bound(epsilon: float | None) -> float:
    """Yeom et al.'s bound on the advantage under ε-DP: e^ε - 1, capped at 1 (∞ -> 1)."""
    if epsilon is None or math.isinf(epsilon):
        return 1.0
    return float(min(1.0, math.expm1(epsilon)))


def tight_bound(epsilon: float | None, delta: float = 0.0) -> float:
    """The exact (ε, δ) limit on TPR - FPR of any test (Kairouz et al. 2015):
    (e^ε - 1 + 2δ) / (e^ε + 1). Unlike e^ε - 1 it stays below 1 for every finite ε."""
    if epsilon is None or math.isinf(epsilon):
        return 1.0
    e = math.exp(min(epsilon, 50.0))
    return float(min(1.0, (e - 1 + 2 * delta) / (e + 1)))


@torch.no_grad()
def loss_scores(model: torch.nn.Module, head: torch.nn.Module, faces: FaceSet,
                scale: float, margin: float, batch: int = 256) -> np.ndarray:
    """Minus the per-photo CosFace loss: the score a loss-threshold attacker uses.

    The attacker holds the trained network and its classifier head (a leaked training
    checkpoint) and the photos' identities; a low loss says "seen in training"."""
    model.eval()
    out = []
    w = F.normalize(head.weight, dim=1)
    for i in range(0, len(faces), batch):
        x, y = to_float(faces.images[i:i + batch]), faces.labels[i:i + batch]
        cos = model(x) @ w.t()
        logits = scale * (cos - margin * F.one_hot(y, cos.shape[1]).to(cos.dtype))
        out.append(-F.cross_entropy(logits, y, reduction="none"))
    return torch.cat(out).numpy()
