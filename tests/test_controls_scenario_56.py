"""Controls 3 and 4 on the ci profile: the hygiene bar, the gate's verdicts and the DP sweep.

They reuse the artefact cache shared with the notebooks (the DP sweep takes about a
minute and a half to build on 2 CPU cores the first time, seconds after).
"""
from __future__ import annotations

import json

import pytest

from ml07lab.config import get_config
from ml07lab.controls.isolation import gate as isolation
from ml07lab.controls.isolation import hygiene
from ml07lab.controls.privacy import dp as privacy


@pytest.fixture(scope="module")
def cfg():
    return get_config("ci")


@pytest.fixture(scope="module")
def isolation_section(cfg):
    return isolation.model_isolation_section(cfg)


@pytest.fixture(scope="module")
def dp_section(cfg):
    return privacy.differential_privacy_section(cfg)


def test_hygiene_bar(isolation_section):
    recs = {r["option"]: r for r in isolation_section["options"]}
    assert set(recs) == set(hygiene.HYGIENE_OPTIONS)
    assert recs["frozen"]["asr"] >= 0.9, "without hygiene path A's backdoor works"
    ok = [r for r in recs.values() if r["asr"] <= 0.05 and r["tar_cost_pts"] <= 5.0]
    assert ok, [(r["option"], r["asr"], r["tar_cost_pts"]) for r in recs.values()]
    assert isolation_section["chosen"] in {r["option"] for r in ok}
    assert isolation_section["asr"] <= 0.05


def test_gate_verdicts(isolation_section):
    cases = isolation_section["gate"]["cases"]
    accepted = [k for k, v in cases.items() if v["accepted"]]
    assert accepted == ["organisation's released model"], cases
    assert "no signature" in cases["hub model, unsigned"]["reason"]
    assert "another key" in cases["hub model, signed by the attacker's key"]["reason"]
    assert "changed since signing" in cases["organisation's model, one byte changed"]["reason"]
    assert "carries code" in cases["malicious pickle (exec payload)"]["reason"]
    assert "carries code" in cases["malicious pickle (evades modelscan)"]["reason"]
    assert "allowlist" in cases["hub model, signed with the organisation's key by mistake (not released)"]["reason"]
    assert isolation_section["gate"]["payload_ran"] is False


def test_dp_sweep_complete_and_within_bounds(dp_section):
    recs = dp_section["sweep"]
    assert len(recs) == 8 and dp_section["epsilons"] == [None, 8.0, 3.0, 1.0]
    for r in recs:
        assert {"epsilon", "poisoned_records", "asr", "tar_at_far_1pct", "mia_advantage", "seconds"} <= set(r)
        if r["epsilon"] is None:
            assert r["mia_advantage"] >= 0.1, "without DP, membership leaks"
        else:
            assert r["epsilon_spent_pretrain"] <= r["epsilon"] + 0.05 and r["epsilon_spent_finetune"] <= r["epsilon"] + 0.05
            assert r["mia_advantage"] <= r["mia_bound_tight"] <= r["mia_bound_yeom"] + 1e-9
    json.dumps(dp_section, allow_nan=False)  # valid JSON for the scenario report
