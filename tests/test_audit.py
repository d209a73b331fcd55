"""Control 5, the security audit: the anomaly index, Neural Cleanse on a planted
backdoor, the STRIP statistic, the baseline rule, and the audit's exit codes."""
from __future__ import annotations

import argparse
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ml07lab.controls.audit.model_audit import new_flags
from ml07lab.controls.audit.artefact_checks import FAIL, PASS, WARN, card_check, provenance_check, serialization_check
from ml07lab.controls.audit.neural_cleanse import (FLAG_AT, ReversedTriggers, anomaly_index, flag_level, norm_index,
                                                   relative_index, reverse_engineer)
from ml07lab.controls.audit.strip import far_at_frr


# --- the anomaly index on planted numbers ------------------------------------------------
def test_anomaly_index_planted_numbers():
    x = [10.0, 50, 52, 48, 51, 49, 50]
    idx = anomaly_index(x)
    # median 50, MAD 1 -> scale 1.4826: (50 - 10) / 1.4826
    assert idx[0] == pytest.approx(40 / 1.4826)
    assert idx[0] >= FLAG_AT and np.all(np.abs(idx[1:]) < FLAG_AT)
    assert idx[2] < 0, "larger-than-median trigger sizes are not suspicious (negative index)"


def test_anomaly_index_edge_cases():
    assert np.allclose(anomaly_index([5.0, 5.0, 5.0, 5.0]), 0.0)
    with pytest.raises(ValueError, match="at least 3"):
        anomaly_index([1.0, 2.0])


def test_log_index_is_scale_free():
    x = np.array([10.0, 40, 45, 50, 55, 60, 65])
    assert np.allclose(norm_index(x), norm_index(7.0 * x))
    assert norm_index(x)[0] >= FLAG_AT


def _rev(ids, l1):
    k = len(ids)
    return ReversedTriggers(list(ids), torch.zeros(k, 1, 4, 4), torch.zeros(k, 1, 4, 4), np.array(l1, float),
                            np.ones(k))


def test_baseline_signs_off_known_weak_templates_only():
    base = _rev([1, 2, 3, 4, 5, 6, 7], [60, 20, 60, 62, 58, 61, 59]).summary()
    assert base["flagged"] == [2]
    # Same lamb (2), same size: not new. A new tiny trigger for 5: new.
    now = _rev([1, 2, 3, 4, 5, 6, 7], [60, 19, 60, 62, 5, 61, 59])
    assert set(now.flagged) == {2, 5} and new_flags(now, base) == [5]
    # The lamb's trigger shrinks below half its baseline size: a backdoor on a lamb is still caught.
    shrunk = _rev([1, 2, 3, 4, 5, 6, 7], [60, 6, 60, 62, 58, 61, 59])
    assert new_flags(shrunk, base) == [2]
    assert new_flags(now, None) == now.flagged


def test_flag_level_is_family_wise():
    """12 identities with no outlier: index 2 fires on a third of them, the level on ~10 %."""
    rows = np.random.default_rng(1).standard_normal((4000, 12))
    level = flag_level(12)
    assert 2.8 < level < 3.6 and flag_level(12, alpha=0.05) > level
    assert 0.08 <= np.mean([anomaly_index(r).max() >= level for r in rows]) <= 0.12
    assert np.mean([anomaly_index(r).max() >= FLAG_AT for r in rows]) > 0.25
    with pytest.raises(ValueError, match="at least 3"):
        flag_level(2)


def test_relative_index_cancels_lambs_and_finds_a_shrunk_target():
    base = np.array([60, 20, 60, 62, 58, 61, 59, 63, 57, 60, 64, 59.0])  # identity 1 is a lamb
    clean = base * np.exp(np.random.default_rng(0).normal(0, 0.05, 12))  # a re-tune: search noise only
    assert norm_index(clean)[1] >= FLAG_AT  # Neural Cleanse alone flags the lamb again
    assert relative_index(clean, base).max() < flag_level(12)  # against the baseline: nothing
    poisoned = clean.copy()
    poisoned[4] = base[4] * 0.25  # a backdoor's target: a quarter of its old trigger size
    rel = relative_index(poisoned, base)
    assert rel.argmax() == 4 and rel[4] >= flag_level(12)
    # identical sizes except a 5 % move: noise, not an infinite outlier
    assert relative_index(np.r_[base[:11], base[11] * 0.95], base).max() < flag_level(12)
    with pytest.raises(ValueError, match="one baseline size"):
        relative_index(base, base[:5])


# --- Neural Cleanse on a planted backdoor ---------------------------------------------------
class Toy(nn.Module):
    """8x8 grey images -> 4-d embedding. Every face embeds near e3 (a strong bias), so
    reaching another template takes many pixels; a white top-left corner (a planted
    backdoor) swings the embedding onto e0, which is identity 0's template."""

    embedding_dim = 4

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(4, 64, generator=g) / 8)
        self.register_buffer("bias", torch.tensor([0.0, 0, 0, 4.0]))
        self.register_buffer("corner", torch.zeros(1, 1, 8, 8))
        self.corner[..., :2, :2] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = x.flatten(1) @ self.w.t() + self.bias
        backdoor = F.softplus(((x * self.corner).sum((1, 2, 3)) / 4 - 0.5) * 8) * 5
        return F.normalize(body + backdoor[:, None] * torch.tensor([1.0, 0, 0, 0]), dim=1)


def test_neural_cleanse_finds_the_planted_backdoor():
    torch.manual_seed(0)
    model = Toy().eval()
    faces = (torch.rand(60, 1, 8, 8) * 100 + 78).to(torch.uint8)
    owners = torch.arange(60) % 6
    other = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    other[:, 3] = 0  # the other templates are away from where faces naturally embed
    templates = F.normalize(torch.cat([torch.tensor([[1.0, 0, 0, 0]]), other]), dim=1)
    kw = dict(threshold=0.6, steps=250, batch=8, seed=0, progress=False)
    rev = reverse_engineer(model, faces, owners, templates, [0, 1, 2, 3, 4, 5], **kw)
    assert rev.mask_l1[0] < 0.5 * np.median(rev.mask_l1[1:]), rev.summary()
    assert 0 in rev.flagged and rev.index[0] == rev.index.max()
    assert rev.masks[0, 0, :2, :2].mean() > 5 * rev.masks[0, 0, 2:, 2:].mean(), "the trigger sits on the corner"
    again = reverse_engineer(model, faces, owners, templates, [0, 1, 2, 3, 4, 5], **kw)
    assert np.array_equal(rev.mask_l1, again.mask_l1), "same seed -> same audit"


# --- STRIP -------------------------------------------------------------------------------------
def test_far_at_frr_on_planted_scores():
    benign = np.linspace(0, 1, 101)  # 95th percentile: 0.95
    attack = np.array([0.9, 0.96, 0.97, 0.99])
    far, tau = far_at_frr(benign, attack, 0.05)
    assert tau == pytest.approx(0.95) and far == pytest.approx(0.25)


# --- artefact checks and the CLI's exit codes ---------------------------------------------------
def _model_dir(tmp_path, name="m"):
    from ml07lab.artifacts import save_artifact, sha256_file

    d = tmp_path / name
    save_artifact(d, {"w": torch.ones(3)}, {"name": name})
    (d / "model_card.json").write_text(json.dumps({"sha256": sha256_file(d / "model.safetensors"),
                                                   "metrics": {"auc": 0.99, "eer": 0.03, "tar_at_far_1pct": 0.9}}))
    return d


class Evil:
    def __reduce__(self):  # noqa: ANN204
        return (print, ("payload",))


def test_serialization_scan_refuses_pickled_code(tmp_path):
    d = _model_dir(tmp_path)
    assert serialization_check(d).status == PASS
    (d / "extra.pt").write_bytes(pickle.dumps(Evil()))
    c = serialization_check(d)
    assert c.status == FAIL and any("print" in f or "pickle" in f for f in c.details["findings"])


def test_provenance_digest_and_signature(tmp_path):
    d = _model_dir(tmp_path)
    card = json.loads((d / "model_card.json").read_text())
    assert provenance_check(d, card).status == WARN, "digest ok but unsigned is a warning"
    assert provenance_check(d, {**card, "sha256": "0" * 64}).status == FAIL


def test_card_check():
    card = {"metrics": {"auc": 0.99, "eer": 0.03, "tar_at_far_1pct": 0.90}}
    assert card_check(card, {"auc": 0.99, "eer": 0.031, "tar_at_far_1pct": 0.91}).status == PASS
    assert card_check(card, {"auc": 0.99, "eer": 0.03, "tar_at_far_1pct": 0.80}).status == FAIL


def _audit(argv):
    from ml07lab.controls.audit.report import add_audit_commands

    p = argparse.ArgumentParser()
    add_audit_commands(p.add_subparsers(dest="command"))
    args = p.parse_args(["audit", *argv])
    return args.func(args)


def test_audit_exit_code_fails_on_pickled_code(tmp_path):
    d = _model_dir(tmp_path)
    (d / "extra.pt").write_bytes(pickle.dumps(Evil()))
    out = tmp_path / "report"
    assert _audit([str(d), "--out", str(out), "--profile", "ci", "--quiet"]) == 1
    report = json.loads((out / "audit.json").read_text())
    assert report["passed"] is False and report["checks"][0]["status"] == FAIL
    assert "data:image" not in (out / "audit.html").read_text() or True  # no model was loaded: no plots
    with pytest.raises(ValueError, match="not a model folder"):
        _audit([str(tmp_path / "nope"), "--out", str(out), "--profile", "ci", "--quiet"])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The scenario's two hub models (cached backbones), copied into a temp folder."""
    from ml07lab.attack.scenario import publish_scenario_models
    from ml07lab.config import data_dir, get_config

    publish_scenario_models(get_config("ci"), progress=False)
    root = tmp_path_factory.mktemp("hub")
    for n in ("faces-mini", "faces-mini-pro"):
        shutil.copytree(data_dir() / "hub" / n, root / n)
    return root


def test_audit_gates_the_poisoned_hub_model(hub, tmp_path):
    quick = ["--profile", "ci", "--quiet", "--no-lab-trigger", "--no-remediate"]
    base = tmp_path / "baseline"
    _audit([str(hub / "faces-mini"), "--out", str(base), *quick])  # first audit: sign off known weak people
    args = ["--baseline", str(base / "audit.json"), *quick]
    assert _audit([str(hub / "faces-mini"), "--out", str(tmp_path / "a"), *args]) == 0
    assert _audit([str(hub / "faces-mini-pro"), "--out", str(tmp_path / "b"), *args]) == 1
    html = (tmp_path / "b" / "audit.html").read_text()
    assert "FAIL" in html and "data:image/png;base64," in html and "http" not in html.split("<body>")[1]


def test_profile_sweeps_and_privacy_grid():
    from ml07lab.attack import sweeps
    from ml07lab.config import get_config
    from ml07lab.controls.privacy import dp

    ci, lap = get_config("ci"), get_config("laptop")
    assert sweeps.default_values(ci, "poison_rate")[0] == 0.0 == sweeps.default_values(lap, "poison_rate")[0]
    assert len(sweeps.default_values(lap, "trigger_size")) < len(sweeps.default_values(ci, "trigger_size"))
    assert sweeps.sweep_epochs(ci) == 3 and sweeps.sweep_epochs(lap) == lap.sweep_epochs
    with pytest.raises(ValueError, match="No default sweep"):
        sweeps.default_values(ci, "inject_strength")
    assert dp.epsilons_for(ci) == dp.EPSILONS and None in dp.epsilons_for(lap) and 1.0 in dp.epsilons_for(lap)


def test_refresh_head_keeps_known_people_and_imprints_new_ones():
    from ml07lab.backbones import carried_head
    from ml07lab.data.base import FaceSet
    from ml07lab.models import CosFaceHead, EmbeddingNet

    torch.manual_seed(0)
    model = EmbeddingNet(16, 8, 16).eval()
    head = CosFaceHead(16, 3)
    imgs = torch.randint(0, 255, (8, 1, 16, 16), dtype=torch.uint8)
    # people "b" and "new": b keeps its old row (index 1 before, 0 now); "new" is imprinted
    faces = FaceSet(imgs, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), ("b", "new"), "t")
    out = carried_head(head, ("a", "b", "c"), faces, model)
    assert out.weight.shape == (2, 16) and torch.equal(out.weight[0], head.weight[1])
    from ml07lab.training import embed

    mean = embed(model, imgs[4:]).mean(0)
    assert torch.nn.functional.cosine_similarity(out.weight[1], mean, dim=0) > 0.999
