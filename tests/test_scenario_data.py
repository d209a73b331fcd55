"""The scenario's people and roles: identity-disjoint pools, and photos used only for their role.

A face kit's version of a leakage test: if a company person were also a public person,
or a test photo were also an enrolment photo, every number in the lab would be inflated.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml07lab.config import get_config
from ml07lab.data.base import DataError, FaceSet
from ml07lab.data.registry import load_dataset
from ml07lab.data.scenario import ATTACKER, ENROL, FINETUNE, TEST, ScenarioData, assign_roles, build_scenario_data

# The reduced real setting shared with tests/test_real_backbone.py (one prepared cache).
REAL_SMALL = dict(image_size=32, lfw_min_images=20)



@pytest.fixture(scope="module")
def synthetic() -> ScenarioData:
    return build_scenario_data(get_config("ci"))


def _check_disjoint(d: ScenarioData) -> None:
    pub, com, out = set(d.public.names), set(d.company.names), set(d.outsiders.names)
    assert not pub & com, f"public and company people overlap: {sorted(pub & com)[:3]}"
    assert not pub & out, f"public people and outsiders overlap: {sorted(pub & out)[:3]}"
    assert not com & out, f"company people and outsiders overlap: {sorted(com & out)[:3]}"


def _check_roles(d: ScenarioData, cfg) -> None:  # noqa: ANN001 - LabConfig
    labels, role = d.company.labels, d.role
    assert role.shape == labels.shape and set(role.unique().tolist()) <= {ENROL, FINETUNE, TEST, ATTACKER}
    # The attacker's photos are the target's, exactly n_target_photos of them, and only them.
    held = role == ATTACKER
    assert int(held.sum()) == cfg.n_target_photos and bool((labels[held] == d.target).all())
    assert len(d.target_photos) == cfg.n_target_photos
    # ... and they are different photos from the target's enrolment and test photos.
    tgt = d.company.images[(labels == d.target) & ((role == ENROL) | (role == TEST))]
    for img in d.target_photos.images:
        assert not (tgt == img).flatten(1).all(1).any(), "an attacker-held photo is also enrolled/tested"
    for person in range(d.company.num_identities):
        mine = role[labels == person]
        assert int((mine == ENROL).sum()) == cfg.n_enrol, person
        assert int((mine == TEST).sum()) >= 1, f"{d.company.names[person]} has no test photo"
    assert bool((d.insider_probes().labels != d.target).all())
    assert len(d.enrol) + len(d.finetune) + len(d.test) + len(d.target_photos) == len(d.company)


def test_synthetic_pools_are_identity_disjoint(synthetic: ScenarioData) -> None:
    cfg = get_config("ci")
    _check_disjoint(synthetic)
    assert synthetic.public.num_identities == cfg.n_public_ids
    assert synthetic.company.num_identities == cfg.n_company_ids
    assert synthetic.outsiders.num_identities == cfg.n_outsider_ids


def test_synthetic_roles(synthetic: ScenarioData) -> None:
    cfg = get_config("ci")
    _check_roles(synthetic, cfg)
    s = synthetic.summary()
    assert s["target"] == synthetic.target_name == synthetic.company.names[cfg.target]
    assert s["company_attacker-held"] == cfg.n_target_photos


def test_roles_are_reproducible_and_seeded() -> None:
    labels = torch.arange(10).repeat_interleave(10)
    a = assign_roles(labels, 0, 3, 3, 3, seed=0)
    assert torch.equal(a, assign_roles(labels, 0, 3, 3, 3, seed=0))
    assert not torch.equal(a, assign_roles(labels, 0, 3, 3, 3, seed=1))


def test_bad_target_index_is_a_clear_error() -> None:
    with pytest.raises(DataError) as e:  # past the company: known once the data is loaded
        build_scenario_data(get_config("ci", target=40))
    assert "target=40" in str(e.value) and "0..39" in str(e.value)
    with pytest.raises(ValueError, match=r"target must be an integer >= 0, got -1 \(set by --target\)"):
        get_config("ci", target=-1)  # negative: refused when the config is made


def test_too_few_photos_per_person_is_a_clear_error(tmp_path: Path) -> None:
    # A FaceSet with a person who has one photo: verification cannot enrol AND test them.
    fs = FaceSet(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 1]), ("ann", "bob"), "t")
    with pytest.raises(DataError, match="bob.*at least 2"):
        fs.check_min_images(2)
    # The same from a folder of the learner's own photos.
    rng = np.random.default_rng(0)
    for person, n in (("alice", 3), ("bob", 1)):
        (tmp_path / "faces" / person).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp_path / "faces" / person / f"{i}.png")
    cfg = get_config("ci", dataset="real", public_dataset=f"folder:{tmp_path / 'faces'}",
                     company_dataset=f"folder:{tmp_path / 'faces'}")
    with pytest.raises(DataError, match="too few people"):  # bob is skipped (one photo): alice alone
        build_scenario_data(cfg)
    assert load_dataset(cfg.company_dataset, cfg).meta["skipped_files"] == {
        "bob/0.png": "person folder with fewer than 2 usable photos"}
    # Enough photos to exist, too few for the roles: the message says what is needed.
    with pytest.raises(DataError, match="needs at least"):
        assign_roles(torch.tensor([0, 0, 0, 1, 1, 1]), 0, n_enrol=3, n_finetune=0, n_target_photos=0, seed=0)


@pytest.mark.real
def test_real_pools_are_identity_disjoint_and_roles_hold(real_data) -> None:  # noqa: ARG001 - imports the mirror
    cfg = get_config("laptop", **REAL_SMALL)
    d = build_scenario_data(cfg)
    _check_disjoint(d)
    assert d.public.source == "lfw" and d.company.source == "att"
    # LFW names ("George_W_Bush") and AT&T names ("s1".."s40") must never meet.
    assert all(not n.startswith("s") or not n[1:].isdigit() for n in d.public.names)
    assert d.company.num_identities + d.outsiders.num_identities == 40
    assert d.outsiders.num_identities == cfg.n_outsider_ids
    assert bool((d.public.counts() >= cfg.lfw_min_images).all())
    _check_roles(d, cfg)
