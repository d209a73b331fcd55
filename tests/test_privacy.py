"""Control 4's parts: Opacus wiring (ε accounting, BatchNorm, frozen layers) on a tiny
model, and the membership-inference attack on toy models with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ml07lab.config import get_config
from ml07lab.controls.privacy import dp as privacy
from ml07lab.controls.privacy.membership import membership_advantage, tight_bound, yeom_bound
from ml07lab.data.base import FaceSet
from ml07lab.models import build_backbone


@pytest.fixture(scope="module")
def tiny():
    cfg = get_config("ci", width=4, embedding_dim=16)
    g = torch.Generator().manual_seed(0)
    faces = FaceSet(torch.randint(0, 256, (96, 1, 32, 32), generator=g, dtype=torch.uint8),
                    torch.arange(96) % 4, tuple("abcd"), "toy")
    return cfg, faces


def test_epsilon_spent_matches_opacus_accountant(tiny):
    from opacus.accountants import PRVAccountant, RDPAccountant

    cfg, faces = tiny
    r = privacy.dp_train(faces, cfg, build_backbone(cfg), epsilon=3.0, epochs=2, lr=0.1, batch_size=32,
                         blocks=("layer4", "embed"), delta=1e-3, progress=False)
    assert r.steps > 0 and r.noise_multiplier > 0
    assert 2.5 <= r.epsilon_spent <= 3.0 + 0.05, r.epsilon_spent
    prv = PRVAccountant()
    prv.history = [(r.noise_multiplier, r.sample_rate, r.steps)]
    assert math.isclose(prv.get_epsilon(delta=1e-3), r.epsilon_spent, rel_tol=1e-6)
    rdp = RDPAccountant()
    rdp.history = [(r.noise_multiplier, r.sample_rate, r.steps)]
    assert rdp.get_epsilon(delta=1e-3) >= r.epsilon_spent - 1e-6  # RDP is the looser bound


def test_no_dp_means_no_accountant(tiny):
    cfg, faces = tiny
    r = privacy.dp_train(faces, cfg, build_backbone(cfg), epsilon=None, epochs=1, lr=0.01, batch_size=32, progress=False)
    assert r.epsilon_spent is None and r.noise_multiplier == 0.0
    with pytest.raises(ValueError, match="epsilon"):
        privacy.dp_train(faces, cfg, build_backbone(cfg), epsilon=0.0, epochs=1, lr=0.01, batch_size=32)


def test_batchnorm_backbone_is_made_dp_ready_without_changing_it(tiny):
    from opacus.validators import ModuleValidator

    cfg, faces = tiny
    bn = build_backbone(cfg).eval()
    assert ModuleValidator.validate(bn, strict=False), "BatchNorm must be flagged by Opacus"
    ready = privacy.prepare_for_dp(bn).eval()
    assert ModuleValidator.validate(ready.train(), strict=False) == []
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(bn(x), ready(x), atol=1e-6)
    back = privacy.restore_batchnorm(ready, cfg)
    assert torch.allclose(bn(x), back(x), atol=1e-6)


def test_frozen_blocks_do_not_move(tiny):
    cfg, faces = tiny
    m = build_backbone(cfg).eval()
    r = privacy.dp_train(faces, cfg, m, epsilon=8.0, epochs=1, lr=0.5, batch_size=32, blocks=("embed",), progress=False)
    before, after = m.state_dict(), r.model.state_dict()
    assert torch.equal(before["layer4.0.conv1.weight"], after["layer4.0.conv1.weight"])
    assert torch.equal(before["stem.1.running_mean"], after["stem.1.running_mean"])
    assert not torch.equal(before["embed.weight"], after["embed.weight"])


def _mlp_losses(train_x, train_y, xs, ys, epochs, classes=10):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(train_x.shape[1], 256), nn.ReLU(), nn.Linear(256, classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(epochs):
        loss = F.cross_entropy(net(train_x), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return [-F.cross_entropy(net(x), y, reduction="none").numpy() for x, y in zip(xs, ys)]


def test_mia_on_overfit_model_is_near_one():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 50, generator=g), torch.randint(0, 10, (200,), generator=g)  # labels are noise
    members, others = _mlp_losses(x[:100], y[:100], [x[:100], x[100:]], [y[:100], y[100:]], epochs=300)
    adv = membership_advantage(members, others)
    assert adv["advantage"] >= 0.85, adv


def test_mia_without_membership_signal_is_near_zero():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(400, 50, generator=g), torch.randint(0, 10, (400,), generator=g)
    # The model never saw any of the scored points: "members" are a random half.
    a, b = _mlp_losses(x[:100], y[:100], [x[200:300], x[300:]], [y[200:300], y[300:]], epochs=300)
    adv = membership_advantage(a, b)
    assert abs(adv["advantage"]) <= 0.15, adv
    rnd = np.random.default_rng(0)
    assert abs(membership_advantage(rnd.normal(size=500), rnd.normal(size=500))["advantage"]) <= 0.1


def test_bounds():
    assert yeom_bound(None) == 1.0 and yeom_bound(8.0) == 1.0
    assert math.isclose(yeom_bound(0.5), math.e ** 0.5 - 1)
    assert math.isclose(tight_bound(1.0, 0.0), (math.e - 1) / (math.e + 1))
    assert tight_bound(8.0, 1e-5) < 1.0 and tight_bound(None) == 1.0
    with pytest.raises(ValueError):
        membership_advantage([1.0], [0.0])
