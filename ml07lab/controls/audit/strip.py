"""STRIP at the kiosk: inspect each probe at run time by superimposing other faces on it.

Gao et al. (ACSAC 2019) blend an input with random clean images: a clean input's
prediction scatters, while a trojaned input keeps its (wrong) prediction, because the
trigger dominates whatever it is blended with. For verification the "prediction" is
the score against the *claimed* identity's template: a genuine face blended with
strangers drifts away from its template, a triggered face stays glued to the target's.

The gate runs after the verifier, on claims it would accept. Its statistic is the
*persistence* of the score: the mean score of the blends divided by the probe's own
score (a genuine face keeps about half of it, a triggered one nearly all). A probe
whose persistence exceeds tau is rejected; tau is set on the calibration photos so
that 5 % of accepted genuine users would be rejected (FRR 5 %), and the FAR is the
share of accepted triggered probes that still pass. Nothing here retrains the model:
it costs n_overlays extra forward passes per probe, which a kiosk can afford.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...attack.scenario import AttackProbes
from ...attack.triggers import Trigger
from ...data.scenario import ScenarioData
from ...metrics import roc_auc
from ...training import embed
from ...verify import Verifier


@torch.no_grad()
def strip_statistic(verifier: Verifier, probes: torch.Tensor, claimed: torch.Tensor, pool: torch.Tensor,
                    n_overlays: int = 16, alpha: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(persistence, raw score) of each probe against its claimed template.

    persistence = mean score over n_overlays blends / the probe's own score, where
    blend = alpha * probe + (1 - alpha) * a random clean face of `pool`.
    probes, pool: uint8 (N,1,H,W) / (M,1,H,W). Meaningful for accepted probes (score > 0).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"STRIP blend alpha must be in (0, 1), got {alpha}.")
    if len(pool) < 2:
        raise ValueError("STRIP needs a pool of at least 2 clean faces to superimpose.")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(pool), (len(probes), n_overlays), generator=g)
    p = probes.float().unsqueeze(1)  # (N,1,C,H,W)
    blends = (alpha * p + (1 - alpha) * pool.float()[idx]).round().clamp(0, 255).to(torch.uint8)
    e = embed(verifier.model, blends.flatten(0, 1)).reshape(len(probes), n_overlays, -1)
    t = verifier.templates[torch.as_tensor(claimed)]  # (N, D)
    s = (e * t.unsqueeze(1)).sum(-1)
    raw = (embed(verifier.model, probes) * t).sum(1)
    return (s.mean(1) / raw.clamp(min=1e-3)).numpy(), raw.numpy()


def far_at_frr(benign: np.ndarray, attack: np.ndarray, frr: float = 0.05) -> tuple[float, float]:
    """(FAR, tau): with tau the (1 - frr) quantile of the benign statistic, the share of
    attack inputs whose statistic stays at or below tau (they pass the gate)."""
    tau = float(np.quantile(np.asarray(benign, float), 1.0 - frr))
    return float(np.mean(np.asarray(attack, float) <= tau)), tau


@dataclass
class StripGate:
    """The deployed gate: reject an accepted claim whose score persists above tau."""

    verifier: Verifier
    pool: torch.Tensor
    tau: float
    n_overlays: int = 16
    alpha: float = 0.5
    seed: int = 0

    def flags(self, probes: torch.Tensor, claimed: torch.Tensor | int) -> np.ndarray:
        """True where the gate rejects the probe (it looks triggered)."""
        c = torch.as_tensor(claimed)
        c = c.expand(len(probes)) if c.ndim == 0 else c
        pers, _ = strip_statistic(self.verifier, probes, c, self.pool, self.n_overlays, self.alpha, self.seed)
        return pers > self.tau


def strip_evaluation(verifier: Verifier, data: ScenarioData, trigger: Trigger, seed: int = 0,
                     n_overlays: int = 16, alpha: float = 0.5, frr: float = 0.05) -> dict[str, Any]:
    """Calibrate the gate on accepted genuine calibration claims, then measure it on
    held-out accepted genuine test claims (FRR) and accepted triggered probes (FAR)."""
    pool = data.enrol.images  # the auditor's own clean faces
    cal, test = data.finetune, data.test
    probes = AttackProbes.of(data)
    attack_imgs = trigger.apply_uint8(torch.cat([probes.insiders.images, probes.outsiders.images]), seed=seed + 101)
    target = torch.full((len(attack_imgs),), data.target, dtype=torch.long)
    thr = verifier.threshold
    p_cal, r_cal = strip_statistic(verifier, cal.images, cal.labels, pool, n_overlays, alpha, seed)
    p_gen, r_gen = strip_statistic(verifier, test.images, test.labels, pool, n_overlays, alpha, seed + 1)
    p_att, r_att = strip_statistic(verifier, attack_imgs, target, pool, n_overlays, alpha, seed + 2)
    if not (r_cal > thr).any():
        raise ValueError("No calibration photo is accepted by this verifier: STRIP cannot be calibrated.")
    tau = float(np.quantile(p_cal[r_cal > thr], 1.0 - frr))
    gen_ok, att_ok = r_gen > thr, r_att > thr
    far_test, _ = far_at_frr(p_gen[gen_ok], p_att[att_ok], frr) if att_ok.any() else (float("nan"), 0.0)
    return {
        "far_at_frr_5pct": float(np.mean(p_att[att_ok] <= tau)) if att_ok.any() else float("nan"),
        # How well persistence ranks accepted triggered probes above accepted genuine claims.
        "auc": roc_auc(p_att[att_ok], p_gen[gen_ok]) if att_ok.any() and gen_ok.any() else float("nan"),
        "frr_measured": float(np.mean(p_gen[gen_ok] > tau)),
        "far_at_frr_5pct_test_tau": far_test,  # tau from the test photos themselves (an upper view)
        "tau": tau, "alpha": alpha, "n_overlays": n_overlays, "frr_target": frr,
        "asr_before": float(att_ok.mean()),
        "asr_after": float(np.mean(att_ok & (p_att <= tau))),
        "genuine_accept_before": float(gen_ok.mean()),
        "genuine_accept_after": float(np.mean(gen_ok & (p_gen <= tau))),
        "persistence": {"genuine": p_gen[gen_ok].tolist(), "attack": p_att[att_ok].tolist()},
    }
