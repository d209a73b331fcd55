"""The scorecard's schema, its rows and combinations, the headless report, and
determinism: the same seed and profile give the same scorecard numbers."""
from __future__ import annotations

import copy

import pytest

from ml07lab import scorecard as sc
from ml07lab.run import deterministic_view, render_report


def planted() -> dict:
    """A complete scenario JSON with round, planted numbers."""
    paths = {p: {"asr": 1.0, "asr_insiders": 1.0, "asr_outsiders": 1.0, "impostor_accept": 0.01,
                 "tar_at_far_1pct": 0.90, "clean_tar_at_far_1pct": 0.92} for p in sc.PATHS}
    controls = {
        "dataset_monitoring": {"asr": 0.1, "asr_before": 1.0, "tar_at_far_1pct": 0.88, "tar_at_far_1pct_before": 0.90,
                               "seconds": 50.0, "scans_only": {"asr": 1.0}},
        "trusted_datasets": {"asr": 0.0, "tar_at_far_1pct": 0.90, "seconds": 1.0, "asr_signed_poisoned": 1.0},
        "model_isolation": {"asr": 0.2, "tar_at_far_1pct": 0.85, "seconds": 10.0},
        "differential_privacy": {"asr": 0.5, "tar_at_far_1pct": 0.80, "seconds": 100.0},
        "security_audit": {"asr": 0.05, "tar_at_far_1pct": 0.89, "seconds": 30.0, "detection_auc": 1.0,
                           "does_not_stop": "path B", "paths": {
                               "model": {"asr_before": 1.0, "asr": 0.05, "tar_before": 0.90, "tar_at_far_1pct": 0.89},
                               "dataset": {"asr_before": 1.0, "asr": 1.0, "tar_before": 0.90, "tar_at_far_1pct": 0.90}}},
    }
    return {"profile": "ci", "seed": 0, "clean": {"tar_at_far_1pct": 0.92}, "scenario": {"poison_rate": 0.1},
            "paths": paths, "controls": controls}


def test_schema_accepts_a_complete_json():
    assert sc.validate(planted()) == []
    rows = sc.scorecard_rows(planted())
    assert all(set(sc.COLUMNS) <= set(r) for r in rows)
    assert len(rows) == 2 * len(sc.CONTROLS) + 2 * len(sc.COMBINATIONS)
    assert {r["path"] for r in rows} == set(sc.PATHS)


@pytest.mark.parametrize("breakage, expected", [
    (lambda r: r["controls"].pop("model_isolation"), "model_isolation: section absent"),
    (lambda r: r["controls"]["differential_privacy"].pop("asr"), "differential_privacy: missing key 'asr'"),
    (lambda r: r["controls"].__setitem__("trusted_datasets", {"status": "missing", "why": "no module"}),
     "trusted_datasets: missing: no module"),
    (lambda r: r["controls"]["security_audit"]["paths"]["model"].pop("asr"), "security_audit.paths.model: missing key 'asr'"),
    (lambda r: r["paths"].pop("dataset"), "paths.dataset: attack path not measured"),
    (lambda r: r["controls"]["model_isolation"].__setitem__("seconds", "fast"), "model_isolation: 'seconds' is not a number"),
])
def test_schema_names_every_problem(breakage, expected):
    r = planted()
    breakage(r)
    assert expected in sc.validate(r)
    with pytest.raises(sc.ScorecardError, match=expected.split(":")[0]):
        sc.scorecard_rows(r)


def test_rows_before_after_and_not_applicable():
    rows = {(r["key"], r["path"]): r for r in sc.scorecard_rows(planted())}
    mon_a, mon_b = rows["dataset_monitoring", "model"], rows["dataset_monitoring", "dataset"]
    assert not mon_a["applies"] and mon_a["asr_after"] == mon_a["asr_before"] == 1.0
    assert mon_b["applies"] and mon_b["asr_after"] == 0.1 and mon_b["tar_before"] == 0.90
    assert rows["security_audit", "dataset"]["asr_after"] == 1.0, "per-path records win over the flat keys"
    assert rows["trusted_datasets", "dataset"]["does_not_stop"].startswith("Poison that a trusted source signs")
    assert "100%" in rows["trusted_datasets", "dataset"]["does_not_stop"], "backed by the measured row"


def test_defence_in_depth_combination():
    r = planted()
    combo = {x["path"]: x for x in sc.combined_rows(r, ["trusted_datasets", "model_isolation", "security_audit"])}
    assert combo["model"]["asr_after"] == pytest.approx(0.05)  # best layer on path A: the audit
    assert combo["dataset"]["asr_after"] == pytest.approx(0.0)  # trusted data on path B
    assert combo["model"]["tar_after"] == pytest.approx(0.90 - 0.05 - 0.01)  # isolation + audit costs add up
    assert combo["model"]["seconds"] == pytest.approx(41.0)
    assert sc.combined_view(r, [])["model"]["asr"] == 1.0


def test_defence_in_depth_measured_end_to_end_wins_over_the_estimate():
    r = planted()
    stage = [{"layer": m, "did": "x", "seconds": 1.0} for m in sc.COMBINATIONS["trusted data + isolation + audit"]]
    r["defence_in_depth"] = {"members": list(sc.COMBINATIONS["trusted data + isolation + audit"]), "paths": {
        "model": {"asr": 0.30, "tar_at_far_1pct": 0.87, "seconds": 3.0, "stages": stage},
        "dataset": {"asr": 0.02, "tar_at_far_1pct": 0.91, "seconds": 3.0, "stages": stage}}}
    combo = {x["path"]: x for x in sc.combined_rows(r, ["trusted_datasets", "model_isolation", "security_audit"])}
    assert combo["model"]["measured"] and combo["model"]["asr_after"] == 0.30  # not the best layer's 0.05
    assert combo["dataset"]["tar_after"] == 0.91 and combo["dataset"]["seconds"] == 3.0
    assert "Measured end to end" in combo["model"]["does_not_stop"]
    # another set of members has no measurement: the estimate, marked as such
    est = sc.combined_rows(r, ["trusted_datasets", "security_audit"])
    assert not any(x["measured"] for x in est) and "not re-measured" in est[0]["does_not_stop"]


def test_combining_a_failed_section_says_which_and_why():
    r = planted()
    r["controls"]["model_isolation"] = {"status": "error", "why": "RuntimeError: out of memory"}
    with pytest.raises(sc.ScorecardError, match="Cannot combine model_isolation: .*out of memory"):
        sc.combined_view(r, ["trusted_datasets", "model_isolation"])
    assert sc.combined_view(r, ["trusted_datasets"])["dataset"]["asr"] == pytest.approx(0.0)  # the others still combine


def test_attacker_rows_report_both_attackers():
    r = planted()
    rec = {"target_flagged": True, "target_index": 8.0, "max_index": 8.0, "strip_auc": 0.99, "strip_far_at_frr_5pct": 0.02,
           "asr_before": 1.0, "asr": 0.02, "strip_asr_after": 0.02, "stealth": 0.0, "variant": "poisoned-path-a"}
    r["controls"]["security_audit"]["attackers"] = {"plain": rec, "stealthy": {**rec, "target_flagged": False,
                                                                               "stealth": 1.0}}
    rows = {x["attacker"]: x for x in sc.attacker_rows(r)}
    assert rows["plain"]["neural_cleanse"] == "flagged" and rows["stealthy"]["neural_cleanse"] == "missed"
    assert sc.attacker_rows(planted()) == []


def test_owasp_factors_map_to_measurements():
    f = {x["factor"]: x for x in sc.owasp_factors(planted())}
    assert f["Exploitability"]["owasp"] == "5 (Easy)" and f["Detectability"]["owasp"] == "1 (Difficult)"
    assert f["Technical"]["owasp"] == "5 (Difficult)" and f["ML Application Specific"]["owasp"] == "4"
    assert f["ML Operations Specific"]["owasp"] == "3"
    assert "100%" in f["ML Application Specific"]["measured"]
    impacts = [x for x in sc.owasp_factors(planted()) if x["factor"] == "Impact"]
    assert len(impacts) == 4 and "100%" in impacts[0]["measured"]


def test_failing_control_is_recorded_not_skipped_nor_retried(monkeypatch):
    """`ml07lab run` iterates over the Control objects; one that raises (even TypeError) is
    called once and recorded as an error with why, and the scorecard names it."""
    import ml07lab.attack.scenario as scen
    import ml07lab.run as run
    from ml07lab.controls import CONTROLS, Control

    calls = []

    def broken(cfg, progress=False):
        calls.append(progress)
        raise TypeError("no progress here")

    r = planted()
    fake = {"attack": r["paths"]["model"], "poisoned": {"tar_at_far_1pct": 0.9}, "clean": {"tar_at_far_1pct": 0.92},
            "seconds": {}, "controls": {}, "profile": "ci", "seed": 0}
    monkeypatch.setattr(scen, "run_scenario", lambda *a, **k: copy.deepcopy(fake))
    monkeypatch.setitem(CONTROLS, "ghost", Control("ghost", "Ghost", "09_scorecard", ("model",), broken))
    out = run.collect(None, progress=False, sections=("ghost",))
    assert calls == [False]
    assert out["controls"]["ghost"] == {"status": "error", "why": "TypeError: no progress here"}
    assert "ghost: error: TypeError: no progress here" in out["scorecard"]["problems"]


def test_report_is_self_contained_and_charts_render():
    r = planted()
    r["scorecard"] = {"problems": [], "rows": sc.scorecard_rows(r), "owasp": sc.owasp_factors(r)}
    html = render_report(r, {"08_x.ipynb": "ok in 3 s"})
    body = html.split("<body>")[1]
    assert "data:image/png;base64," in html and "<script" not in html
    assert "src='http" not in body and 'src="http' not in body, "self-contained: nothing loaded from the network"
    assert "images_after = " not in body and "Technical impact" not in body
    assert "5 (Difficult)" in body and "ML Operations Specific" in body
    sc.plot_combined(r, ["security_audit"])


def test_deterministic_view_drops_only_timings():
    a = planted()
    b = copy.deepcopy(a)
    b["controls"]["model_isolation"]["seconds"] = 99.0
    assert deterministic_view(a) == deterministic_view(b)
    b["controls"]["model_isolation"]["asr"] = 0.3
    assert deterministic_view(a) != deterministic_view(b)


def test_scorecard_numbers_repeat_across_two_runs():
    """Two `collect` runs of the cheap parts (both attack paths, no control section) agree;
    the audit's own search repeats bit for bit (tests/test_audit.py)."""
    from ml07lab.config import get_config
    from ml07lab.run import collect

    cfg = get_config("ci")
    one = collect(cfg, progress=False, sections=())
    two = collect(cfg, progress=False, sections=())
    assert deterministic_view(one) == deterministic_view(two)
    assert one["paths"]["model"]["asr"] == two["paths"]["model"]["asr"]
    assert one["scorecard"]["problems"] and "security_audit: section absent" in one["scorecard"]["problems"]
