"""The clean-quality protocol of `verify.evaluate`: many re-splits, the same for every model,
photos no one trains on, and the deployed split's own figures beside them.

Why it matters: the stealth bar ("within 2 pts of the clean model") and every control's
clean cost are differences of two TARs. On one small split those move by ~2.5 pts from
split to split; these tests pin down what makes the pooled figure a fair, paired estimate.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml07lab.config import get_config
from ml07lab.data.scenario import ATTACKER, ENROL, FINETUNE, TEST, build_scenario_data
from ml07lab.metrics import tar_at_far, verification_summary
from ml07lab.training import embed
from ml07lab.verify import (BENCH_SPLITS, Verifier, benchmark_faces, benchmark_scores, evaluate, n_enrol_of,
                            templates_from)
from ml07lab.verify import test_scores as deployed_scores


def _toy(k: int = 6, per: int = 5, d: int = 16, noise: float = 0.6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, d, generator=g), dim=1)
    labels = torch.arange(k).repeat_interleave(per)
    emb = F.normalize(centres[labels] + noise * torch.randn(len(labels), d, generator=g), dim=1)
    return emb, labels


def test_benchmark_counts_and_determinism() -> None:
    emb, labels = _toy(k=6, per=5)
    gen, imp, per = benchmark_scores(emb, labels, n_enrol=2, n_splits=7)
    # each split: 6 people x 3 probes genuine, and each probe against the 5 other templates
    assert gen.size == 7 * 6 * 3 and imp.size == 7 * 6 * 3 * 5 and len(per) == 7
    again = benchmark_scores(emb, labels, n_enrol=2, n_splits=7)
    assert np.array_equal(gen, again[0]) and np.array_equal(imp, again[1]) and per == again[2]
    other = benchmark_scores(emb, labels, n_enrol=2, n_splits=7, seed=1)
    assert not np.array_equal(gen, other[0]), "a different seed should draw different splits"


def test_benchmark_splits_are_paired_across_models() -> None:
    """Two models scored on the same photos see the same enrol/probe splits: a rotated copy
    of the embeddings (same cosines, different numbers) gives the very same scores."""
    emb, labels = _toy(k=5, per=4)
    q, _ = torch.linalg.qr(torch.randn(emb.shape[1], emb.shape[1], generator=torch.Generator().manual_seed(3)))
    gen_a, imp_a, _ = benchmark_scores(emb, labels, n_enrol=2, n_splits=3)
    gen_b, imp_b, _ = benchmark_scores(emb @ q, labels, n_enrol=2, n_splits=3)
    assert np.allclose(gen_a, gen_b, atol=1e-5) and np.allclose(imp_a, imp_b, atol=1e-5)


def test_a_probe_is_never_its_own_enrolment_photo() -> None:
    """With one-hot embeddings ('which photo is this'), a genuine score is 0 unless the
    probe photo was also averaged into its own template."""
    _, labels = _toy(k=5, per=4)
    gen, _, _ = benchmark_scores(torch.eye(len(labels)), labels, n_enrol=2, n_splits=5)
    assert np.allclose(gen, 0.0), "a probe photo was also used to enrol"


def test_benchmark_leaves_a_probe_for_people_with_few_photos() -> None:
    emb, labels = _toy(k=4, per=2)
    gen, _, _ = benchmark_scores(emb, labels, n_enrol=3, n_splits=2)
    assert gen.size == 2 * 4 * 1


def test_pooled_estimate_has_less_spread_than_one_split() -> None:
    """The reason for the protocol, on toy data: per-split TARs vary; the pooled one is
    their (approximate) centre."""
    emb, labels = _toy(k=30, per=7, noise=1.0)
    gen, imp, per = benchmark_scores(emb, labels, n_enrol=3, n_splits=20)
    assert np.std(per) > 0.005
    assert min(per) - 1e-9 <= tar_at_far(gen, imp, 0.01) <= max(per) + 1e-9


@pytest.fixture(scope="module")
def ci_data():  # noqa: ANN201
    return build_scenario_data(get_config("ci"))


def test_benchmark_faces_are_enrol_and_test_photos_only(ci_data) -> None:  # noqa: ANN001
    d = ci_data
    faces = benchmark_faces(d)
    keep = (d.role == ENROL) | (d.role == TEST)
    assert len(faces) == int(keep.sum())
    assert int(((d.role == FINETUNE) | (d.role == ATTACKER)).sum()) > 0
    assert torch.equal(faces.images, d.company.images[keep])
    assert n_enrol_of(d) == get_config("ci").n_enrol


def test_evaluate_reports_pooled_and_deployed_figures(ci_data) -> None:  # noqa: ANN001
    """Wiring, with a fixed random 'model': the pooled keys come from the re-splits, the
    deployed_* keys from the test photos against the enrolled templates."""
    d = ci_data
    torch.manual_seed(0)
    proj = torch.randn(d.company.images[0].numel(), 16)

    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.normalize(x.flatten(1) @ proj, dim=1)

    model = Linear()
    e = embed(model, d.enrol.images)
    v = Verifier(model, templates_from(e, d.enrol.labels, d.company.num_identities), d.company.names, 0.5, 0.01)
    m = evaluate(v, d)
    faces = benchmark_faces(d)
    gen, imp, per = benchmark_scores(embed(model, faces.images), faces.labels, n_enrol_of(d))
    want = verification_summary(gen, imp)
    assert m["n_splits"] == BENCH_SPLITS and m["n_genuine"] == want["n_genuine"] == gen.size
    assert m["tar_at_far_1pct"] == pytest.approx(want["tar_at_far_1pct"], abs=1e-6)
    assert m["tar_at_far_1pct_split_sd"] == pytest.approx(float(np.std(per)), abs=1e-6)
    dg, di = deployed_scores(v, d)
    assert m["deployed_n_genuine"] == dg.size and m["deployed_tar_at_far_1pct"] == pytest.approx(tar_at_far(dg, di))
    assert m["tar_at_threshold"] == pytest.approx(float(np.mean(dg > 0.5)))
