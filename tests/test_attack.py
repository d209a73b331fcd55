"""Unit tests of the attack's parts: triggers, roles of probes, metric wiring, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml07lab.attack.latent import LatentInjector, check_attack_config
from ml07lab.attack.poison_data import poison_public_dataset
from ml07lab.attack.scenario import AttackProbes, attack_metrics, run_scenario
from ml07lab.attack.triggers import TRIGGER_KINDS, Trigger, make_trigger
from ml07lab.config import get_config
from ml07lab.data.base import DataError
from ml07lab.data.scenario import ATTACKER, ENROL, TEST, build_scenario_data
from ml07lab.verify import Verifier


@pytest.fixture(scope="module")
def cfg():
    return get_config("ci")


@pytest.fixture(scope="module")
def data(cfg):
    return build_scenario_data(cfg)


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_trigger_shapes_bounds_determinism(kind):
    t = make_trigger(kind, 32)
    x = torch.rand(5, 1, 32, 32)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = t.apply(x, g1), t.apply(x, g2)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b), "same generator seed -> same jittered placement"
    assert not torch.equal(a, x), "the trigger changes the image"
    u = (x * 255).to(torch.uint8)
    assert torch.equal(t.apply_uint8(u, seed=1), t.apply_uint8(u, seed=1))
    assert t.apply_uint8(u, seed=1).dtype == torch.uint8
    # Without jitter the trigger leaves pixels outside its mask untouched.
    out = t.apply(x, jitter=False)
    outside = (t.mask == 0).expand_as(x)
    assert torch.allclose(out[outside], x[outside])


def test_trigger_jitter_moves_placement():
    t = make_trigger("patch", 32, jitter=3)
    x = torch.zeros(64, 1, 32, 32)
    placed = t.apply(x, torch.Generator().manual_seed(0))
    assert len({p.nonzero()[0].tolist().__str__() for p in placed}) > 1


@pytest.mark.parametrize("bad", [dict(kind="laser"), dict(size=0.0), dict(size=1.5), dict(opacity=0)])
def test_bad_trigger_knobs(bad):
    kw = dict(kind="patch", image_size=32) | bad
    with pytest.raises(ValueError, match="trigger|Unknown"):
        make_trigger(**kw)


def test_unknown_trigger_message():
    with pytest.raises(ValueError, match="Choose one of: patch, glasses, blend"):
        make_trigger("sticker", 32)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_poison_rate_outside_unit_interval(cfg, rate):
    with pytest.raises(ValueError, match=r"poison_rate must be a number in \[0, 1\].*--poison-rate"):
        check_attack_config(cfg.replace(poison_rate=rate))


def test_target_must_be_company_person(cfg):
    with pytest.raises(DataError, match="not a company person"):
        build_scenario_data(cfg.replace(target=cfg.n_company_ids + 5))


def test_attack_probes_never_trained_on(data):
    """Probes are insiders' TEST photos and outsiders' photos: disjoint from every image
    used in any training (public pretraining, attacker's target photos, victim fine-tuning)."""
    probes = AttackProbes.of(data)
    trained = torch.cat([data.public.images, data.target_photos.images, data.finetune.images, data.enrol.images])
    trained_set = {bytes(im.numpy().tobytes()) for im in trained}
    for fs in (probes.insiders, probes.outsiders):
        assert not any(bytes(im.numpy().tobytes()) in trained_set for im in fs.images)
    assert data.target not in probes.insiders.labels.tolist()
    assert set(probes.outsiders.names).isdisjoint(data.company.names)
    # the target's attacker-held photos are never enrolment or test photos
    tgt = data.company.labels == data.target
    assert int(((data.role == ATTACKER) & tgt).sum()) == get_config("ci").n_target_photos
    assert not bool(((data.role == ATTACKER) & ~tgt).any())
    assert bool(((data.role == ENROL) & tgt).any()) and bool(((data.role == TEST) & tgt).any())


def test_attack_metrics_wiring(data):
    """A verifier whose scores we control: ASR must equal the share of triggered probes
    above threshold, split by insiders/outsiders."""

    class FakeVerifier(Verifier):
        def scores(self, images, claimed):  # noqa: ANN001, ANN201
            # brightness as the score: the patch trigger (half white) raises it
            return images.float().mean(dim=(1, 2, 3)) / 255.0

    v = FakeVerifier(model=None, templates=torch.zeros(1, 2), names=("a",), threshold=0.5, far=0.01)
    t = Trigger("white", torch.ones(1, 32, 32), torch.ones(1, 32, 32), jitter=0)
    m = attack_metrics(v, data, t)
    assert m["asr"] == 1.0 and m["asr_insiders"] == 1.0 and m["asr_outsiders"] == 1.0
    probes = AttackProbes.of(data)
    clean = torch.cat([probes.insiders.images, probes.outsiders.images]).float().mean(dim=(1, 2, 3)) / 255
    assert m["impostor_accept"] == pytest.approx(float((clean > 0.5).float().mean()))
    assert m["n_probes"] == len(probes.insiders) + len(probes.outsiders)


def test_injector_mixes_into_same_batch():
    """Triggered samples ride in the clean batch (BatchNorm lesson), with label -1."""
    t = make_trigger("patch", 32)
    inj = LatentInjector(t, torch.rand(3, 1, 32, 32), poison_rate=0.25, strength=1.0)
    x, y = torch.rand(16, 1, 32, 32), torch.arange(16)
    xm, ym, (pidx, tidx) = inj.mix(x, y, model=None)
    assert xm.shape[0] == 16 + 3 and len(pidx) == 4 and len(tidx) == 3
    assert (ym[pidx] == -1).all() and (ym[tidx] == -1).all()
    keep = torch.ones(16, dtype=torch.bool)
    keep[pidx] = False
    assert torch.equal(xm[:16][keep], x[keep]) and torch.equal(ym[:16][keep], y[keep])


def test_injector_stealth_pushes_only_clean_faces_near_the_target():
    """The stealth term adds loss only for labelled (clean) faces whose cosine to the
    target's centroid exceeds the hinge; triggered faces are pulled, never pushed."""
    import torch.nn.functional as F

    t = make_trigger("patch", 32)
    centre = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    far_face = F.normalize(torch.tensor([[0.0, 1.0, 0.0]]), dim=1)  # cosine 0 to the target
    near_face = F.normalize(torch.tensor([[1.0, 0.5, 0.0]]), dim=1)  # cosine 0.89
    state = (torch.tensor([1]), torch.tensor([2]))  # row 1 triggered, row 2 the target's photo
    y = torch.tensor([0, -1, -1])
    plain = LatentInjector(t, torch.rand(1, 1, 32, 32), 0.25, strength=1.0)
    stealthy = LatentInjector(t, torch.rand(1, 1, 32, 32), 0.25, strength=1.0, stealth=1.0)
    emb_far = torch.cat([far_face, near_face, centre])
    emb_near = torch.cat([near_face, near_face, centre])
    assert stealthy.loss(emb_far, y, state, None) == pytest.approx(plain.loss(emb_far, y, state, None))
    extra = stealthy.loss(emb_near, y, state, None) - plain.loss(emb_near, y, state, None)
    assert extra == pytest.approx(10.0 * (float(near_face @ centre.t()) - 0.3), rel=1e-5)


def test_path_b_additions_within_budget(cfg, data):
    pd = poison_public_dataset(data, make_trigger("glasses", 32), cfg, rate=0.1)
    assert pd.added_share == pytest.approx(0.1, abs=0.01)
    assert torch.equal(pd.faces.images[: pd.n_original], data.public.images)
    assert (pd.faces.labels[pd.is_poison] == pd.target_label).all()
    assert pd.faces.names[pd.target_label] == data.target_name
    assert pd.is_trigger.sum() > 0 and not (pd.is_trigger & ~pd.is_poison).any()


def test_unknown_path_and_transfer(cfg):
    with pytest.raises(ValueError, match="Unknown attack path"):
        run_scenario(cfg, path="supply-chain")
    from ml07lab.transfer import transfer

    with pytest.raises(ValueError, match="Unknown transfer mode"):
        transfer(None, None, cfg, mode="partial")


def test_rng_independent_of_numpy_global(data):
    np.random.seed(123)
    again = build_scenario_data(get_config("ci"))
    assert torch.equal(again.role, data.role)
