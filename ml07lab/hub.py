"""A local model hub: a directory registry standing in for a public model zoo.

`publish` writes weights (safetensors) and a model card (clean metrics, licence,
digest); `download` copies a model out and checks its digest. Nothing here says
whether the weights are *trustworthy*: a poisoned model publishes with a perfectly
good card, which is the point of ML07. Later controls (signing, the deployment gate,
audits) hook in here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from .artifacts import ArtifactError, atomic_write_bytes, atomic_write_json, load_artifact, save_artifact
from .config import data_dir

CARD = "model_card.json"


def hub_dir(root: Path | None = None) -> Path:
    return (root or data_dir()) / "hub"


def publish(name: str, tensors: dict[str, torch.Tensor], card: dict[str, Any], root: Path | None = None) -> Path:
    """Publish weights (any classifier head stripped) with a model card. Returns the folder."""
    folder = hub_dir(root) / name
    body = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    art = save_artifact(folder, body, {"name": name, "card": card})
    card = {**card, "name": name, "sha256": art.meta["sha256"], "files": ["model.safetensors"]}
    atomic_write_json(folder / CARD, card)
    atomic_write_bytes(folder / "README.md", render_card(card).encode())
    return folder


def render_card(card: dict[str, Any]) -> str:
    """A human-readable model card, like the ones on public hubs."""
    lines = [f"# {card.get('name')}", "", card.get("description", ""), ""]
    for k in ("author", "licence", "architecture", "training_data", "sha256"):
        if k in card:
            lines.append(f"- **{k}**: {card[k]}")
    m = card.get("metrics", {})
    if m:
        lines += ["", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in m.items()]
    return "\n".join(lines) + "\n"


def list_models(root: Path | None = None) -> list[str]:
    d = hub_dir(root)
    return sorted(p.name for p in d.iterdir() if (p / CARD).is_file()) if d.is_dir() else []


def card(name: str, root: Path | None = None) -> dict[str, Any]:
    p = hub_dir(root) / name / CARD
    if not p.is_file():
        raise ArtifactError(f"No model {name!r} on the hub at {hub_dir(root)}. Available: {list_models(root)}")
    return json.loads(p.read_text())


def download(name: str, dest: Path, root: Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Copy a hub model into `dest` (the victim's side) and load it, digest-checked."""
    src = hub_dir(root) / name
    c = card(name, root)
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    art = load_artifact(dest)  # raises ArtifactError if the weights do not match their digest
    if art.meta["sha256"] != c["sha256"]:
        raise ArtifactError(f"{name}: model card digest and weights digest disagree; do not use it.")
    return art.tensors, c
