"""No-learning baselines: verification on raw pixels, scored exactly like the backbone.

Why: "the pretrained backbone works" only means something next to what you get without
one. Using the scenario's own enrolment/test split and cosine templates puts the two on
one ROC, so the gap a learner sees is the value of the transferred features, which is
also what an attacker who poisons those features gets to abuse.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data.base import FaceSet
from .data.scenario import ScenarioData
from .metrics import verification_summary
from .verify import benchmark_faces, benchmark_scores, genuine_impostor, n_enrol_of, templates_from


def pixel_vectors(faces: FaceSet, centred: bool = False) -> torch.Tensor:
    """Each image flattened to a unit-length pixel vector: the 'embedding' of no model.

    centred=True subtracts each image's mean brightness first (a little less naive)."""
    x = faces.images.reshape(len(faces), -1).double()
    if centred:
        x = x - x.mean(dim=1, keepdim=True)
    return F.normalize(x, dim=1).float()


def raw_pixel_scores(data: ScenarioData, centred: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine scores of the company TEST photos against templates
    averaged from the ENROL photos, on raw pixels: the same protocol as
    `verify.test_scores`, with the identity function in place of the backbone."""
    enrol, test = data.enrol, data.test
    k = data.company.num_identities
    templates = templates_from(pixel_vectors(enrol, centred), enrol.labels, k)
    return genuine_impostor(pixel_vectors(test, centred), test.labels, templates)


def raw_pixel_summary(data: ScenarioData, centred: bool = False) -> dict[str, float]:
    """AUC, EER and TAR@FAR of the raw-pixel verifier on the same protocol as
    `verify.evaluate`: pooled over the same random enrolment/probe re-splits."""
    faces = benchmark_faces(data)
    gen, imp, _ = benchmark_scores(pixel_vectors(faces, centred), faces.labels, n_enrol_of(data))
    return verification_summary(gen, imp)
