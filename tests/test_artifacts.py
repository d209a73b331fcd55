"""The artefact cache: atomic writes, sha256 verification, build-once, and no pickle.

The lab teaches that model files are an attack surface, so its own cache must not
trust a file it did not verify, nor leave half-written files after a crash.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from ml07lab import artifacts as A
from ml07lab import backbones
from ml07lab.config import get_config
from ml07lab.keys import artefact_inputs, inputs_key


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data dir, so these tests never touch the shared artefact cache."""
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(16, 8, generator=g), "b": torch.arange(8, dtype=torch.int64)}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _crash_on_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src, dst):  # noqa: ANN001 - os.replace's signature
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(A.os, "replace", boom)


# --- atomic writes ----------------------------------------------------------------------

def test_atomic_write_bytes_and_json_survive_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, js = tmp_path / "file.bin", tmp_path / "meta.json"
    A.atomic_write_bytes(target, b"old contents")
    A.atomic_write_json(js, {"v": 1})
    _crash_on_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        A.atomic_write_bytes(target, b"new contents that never land")
    with pytest.raises(OSError, match="simulated"):
        A.atomic_write_json(js, {"v": 2})
    assert target.read_bytes() == b"old contents"
    assert json.loads(js.read_text()) == {"v": 1}
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    A.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == []


def test_save_tensors_survives_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / A.WEIGHTS
    digest = A.save_tensors(path, _tensors(0))
    before = path.read_bytes()
    _crash_on_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        A.save_tensors(path, _tensors(1))
    assert path.read_bytes() == before and A.sha256_file(path) == digest
    assert _leftovers(tmp_path) == []


def test_save_artifact_crash_leaves_an_unbuilt_folder(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights are written first and metadata last: a crash in between leaves no meta.json,
    so the next load_or_build rebuilds instead of loading a half-made artefact."""
    cfg = get_config("ci")
    real_replace = os.replace
    calls = {"n": 0}

    def crash_on_second(src, dst):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("simulated crash writing meta.json")
        real_replace(src, dst)

    monkeypatch.setattr(A.os, "replace", crash_on_second)
    with pytest.raises(OSError, match="meta.json"):
        A.load_or_build("thing", cfg, lambda: (_tensors(), {"metrics": {}}))
    folder = A.artifact_dir("thing", cfg)
    assert not (folder / A.META).exists() and _leftovers(folder) == []
    monkeypatch.setattr(A.os, "replace", real_replace)  # (undo() would also drop ML07LAB_DATA)
    art = A.load_or_build("thing", cfg, lambda: (_tensors(), {"metrics": {}}))
    assert art.built


# --- verification -----------------------------------------------------------------------

def test_tampered_weights_are_refused_with_a_fix(cache: Path) -> None:
    art = A.save_artifact(cache / "m", _tensors(), {"metrics": {"eer": 0.1}})
    wp = art.path / A.WEIGHTS
    assert A.load_artifact(art.path).meta["sha256"] == A.sha256_file(wp)
    raw = bytearray(wp.read_bytes())
    raw[-5] ^= 0x01  # one bit of one weight: the file still parses, the digest does not match
    wp.write_bytes(bytes(raw))
    with pytest.raises(A.ArtifactError) as e:
        A.load_artifact(art.path)
    msg = str(e.value)
    assert "sha256" in msg and "Delete" in msg and "rebuild" in msg and str(art.path) in msg
    A.load_artifact(art.path, verify=False)  # an explicit opt-out still loads, for forensics


def test_load_or_build_refuses_a_tampered_cache(cache: Path) -> None:
    cfg = get_config("ci")
    calls = []
    build = lambda: (calls.append(1) or _tensors(), {"metrics": {}})  # noqa: E731
    art = A.load_or_build("net", cfg, build)
    wp = art.path / A.WEIGHTS
    raw = bytearray(wp.read_bytes())
    raw[-1] ^= 0xFF
    wp.write_bytes(bytes(raw))
    with pytest.raises(A.ArtifactError, match="Delete"):
        A.load_or_build("net", cfg, build)  # neither trusted nor silently replaced
    assert len(calls) == 1
    assert A.load_or_build("net", cfg, build, rebuild=True).built and len(calls) == 2


def test_broken_metadata_and_missing_files(cache: Path) -> None:
    with pytest.raises(A.ArtifactError, match="No complete artefact"):
        A.load_artifact(cache / "nothing")
    art = A.save_artifact(cache / "m", _tensors(), {})
    (art.path / A.META).write_text("{not json")
    with pytest.raises(A.ArtifactError, match="Delete|delete"):
        A.load_artifact(art.path)


# --- build once, then load -----------------------------------------------------------------

def test_load_or_build_builds_once_then_loads(cache: Path) -> None:
    cfg = get_config("ci")
    calls: list[int] = []

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        calls.append(1)
        return _tensors(), {"metrics": {"eer": 0.05}, "data_fingerprint": "abc"}

    first = A.load_or_build("net", cfg, build)
    second = A.load_or_build("net", cfg, build)
    assert len(calls) == 1 and first.built and not second.built
    key = inputs_key(artefact_inputs(cfg))  # default inputs: every knob
    assert first.path == second.path == cache / "artifacts" / "ci" / f"net-{key}"
    for k, v in _tensors().items():
        assert torch.equal(second.tensors[k], v)
    meta = second.meta
    assert meta["name"] == "net" and meta["config"] == cfg.to_dict() and meta["metrics"] == {"eer": 0.05}
    assert meta["sha256"] == A.sha256_file(second.path / A.WEIGHTS) and "build_seconds" in meta
    assert meta["inputs"] == artefact_inputs(cfg)
    # A different config (or key) is a different artefact; rebuild=True forces a build.
    assert A.load_or_build("net", cfg.replace(seed=1), build).built and len(calls) == 2
    assert A.load_or_build("net", cfg, build, inputs={"custom": 1}).built and len(calls) == 3
    assert A.load_or_build("net", cfg, build, rebuild=True).built and len(calls) == 4
    assert not A.load_or_build("net", cfg, build).built and len(calls) == 4


# --- no pickle ----------------------------------------------------------------------------------

def test_artefacts_are_safetensors_and_never_unpickled(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pickle(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the artefact cache must never unpickle")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(mod, name, no_pickle)
    cfg = get_config("ci")
    A.load_or_build("net", cfg, lambda: (_tensors(), {"metrics": {}}))
    art = A.load_or_build("net", cfg, lambda: (_tensors(), {"metrics": {}}))
    assert not art.built
    assert sorted(p.name for p in art.path.iterdir()) == sorted([A.WEIGHTS, A.META])
    # The safetensors layout: an 8-byte little-endian header length, then a JSON header.
    raw = (art.path / A.WEIGHTS).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert set(header) - {"__metadata__"} == {"w", "b"}
    assert not raw.startswith(b"\x80") and b"PK" != raw[:2]  # neither a pickle nor a torch zip


def test_cache_code_has_no_pickle_path() -> None:
    for mod in (A, backbones):
        src = inspect.getsource(mod)
        for bad in ("torch.load(", "torch.save(", "import pickle", "pickle.load"):
            assert bad not in src, f"{mod.__name__} uses {bad}"
