#!/usr/bin/env python3
"""Make the student copies of the lab notebooks: one source, two copies.

    python tools/make_student.py            # labs/NN_*.ipynb -> labs/student/NN_*.ipynb (`make student`)
    python tools/make_student.py --check    # exit 1 if labs/student/ is missing or out of date
    python tools/make_student.py --list     # the exercises found, one per line

The notebooks in labs/ are the instructor source, with solutions marked inside code cells:

    def attack_success_rate(scores, threshold):
        \"\"\"Share of triggered probes accepted (score > threshold).\"\"\"
        # BEGIN SOLUTION
        return float(np.mean(np.asarray(scores) > threshold))
        # END SOLUTION
        # STUB: raise NotImplementedError("Exercise 3.1: return the share of scores above threshold. Hint: ...")

    checks.check_asr(attack_success_rate)

The student copy replaces every BEGIN..END block with the uncommented `# STUB:` line(s)
right after `# END SOLUTION` (at their own indentation), puts nbval's in-cell marker
`# NBVAL_RAISES_EXCEPTION` on the cell's first line (so nbval accepts the
NotImplementedError), and has no outputs. Not the `raises-exception` tag: JupyterLab reads
that tag too and would run past the error, while it ignores the comment, so *Run All* stops
at the first unfinished exercise. Markdown cells may hide
an answer between `<!-- BEGIN SOLUTION -->` and `<!-- END SOLUTION -->`, optionally
followed by `<!-- STUB: text shown instead -->`. Full rules: docs/instructor.md.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
LABS, STUDENT = REPO / "labs", REPO / "labs" / "student"
RAISES_TAG = "raises-exception"  # never written: JupyterLab's Run All would not stop at the stub
RAISES_MARKER = "# NBVAL_RAISES_EXCEPTION"
RAISES_NOTE = "# (the line above is for the kit's tests: this cell stops here until you solve the exercise)"
START_PAGE = "START_HERE.ipynb"  # hand-written, lives in labs/student/ only
_CODE = dict(begin=re.compile(r"^\s*# BEGIN SOLUTION\s*$"), end=re.compile(r"^\s*# END SOLUTION\s*$"),
             stub=re.compile(r"^(\s*)# STUB: ?(.*)$"))
_MD = dict(begin=re.compile(r"^\s*<!-- BEGIN SOLUTION -->\s*$"), end=re.compile(r"^\s*<!-- END SOLUTION -->\s*$"),
           stub=re.compile(r"^(\s*)<!-- STUB: ?(.*?) ?-->\s*$"))
EXERCISE_ID = re.compile(r"Exercise (\d+)\.(\d+)")
STUDENT_NOTE = (
    "\n\n> **Student copy.** Each exercise is a code cell with a function whose body is "
    "`raise NotImplementedError(\"Exercise N.M: … Hint: …\")`, followed by a `checks.…` call. Replace "
    "that line with your code and re-run the cell until it prints `PASS`. Until then the cell "
    "stops with `NotImplementedError`, which is expected, and *Run All* stops there too: the cells "
    "after it do not need your answer, so run them with *Run → Run Selected Cell and All Below*. "
    "Stuck? Each exercise has two hints below its text, and docs/learner.md helps."
)


class MarkerError(ValueError):
    """A malformed solution block; the message names the notebook, cell and line."""


@dataclass(frozen=True)
class Exercise:
    """One solution block found in an instructor notebook."""

    notebook: str  # file name, e.g. 03_transfer_and_attack.ipynb
    cell: int  # index of the cell in the notebook
    exercise_id: str | None  # "3.1" (from the stub's message); None for markdown answers
    solution: str  # the lines the student copy removes
    stub: str  # the lines the student copy gets instead


def _load_stripper():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("strip_notebooks", Path(__file__).with_name("strip_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_source(source: str, cell_type: str = "code", where: str = "cell") -> tuple[str, list[tuple[str, str]]]:
    """(student source, [(solution, stub), ...]) for one cell's source.

    Raises MarkerError for an unclosed, nested or stray marker, or a code block with no stub.
    """
    pat = _CODE if cell_type == "code" else _MD
    lines = source.split("\n")
    out: list[str] = []
    blocks: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if pat["end"].match(line):
            raise MarkerError(f"{where}, line {i + 1}: END SOLUTION without a BEGIN SOLUTION above it.")
        if not pat["begin"].match(line):
            out.append(line)
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and not pat["end"].match(lines[i]):
            if pat["begin"].match(lines[i]):
                raise MarkerError(f"{where}, line {i + 1}: BEGIN SOLUTION inside another solution block.")
            i += 1
        if i == len(lines):
            raise MarkerError(f"{where}, line {start + 1}: BEGIN SOLUTION is never closed by END SOLUTION.")
        solution = "\n".join(lines[start + 1:i])
        i += 1
        stub: list[str] = []
        while i < len(lines) and (m := pat["stub"].match(lines[i])):
            stub.append(m.group(1) + m.group(2))
            i += 1
        if cell_type == "code" and not stub:
            raise MarkerError(f"{where}, line {i}: END SOLUTION must be followed by a `# STUB: raise "
                              "NotImplementedError(\"Exercise N.M: ... Hint: ...\")` line.")
        if not solution.strip():
            raise MarkerError(f"{where}, line {start + 1}: the solution block is empty.")
        out.extend(stub)
        blocks.append((solution, "\n".join(stub)))
    return "\n".join(out), blocks


def exercises(nb: nbformat.NotebookNode, name: str = "notebook") -> list[Exercise]:
    """Every solution block of an instructor notebook, in order."""
    found = []
    for idx, cell in enumerate(nb.cells):
        if cell.cell_type not in ("code", "markdown"):
            continue
        _, blocks = split_source(cell.source, cell.cell_type, f"{name} cell {idx}")
        for solution, stub in blocks:
            m = EXERCISE_ID.search(stub)
            if cell.cell_type == "code" and not m:
                raise MarkerError(f"{name} cell {idx}: the stub must name its exercise, "
                                  "e.g. NotImplementedError(\"Exercise 3.1: ... Hint: ...\").")
            ex_id = f"{m.group(1)}.{m.group(2)}" if m else None
            found.append(Exercise(name, idx, ex_id, solution, stub))
    return found


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student copy of an instructor notebook (a new object; `nb` is not changed)."""
    out = copy.deepcopy(nb)
    any_exercise = False
    for idx, cell in enumerate(out.cells):
        if cell.cell_type not in ("code", "markdown"):
            continue
        source, blocks = split_source(cell.source, cell.cell_type, f"{name} cell {idx}")
        if not blocks:
            continue
        cell.source = source
        if cell.cell_type == "code":
            any_exercise = True
            if RAISES_MARKER not in source.split("\n"):
                cell.source = f"{RAISES_MARKER}\n{RAISES_NOTE}\n{source}"
    if any_exercise and out.cells and out.cells[0].cell_type == "markdown":
        out.cells[0].source = out.cells[0].source.rstrip("\n") + STUDENT_NOTE
    out.metadata["ml07lab"] = {"student_copy_of": f"labs/{name}",
                               "generated_by": "tools/make_student.py (`make student`): edit the source, not this copy"}
    _load_stripper().strip(out)
    return out


def source_notebooks(labs: Path = LABS) -> list[Path]:
    """The instructor notebooks: labs/NN_*.ipynb, sorted."""
    return sorted(p for p in labs.glob("[0-9][0-9]_*.ipynb"))


def render(path: Path) -> str:
    """The exact text of the student copy of the instructor notebook at `path`."""
    nb = nbformat.read(str(path), as_version=4)
    text = nbformat.writes(student_notebook(nb, path.name))
    return text if text.endswith("\n") else text + "\n"  # as nbformat.write does


def out_of_date(labs: Path = LABS, student: Path = STUDENT) -> list[str]:
    """Why labs/student/ differs from what `make student` would write (empty: up to date)."""
    problems = []
    sources = source_notebooks(labs)
    for src in sources:
        dst = student / src.name
        if not dst.is_file():
            problems.append(f"{dst.relative_to(labs.parent)} is missing")
        elif dst.read_text(encoding="utf-8") != render(src):
            problems.append(f"{dst.relative_to(labs.parent)} differs from its source {src.name}")
    names = {s.name for s in sources}
    problems += [f"{p.relative_to(labs.parent)} has no source in labs/"
                 for p in sorted(student.glob("[0-9][0-9]_*.ipynb")) if p.name not in names]
    if not (student / START_PAGE).is_file():
        problems.append(f"{(student / START_PAGE).relative_to(labs.parent)} (the learner's start page) is missing")
    return problems


def write_all(labs: Path = LABS, student: Path = STUDENT) -> list[Path]:
    """Write every student copy (only files whose text changes) and remove orphans."""
    student.mkdir(parents=True, exist_ok=True)
    written = []
    sources = source_notebooks(labs)
    for src in sources:
        text, dst = render(src), student / src.name
        if not dst.is_file() or dst.read_text(encoding="utf-8") != text:
            dst.write_text(text, encoding="utf-8")
            written.append(dst)
    for orphan in student.glob("[0-9][0-9]_*.ipynb"):
        if orphan.name not in {s.name for s in sources}:
            orphan.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if labs/student/ is out of date")
    ap.add_argument("--list", action="store_true", help="list the exercises found")
    args = ap.parse_args(argv)
    try:
        if args.list:
            for src in source_notebooks():
                for ex in exercises(nbformat.read(str(src), as_version=4), src.name):
                    print(f"{src.name}\tcell {ex.cell}\t{ex.exercise_id or '(markdown answer)'}")
            return 0
        if args.check:
            problems = out_of_date()
            for p in problems:
                print(p)
            if problems:
                print("student copies are out of date: run `make student`.", file=sys.stderr)
                return 1
            print(f"{len(source_notebooks())} student copies up to date.")
            return 0
        written = write_all()
    except MarkerError as e:
        print(f"make_student: {e}", file=sys.stderr)
        return 2
    n = sum(len(exercises(nbformat.read(str(s), as_version=4), s.name)) for s in source_notebooks())
    print(f"wrote {len(written)} of {len(source_notebooks())} student notebook(s) in labs/student/ ({n} exercises).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
