"""The configuration: profiles, environment overrides, immutability, and a side-effect-free import."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml07lab.config import PROFILES, LabConfig, get_config, resolve_device

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No profile/dataset/CI variables: each test sets exactly what it checks."""
    for var in ("ML07LAB_PROFILE", "ML07LAB_DATASET", "ML07LAB_COMPANY", "CI"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_every_profile_builds_a_config(clean_env: pytest.MonkeyPatch) -> None:
    for name in PROFILES:
        cfg = get_config(name)
        assert isinstance(cfg, LabConfig) and cfg.profile == name
    ci, laptop, full = (get_config(p) for p in ("ci", "laptop", "full"))
    assert (ci.dataset, ci.image_size) == ("synthetic", 32)  # runs anywhere, offline
    assert (laptop.dataset, laptop.public_dataset, laptop.company_dataset) == ("real", "lfw", "att")
    assert full.arch == "resnet18"
    assert ci.data_tag == "synthetic" and laptop.data_tag == "lfw->att"


def test_profile_selection_order(clean_env: pytest.MonkeyPatch) -> None:
    assert get_config().profile == "laptop"  # the default for a learner's own machine
    clean_env.setenv("CI", "true")
    assert get_config().profile == "ci"
    clean_env.setenv("CI", "TRUE")
    assert get_config().profile == "ci"
    clean_env.setenv("CI", "false")
    assert get_config().profile == "laptop"
    clean_env.setenv("CI", "true")
    clean_env.setenv("ML07LAB_PROFILE", "full")  # an explicit profile beats CI=true
    assert get_config().profile == "full"
    assert get_config("laptop").profile == "laptop"  # ... and the argument beats both


def test_unknown_profile_names_the_choices(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError) as e:
        get_config("gpu-cluster")
    assert "gpu-cluster" in str(e.value) and all(p in str(e.value) for p in PROFILES)
    clean_env.setenv("ML07LAB_PROFILE", "tiny")
    with pytest.raises(ValueError, match="ML07LAB_PROFILE"):
        get_config()


def test_dataset_env_and_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ML07LAB_DATASET", "synthetic")
    cfg = get_config("laptop")
    assert cfg.dataset == "synthetic" and cfg.image_size == 64  # only the dataset changes
    clean_env.setenv("ML07LAB_DATASET", "real")
    assert get_config("ci").dataset == "real"
    clean_env.setenv("ML07LAB_DATASET", "celeba")
    with pytest.raises(ValueError, match="ML07LAB_DATASET"):
        get_config("ci")
    clean_env.delenv("ML07LAB_DATASET")
    assert get_config("ci", seed=3, target=5).seed == 3  # keyword overrides win last
    assert get_config("ci", dataset="real").dataset == "real"


def test_config_is_frozen_and_keyed(clean_env: pytest.MonkeyPatch) -> None:
    cfg = get_config("ci")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    other = cfg.replace(seed=1)
    assert (cfg.seed, other.seed) == (0, 1)
    assert cfg.key() != other.key()
    # The cache key ignores where and how fast we run, so a GPU run reuses CPU artefacts.
    assert cfg.key() == cfg.replace(device="cpu", num_threads=2, extra={"note": 1}).key()
    assert cfg.key("image_size") == get_config("ci", seed=9).key("image_size")
    assert json.loads(json.dumps(cfg.to_dict()))["profile"] == "ci"


def test_device_auto_never_errors() -> None:
    import torch

    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="auto"):  # the message points at the fallback
            resolve_device("cuda")


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    """`import ml07lab` (and its config and lab modules) creates no folder, imports no
    torch, draws from no RNG: a fresh process checks it, with HOME and the data dir in tmp."""
    data, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    code = (
        "import random, sys\n"
        "state = random.getstate()\n"
        "import ml07lab\n"
        "assert 'torch' not in sys.modules, 'import ml07lab imported torch'\n"
        "import ml07lab.config, ml07lab.lab\n"
        "cfg = ml07lab.config.get_config('ci')\n"
        "ml07lab.config.data_dir(); ml07lab.config.mirror_dir()\n"
        "assert 'torch' not in sys.modules, 'ml07lab.config/lab imported torch'\n"
        "assert 'numpy' not in sys.modules, 'ml07lab.config/lab imported numpy'\n"
        "assert random.getstate() == state, 'importing ml07lab drew from the RNG'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "ML07LAB_DATA": str(data), "HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert not data.exists(), "import created the data directory"
    assert list(home.iterdir()) == [], "import wrote into HOME"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"], "import wrote into the cwd"


def test_speed_knobs_are_checked(clean_env: pytest.MonkeyPatch) -> None:
    """The laptop profile's speed knobs (issue 12) are validated like every other knob."""
    from ml07lab.validation import ConfigError

    lap = get_config("laptop")
    assert lap.channels_last and lap.refresh_epochs > 0 and lap.zoo_epochs > 0 and lap.sweep_epochs > 0
    ci = get_config("ci")
    assert not ci.channels_last and (ci.refresh_epochs, ci.zoo_epochs, ci.sweep_epochs) == (0, 0, 0)
    for bad in ({"refresh_epochs": -1}, {"zoo_epochs": 1.5}, {"channels_last": "yes"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            get_config("ci", **bad)
