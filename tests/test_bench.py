"""The benchmark's output: shape only. Speed is measured by `make bench`, never asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml07lab.bench import report, stages
from ml07lab.bench.docs import END, START, lab_markdown, rewrite
from ml07lab.bench.runner import run_bench
from ml07lab.cli import main


@pytest.fixture(scope="module")
def bench() -> dict:
    """A small bench run: the real harness and stages, on small workloads."""
    small = [("synthetic_32px", lambda: stages.synthetic_faces(32)),
             ("gate_scan", lambda: stages.gate_scan(mb=1)),
             ("dataset_verification", lambda: stages.dataset_verification(n_ids=3, per_id=4))]
    return run_bench(small, progress=False)


def test_bench_json_shape(bench: dict, tmp_path: Path) -> None:
    assert report.validate_shape(bench) == []
    assert set(bench["figures"]) >= {"synthetic_32px_faces_per_s", "gate_scan_s_per_mb", "dataset_verify_files_per_s"}
    assert json.loads(json.dumps(bench)) == bench  # plain JSON
    broken = {**bench, "figures": {"x": {"value": 1.0}}}
    assert report.validate_shape(broken)  # a malformed file is reported


def test_default_stages_cover_the_issue() -> None:
    names = [n for n, _ in stages.default_stages()]
    for want in ("synthetic_32px", "synthetic_64px", "train_ci", "train_laptop", "pretrain_epoch_ci",
                 "pretrain_epoch_laptop", "embed_ci", "neural_cleanse_ci", "neural_cleanse_laptop",
                 "gate_scan", "dataset_verification"):
        assert want in names


def test_table_and_compare(bench: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = report.table(bench)
    assert "synthetic_32px_faces_per_s" in text and "GFLOP/s" in text
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    slower = json.loads(json.dumps(bench))
    slower["figures"]["synthetic_32px_faces_per_s"]["per_ref"] /= 2
    old.write_text(json.dumps(bench))
    new.write_text(json.dumps(slower))
    assert main(["bench", "--compare", str(old), str(new), "--json"]) == 0
    ratios = json.loads(capsys.readouterr().out)
    assert ratios["synthetic_32px_faces_per_s"]["speedup"] == pytest.approx(0.5)
    assert main(["bench", "--compare", str(old), str(tmp_path / "missing.json")]) == 2


def test_docs_tables_rewritten_between_markers(bench: dict) -> None:
    lab = {"profile": "ci", "dataset": "synthetic", "cold_total_s": 130.0, "warm_total_s": 20.0,
           "notebooks": {"00_threat_model": {"cold_s": 10.0, "warm_s": 5.0, "status": "ok"},
                         "01_pretrained_backbone": {"cold_s": 120.0, "warm_s": 15.0, "status": "ok"}}}
    block = lab_markdown([{**bench, "lab": lab}])
    assert "| 01_pretrained_backbone | 2.0 min | 15 s |" in block and bench["machine"]["cpu_model"] in block
    doc = f"intro\n{START}\nold table\n{END}\noutro\n"
    out = rewrite(doc, block)
    assert out.startswith("intro\n") and out.endswith("outro\n") and "old table" not in out
    with pytest.raises(ValueError, match="markers"):
        rewrite("no markers here", block)


def test_a_profile_with_its_own_block_never_drops_another_profiles_table(bench: dict, tmp_path: Path) -> None:
    from ml07lab.bench.docs import markers, update_files

    def lab(profile: str, secs: float) -> dict:
        return {**bench, "lab": {"profile": profile, "dataset": "x", "cold_total_s": secs, "warm_total_s": 1.0,
                                 "notebooks": {"00_threat_model": {"cold_s": secs, "warm_s": 1.0, "status": "ok"}}}}

    (ls, le) = markers("laptop")
    doc = tmp_path / "README.md"
    doc.write_text(f"{START}\nci table\n{END}\nmid\n{ls}\nold laptop\n{le}\n")
    f = tmp_path / "bench-lab-laptop.json"
    f.write_text(json.dumps(lab("laptop", 42.0)))
    assert update_files([f], [doc]) == [doc]
    text = doc.read_text()
    assert "ci table" in text and "old laptop" not in text and "`laptop` cold" in text and "42 s" in text
    g = tmp_path / "bench-lab-ci.json"
    g.write_text(json.dumps(lab("ci", 7.0)))
    update_files([g, f], [doc])
    text = doc.read_text()
    assert "ci table" not in text and "`ci` cold" in text.split(ls)[0] and "`laptop` cold" in text.split(ls)[1]


def test_readme_and_guide_carry_the_markers() -> None:
    from ml07lab.bench.docs import markers

    root = Path(__file__).resolve().parent.parent
    for doc in ("README.md", "docs/instructor.md"):
        text = (root / doc).read_text()
        assert START in text and END in text, doc
        assert all(m in text for m in markers("laptop")), f"{doc}: the laptop table's own block"
