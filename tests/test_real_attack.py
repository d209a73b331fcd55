"""Path A on real faces at a reduced size: LFW (people with >= 20 photos) pretraining,
AT&T company people, 32 px. The mirror must be present under CI (see conftest)."""
from __future__ import annotations

import pytest

from ml07lab.config import get_config

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real_cfg(real_data):  # noqa: ARG001 - imports the mirror
    return get_config("laptop", dataset="real", image_size=32, width=16, lfw_min_images=20,
                      pretrain_epochs=15, attack_epochs=6, finetune_epochs=6, batch_size=128)


def test_real_faces_path_a_frozen(real_cfg):
    from ml07lab.attack.scenario import run_scenario

    r = run_scenario(real_cfg, "model", "frozen", progress=False)
    assert r["dataset"] == "lfw->att"
    assert r["clean"]["auc"] >= 0.9, r["clean"]
    assert r["attack"]["asr"] >= 0.90, r["attack"]
    # On AT&T the target's no-trigger acceptance is well above the 1 % FAR even for the clean
    # backbone (measured 4.9 % at 64 px, 11.8 % here at 32 px): the threshold is global and this
    # person is easy to impersonate. The lesson checked here is that the trigger, not the
    # person, opens the door: it adds at least 80 points over no-trigger acceptance, and the
    # same trigger on the clean backbone adds at most 5.
    assert r["attack"]["asr"] - r["attack"]["impostor_accept"] >= 0.8, r["attack"]
    s = r["sanity_clean_backbone"]
    assert s["asr"] - s["impostor_accept"] <= 0.05, s
