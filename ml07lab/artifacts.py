"""Cached, verifiable artefacts: weights in safetensors, metadata in JSON.

Why: training is the slow part of the lab, so every trained model is built once and
reused by later notebooks, tests and the CLI. Because the lab is *about* poisoned
models, the cache practises what it teaches: no pickles (safetensors only), a sha256
of the weights in the metadata, checked on every load, and atomic writes so an
interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from .config import LabConfig, data_dir

WEIGHTS = "model.safetensors"
META = "meta.json"


class ArtifactError(RuntimeError):
    """A cached artefact is missing, corrupt or tampered with; the message says what to do."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> str:
    """Save tensors as safetensors atomically; returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


@dataclass
class Artifact:
    """A loaded artefact: its tensors and its metadata (config, fingerprint, metrics, sha256)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    built: bool = False  # True when this call trained it, False when it came from the cache

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})


def save_artifact(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Artifact:
    """Write weights then metadata (metadata last: a folder without it counts as unbuilt)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta["sha256"] = save_tensors(folder / WEIGHTS, tensors)
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(folder / META, meta)
    return Artifact(folder, tensors, meta, built=True)


def load_artifact(folder: str | Path, verify: bool = True) -> Artifact:
    """Load and (by default) verify an artefact folder. Never unpickles anything."""
    folder = Path(folder)
    mp, wp = folder / META, folder / WEIGHTS
    if not mp.is_file() or not wp.is_file():
        raise ArtifactError(f"No complete artefact in {folder} (need {META} and {WEIGHTS}).")
    try:
        meta = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{mp} is not valid JSON; delete {folder} to rebuild it.") from e
    if verify:
        got = sha256_file(wp)
        if got != meta.get("sha256"):
            raise ArtifactError(
                f"{wp} does not match the sha256 recorded in {mp} "
                f"(expected {str(meta.get('sha256'))[:16]}…, got {got[:16]}…). The file was "
                f"modified or corrupted. Delete {folder} to rebuild it from scratch."
            )
    return Artifact(folder, load_file(str(wp)), meta)


def artifact_dir(name: str, cfg: LabConfig, key: str | None = None) -> Path:
    """<data dir>/artifacts/<profile>/<name>-<config key>."""
    return data_dir() / "artifacts" / cfg.profile / f"{name}-{key or cfg.key()}"


def load_or_build(
    name: str,
    cfg: LabConfig,
    build: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
    key: str | None = None,
    rebuild: bool = False,
) -> Artifact:
    """Return the cached artefact `name` for this config, building (and caching) it if absent.

    `build()` returns (tensors, meta); meta should hold `metrics` and `data_fingerprint`.
    The config and timing are recorded here. A tampered cache raises ArtifactError
    rather than being silently trusted or silently replaced.
    """
    folder = artifact_dir(name, cfg, key)
    if not rebuild and (folder / META).is_file():
        return load_artifact(folder)
    from .progress import announce_build  # one line: what, why, roughly how long

    announce_build(name, cfg, folder)
    t0 = time.perf_counter()
    tensors, meta = build()
    meta = {"name": name, "config": cfg.to_dict(), **meta}
    meta.setdefault("build_seconds", round(time.perf_counter() - t0, 2))
    return save_artifact(folder, tensors, meta)
