"""Cached, verifiable artefacts: weights in safetensors, metadata in JSON.

Why: training is the slow part of the lab, so every trained model is built once and
reused by later notebooks, tests and the CLI. Because the lab is *about* poisoned
models, the cache practises what it teaches: no pickles (safetensors only), one digest
over the weights AND the metadata (so edited metrics or inputs are caught too), checked
on every load, the inputs the artefact was built from recorded and compared with the
request (a mismatch is an error, never a silent reuse), and atomic writes so an
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
from safetensors.torch import save_file

from .config import LabConfig, data_dir
from .safety.safetensors_check import load_safetensors
from .keys import artefact_inputs, diff_inputs, inputs_key, normalise

WEIGHTS = "model.safetensors"
META = "meta.json"
DIGEST = "digest"  # meta field: sha256 over the weights' sha256 and every other meta field


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


def artifact_digest(meta: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the metadata (which holds the weights' sha256),
    minus the digest itself: one value that covers the whole artefact."""
    body = {k: v for k, v in meta.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(normalise(body), sort_keys=True).encode()).hexdigest()


def save_artifact(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Artifact:
    """Write weights then metadata (metadata last: a folder without it counts as unbuilt)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.pop(DIGEST, None)
    meta["sha256"] = save_tensors(folder / WEIGHTS, tensors)
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    meta = normalise(meta)
    meta[DIGEST] = artifact_digest(meta)
    atomic_write_json(folder / META, meta)
    return Artifact(folder, tensors, meta, built=True)


def _bad(folder: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{folder / META} {what}; the artefact cannot be trusted. Delete {folder} to rebuild it.")


def read_meta(folder: str | Path, verify: bool = True) -> dict[str, Any]:
    """The metadata of an artefact folder: a JSON object whose digest (by default) matches."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(folder, "is not valid JSON") from e
    except OSError as e:
        raise _bad(folder, f"cannot be read ({e.strerror or e})") from e
    if not isinstance(meta, dict):
        raise _bad(folder, f"holds a JSON {type(meta).__name__}, not an object")
    if verify:
        if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get(DIGEST), str):
            raise _bad(folder, f"has no weights sha256 or no '{DIGEST}' over the metadata (written by an older "
                               "ml07lab, or edited)")
        if artifact_digest(meta) != meta[DIGEST]:
            raise _bad(folder, f"does not match its recorded '{DIGEST}': the metadata (metrics, inputs, "
                               "fingerprints) was edited")
    return meta


def load_artifact(folder: str | Path, verify: bool = True) -> Artifact:
    """Load and (by default) verify an artefact folder. Never unpickles anything."""
    folder = Path(folder)
    mp, wp = folder / META, folder / WEIGHTS
    if not mp.is_file() or not wp.is_file():
        raise ArtifactError(f"No complete artefact in {folder} (need {META} and {WEIGHTS}).")
    meta = read_meta(folder, verify)
    if verify:
        got = sha256_file(wp)
        if got != meta.get("sha256"):
            raise ArtifactError(
                f"{wp} does not match the sha256 recorded in {mp} "
                f"(expected {str(meta.get('sha256'))[:16]}…, got {got[:16]}…). The file was "
                f"modified or corrupted. Delete {folder} to rebuild it from scratch."
            )
    try:
        tensors = load_safetensors(wp, remedy=f"Delete {folder} to rebuild it.")  # strict checks, never unpickled
    except ValueError as e:
        raise ArtifactError(str(e)) from e
    return Artifact(folder, tensors, meta)


def artifact_dir(name: str, cfg: LabConfig, key: str | None = None) -> Path:
    """<data dir>/artifacts/<profile>/<name>-<key> (key: a digest of the inputs)."""
    return data_dir() / "artifacts" / cfg.profile / f"{name}-{key or inputs_key(artefact_inputs(cfg))}"


def check_inputs(art: Artifact, inputs: dict[str, Any]) -> None:
    """The artefact was built from exactly the requested inputs, or ArtifactError."""
    recorded, wanted = art.meta.get("inputs"), normalise(inputs)
    if recorded != wanted:
        diff = diff_inputs(recorded, wanted) if isinstance(recorded, dict) else ["inputs"]
        raise ArtifactError(
            f"{art.path} was built from other inputs than requested (differs in: {', '.join(diff[:6])}); "
            f"refusing to reuse it. Delete {art.path} to rebuild it."
        )


def load_or_build(
    name: str,
    cfg: LabConfig,
    build: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]],
    inputs: dict[str, Any] | None = None,
    rebuild: bool = False,
) -> Artifact:
    """Return the cached artefact `name` for these inputs, building (and caching) it if absent.

    `inputs` names everything the build depends on (see keys.artefact_inputs; default:
    every knob). The cache key is their digest; they are recorded in the metadata and
    compared on load, so an artefact built from other inputs is an error, never reused.
    `build()` returns (tensors, meta); meta should hold `metrics` and `data_fingerprint`.
    A tampered cache raises ArtifactError rather than being trusted or silently replaced.
    """
    inputs = normalise(inputs if inputs is not None else artefact_inputs(cfg))
    folder = artifact_dir(name, cfg, inputs_key(inputs))
    if not rebuild and (folder / META).is_file():
        art = load_artifact(folder)
        check_inputs(art, inputs)
        return art
    from .progress import announce_build  # one line: what, why, roughly how long

    announce_build(name, cfg, folder)
    t0 = time.perf_counter()
    tensors, meta = build()
    meta = {"name": name, "config": cfg.to_dict(), **meta, "inputs": inputs}
    meta.setdefault("build_seconds", round(time.perf_counter() - t0, 2))
    return save_artifact(folder, tensors, meta)
