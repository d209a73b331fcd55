"""report.html's control sections: tables in the scorecard's words, not `key = 3.2e+03` dumps."""
from __future__ import annotations

from ml07lab import report_html as rh


def test_numbers_in_the_scorecards_formats() -> None:
    assert rh._value("images_after", 3200.0) == "3,200"
    assert rh._value("asr", 0.0375) == "3.8%"
    assert rh._value("tar_at_far_1pct", 0.91234) == "0.912"
    assert rh._value("unlearning_tar_cost_pts", 5.64) == "5.6"
    assert rh._value("payload_ran", False) == "no"
    assert rh._label("images_after") == "training images after the update"
    assert rh._label("scans_only.asr") == "scans only · ASR after the control"


def test_a_section_is_a_table_with_its_scorecard_rows() -> None:
    sec = {"asr": 0.1, "asr_before": 1.0, "tar_at_far_1pct": 0.88, "seconds": 50.0, "images_after": 3200.0,
           "sweep": [{"x": 1}], "chosen": {"epsilon": None}}
    rows = [{"key": "x", "path": "dataset", "applies": True, "asr_before": 1.0, "asr_after": 0.1, "tar_before": 0.9,
             "tar_after": 0.88, "seconds": 50.0, "does_not_stop": "path A"}]
    out = rh.control_section_html("X", sec, rows)
    assert "<table>" in out and "100.0% → <b>10.0%</b>" in out and "3,200" in out and "none (no DP)" in out
    assert " = " not in out and "e+03" not in out
    assert "Not measured" in rh.control_section_html("X", {"status": "missing", "why": "no module"})
