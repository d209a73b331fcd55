"""Exercises: the student copies are up to date, every stub fails its checker, every
solution passes it, stubs and solutions have not drifted apart, and the checkers catch
the usual mistakes. Fast: no model is trained, no notebook is executed (nbval does that).
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import math
import pickle
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from ml07lab import checks
from ml07lab.config import get_config
from ml07lab.controls.trusted_data.provenance import DOMAIN

REPO = Path(__file__).resolve().parent.parent
LABS = REPO / "labs"

# Notebooks that must hold at least one exercise. The lead extends this as notebooks gain
# theirs (goal: every notebook in labs/).
EXERCISE_NOTEBOOKS = ["00_threat_model", "01_pretrained_backbone", "02_poison_the_backbone",
                      "03_transfer_and_attack", "04_control_dataset_monitoring", "05_control_trusted_datasets",
                      "06_control_model_isolation", "07_control_differential_privacy",
                      "08_control_security_audit", "09_scorecard"]
DRIFT_MIN_RATIO = 0.9


def _load_make_student():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("make_student", REPO / "tools" / "make_student.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


make_student = _load_make_student()


def _exercise_cells() -> list[tuple[str, int, str, str, str]]:
    """(notebook, cell index, exercise id, instructor source, student source) per code exercise."""
    out = []
    for path in make_student.source_notebooks(LABS):
        nb = nbformat.read(str(path), as_version=4)
        student = make_student.student_notebook(nb, path.name)
        seen = set()
        for ex in make_student.exercises(nb, path.name):
            if ex.exercise_id is None or ex.cell in seen:
                continue
            seen.add(ex.cell)
            out.append((path.name, ex.cell, ex.exercise_id, nb.cells[ex.cell].source, student.cells[ex.cell].source))
    return out


CELLS = _exercise_cells()
IDS = [f"{c[2]}-{c[0][:2]}" for c in CELLS]


def _checker_call(tree: ast.Module, fn_names: set[str]) -> ast.Expr:
    """The cell's `checks.check_...(fn, ...)` statement."""
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            f = node.value.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            args = node.value.args
            if name.startswith("check") and args and isinstance(args[0], ast.Name) and args[0].id in fn_names:
                return node
    raise AssertionError("an exercise cell must call its checker on its function, e.g. checks.check_asr(fn)")


def _defs_and_call(source: str) -> tuple[str, str, ast.Expr]:
    """(code of the cell's imports and defs, the exercise function's name, the checker call)."""
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
    fns = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    call = _checker_call(tree, fns)
    return ast.unparse(ast.Module(keep, type_ignores=[])), call.value.args[0].id, call


def _namespace() -> dict:
    """What an exercise cell may use besides its own imports: the notebook's `cfg`."""
    return {"__name__": "__exercise__", "cfg": get_config("ci")}


def _signatures(source: str) -> dict[str, tuple[str, str | None]]:
    tree = ast.parse(source)
    return {n.name: (ast.dump(n.args), ast.get_docstring(n)) for n in tree.body if isinstance(n, ast.FunctionDef)}


# --- the two copies ---------------------------------------------------------------------

def test_student_copies_are_up_to_date(tmp_path: Path) -> None:
    fresh = tmp_path / "student"
    make_student.write_all(LABS, fresh)
    committed = LABS / "student"
    want = {p.name: p.read_text(encoding="utf-8") for p in fresh.glob("[0-9][0-9]_*.ipynb")}
    have = {p.name: p.read_text(encoding="utf-8") for p in committed.glob("[0-9][0-9]_*.ipynb")} if committed.is_dir() else {}
    stale = sorted(n for n in want if have.get(n) != want[n]) + sorted(set(have) - set(want))
    assert not stale, f"labs/student/ is out of date ({', '.join(stale)}): run `make student`."


@pytest.mark.parametrize("name", EXERCISE_NOTEBOOKS)
def test_listed_notebooks_have_an_exercise(name: str) -> None:
    path = LABS / f"{name}.ipynb"
    assert path.is_file(), f"{path.name} is listed in EXERCISE_NOTEBOOKS but does not exist"
    found = make_student.exercises(nbformat.read(str(path), as_version=4), path.name)
    assert any(e.exercise_id for e in found), f"{path.name} has no exercise (see docs/instructor.md, 'Writing an exercise')"


def test_exercise_ids_are_unique_and_match_their_notebook() -> None:
    ids = [c[2] for c in CELLS]
    assert len(ids) == len(set(ids)), f"duplicate exercise ids: {ids}"
    for notebook, _, ex_id, _, _ in CELLS:
        assert int(ex_id.split(".")[0]) == int(notebook[:2]), f"Exercise {ex_id} sits in {notebook}"


@pytest.mark.parametrize(("notebook", "cell", "ex_id", "solution", "stub"), CELLS, ids=IDS)
def test_stub_fails_its_checker(notebook: str, cell: int, ex_id: str, solution: str, stub: str) -> None:
    assert f"Exercise {ex_id}:" in stub and "Hint" in stub, "a stub's message names its exercise and gives a hint"
    with pytest.raises(NotImplementedError, match=rf"Exercise {re.escape(ex_id)}:"):
        exec(compile(stub, f"<{notebook} cell {cell}, student copy>", "exec"), _namespace())  # noqa: S102
    defs, fn, call = _defs_and_call(stub)
    ns = _namespace()
    exec(compile(defs, "<stub defs>", "exec"), ns)  # noqa: S102 - defining the stub must not raise
    with pytest.raises(NotImplementedError):
        eval(compile(ast.Expression(call.value), "<checker call>", "eval"), ns)  # noqa: S307


@pytest.mark.parametrize(("notebook", "cell", "ex_id", "solution", "stub"), CELLS, ids=IDS)
def test_solution_passes_its_checker(notebook: str, cell: int, ex_id: str, solution: str, stub: str,
                                     capsys: pytest.CaptureFixture) -> None:
    defs, fn, call = _defs_and_call(solution)
    ns = _namespace()
    exec(compile(defs, f"<{notebook} cell {cell}>", "exec"), ns)  # noqa: S102
    eval(compile(ast.Expression(call.value), "<checker call>", "eval"), ns)  # noqa: S307
    assert f"PASS Exercise {ex_id}:" in capsys.readouterr().out


@pytest.mark.parametrize(("notebook", "cell", "ex_id", "solution", "stub"), CELLS, ids=IDS)
def test_stub_and_solution_have_not_drifted(notebook: str, cell: int, ex_id: str, solution: str, stub: str) -> None:
    assert _signatures(stub) == _signatures(solution), \
        "the stub's functions (names, arguments, docstrings) must equal the solution's: keep def lines outside the markers"
    committed = LABS / "student" / notebook
    if committed.is_file():  # the copy learners get (its freshness is tested above)
        stub = nbformat.read(str(committed), as_version=4).cells[cell].source
    without_solution = "\n".join(
        line for line in make_student.split_source(solution)[0].split("\n") if "NotImplementedError" not in line)
    stub_only = "\n".join(line for line in stub.split("\n") if "NotImplementedError" not in line
                           and line not in (make_student.RAISES_MARKER, make_student.RAISES_NOTE))
    ratio = difflib.SequenceMatcher(None, without_solution, stub_only).ratio()
    assert ratio >= DRIFT_MIN_RATIO, f"{notebook} cell {cell}: the student cell drifted from its source (ratio {ratio:.2f})"


def test_student_copy_marks_stub_cells_and_strips_outputs() -> None:
    """Stub cells carry nbval's in-cell marker, never the `raises-exception` tag: JupyterLab
    honours the tag and would run past the stub, but ignores the comment (Run All stops)."""
    for path in make_student.source_notebooks(LABS):
        nb = nbformat.read(str(path), as_version=4)
        student = make_student.student_notebook(nb, path.name)
        ex_cells = {e.cell for e in make_student.exercises(nb, path.name) if e.exercise_id}
        for i, (src, dst) in enumerate(zip(nb.cells, student.cells)):
            tags = dst.metadata.get("tags", [])
            assert "raises-exception" not in tags, f"{path.name} cell {i}: JupyterLab would run past this stub"
            marked = dst.source.split("\n")[0] == "# NBVAL_RAISES_EXCEPTION"
            assert marked == (i in ex_cells), f"{path.name} cell {i}"
            assert "NBVAL_RAISES_EXCEPTION" not in src.source, f"{path.name} cell {i}: instructor copy must run clean"
            assert "raises-exception" not in src.metadata.get("tags", []), f"{path.name} cell {i}: instructor copy must run clean"
            assert "BEGIN SOLUTION" not in dst.source, f"{path.name} cell {i} leaks a solution"
            if dst.cell_type == "code":
                assert dst.outputs == [] and dst.execution_count is None


# --- the marker syntax -------------------------------------------------------------------

def test_split_source_replaces_blocks_keeping_indentation() -> None:
    src = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n"
           "    # STUB: raise NotImplementedError(\"Exercise 9.1: add one. Hint: x + 1\")\n\ncheck(f)")
    out, blocks = make_student.split_source(src)
    assert out == ("def f(x):\n    \"\"\"Doc.\"\"\"\n    raise NotImplementedError(\"Exercise 9.1: add one. Hint: x + 1\")\n"
                   "\ncheck(f)")
    assert blocks == [("    return x + 1", "    raise NotImplementedError(\"Exercise 9.1: add one. Hint: x + 1\")")]
    md, _ = make_student.split_source("Q?\n<!-- BEGIN SOLUTION -->\nA.\n<!-- END SOLUTION -->\n"
                                      "<!-- STUB: *Your answer here.* -->", "markdown")
    assert md == "Q?\n*Your answer here.*"


@pytest.mark.parametrize(("src", "msg"), [
    ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without a BEGIN"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n# END SOLUTION", "inside another"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\nprint(x)", "STUB"),
    ("# BEGIN SOLUTION\n\n# END SOLUTION\n# STUB: raise NotImplementedError('Exercise 9.1')", "empty"),
])
def test_malformed_markers_say_what_is_wrong(src: str, msg: str) -> None:
    with pytest.raises(make_student.MarkerError, match=msg):
        make_student.split_source(src, where="nb cell 3")


# --- the checkers catch the usual mistakes -----------------------------------------------

def _square_trigger(frac: float):  # noqa: ANN202
    from ml07lab.attack.triggers import Trigger

    def make(size: int) -> Trigger:
        side = round(frac * size)
        mask = torch.zeros(1, size, size)
        mask[:, :side, :side] = 1.0
        return Trigger("square", mask, torch.zeros(1, size, size))
    return make


def _mean_templates(emb: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.stack([emb[labels == p].mean(0) for p in range(k)])


WRONG = [
    (checks.check_tar_far, lambda g, i, t: (np.mean(np.asarray(g) >= t), np.mean(np.asarray(i) >= t)), "strictly greater"),
    (checks.check_tar_far, lambda g, i, t: (np.mean(np.asarray(i) > t), np.mean(np.asarray(g) > t)), "swapped"),
    (checks.check_enrol, _mean_templates, "L2-normalise"),
    (checks.check_enrol, lambda e, y, k: torch.nn.functional.normalize(e[:k], dim=1), "wrong way"),
    (checks.check_trigger, _square_trigger(0.6), "covers"),
    (checks.check_trigger, lambda size: torch.zeros(1, size, size), "return a Trigger"),
    (checks.check_cheapest_rate, lambda recs, m: next((r["poison_rate"] for r in recs if r["asr"] >= m), None), "not always sorted"),
    (checks.check_threshold_at_far, lambda imp, far: float(np.max(imp)) + 1.0, "too strict"),
    (checks.check_threshold_at_far, lambda imp, far: float(np.quantile(imp, 1 - far)) - 0.05, "more than"),
    (checks.check_asr, lambda s, t: int(np.sum(np.asarray(s) > t)), "not a count"),
    (checks.check_asr, lambda s, t: float(np.mean(np.asarray(s) >= t)), "exactly at the threshold"),
    (checks.check_asr, lambda s, t: float((s > t).mean()), "raised TypeError"),
]


# --- typical mistakes in the control notebooks' exercises (04-07) ------------------------

def _drift(strict: bool = False, use_min: bool = True, stat=np.median, union: bool = False):  # noqa: ANN001, ANN202
    def drifting(old: dict, new: dict, min_gain: int) -> list[str]:
        names = set(old) | set(new)
        albums = [old.get(n, 0) for n in names] if union else [c for c in old.values() if c > 0]
        bar = max(min_gain if use_min else 0, float(stat(albums)))
        gain = {n: new.get(n, 0) - old.get(n, 0) for n in names}
        return sorted(n for n, g in gain.items() if (g > bar if strict else g >= bar))
    return drifting


def _verify_or_false(key, data: bytes, sig: bytes) -> bool:  # noqa: ANN001
    from cryptography.exceptions import InvalidSignature
    try:
        key.verify(sig, data)
        return True
    except InvalidSignature:
        return False


def _mia(m, n, counts: bool = False, thresholds: str = "both") -> float:  # noqa: ANN001
    m, n = np.asarray(m, dtype=float), np.asarray(n, dtype=float)
    agg = np.sum if counts else np.mean
    ts = m if thresholds == "members" else np.r_[m, n]
    return max(float(agg(m > t) - agg(n > t)) for t in ts)


def _largest_eps(bound, pick=max):  # noqa: ANN001, ANN202
    def choose(eps: list[float], target: float, delta: float) -> float | None:
        ok = [e for e in eps if bound(e, delta) <= target]
        return pick(ok) if ok else None
    return choose


def _tight(e: float, d: float) -> float:
    return (math.exp(e) - 1 + 2 * d) / (math.exp(e) + 1)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _globals(d: bytes) -> list[tuple[str, str]]:
    from ml07lab.controls.isolation.model_files import pickle_globals
    return pickle_globals(d)


def _allowed() -> set:
    from ml07lab.controls.isolation.model_files import ALLOWED_GLOBALS
    return ALLOWED_GLOBALS


WRONG += [
    (checks.check_drift, _drift(strict=True), "use >=, not >"),
    (checks.check_drift, _drift(use_min=False), "max(min_gain"),
    (checks.check_drift, _drift(stat=np.mean), "not the mean"),
    (checks.check_drift, _drift(union=True), "old count > 0"),
    (checks.check_drift, lambda old, new, g: [n for n in old if new.get(n, 0) - old[n] >= max(g, np.median(list(old.values())))],
     "new in the refresh"),
    (checks.check_drift, lambda old, new, g: [n for n in new if new[n] - old[n] >= g], "old_counts.get(name, 0)"),
    (checks.check_drift,  # the median over every old count, zeros included: not "the people who had images"
     lambda old, new, g: sorted(n for n in {*old, *new} if new.get(n, 0) - old.get(n, 0) >= max(g, np.median(list(old.values())))),
     "leave out the old counts that are 0"),
    (checks.check_modified_files, lambda rec, fs: [p for p, h in rec.items() if p in fs and _sha(fs[p]) != h], "sorted"),
    (checks.check_modified_files, lambda rec, fs: sorted(p for p, h in rec.items() if p in fs and hashlib.sha256(fs[p]).digest() != h),
     "hexdigest"),
    (checks.check_modified_files, lambda rec, fs: sorted(p for p, b in fs.items() if _sha(b) != rec.get(p)), "added files"),
    (checks.check_modified_files, lambda rec, fs: sorted(p for p, h in rec.items() if _sha(fs[p]) != h), "raised KeyError"),
    (checks.check_signature, lambda k, p, s: k.verify(s, DOMAIN + p), "return True or False"),
    (checks.check_signature, lambda k, p, s: (k.verify(s, DOMAIN + p), True)[1], "InvalidSignature"),
    (checks.check_signature, lambda k, p, s: _verify_or_false(k, p, s), "DOMAIN + payload"),
    (checks.check_signature, lambda k, p, s: True, "does not raise"),
    (checks.check_unsafe_imports, lambda d: (pickle.loads(d), [])[1], "RAN"),  # noqa: S301 - the checker's own harmless payload
    (checks.check_unsafe_imports, lambda d: sorted({f"{m}.{n}" for m, n in _globals(d) if m in ("os", "posix", "subprocess", "builtins")}),
     "denylist"),
    (checks.check_unsafe_imports, lambda d: sorted({f"{m}.{n}" for m, n in _globals(d)}), "are allowed"),
    (checks.check_unsafe_imports, lambda d: [(m, n) for m, n in _globals(d) if (m, n) not in _allowed()], "not tuples"),
    (checks.check_unsafe_imports, lambda d: [f"{m}.{n}" for m, n in _globals(d) if (m, n) not in _allowed()], "once, sorted"),
    (checks.check_mia_advantage, lambda m, n: _mia(m, n, counts=True), "shares"),
    (checks.check_mia_advantage, lambda m, n: _mia(m, n, thresholds="members"), "one below them all"),
    (checks.check_mia_advantage, lambda m, n: float(np.mean(np.asarray(m, float)) - np.mean(np.asarray(n, float))), "mean scores"),
    (checks.check_mia_advantage, lambda m, n: max(0.0, _mia(n, m)), "higher score = member"),
    (checks.check_largest_epsilon, _largest_eps(lambda e, d: math.expm1(e)), "Yeom"),
    (checks.check_largest_epsilon, _largest_eps(_tight, pick=min), "the largest"),
    (checks.check_largest_epsilon, _largest_eps(lambda e, d: _tight(e, 0.0)), "δ counts"),
    (checks.check_largest_epsilon, lambda eps, t, d: max(e for e in eps if _tight(e, d) <= t), "raised ValueError"),
]


# 8.1 and 9.1: a flipped sign, a missing MAD constant; an ASR-only filter, a wrong cost sign.
WRONG += [
    (checks.check_anomaly_index, lambda x: (x - np.median(x)) / (1.4826 * np.median(np.abs(x - np.median(x)))),
     "(median - x)"),
    (checks.check_anomaly_index, lambda x: (np.median(x) - x) / np.median(np.abs(x - np.median(x))), "1.4826"),
    (checks.check_controls_meeting, lambda rows, a, c: [r["control"] for r in rows if r["asr_after"] <= a], "AND"),
    (checks.check_controls_meeting,
     lambda rows, a, c: [r["control"] for r in rows if r["asr_after"] <= a and r["tar_after"] - r["tar_before"] <= c],
     "(tar_before - tar_after)"),
    (checks.check_controls_meeting,  # rows instead of names: a hint, not "unhashable type: 'dict'"
     lambda rows, a, c: [r for r in rows if r["asr_after"] <= a and r["tar_before"] - r["tar_after"] <= c],
     "r['control']"),
]


@pytest.mark.parametrize(("checker", "wrong", "hint"), WRONG, ids=[f"{c.__name__}-{h}" for c, _, h in WRONG])
def test_checker_rejects_a_typical_mistake_with_a_hint(checker, wrong, hint: str) -> None:  # noqa: ANN001
    with pytest.raises(checks.ExerciseError, match=re.escape(hint)) as err:
        checker(wrong)
    assert "Hint:" in str(err.value) and "FAIL Exercise" in str(err.value)


def test_checker_passes_the_kits_own_functions(capsys: pytest.CaptureFixture) -> None:
    from ml07lab import metrics
    from ml07lab.verify import templates_from

    checks.check_tar_far(lambda g, i, t: (metrics.acceptance_rate(g, t), metrics.acceptance_rate(i, t)))
    checks.check_enrol(templates_from)
    checks.check_trigger(_square_trigger(0.3), 32)
    checks.check_threshold_at_far(metrics.threshold_at_far)
    checks.check_asr(metrics.acceptance_rate)
    assert capsys.readouterr().out.count("PASS Exercise") == 5


def test_control_checkers_pass_the_kits_own_functions(capsys: pytest.CaptureFixture) -> None:
    from ml07lab.controls.privacy import membership

    checks.check_mia_advantage(lambda m, n: membership._best_threshold(np.asarray(m, float), np.asarray(n, float))[1])
    checks.check_largest_epsilon(_largest_eps(membership.tight_bound))
    assert capsys.readouterr().out.count("PASS Exercise") == 2


def test_nbval_reads_the_stub_marker_even_in_lax_mode() -> None:
    """The marker is what lets `pytest --nbval-lax` accept an unsolved stub: nbval turns it into
    check_exception, which it honours whether or not outputs are compared."""
    from nbval.plugin import find_comment_markers

    for path in make_student.source_notebooks(LABS):
        student = make_student.student_notebook(nbformat.read(str(path), as_version=4), path.name)
        for cell in student.cells:
            if cell.cell_type == "code" and "NotImplementedError(\"Exercise" in cell.source:
                assert dict(find_comment_markers(cell.source)) == {"check_exception": True}, path.name


def test_start_page_names_every_student_notebook() -> None:
    """labs/student/START_HERE.ipynb is where `make lab` opens: it must point at real notebooks."""
    page = LABS / "student" / make_student.START_PAGE
    text = "\n".join(c.source for c in nbformat.read(str(page), as_version=4).cells)
    assert all(c.cell_type == "markdown" for c in nbformat.read(str(page), as_version=4).cells)
    for path in make_student.source_notebooks(LABS):
        assert f"({path.name})" in text, f"START_HERE does not link {path.name}"
    assert "../" in text, "START_HERE says where the solutions are"
