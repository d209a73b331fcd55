"""The `folder:PATH[#crop=att|lfw|centre|L,T,R,B]` spec of a company face set.

Why here, in the foundation layer: the config validates and normalises the spec (it is part
of every cache key) before any image is read, and the config must not import the data layer.
Which pixel box a crop name means is the data layer's business (`ml07lab.data.folder`)."""
from __future__ import annotations

from pathlib import Path

CROP_NAMES = ("centre", "center", "att", "lfw")
DEFAULT_CROPS = ("centre", "center")  # the loader's default: left out of the normalised spec


def split_spec(spec: str) -> tuple[Path, str]:
    """'folder:PATH[#crop=...]' -> (path, crop name or 'L,T,R,B'); ValueError naming the fix."""
    if not spec.startswith("folder:"):
        raise ValueError(f"A company face set is written folder:PATH, not {spec!r}.")
    path, _, frag = spec.split(":", 1)[1].partition("#")
    crop = "centre"
    if frag:
        key, _, val = frag.partition("=")
        if key != "crop" or not val:
            raise ValueError(f"Unknown option {frag!r} in {spec!r}: only #crop=att|lfw|centre|L,T,R,B.")
        crop = val
    if crop not in CROP_NAMES:
        crop_fractions(crop)  # validates
    return Path(path).expanduser(), crop


def crop_fractions(crop: str) -> tuple[float, float, float, float]:
    """'L,T,R,B' as four fractions of the photo, checked."""
    try:
        box = tuple(float(x) for x in crop.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise ValueError(f"crop={crop!r}: use att, lfw, centre, or four fractions L,T,R,B with "
                         "0 <= L < R <= 1 and 0 <= T < B <= 1 (e.g. 0.1,0.28,0.9,0.95).")
    return box  # type: ignore[return-value]


def normalise_spec(spec: str) -> str:
    """The spec with an absolute path, so a config key does not depend on the cwd."""
    path, crop = split_spec(spec)
    return f"folder:{path.resolve()}" + ("" if crop in DEFAULT_CROPS else f"#crop={crop}")
