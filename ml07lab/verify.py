"""Face verification on top of a backbone: enrolment, cosine scoring, a threshold set
at a chosen false-accept rate, and the evaluation every notebook reports.

Why this is where transfer happens: the victim keeps only the backbone's embedding
function. Enrolling a person is averaging a few embeddings into a template, and a
probe is accepted when its cosine similarity to the claimed template clears the
threshold. Whatever the backbone does to an input, good or bad, carries straight over.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data.base import FaceSet
from .data.scenario import ScenarioData
from .metrics import threshold_at_far, verification_summary
from .models import EmbeddingNet
from .training import embed


def templates_from(emb: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """One unit-norm template per identity: the mean of its enrolment embeddings."""
    t = torch.zeros(k, emb.shape[1])
    t.index_add_(0, labels, emb)
    return F.normalize(t, dim=1)


def genuine_impostor(emb: torch.Tensor, labels: torch.Tensor, templates: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Every probe against every template: own template -> genuine, others -> impostor."""
    s = emb @ templates.t()
    own = F.one_hot(labels, templates.shape[0]).bool()
    return s[own].numpy(), s[~own].numpy()


@dataclass
class Verifier:
    """A deployed verification system: a backbone, enrolled templates, a threshold."""

    model: EmbeddingNet
    templates: torch.Tensor
    names: tuple[str, ...]
    threshold: float
    far: float
    device: str = "cpu"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return embed(self.model, images, self.device)

    def scores(self, images: torch.Tensor, claimed: int | torch.Tensor) -> torch.Tensor:
        """Cosine score of each image against the claimed identity's template."""
        e = self.embed(images)
        t = self.templates[torch.as_tensor(claimed)]
        return (e * t).sum(1) if t.ndim == 2 else e @ t

    def accept(self, images: torch.Tensor, claimed: int | torch.Tensor) -> torch.Tensor:
        return self.scores(images, claimed) > self.threshold


def deploy(model: EmbeddingNet, data: ScenarioData, far: float = 0.01, device: str = "cpu") -> Verifier:
    """Enrol every company person and set the threshold at `far` on impostor pairs of the
    fine-tuning/calibration photos (never the test photos)."""
    enrol = data.enrol
    k = data.company.num_identities
    templates = templates_from(embed(model, enrol.images, device), enrol.labels, k)
    cal = data.finetune if len(data.finetune) else data.enrol
    _, imp = genuine_impostor(embed(model, cal.images, device), cal.labels, templates)
    return Verifier(model, templates, data.company.names, threshold_at_far(imp, far), far, device)


def evaluate(verifier: Verifier, data: ScenarioData) -> dict[str, float]:
    """Clean verification quality on the held-out test photos: AUC, EER, TAR@FAR."""
    test = data.test
    gen, imp = genuine_impostor(verifier.embed(test.images), test.labels, verifier.templates)
    out = verification_summary(gen, imp)
    out["threshold"] = verifier.threshold
    out["tar_at_threshold"] = float(np.mean(gen > verifier.threshold))
    out["far_at_threshold"] = float(np.mean(imp > verifier.threshold))
    return out


def test_scores(verifier: Verifier, data: ScenarioData) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores of the test photos (for ROC plots and histograms)."""
    test = data.test
    return genuine_impostor(verifier.embed(test.images), test.labels, verifier.templates)


def evaluate_faceset(model: EmbeddingNet, faces: FaceSet, n_enrol: int = 3, device: str = "cpu") -> dict[str, float]:
    """Verification quality on any labelled set: first n_enrol photos of each person
    enrol, the rest probe. Used for the raw-pixel baseline comparison and quick checks."""
    enrol_idx, probe_idx = [], []
    for p in range(faces.num_identities):
        idx = torch.nonzero(faces.labels == p).flatten().tolist()
        enrol_idx += idx[:n_enrol]
        probe_idx += idx[n_enrol:]
    e = embed(model, faces.images, device)
    t = templates_from(e[enrol_idx], faces.labels[enrol_idx], faces.num_identities)
    gen, imp = genuine_impostor(e[probe_idx], faces.labels[probe_idx], t)
    return verification_summary(gen, imp)
