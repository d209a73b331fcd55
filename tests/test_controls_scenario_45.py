"""Controls 1 and 2 on path B in the `ci` profile: the bars the issue sets, from measured numbers.

They train up to three small backbones on a cold cache (cached after, shared with
notebooks 04 and 05), so they are marked slow."""
from __future__ import annotations

import pytest

from ml07lab.config import get_config
from ml07lab.controls.monitoring.monitor import dataset_monitoring_section
from ml07lab.controls.trusted_data.measure import trusted_datasets_section

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cfg():
    return get_config("ci")


@pytest.fixture(scope="module")
def monitoring(cfg):
    return dataset_monitoring_section(cfg)


@pytest.fixture(scope="module")
def trusted(cfg):
    return trusted_datasets_section(cfg)


def test_monitoring_section_shape(monitoring):
    for k in ("asr", "tar_at_far_1pct", "seconds", "precision", "recall"):
        assert isinstance(monitoring[k], float), k
    assert 0.0 <= monitoring["precision"] <= 1.0 and 0.0 <= monitoring["recall"] <= 1.0


def test_path_b_attack_is_there_to_remove(monitoring):
    assert monitoring["asr_before"] >= 0.5, (
        "path B's backdoor is not working in ci (ASR before the update "
        f"{monitoring['asr_before']:.3f}), so the monitoring bar below proves nothing")


def test_monitoring_update_meets_the_bar(monitoring, cfg):
    assert monitoring["asr"] <= 0.05, monitoring
    assert monitoring["asr"] <= monitoring["asr_before"]
    # The clean cost of the update (pooled over verify.evaluate's 20 re-splits): against
    # the model trained on the refresh as delivered, and against the organisation's clean
    # pipeline (the same public data without the refresh). On the single deployed split the
    # first read 0.950 -> 0.924 (2.5 pts) in session 2: split noise, not a cost (pooled:
    # 0.927 -> 0.930).
    assert monitoring["tar_at_far_1pct_before"] - monitoring["tar_at_far_1pct"] <= 0.02, monitoring
    from ml07lab.backbones import clean_backbone
    from ml07lab.data.scenario import build_scenario_data
    from ml07lab.verify import deploy, evaluate

    data = build_scenario_data(cfg)
    clean_tar = evaluate(deploy(clean_backbone(cfg, data)[0], data, cfg.far), data)["tar_at_far_1pct"]
    assert clean_tar - monitoring["tar_at_far_1pct"] <= 0.02, (clean_tar, monitoring)
    assert monitoring["clean_images_removed"] == 0 or monitoring["precision"] >= 0.9, monitoring


def test_trusted_datasets_section(trusted):
    for k in ("asr", "tar_at_far_1pct", "seconds"):
        assert isinstance(trusted[k], float), k
    assert trusted["tamperings_caught"] == trusted["tamperings_tried"] == 100
    assert trusted["tamperings_named"] == 100
    assert set(trusted["refusals"].values()) >= {"DatasetTamperedError", "UnsignedDatasetError", "UnknownKeyError"}
    assert trusted["asr"] <= 0.05 and trusted["asr"] <= trusted["asr_tampered_feed"]
    # the limit: the same poisoned bytes, signed in good faith, train the same backdoor
    assert trusted["signed_poisoned_passes_verification"]
    assert trusted["asr_signed_poisoned"] == trusted["asr_tampered_feed"]
