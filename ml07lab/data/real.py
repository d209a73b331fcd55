"""Raw real-face files -> `FaceSet` (uint8 grey, square, labels in sorted-name order).

Why fixed crops: the lab pretrains a backbone on LFW and transfers it to AT&T, so both
datasets must frame a face the same way (eyes and mouth at the same rows) or the
transfer learns the framing instead of the face. The boxes below were chosen by matching
the mean face of each dataset to the Olivetti 64x64 faces (hand-aligned crops of the
same AT&T photos): after cropping, eyes sit ~27% and the mouth ~75% down the square.

- AT&T PGM 92x112: box (9, 32, 83, 106), 74x74, eyebrows to chin.
- LFW 250x250:     box (75, 84, 175, 184), 100x100, eyebrows to chin.
- Olivetti .mat:   already 64x64 and framed like that; only resized.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .base import DataError, FaceSet

# (left, top, right, bottom) as fractions of width/height, so a rescaled copy crops alike.
ATT_BOX = (9 / 92, 32 / 112, 83 / 92, 106 / 112)  # 74x74 px of the 92x112 PGM
LFW_BOX = (75 / 250, 84 / 250, 175 / 250, 184 / 250)  # 100x100 px of the 250x250 JPEG
# Bump when crops or resampling change: caches of prepared tensors should key on it.
PREPROCESS_VERSION = "crop-v1"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
_HOW_TO_PREPARE = (
    "Prepare the data first: `make data`, or offline `ml07lab data import {name} --from "
    "../shared/data` (set ML07LAB_MIRROR to point elsewhere), or online "
    "`ml07lab data fetch {name}`."
)


def natural_key(s: str) -> list:
    """Sort 's2' before 's10' (and '2.pgm' before '10.pgm'), as a person would."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _workers() -> int:
    """JPEG decoding releases the GIL, so threads scale with cores: the cores this process
    may use (affinity, cgroup quota), not the host's, or thirty kernels on one node each
    start a pool sized for all of it."""
    from ..runtime import usable_cpus

    return max(1, min(8, usable_cpus()))


def crop_pixels(w0: int, h0: int, box: tuple[float, float, float, float] | None) -> tuple[float, ...]:
    """The crop in source pixels: `box` as fractions (L, T, R, B), or the centre square."""
    if box is None:
        side = min(w0, h0)
        return ((w0 - side) / 2, (h0 - side) / 2, (w0 + side) / 2, (h0 + side) / 2)
    return (box[0] * w0, box[1] * h0, box[2] * w0, box[3] * h0)


def _read_grey(path: Path, box: tuple[float, float, float, float] | None, size: int,
               rel: str) -> np.ndarray:
    """Decode one image, crop `box` (fractions; None: centre square), grey, resize.

    JPEGs are decoded with `draft`, which lets libjpeg skip the colour planes and, when
    the crop stays larger than `size`, decode at 1/2 .. 1/8 scale: 3-5x faster on LFW.
    """
    try:
        with Image.open(path) as im:
            w0, h0 = im.size
            px = crop_pixels(w0, h0, box)
            if im.format == "JPEG":
                need = max(size / (px[2] - px[0]), size / (px[3] - px[1]))
                im.draft("L", (int(np.ceil(w0 * need)), int(np.ceil(h0 * need))))
            sx, sy = im.size[0] / w0, im.size[1] / h0
            b = (px[0] * sx, px[1] * sy, px[2] * sx, px[3] * sy)
            g = im.convert("L")
            out = g.resize((size, size), Image.Resampling.BILINEAR, box=b, reducing_gap=2.0)
            return np.asarray(out, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"Cannot read image {rel!r} ({path}): {e}. The file is corrupt or not an "
            "image: delete or replace it (re-run the import/fetch to restore a dataset "
            "file), then try again."
        ) from e


def _decode_all(root: Path, files: Sequence[str], box, size: int) -> torch.Tensor:
    """Decode many files in a thread pool into one (N, 1, size, size) uint8 tensor."""
    out = np.empty((len(files), 1, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        out[i, 0] = _read_grey(root / files[i], box, size, files[i])

    if len(files) < 64:
        for i in range(len(files)):
            one(i)
    else:
        with ThreadPoolExecutor(_workers()) as pool:
            for _ in pool.map(one, range(len(files)), chunksize=32):
                pass
    return torch.from_numpy(out)


def _missing(path: Path, what: str, name: str) -> DataError:
    return DataError(f"{what} not found at {path}. " + _HOW_TO_PREPARE.format(name=name))


def _scan_people(root: Path, exts: Sequence[str] = IMAGE_EXTS) -> tuple[list[str], dict[str, list[str]]]:
    """Person folders (natural order) and each one's image files (relative to root).

    Hidden files (e.g. `.MATLABDriveTag`, `.DS_Store`) and non-image files are ignored.
    """
    people: dict[str, list[str]] = {}
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: natural_key(p.name)):
        imgs = sorted((f.name for f in d.iterdir()
                       if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in exts), key=natural_key)
        if imgs:
            people[d.name] = [f"{d.name}/{f}" for f in imgs]
    return list(people), people


def _faceset(root: Path, people: dict[str, list[str]], box, size: int, source: str) -> FaceSet:
    names = list(people)
    files = [f for n in names for f in people[n]]
    labels = torch.tensor([i for i, n in enumerate(names) for _ in people[n]], dtype=torch.long)
    images = _decode_all(root, files, box, size)
    return FaceSet(images, labels, tuple(names), source, tuple(files),
                   {"root": str(root), "size": size, "box": box, "preprocess": PREPROCESS_VERSION})


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size < 8:
        raise DataError(f"Image size must be an integer >= 8 pixels, not {size!r}.")


# --- AT&T / ORL ------------------------------------------------------------------------

def _att_dir(root: Path) -> Path | None:
    """The folder holding s1..s40: `root` itself or `root/att_faces`."""
    for cand in (root / "att_faces", root):
        if cand.is_dir() and (cand / "s1").is_dir():
            return cand
    return None


def _olivetti_mat(root: Path) -> Path | None:
    for cand in (root / "olivetti" / "olivettifaces.mat", root / "olivettifaces.mat"):
        if cand.is_file():
            return cand
    return None


def load_att(root: Path, size: int) -> FaceSet:
    """AT&T/ORL faces (40 people x 10) from PGM folders s1..s40, else the Olivetti .mat.

    `root` may be the `att_faces` folder, or a folder holding `att_faces/` and/or
    `olivetti/olivettifaces.mat` (the layout that `fetch`/`import_mirror` write).
    """
    _check_size(size)
    root = Path(root)
    if root.is_file() and root.suffix == ".mat":
        return load_olivetti(root, size)
    if not root.is_dir():
        raise _missing(root, "The AT&T faces folder", "att")
    pgm_dir = _att_dir(root)
    if pgm_dir is not None:
        _, people = _scan_people(pgm_dir, (".pgm",))
        if not people:
            raise DataError(f"No .pgm images in {pgm_dir}/s*/. " + _HOW_TO_PREPARE.format(name="att"))
        fs = _faceset(pgm_dir, people, ATT_BOX, size, "att")
        fs.check_min_images(2)
        return fs
    mat = _olivetti_mat(root)
    if mat is not None:
        return load_olivetti(mat, size)
    raise DataError(
        f"No AT&T faces in {root}: expected `att_faces/s1..s40/*.pgm` or "
        "`olivetti/olivettifaces.mat`. " + _HOW_TO_PREPARE.format(name="att")
    )


def load_olivetti(mat_path: Path, size: int) -> FaceSet:
    """The Olivetti .mat (AT&T faces at 64x64, hand-aligned): person i is named s{i+1},
    so `sK` here is the same person as PGM folder `sK`."""
    _check_size(size)
    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise _missing(mat_path, "The Olivetti faces file", "att")
    import scipy.io

    try:
        faces = scipy.io.loadmat(str(mat_path))["faces"]
    except Exception as e:  # scipy raises ValueError/OSError/KeyError/... on bad files
        raise DataError(
            f"Cannot read {mat_path} as the Olivetti faces .mat ({e!r}). Delete it and "
            "run `ml07lab data fetch att` (or import it again from the mirror)."
        ) from e
    if faces.ndim != 2 or faces.shape[0] != 64 * 64 or faces.shape[1] % 10:
        raise DataError(f"{mat_path}: `faces` has shape {faces.shape}, expected (4096, 10*K).")
    n = faces.shape[1]
    # Column-major 64x64 per column (MATLAB order): reshape with order="F".
    imgs = np.asarray(faces, dtype=np.float64).reshape(64, 64, n, order="F").transpose(2, 0, 1)
    if faces.dtype != np.uint8:  # some copies hold floats in [0, 1]
        imgs = imgs * (255.0 if imgs.max() <= 1.0 else 1.0)
    imgs = np.clip(np.rint(imgs), 0, 255).astype(np.uint8)
    if size != 64:
        imgs = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR))
                         for a in imgs])
    labels = torch.arange(n, dtype=torch.long) // 10
    names = tuple(f"s{i + 1}" for i in range(n // 10))
    files = tuple(f"olivetti/{mat_path.name}#{i}" for i in range(n))
    return FaceSet(torch.from_numpy(np.ascontiguousarray(imgs[:, None])), labels, names, "att",
                   files, {"root": str(mat_path.parent), "size": size, "format": "olivetti",
                    "preprocess": PREPROCESS_VERSION})


# --- LFW -------------------------------------------------------------------------------

def _lfw_dir(root: Path) -> Path | None:
    """The ImageFolder of LFW people: `root`, or `root/lfw_min5`, or `root/lfw`."""
    for cand in (root / "lfw_min5", root / "lfw", root):
        if cand.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in cand.iterdir()):
            return cand
    return None


def load_lfw(root: Path, size: int, min_images: int = 5) -> FaceSet:
    """LFW people with >= min_images photos, face box cropped to match AT&T framing.

    Names sort like torchvision's ImageFolder; `files` are `<Name>/<Name>_NNNN.jpg`.
    """
    _check_size(size)
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "The LFW folder", "lfw")
    lfw = _lfw_dir(root)
    if lfw is None:
        raise DataError(f"No LFW person folders in {root}. " + _HOW_TO_PREPARE.format(name="lfw"))
    people: dict[str, list[str]] = {}
    for d in sorted(p for p in lfw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        imgs = sorted(f.name for f in d.iterdir() if f.suffix.lower() in (".jpg", ".jpeg")
                      and not f.name.startswith("."))
        if len(imgs) >= min_images:
            people[d.name] = [f"{d.name}/{f}" for f in imgs]
    if not people:
        raise DataError(
            f"No LFW person in {lfw} has >= {min_images} images. Lower min_images or "
            "re-import the data. " + _HOW_TO_PREPARE.format(name="lfw")
        )
    names = sorted(people)  # plain sort, as ImageFolder does
    fs = _faceset(lfw, {n: people[n] for n in names}, LFW_BOX, size, "lfw")
    fs.meta["min_images"] = min_images
    return fs
