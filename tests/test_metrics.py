"""The verification metrics, checked against scikit-learn on random and on tied scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from ml07lab import metrics as M

FARS = (0.001, 0.01, 0.05, 0.1, 0.3)


def _scores(seed: int, tied: bool, n_gen: int = 300, n_imp: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping genuine/impostor scores; `tied` rounds them onto a coarse grid so that
    many scores are equal, within and across the two groups."""
    rng = np.random.default_rng(seed)
    gen = rng.normal(0.6, 0.2, n_gen)
    imp = rng.normal(0.1, 0.2, n_imp)
    if tied:
        gen, imp = np.round(gen, 1), np.round(imp, 1)
    return gen, imp


def _sk(gen: np.ndarray, imp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    return sk_roc_curve(y, np.r_[gen, imp], drop_intermediate=False)


def _sk_eer(gen: np.ndarray, imp: np.ndarray) -> float:
    """The usual recipe: where FRR = 1 - TPR meets FPR on sklearn's (linearly joined) ROC."""
    fpr, tpr, _ = _sk(gen, imp)
    return float(brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-12))


CASES = [(seed, tied) for seed in range(4) for tied in (False, True)]


@pytest.mark.parametrize("seed,tied", CASES)
def test_roc_curve_and_auc_match_sklearn(seed: int, tied: bool) -> None:
    gen, imp = _scores(seed, tied)
    far, tar, thr = M.roc_curve(gen, imp)
    fpr, tpr, sk_thr = _sk(gen, imp)
    np.testing.assert_allclose(far, fpr)
    np.testing.assert_allclose(tar, tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])  # sklearn's first threshold is inf or max+1
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    assert M.roc_auc(gen, imp) == pytest.approx(roc_auc_score(y, np.r_[gen, imp]), abs=1e-12)


@pytest.mark.parametrize("seed,tied", CASES)
def test_eer_matches_sklearn_derived_eer(seed: int, tied: bool) -> None:
    gen, imp = _scores(seed, tied)
    assert M.eer(gen, imp) == pytest.approx(_sk_eer(gen, imp), abs=1e-6)


@pytest.mark.parametrize("seed,tied", CASES)
def test_tar_at_far_matches_best_sklearn_operating_point(seed: int, tied: bool) -> None:
    """TAR@FAR = the best TAR among sklearn's thresholds whose FPR stays <= FAR.

    (Strict `score > t` at an impostor score equals sklearn's `score >= next score up`,
    so both pick the same operating point, ties included.)"""
    gen, imp = _scores(seed, tied)
    fpr, tpr, _ = _sk(gen, imp)
    for far in FARS:
        ref = tpr[fpr <= far + 1e-12].max()
        assert M.tar_at_far(gen, imp, far) == pytest.approx(ref, abs=1e-12), far


@pytest.mark.parametrize("seed,tied", CASES + [(9, "int")])
def test_threshold_at_far_never_exceeds_far_and_is_the_lowest(seed: int, tied: bool | str) -> None:
    if tied == "int":  # the worst case: four distinct values only
        imp = np.random.default_rng(seed).integers(0, 4, 997).astype(float)
    else:
        _, imp = _scores(seed, bool(tied), n_imp=1234)
    values = np.unique(imp)
    for far in (0.0, *FARS, 0.5, 0.999):
        t = M.threshold_at_far(imp, far)
        assert np.mean(imp > t) <= far, (far, t)
        lower = values[values < t]
        if lower.size:  # one step down would let too many impostors through
            assert np.mean(imp > lower.max()) > far, (far, t)


def test_metric_edge_cases() -> None:
    gen, imp = np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.3])
    assert M.eer(gen, imp) == 0.0 and M.roc_auc(gen, imp) == 1.0
    assert M.tar_at_far(gen, imp, 0.0) == 1.0
    same = np.full(50, 0.5)
    assert M.eer(same, same) == pytest.approx(0.5) and M.roc_auc(same, same) == pytest.approx(0.5)
    # torch tensors and lists are accepted wherever arrays are
    assert M.roc_auc(torch.tensor(gen), list(imp)) == 1.0
    with pytest.raises(ValueError):
        M.threshold_at_far(imp, 1.5)
    with pytest.raises(ValueError):
        M.threshold_at_far([], 0.01)


def test_acceptance_rate_and_summary() -> None:
    s = np.array([0.1, 0.5, 0.5, 0.9])
    assert M.acceptance_rate(s, 0.5) == 0.25  # strictly above the threshold
    assert np.isnan(M.acceptance_rate([], 0.5))
    gen, imp = _scores(0, False)
    summary = M.verification_summary(gen, imp)
    assert set(summary) == {"auc", "eer", "tar_at_far_1pct", "tar_at_far_0_1pct", "n_genuine", "n_impostor"}
    assert (summary["n_genuine"], summary["n_impostor"]) == (gen.size, imp.size)
    assert 0 <= summary["tar_at_far_0_1pct"] <= summary["tar_at_far_1pct"] <= 1
