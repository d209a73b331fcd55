"""Control 5: a regular security audit of every backbone the organisation receives.

PLACEHOLDER: being written.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..config import LabConfig
from ..data.scenario import ScenarioData
from ..verify import Verifier
from .neural_cleanse import ReversedTriggers, reverse_engineer


def audited_identities(data: ScenarioData, cfg: LabConfig, k: int | None = None) -> list[int]:
    """The privileged users the audit checks: the target plus k-1 others, seeded.

    The audit can only find a backdoor aimed at someone it audits; in a real
    organisation this is the list of people whose access matters most."""
    k = k or int(cfg.extra.get("audit_identities", 12 if cfg.profile == "ci" else 16))
    n = data.company.num_identities
    rng = np.random.default_rng([cfg.seed, 67])
    others = [int(i) for i in rng.permutation(n) if int(i) != data.target][: k - 1]
    return [data.target, *others]


def inspect_backbone(verifier: Verifier, data: ScenarioData, cfg: LabConfig, k: int | None = None,
                     steps: int | None = None, batch: int = 12, log_scale: bool = True,
                     progress: bool = True) -> ReversedTriggers:
    """Neural Cleanse over the audited identities, with the auditor's own photos
    (enrolment and calibration: never the test photos nor the attacker's)."""
    steps = steps or (200 if cfg.profile == "ci" else 300)
    faces = torch.cat([data.enrol.images, data.finetune.images])
    owners = torch.cat([data.enrol.labels, data.finetune.labels])
    ids = audited_identities(data, cfg, k)
    return reverse_engineer(verifier.model, faces, owners, verifier.templates, ids, verifier.threshold,
                            steps=steps, batch=batch, bar=genuine_bar(verifier, data), seed=cfg.seed,
                            log_scale=log_scale, progress=progress)


def genuine_bar(verifier: Verifier, data: ScenarioData) -> float:
    """The score a typical genuine photo reaches: the median score of the calibration
    photos against their own templates. Neural Cleanse's "success" for verification is
    then "other people's faces look as much like the person as the person does"; a
    backdoor, which collapses triggered faces onto the target, clears this bar with a
    tiny trigger, while a person who is merely easy to confuse (a "lamb") does not."""
    cal = data.finetune if len(data.finetune) else data.enrol
    s = (verifier.embed(cal.images) * verifier.templates[cal.labels]).sum(1)
    return float(s.median())
