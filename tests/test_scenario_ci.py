"""The attack's must-show bars, measured on the ci profile (synthetic faces).

These train real models (cached under the data dir, shared with the notebooks), so
they are the slowest unit tests; a warm cache makes them take seconds.
"""
from __future__ import annotations

import pytest

from ml07lab.attack.scenario import run_scenario
from ml07lab.config import get_config

REQUIRED = {
    "clean": {"auc", "eer", "tar_at_far_1pct"},
    "poisoned": {"auc", "eer", "tar_at_far_1pct"},
    "attack": {"path", "transfer", "asr", "asr_insiders", "asr_outsiders", "impostor_accept", "threshold", "far"},
}


@pytest.fixture(scope="module")
def path_a():
    return run_scenario(get_config("ci"), "model", "frozen", progress=False)


def test_scenario_json_schema(path_a):
    assert {"profile", "dataset", "seed", "clean", "poisoned", "attack", "controls"} <= set(path_a)
    for section, keys in REQUIRED.items():
        assert keys <= set(path_a[section]), (section, keys - set(path_a[section]))
    assert path_a["profile"] == "ci" and path_a["dataset"] == "synthetic"


def test_path_a_frozen_bars(path_a):
    a = path_a["attack"]
    assert a["asr"] >= 0.95, a
    assert a["impostor_accept"] <= 0.02, a
    stealth = abs(path_a["clean"]["tar_at_far_1pct"] - path_a["poisoned"]["tar_at_far_1pct"])
    assert stealth <= 0.02, (path_a["clean"], path_a["poisoned"])


def test_sanity_clean_backbone_not_fooled_by_trigger(path_a):
    """The trigger alone must not open the door: on the clean backbone it adds at most one
    point to plain impostor acceptance (itself near the 1 % FAR the threshold was set at)."""
    s = path_a["sanity_clean_backbone"]
    assert s["asr"] <= max(0.02, s["impostor_accept"] + 0.01), s


def test_all_transfer_modes_and_paths_report_asr():
    """Every mode and path runs and reports an ASR, whatever it is (issue: report them all)."""
    for path in ("model", "dataset"):
        for mode in ("frozen", "head", "full"):
            r = run_scenario(get_config("ci"), path, mode, progress=False)
            assert 0.0 <= r["attack"]["asr"] <= 1.0 and r["attack"]["transfer"] == mode


def test_path_b_is_a_real_threat():
    """Path B: the attacker adds at most 10 % of the public dataset; ASR >= 50 % (ci)."""
    cfg = get_config("ci")
    assert cfg.poison_rate <= 0.10
    r = run_scenario(cfg, "dataset", "frozen", progress=False)
    assert r["attack"]["asr"] >= 0.5, r["attack"]
    assert r["attack"]["impostor_accept"] <= 0.02, r["attack"]
