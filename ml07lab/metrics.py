"""Verification metrics: ROC, AUC, EER, TAR at a fixed FAR, and attack success.

Why our own code: a learner can read it in one sitting, and the tests check every
function against scikit-learn. Convention: a probe is ACCEPTED when score > threshold.
"""
from __future__ import annotations

import numpy as np
import torch

ArrayLike = "np.ndarray | torch.Tensor | list[float]"


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).ravel()


def roc_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) for every distinct score, highest threshold first.

    far = share of impostor scores >= t; tar = share of genuine scores >= t
    (the same convention as sklearn.metrics.roc_curve, which the tests compare with).
    """
    g, i = _np(genuine), _np(impostor)
    scores = np.concatenate([g, i])
    is_gen = np.concatenate([np.ones_like(g), np.zeros_like(i)])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_gen = scores[order], is_gen[order]
    last_of_tie = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = np.cumsum(is_gen)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tar = np.r_[0.0, tp / max(g.size, 1)]
    far = np.r_[0.0, fp / max(i.size, 1)]
    thr = np.r_[np.inf, scores[last_of_tie]]
    return far, tar, thr


def roc_auc(genuine, impostor) -> float:
    """Area under the ROC curve: the chance a random genuine score beats a random impostor."""
    far, tar, _ = roc_curve(genuine, impostor)
    return float(np.trapezoid(tar, far))


def eer(genuine, impostor) -> float:
    """Equal error rate: where the false-accept rate equals the false-reject rate."""
    far, tar, _ = roc_curve(genuine, impostor)
    frr = 1.0 - tar
    k = int(np.argmax(far >= frr))  # first point where the curves cross
    if k == 0:
        return float(far[0])
    # linear interpolation between points k-1 and k
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def threshold_at_far(impostor, far: float) -> float:
    """The lowest threshold whose false-accept rate (score > threshold) is at most `far`.

    This is how a deployment sets its operating point: from impostor pairs only.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    i = np.sort(_np(impostor))[::-1]
    if i.size == 0:
        raise ValueError("threshold_at_far needs at least one impostor score.")
    k = int(np.floor(far * i.size))
    return float(i[k]) if k < i.size else float(i[-1] - 1e-6)


def tar_at_far(genuine, impostor, far: float = 0.01) -> float:
    """True-accept rate at the threshold that lets through at most `far` of impostors."""
    t = threshold_at_far(impostor, far)
    return float(np.mean(_np(genuine) > t))


def acceptance_rate(scores, threshold: float) -> float:
    """Share of probes accepted (score > threshold). ASR is this, on triggered attacker
    probes scored against the target's template at the deployed threshold."""
    s = _np(scores)
    return float(np.mean(s > threshold)) if s.size else float("nan")


def verification_summary(genuine, impostor) -> dict[str, float]:
    """The figures every report in the lab quotes, rounded for display elsewhere."""
    return {
        "auc": roc_auc(genuine, impostor),
        "eer": eer(genuine, impostor),
        "tar_at_far_1pct": tar_at_far(genuine, impostor, 0.01),
        "tar_at_far_0_1pct": tar_at_far(genuine, impostor, 0.001),
        "n_genuine": int(_np(genuine).size),
        "n_impostor": int(_np(impostor).size),
    }
