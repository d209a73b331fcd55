"""The clean 'public' backbone transfers: on company people it never saw, it verifies far
better than raw pixels. Every attack in the lab is measured against this baseline, so if
it were weak, a 'successful' attack would mean nothing.

Uses the cached ci backbone (shared with the notebooks); on a cold cache it trains it
once (about 1.5 minutes on 2 CPU cores).
"""
from __future__ import annotations

import pytest

from ml07lab.backbones import clean_backbone
from ml07lab.baselines import raw_pixel_summary
from ml07lab.config import get_config
from ml07lab.data.scenario import build_scenario_data
from ml07lab.data.synthetic import raw_pixel_eer
from ml07lab.verify import deploy, evaluate


@pytest.fixture(scope="module")
def ci_setup():  # noqa: ANN201
    cfg = get_config("ci")
    data = build_scenario_data(cfg)
    model, art = clean_backbone(cfg, data)
    return cfg, data, model, art


def test_clean_backbone_beats_raw_pixels_on_unseen_people(ci_setup) -> None:  # noqa: ANN001
    cfg, data, model, art = ci_setup
    m = evaluate(deploy(model, data, cfg.far), data)
    raw = raw_pixel_eer(data.company)
    assert raw >= 0.20, f"synthetic faces got too easy for raw pixels (EER {raw:.3f})"
    assert m["eer"] <= 0.08, f"clean backbone EER {m['eer']:.3f} > 0.08 (raw pixels {raw:.3f})"
    assert m["tar_at_far_1pct"] >= 0.80, f"clean backbone TAR@FAR1% {m['tar_at_far_1pct']:.3f} < 0.80"
    # Same protocol (enrol/test split, cosine templates), no learning: far worse.
    pix = raw_pixel_summary(data)
    assert m["eer"] < pix["eer"] / 2 and m["tar_at_far_1pct"] > pix["tar_at_far_1pct"] + 0.5
    # The deployed threshold (set on calibration photos) holds roughly on the test photos.
    assert m["far_at_threshold"] <= 3 * cfg.far
    # The artefact describes itself (its metrics are re-measured above, not trusted: they
    # were recorded for the scenario split current when it was built).
    assert art.metrics["eer"] <= 0.08 and art.meta["num_classes"] == cfg.n_public_ids
