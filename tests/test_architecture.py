"""The package's layout, enforced: no import cycles, and no import from a lower layer into
a higher one (docs/architecture.md). Read from the source (ast), lazy imports included,
so nothing is imported or run."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ml07lab"

# Lowest first. A module may import from its own layer and the layers below it, never above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("ml07lab", "ml07lab.config", "ml07lab.metrics", "ml07lab.artifacts", "ml07lab.hub",
                    "ml07lab.viz", "ml07lab.lab")),
    ("data", ("ml07lab.data",)),
    ("models", ("ml07lab.models", "ml07lab.training", "ml07lab.transfer", "ml07lab.verify", "ml07lab.backbones",
                "ml07lab.baselines")),
    ("attack", ("ml07lab.attack",)),
    ("shell", ("ml07lab.cli",)),  # emit/config_from for every command; finds commands by name
    ("controls", ("ml07lab.controls",)),
    ("lab", ("ml07lab.scorecard", "ml07lab.checks", "ml07lab.widgets", "ml07lab.run", "ml07lab.__main__",
             "ml07lab.report_html", "ml07lab.bench", "ml07lab.depth")),
]
# The boundary the issue names, spelled out: these never import those.
LOWER = ("ml07lab.data", "ml07lab.models", "ml07lab.training", "ml07lab.verify")
HIGHER = ("ml07lab.attack", "ml07lab.controls", "ml07lab.scorecard", "ml07lab.run")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


MODULES = _modules()


def _known(name: str) -> str:
    """The longest prefix of `name` that is a module of the package."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(mod: str) -> set[str]:
    path, is_pkg = MODULES[mod]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                pkg = ".".join(base + ([node.module] if node.module else []))
            else:
                pkg = node.module or ""
            names = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in MODULES else pkg for a in node.names]
        else:
            continue
        found |= {_known(n) for n in names if n.split(".")[0] == "ml07lab"}
    found.discard(mod)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(mod: str) -> int:
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if mod == p or mod.startswith(p + ".")), default=None)
    assert best is not None, f"{mod} is in no layer: add it to LAYERS in tests/test_architecture.py"
    return best[1]


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        _layer(m)


def test_no_upward_imports() -> None:
    bad = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
           for m, ts in GRAPH.items() for t in ts if _layer(t) > _layer(m)]
    def under(mod: str, prefixes: tuple[str, ...]) -> bool:  # 'ml07lab.runtime' is not under 'ml07lab.run'
        return any(mod == p or mod.startswith(p + ".") for p in prefixes)

    bad += [f"{m} imports {t}" for m, ts in GRAPH.items() for t in ts if under(m, LOWER) and under(t, HIGHER)]
    assert not bad, "imports from a lower layer into a higher one:\n  " + "\n  ".join(sorted(set(bad)))


def test_no_import_cycles() -> None:
    seen: set[str] = set()
    cycles: list[str] = []

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            return
        if m in seen:
            return
        seen.add(m)
        for t in sorted(GRAPH.get(m, ())):
            visit(t, stack + [m])

    for m in sorted(GRAPH):
        visit(m, [])
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_controls_folder_holds_one_subpackage_per_control() -> None:
    from ml07lab.controls import CONTROLS

    folder = ROOT / "controls"
    loose = sorted(p.name for p in folder.glob("*.py") if p.name not in ("__init__.py", "control.py"))
    assert not loose, f"modules outside a control's subpackage: {loose}"
    subpackages = sorted(p.name for p in folder.iterdir() if (p / "__init__.py").is_file())
    assert subpackages == ["audit", "isolation", "monitoring", "privacy", "trusted_data"]
    assert len(CONTROLS) == 5


def test_controls_implement_the_interface() -> None:
    from ml07lab.controls import CONTROLS, Control
    from ml07lab.scorecard import PATHS

    labs = ROOT.parent / "labs"
    for name, c in CONTROLS.items():
        assert isinstance(c, Control) and c.name == name
        assert c.paths and set(c.paths) <= set(PATHS), c
        assert (labs / f"{c.notebook}.ipynb").is_file(), c.notebook
        assert callable(c.section)


def test_listing_the_controls_is_cheap() -> None:
    """The scorecard and the five Control objects load without torch or numpy: each
    measurement is imported when its section is first computed."""
    code = ("import sys, ml07lab.scorecard, ml07lab.controls; "
            "heavy = [m for m in ('torch', 'numpy') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)


def test_command_providers_resolve() -> None:
    """The CLI finds its commands by name (so `--help` stays fast); each name must exist."""
    from ml07lab.cli import COMMAND_PROVIDERS

    for module, fn, _ in COMMAND_PROVIDERS:
        assert module in MODULES, module
        assert callable(getattr(importlib.import_module(module), fn))


@pytest.mark.parametrize("argv", [["data", "--help"], ["audit", "--help"], ["deploy", "--help"]])
def test_cli_groups_build(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from ml07lab.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 0
    if argv[0] == "data":
        out = capsys.readouterr().out
        assert all(c in out for c in ("fetch", "manifest", "verify"))
