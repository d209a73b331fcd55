"""Committed notebooks carry no outputs (run `make strip` before committing)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent


def _load_stripper():
    spec = importlib.util.spec_from_file_location("strip_notebooks", REPO / "tools" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip_notebooks = _load_stripper()


def test_lab_notebooks_have_no_outputs():
    notebooks = strip_notebooks.default_notebooks(REPO)
    bad = strip_notebooks.unclean_notebooks(notebooks)
    # Passes trivially while labs/ holds no notebooks; the checker itself is tested below.
    assert bad == {}, "notebooks carry outputs (run `make strip`):\n" + "\n".join(
        f"  {path}: {'; '.join(found[:3])}" for path, found in bad.items()
    )


def _notebook(tmp_path: Path, *, with_outputs: bool) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab"), nbformat.v4.new_code_cell("print(1 + 1)")]
    if with_outputs:
        cell = nb.cells[1]
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
        cell.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / ("dirty.ipynb" if with_outputs else "clean.ipynb")
    nbformat.write(nb, str(path))
    return path


def test_checker_flags_outputs_and_strip_cleans(tmp_path):
    dirty = _notebook(tmp_path, with_outputs=True)
    clean = _notebook(tmp_path, with_outputs=False)

    found = strip_notebooks.check_notebook(dirty)
    assert any("output" in p for p in found)
    assert any("execution_count" in p for p in found)
    assert any("'execution'" in p for p in found)
    assert any("'widgets'" in p for p in found)
    assert strip_notebooks.check_notebook(clean) == []
    assert list(strip_notebooks.unclean_notebooks([dirty, clean])) == [str(dirty)]
    assert strip_notebooks.main(["--check", str(dirty), str(clean)]) == 1

    assert strip_notebooks.strip_notebook(dirty) is True
    assert strip_notebooks.check_notebook(dirty) == []
    assert strip_notebooks.strip_notebook(dirty) is False  # idempotent
    assert strip_notebooks.main(["--check", str(dirty), str(clean)]) == 0
    nbformat.validate(nbformat.read(str(dirty), as_version=4))


def test_default_notebooks_finds_labs_but_not_checkpoints(tmp_path):
    (tmp_path / "labs" / "student").mkdir(parents=True)
    (tmp_path / "labs" / ".ipynb_checkpoints").mkdir()
    for name in ["labs/01.ipynb", "labs/student/01.ipynb", "labs/.ipynb_checkpoints/01-checkpoint.ipynb"]:
        _notebook(tmp_path, with_outputs=True).rename(tmp_path / name)
    found = [p.relative_to(tmp_path).as_posix() for p in strip_notebooks.default_notebooks(tmp_path)]
    assert found == ["labs/01.ipynb", "labs/student/01.ipynb"]
