"""Cache keys cover every input an artefact depends on (issue 13, finding 1).

The inputs are not listed by hand here: each model artefact is built once on a tiny
config whose attribute reads are recorded, and every knob its build reads is changed in
turn; the key must change. The company data, the target and the trigger are changed
too. An artefact whose recorded inputs differ from the request is refused on load.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from ml07lab import artifacts as A
from ml07lab import backbones
from ml07lab.attack import scenario as S
from ml07lab.attack import sweeps
from ml07lab.config import LabConfig, get_config
from ml07lab.data.scenario import build_scenario_data
from ml07lab.data.synthetic import generate_faces
from ml07lab.keys import NOT_INPUTS, all_knobs, inputs_key

PKG = Path(__file__).resolve().parent.parent / "ml07lab"
_STACK: list[set[str]] = []
_FIELDS = set(all_knobs(get_config("ci")))


class Traced(LabConfig):
    """A LabConfig that records which knobs are read while a build runs."""

    def __getattribute__(self, name: str) -> Any:
        if name in _FIELDS and _STACK:
            for reads in _STACK:
                reads.add(name)
        return object.__getattribute__(self, name)

    def replace(self, **changes: Any) -> "LabConfig":  # copying reads every field: not a dependency
        saved = _STACK[:]
        _STACK.clear()
        try:
            return LabConfig.replace(self, **changes)
        finally:
            _STACK.extend(saved)

    def key(self, *fields: str) -> str:
        saved = _STACK[:]
        _STACK.clear()
        try:
            return LabConfig.key(self, *fields)
        finally:
            _STACK.extend(saved)


def tiny(**over: Any) -> Traced:
    base = get_config("ci", n_public_ids=6, images_per_id=6, n_company_ids=5, company_images_per_id=8,
                      n_outsider_ids=2, pretrain_epochs=1, attack_epochs=1, finetune_epochs=1, batch_size=16,
                      width=8, embedding_dim=16, **over)
    return Traced(**{k: getattr(base, k) for k in (*all_knobs(base), "device", "num_threads")})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _clean_inputs(cfg: LabConfig, d: Any) -> dict[str, Any]:
    """The clean backbone's weights are keyed on public data only; the company metrics it
    records are keyed separately (and re-measured when they differ): both count."""
    w, m = backbones.clean_backbone_inputs(cfg, d), backbones.metrics_inputs(cfg, d)
    return {"knobs": {**w["knobs"], **m["knobs"]}, "weights": w, "metrics": m}


# site name -> (function that builds the artefact, function giving its inputs)
SITES: dict[str, tuple[Callable, Callable]] = {
    "clean-backbone": (lambda cfg, d: backbones.clean_backbone(cfg, d), _clean_inputs),
    "poisoned-model": (lambda cfg, d: S.poisoned_backbone_model_path(cfg, d, progress=False), S.poisoned_model_inputs),
    "poisoned-dataset": (lambda cfg, d: S.poisoned_backbone_dataset_path(cfg, d, progress=False),
                         lambda cfg, d: S.dataset_path_inputs(cfg, d, S.poisoned_dataset(cfg, d).faces)),
    "sweep-point": (lambda cfg, d: sweeps.sweep_point(cfg, d), sweeps.sweep_point_inputs),
}


_FOLDERS: dict[str, str] = {}  # knob -> a real face folder (a company folder is read on every profile)


def _alt(name: str, value: Any) -> Any:
    """Another valid value for a knob."""
    alternatives = {"profile": "laptop", "trigger": "patch", "arch": "resnet18", "dataset": "real",
                    "public_dataset": "folder:/x", "company_dataset": "folder:/y", **_FOLDERS}
    if name in alternatives:
        return alternatives[name] if value != alternatives[name] else "glasses"
    if name == "image_size":
        return value + 16
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.25
    raise AssertionError(f"no alternative value for {name}={value!r}")


def _recorded_reads(cfg: Traced, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Build every site once, recording the knobs each build reads (nested builds count
    for the outer artefact too: it depends on what it loads)."""
    reads: dict[str, set[str]] = {}
    real = A.load_or_build

    def traced(name, cfg_, build, inputs=None, rebuild=False):  # noqa: ANN001, ANN202
        def tbuild():  # noqa: ANN202
            _STACK.append(set())
            try:
                return build()
            finally:
                reads.setdefault(name, set()).update(_STACK.pop())
        return real(name, cfg_, tbuild, inputs=inputs, rebuild=rebuild)

    for mod in (backbones, S, sweeps):
        monkeypatch.setattr(mod, "load_or_build", traced)
    data = build_scenario_data(cfg)
    for name, (run, _) in SITES.items():
        run(cfg, data)
    return reads


def test_every_knob_a_build_reads_changes_its_key(cache: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_FOLDERS, "company_dataset", f"folder:{_write_folder(tmp_path / 'co', 5, 100)}")
    cfg = tiny()
    reads = _recorded_reads(cfg, monkeypatch)
    assert set(reads) >= set(SITES), reads.keys()
    data = build_scenario_data(cfg)
    tried = 0
    for name, (_, inputs_of) in SITES.items():
        base = inputs_key(inputs_of(cfg, data))
        declared = set(inputs_of(cfg, data)["knobs"])
        for knob in sorted((reads[name] | declared) - NOT_INPUTS):
            changed = cfg.replace(**{knob: _alt(knob, getattr(cfg, knob))})
            # A knob the key does not name must reach it through the data's identity.
            d2 = data if knob in declared and knob in ("dataset", "public_dataset", "company_dataset") \
                else build_scenario_data(changed)
            assert inputs_key(inputs_of(changed, d2)) != base, f"{name}: changing {knob} leaves its key unchanged"
            tried += 1
    assert tried >= 60


def test_data_target_and_trigger_change_every_attack_key(cache: Path) -> None:
    cfg = tiny()
    data = build_scenario_data(cfg)
    variants = {
        "company": lambda d: type(d)(d.public, d.company.subset(list(range(len(d.company)))[::-1]), d.outsiders,
                                     d.role.flip(0), d.target),
        "target": lambda d: type(d)(d.public, d.company, d.outsiders, d.role, d.target + 1),
        "public": lambda d: type(d)(d.public.subset(list(range(len(d.public) - 1))), d.company, d.outsiders,
                                    d.role, d.target),
    }
    for site in ("poisoned-model", "poisoned-dataset", "sweep-point"):
        inputs_of = SITES[site][1]
        base = inputs_key(inputs_of(cfg, data))
        for what, change in variants.items():
            if site == "poisoned-dataset" and what == "public":
                continue  # its public faces are the poisoned set, covered by `faces`
            assert inputs_key(inputs_of(cfg, change(data))) != base, f"{site}: {what} not in its key"
        assert inputs_key(inputs_of(cfg.replace(trigger_opacity=0.5), data)) != base
    # The clean backbone is shared across companies (its weights never see them)...
    cb = backbones.clean_backbone_inputs
    assert inputs_key(cb(cfg, variants["company"](data))) == inputs_key(cb(cfg, data))
    assert inputs_key(cb(cfg, variants["public"](data))) != inputs_key(cb(cfg, data))


def _write_folder(root: Path, n_ids: int, offset: int, size: int = 32) -> Path:
    fs = generate_faces(n_ids, 8, size=size, seed=0, id_offset=offset)
    for i, (img, lab) in enumerate(zip(fs.images, fs.labels.tolist())):
        d = root / f"person{offset + lab:03d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img[0], dtype=np.uint8)).save(d / f"{i:03d}.png")
    return root


def test_another_company_folder_never_reuses_the_poisoned_model(cache: Path, tmp_path: Path) -> None:
    """Issue 13's finding: path A's poisoned model for AT&T was reused for another company.
    Two company folders now give two keys, and an artefact built for one company placed
    under the other's key is refused on load, naming the company data."""
    pub = _write_folder(tmp_path / "public", 6, 0)
    co_a, co_b = _write_folder(tmp_path / "co_a", 5, 100), _write_folder(tmp_path / "co_b", 5, 200)
    cfg = tiny(dataset="real", public_dataset=f"folder:{pub}", company_dataset=f"folder:{co_a}")
    cfg_b = cfg.replace(company_dataset=f"folder:{co_b}")
    da, db = build_scenario_data(cfg), build_scenario_data(cfg_b)
    ia, ib = S.poisoned_model_inputs(cfg, da), S.poisoned_model_inputs(cfg_b, db)
    assert inputs_key(ia) != inputs_key(ib)
    assert ia["data"]["public"] == ib["data"]["public"] and ia["data"]["company"] != ib["data"]["company"]
    built = A.load_or_build("poisoned-model", cfg, lambda: ({"w": __import__("torch").ones(2)}, {"metrics": {}}), inputs=ia)
    # A stale or copied folder under company B's key, holding company A's artefact:
    wrong = A.artifact_dir("poisoned-model", cfg_b, inputs_key(ib))
    shutil.copytree(built.path, wrong)
    with pytest.raises(A.ArtifactError, match=r"other inputs.*data\.company"):
        A.load_or_build("poisoned-model", cfg_b, lambda: pytest.fail("must not build"), inputs=ib)


def test_every_load_or_build_call_names_its_inputs() -> None:
    """No call site may fall back to a default key: each passes inputs= explicitly."""
    missing = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "load_or_build":
                if not any(k.arg == "inputs" for k in node.keywords):
                    missing.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert not missing, missing


def test_clean_backbone_is_shared_but_its_metrics_follow_the_company(cache: Path) -> None:
    """One clean backbone serves every company (its weights never see them); the company
    metrics it reports are re-measured when the company split differs, never reused."""
    cfg = tiny()
    cfg2 = cfg.replace(target=cfg.target + 1)
    d1, d2 = build_scenario_data(cfg), build_scenario_data(cfg2)
    _, a1 = backbones.clean_backbone(cfg, d1)
    _, a2 = backbones.clean_backbone(cfg2, d2)
    assert a1.built and not a2.built and a1.path == a2.path
    assert a2.meta.get("metrics_remeasured") and not a1.meta.get("metrics_remeasured")
    assert a2.meta["metrics_inputs"]["data"]["target"]["index"] == cfg2.target
