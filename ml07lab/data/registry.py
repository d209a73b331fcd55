"""Name -> FaceSet, with a tensor cache for the slow-to-decode real datasets."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from ..artifacts import atomic_write_json, save_tensors, sha256_file
from ..config import LabConfig, data_dir
from .base import DataError, FaceSet


def _cache_paths(tag: str) -> tuple[Path, Path]:
    d = data_dir() / "prepared"
    return d / f"{tag}.safetensors", d / f"{tag}.json"


def _cached(tag: str, build) -> FaceSet:  # noqa: ANN001
    """Load a prepared FaceSet from the cache, or build and cache it (digest-checked)."""
    tp, jp = _cache_paths(tag)
    if tp.is_file() and jp.is_file():
        try:
            meta = json.loads(jp.read_text())
        except (ValueError, OSError):
            meta = None  # unreadable: rebuilt below, like a digest mismatch
        if isinstance(meta, dict) and sha256_file(tp) == meta.get("sha256"):
            t = load_file(str(tp))
            return FaceSet(t["images"], t["labels"], tuple(meta["names"]), meta["source"],
                           tuple(meta["files"]) if meta.get("files") else None)
    fs = build()
    digest = save_tensors(tp, {"images": fs.images, "labels": fs.labels})
    atomic_write_json(jp, {"names": list(fs.names), "source": fs.source,
                           "files": list(fs.files) if fs.files else None, "sha256": digest})
    return fs


def load_dataset(name: str, cfg: LabConfig, *, min_images: int | None = None,
                 n_ids: int | None = None, images_per_id: int | None = None,
                 id_offset: int = 0) -> FaceSet:
    """Load `name` ('synthetic', 'att', 'lfw', 'folder:PATH') at cfg.image_size, grey."""
    size = cfg.image_size
    if name == "synthetic":
        from .synthetic import generate_faces

        return generate_faces(n_ids or cfg.n_public_ids, images_per_id or cfg.images_per_id,
                              size=size, seed=cfg.seed, id_offset=id_offset)
    if name in ("att", "lfw"):
        from .fetch import is_prepared, raw_root
        from . import real

        root = raw_root(name, data_dir())
        if not is_prepared(name, data_dir()):
            raise DataError(
                f"The {name!r} dataset is not prepared in {data_dir()}. Run `make data` "
                f"(offline: `ml07lab data import {name} --from ../shared/data`; online: "
                f"`ml07lab data fetch {name}`), or use the synthetic faces "
                "(ML07LAB_DATASET=synthetic)."
            )
        if name == "att":
            return _cached(f"att-{size}", lambda: real.load_att(root, size))
        m = min_images or cfg.lfw_min_images
        return _cached(f"lfw-{size}-min{m}", lambda: real.load_lfw(root, size, m))
    if name.startswith("folder:"):
        from .folder import load_folder

        return load_folder(name, size)
    raise DataError(
        f"Unknown dataset {name!r}. Choose one of: synthetic, att, lfw, folder:PATH "
        "(a folder with one sub-folder of photos per person; add #crop=att to frame like AT&T)."
    )
