"""docs/instructor.md answers every notebook's discussion questions, word for word, and has
the agendas and the failure triage an instructor needs in the room."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "instructor.md"
NOTEBOOKS = sorted((REPO / "labs").glob("[0-9][0-9]_*.ipynb"))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("*", "")).strip()


def _questions(path: Path) -> list[str]:
    """The bullets of a notebook's `## Discussion` section."""
    md = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "markdown")
    if "## Discussion" not in md:
        return []
    section = re.split(r"\n## ", md.split("## Discussion", 1)[1])[0]
    return [_flat(q) for q in re.split(r"\n- ", "\n" + section.strip()) if q.strip()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_every_discussion_question_is_answered_in_the_guide(path: Path) -> None:
    questions = _questions(path)
    assert questions, f"{path.name} has no ## Discussion section"
    guide = _flat(GUIDE.read_text(encoding="utf-8"))
    for q in questions:
        assert q in guide, f"{path.name}: question not in docs/instructor.md (word for word): {q!r}"


def test_guide_has_a_three_hour_agenda_and_a_failure_section() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert re.search(r"^### 3 hours", text, re.M), "a 3-hour agenda"
    assert "## When something fails in the room" in text
