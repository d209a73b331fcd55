"""Your own faces: a one-folder-per-person set -> `FaceSet`, with what was skipped and why,
image-quality warnings, and a warning when the set is too small for the lab's comparisons.

Why warnings rather than silent use: a workshop's own photos are rarely like the kit's
(dark ambient-light shots, thumbnails, a scanned form in a person's folder), and a small
set makes a 2-point difference in TAR pure chance. The learner should see both before
trusting a number measured on them.

Spec strings (`company="folder:PATH"`): `folder:PATH` takes a centre square; add
`#crop=att` (or `#crop=lfw`) to frame each photo with the box the kit uses for AT&T
(92x112, eyebrows to chin) or LFW, or `#crop=L,T,R,B` for your own box as fractions of
width and height. A folder export of the kit's AT&T PGMs with `#crop=att` loads the very
pixels `load_att` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..company_spec import crop_fractions, normalise_spec, split_spec  # noqa: F401 - normalise_spec re-exported
from .base import DataError, FaceSet
from .files import DAMAGED, FolderScan, scan_folder

# Quality thresholds (grey levels 0-255, correlations in [-1, 1]); stated in the warnings.
DARK_MEAN = 40.0  # mean grey of the crop below this: "too dark" (AT&T photos average ~95)
FLAT_STD = 8.0  # grey-level standard deviation below this: a blank or nearly uniform picture
FACE_CORR = 0.1  # correlation (8x8 block means) with the set's median photo below this: "no face-like content"
CROPS = {"centre": None, "center": None}


def named_boxes() -> dict[str, tuple[float, float, float, float] | None]:
    from .real import ATT_BOX, LFW_BOX

    return {**CROPS, "att": ATT_BOX, "lfw": LFW_BOX}


def parse_spec(spec: str) -> tuple[Path, tuple[float, float, float, float] | None, str]:
    """'folder:PATH[#crop=att|lfw|centre|L,T,R,B]' -> (path, box or None, crop name)."""
    try:
        path, crop = split_spec(spec)
        boxes = named_boxes()
        return path, (boxes[crop] if crop in boxes else crop_fractions(crop)), crop
    except ValueError as e:
        raise DataError(str(e)) from None


def folder_fingerprint(spec: str) -> str:
    """sha256 over the crop and every accepted photo's path and bytes: what a cache key
    needs so two folders (or one folder after an edit) never share a trained model."""
    import hashlib

    from .real import PREPROCESS_VERSION

    path, box, _ = parse_spec(spec)
    scan = scan_folder(path)
    h = hashlib.sha256(f"{PREPROCESS_VERSION}|{box}".encode())
    for rels in scan.people.values():
        for rel in rels:
            h.update(rel.encode() + b"\0" + hashlib.sha256((path / rel).read_bytes()).digest())
    return h.hexdigest()


def _decode(path: Path, box, size: int) -> tuple[np.ndarray, tuple[int, int]]:  # noqa: ANN001
    """Grey size x size crop, and the crop's size in source pixels (for 'too small')."""
    from .real import crop_pixels

    with Image.open(path) as im:
        im.seek(0)  # first frame of an animated GIF
        px = crop_pixels(*im.size, box)
        g = im.convert("L")
        out = g.resize((size, size), Image.Resampling.BILINEAR, box=px, reducing_gap=2.0)
        return np.asarray(out, dtype=np.uint8), (round(px[2] - px[0]), round(px[3] - px[1]))


def quality_warnings(images: np.ndarray, crop_px: list[tuple[int, int]], files: list[str],
                     size: int) -> list[dict[str, Any]]:
    """Per-photo warnings (the photos are still used). Heuristics, stated plainly:
    too dark: mean grey < DARK_MEAN; too small: the crop is under `size` px on a side (it
    gets upscaled); no face-like content: nearly uniform (std < FLAT_STD), or its pixel
    correlation with the set's median photo, both reduced to 8x8 block means, is < FACE_CORR
    (on the AT&T photos ~1 % fall under it). The median photo of a set of
    roughly aligned faces is a face, so this flags pictures unlike the rest (a document, a
    landscape, a badly off-centre face); it cannot tell a face from a face-shaped object."""
    x = images.reshape(len(images), -1).astype(np.float64)
    mean, std = x.mean(1), x.std(1)
    k = size // 8  # compare 8x8 block means: coarse layout (hair, eyes, mouth), not detail
    y = images.astype(np.float64)[:, : 8 * k, : 8 * k].reshape(len(images), 8, k, 8, k).mean((2, 4))
    y = y.reshape(len(images), -1)
    z = (y - y.mean(1, keepdims=True)) / np.maximum(y.std(1, keepdims=True), 1e-6)
    med = np.median(z, axis=0)
    med = (med - med.mean()) / max(med.std(), 1e-6)
    corr = (z @ med) / z.shape[1]
    out: list[dict[str, Any]] = []
    for i, f in enumerate(files):
        why = []
        if mean[i] < DARK_MEAN:
            why.append(f"too dark (mean grey {mean[i]:.0f} < {DARK_MEAN:.0f})")
        if min(crop_px[i]) < size:
            why.append(f"too small ({crop_px[i][0]}x{crop_px[i][1]} px crop < {size} px)")
        if std[i] < FLAT_STD:
            why.append(f"no face-like content (nearly uniform, std {std[i]:.1f})")
        elif corr[i] < FACE_CORR:
            why.append(f"no face-like content (unlike the set's median photo, r={corr[i]:.2f})")
        if why:
            out.append({"file": f, "warnings": why})
    return out


def warning_counts(warnings: list[dict[str, Any]]) -> dict[str, int]:
    """Photos per kind of warning ('too dark', 'too small', 'no face-like content')."""
    out: dict[str, int] = {}
    for w in warnings:
        for kind in {s.split(" (")[0] for s in w["warnings"]}:
            out[kind] = out.get(kind, 0) + 1
    return out


def load_folder(spec: str | Path, size: int, box=None) -> FaceSet:  # noqa: ANN001
    """Load `folder:PATH[#crop=...]` (or a plain path): every file Pillow reads, judged by
    content (files.classify), grey, cropped and resized to `size`. Damaged files are
    skipped and reported; `meta` holds the scan summary and the quality warnings."""
    if isinstance(spec, Path) or not str(spec).startswith("folder:"):
        spec = f"folder:{spec}"
    path, spec_box, crop = parse_spec(str(spec))
    box = box if box is not None else spec_box
    scan = scan_folder(path)
    arrs: list[np.ndarray] = []
    px: list[tuple[int, int]] = []
    people: dict[str, list[str]] = {}
    for name, rels in scan.people.items():
        for rel in rels:
            try:
                a, p = _decode(path / rel, box, size)
            except Exception:  # noqa: BLE001 - any decoder error: report the file, go on
                scan.skip(rel, DAMAGED)
                continue
            arrs.append(a)
            px.append(p)
            people.setdefault(name, []).append(rel)
    decoded = [f for rels in people.values() for f in rels]  # the order of `arrs`
    scan.people = people
    scan.drop_people_with_few(2)
    kept = {r for rels in scan.people.values() for r in rels}
    keep_idx = [i for i, r in enumerate(decoded) if r in kept]
    if not scan.people:
        raise DataError(f"No images usable in sub-folders of {path}: " + scan.report().replace("\n", "; ")
                        + ". Put each person's photos (any format Pillow reads) in their own "
                        "sub-folder, at least 2 per person.")
    files = [f for rels in scan.people.values() for f in rels]
    images = np.stack([arrs[i] for i in keep_idx])
    crop_px = [px[i] for i in keep_idx]
    names = tuple(scan.people)
    labels = torch.tensor([i for i, n in enumerate(names) for _ in scan.people[n]], dtype=torch.long)
    warn = quality_warnings(images, crop_px, files, size)
    from .real import PREPROCESS_VERSION

    meta = {"root": str(path), "size": size, "box": box, "crop": crop, "preprocess": PREPROCESS_VERSION,
            "scan": scan.summary(), "skipped_files": dict(scan.skipped), "quality_warnings": warn,
            "quality_counts": warning_counts(warn)}
    return FaceSet(torch.from_numpy(images[:, None].copy()), labels, names, str(spec), tuple(files), meta)


def describe(fs: FaceSet) -> str:
    """Lines for a person: people, photos per person, skipped files by reason, warnings."""
    s = fs.meta.get("scan", {})
    c = fs.counts().tolist()
    lines = [f"{fs.num_identities} people, {len(fs)} photos, {min(c)}-{max(c)} per person "
             f"(crop: {fs.meta.get('crop', 'centre')}), formats {s.get('formats', {})}"]
    for reason, n in s.get("skipped_by_reason", {}).items():
        eg = [p for p, r in fs.meta.get("skipped_files", {}).items() if r == reason][:3]
        lines.append(f"  skipped {n}: {reason} (e.g. {', '.join(eg)})")
    for kind, n in fs.meta.get("quality_counts", {}).items():
        eg = [w["file"] for w in fs.meta["quality_warnings"] if any(x.startswith(kind) for x in w["warnings"])][:3]
        lines.append(f"  WARNING {n} photo(s) {kind} (e.g. {', '.join(eg)})")
    return "\n".join(lines)


# --- is the set big enough for the lab's comparisons? ---------------------------------

MIN_PEOPLE = 20  # company people
MIN_GENUINE = 100  # genuine pairs per re-split: TAR then moves in steps of <= 1 point
MAX_SPREAD = 0.01  # TAR@FAR1% standard deviation across re-splits (1 point)


def size_warnings(summary: dict[str, Any], clean: dict[str, Any] | None = None) -> list[str]:
    """Warnings, with the numbers, when the company set cannot support the notebooks'
    comparisons (they compare models 2 TAR points apart). `summary`: ScenarioData.summary();
    `clean`: verify.evaluate's figures (n_genuine pooled over n_splits, split sd)."""
    out = []
    people = int(summary.get("company_people", 0))
    if people < MIN_PEOPLE:
        out.append(f"Only {people} company people (after {summary.get('outsider_people', 0)} outsiders are set "
                   f"aside); the lab's figures assume >= {MIN_PEOPLE}.")
    if clean:
        per_split = clean["n_genuine"] / max(1, clean.get("n_splits", 1))
        sd = float(clean.get("tar_at_far_1pct_split_sd", 0.0))
        if per_split < MIN_GENUINE:
            out.append(f"{per_split:.0f} genuine pairs per split: one accepted pair moves TAR by "
                       f"{100 / per_split:.1f} points (the lab wants >= {MIN_GENUINE} pairs).")
        if sd > MAX_SPREAD:
            out.append(f"TAR@FAR1% varies by {100 * sd:.1f} points (sd) across {int(clean.get('n_splits', 0))} "
                       f"re-splits: differences under {200 * sd:.0f} points are noise, so the notebooks' "
                       "2-point comparisons are meaningless on this set.")
    return out


def scenario_report(data: Any, clean: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a scenario run on a company folder should say about the folder: the scan,
    the quality warnings (counts) and the small-set warnings, with their numbers."""
    meta = data.company.meta
    warnings = size_warnings(data.summary(), clean)
    for kind, n in meta.get("quality_counts", {}).items():
        warnings.append(f"{n} of {len(data.company) + len(data.outsiders)} photos flagged {kind}.")
    return {"source": data.company.source, "crop": meta.get("crop"), "scan": meta.get("scan", {}),
            "quality_counts": meta.get("quality_counts", {}), "warnings": warnings}
