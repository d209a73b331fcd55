"""Accessibility of the notebooks: every figure has an alt-text sentence, and no plot relies
on a palette that colour-blind readers cannot tell apart."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from ml07lab import viz

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "labs").glob("[0-9][0-9]_*.ipynb"))
# A code cell that draws: the lab's plotting helpers, matplotlib, a widget, or a `.show(...)` fallback.
DRAWS = re.compile(r"\bviz\.(show_|plot_)\w*\(|\w+_viz\.\w+\(|\bplt\.(subplots|figure|imshow|plot|bar|hist|scatter)\("
                   r"|\.show\(|\.widget\(\)")
UNSAFE = re.compile(r"cmap\s*=\s*['\"](jet|rainbow|hsv|gist_rainbow|RdYlGn|RdGn|brg)['\"]"
                    r"|colou?r\s*=\s*['\"](red|green|lime|r|g)['\"]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_every_figure_has_alt_text(path: Path) -> None:
    cells = nbformat.read(str(path), as_version=4).cells
    missing = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not DRAWS.search(cell.source):
            continue
        nxt = next((c for c in cells[i + 1:] if c.cell_type == "markdown"), None)
        text = nxt.source.lstrip() if nxt is not None else ""
        if not (text.startswith("*Figure") and len(text.split("*")[1].split()) >= 8):
            missing.append(i)
    assert not missing, (f"{path.name}: cells {missing} draw a figure but the next markdown cell does not "
                         "start with an italic alt-text sentence (\"*Figure: what it shows ...*\").")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_no_colour_blind_unsafe_palette_in_notebooks(path: Path) -> None:
    cells = nbformat.read(str(path), as_version=4).cells
    bad = [i for i, c in enumerate(cells) if c.cell_type == "code" and UNSAFE.search(c.source)]
    assert not bad, f"{path.name}: cells {bad} use a red/green or rainbow palette; use ml07lab.viz.CYCLE"


def test_no_colour_blind_unsafe_palette_in_the_package() -> None:
    bad = [str(p.relative_to(REPO)) for p in (REPO / "ml07lab").rglob("*.py") if UNSAFE.search(p.read_text())]
    assert not bad, f"red/green or rainbow colours in {bad}: use ml07lab.viz.PALETTE / CYCLE"


def test_lab_palette_is_okabe_ito_and_series_differ_beyond_colour() -> None:
    okabe_ito = {"#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"}
    assert set(viz.CYCLE) <= okabe_ito
    assert len(set(viz.STYLES)) >= 4 and len(set(viz.MARKERS)) >= 6
