"""Which files in a face folder are images: ONE rule for the manifest, `data scan` and the loader.

Why one rule: when the manifest lists `DEADJOE` or `WS_FTP.LOG` and the loader ignores
them, a signed manifest and the model's training data describe different sets, and a
scan dies on a file nobody meant to train on. Every consumer asks `classify` instead.

The rule, in order (the first that matches gives the reason a file is skipped):
1. hidden names (`.DS_Store`, `._x.jpg`) and editor/backup leftovers (`x~`) are skipped;
2. a name with an extension Pillow does not read (`.info`, `.LOG`, `.bad`, `.txt`) is skipped
   by name, so `1.pgm.bad` stays out even when its bytes are a valid PGM;
3. everything else (a known image extension, or none at all) is judged by its CONTENT:
   Pillow must recognise the header (GIF, PGM, PNG, JPEG, BMP, TIFF, WebP, ...). An
   extensionless GIF is an image; `notes.jpg` holding text is not.
A header can still hide a truncated body: the loader decodes every file and reports those
as damaged (reason DAMAGED) instead of failing or dropping them silently.
"""
from __future__ import annotations

import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .base import DataError

HIDDEN = "hidden or backup file"
NOT_IMAGE_NAME = "extension is not an image type"
NOT_IMAGE_CONTENT = "content is not an image"
EMPTY = "empty file"
DAMAGED = "damaged image (header ok, cannot decode)"
LOOSE = "not inside a person folder"
TOO_FEW = "person folder with fewer than 2 usable photos"
REASONS = (HIDDEN, NOT_IMAGE_NAME, NOT_IMAGE_CONTENT, EMPTY, DAMAGED, LOOSE, TOO_FEW)

_EXT = re.compile(r"\.[A-Za-z][A-Za-z0-9_-]{0,7}")  # ".jpg", ".LOG"; not ".1" or ".2023"
_SNIFF_BYTES = 1 << 16  # enough for every header Pillow identifies


def image_extensions() -> frozenset[str]:
    """Lower-case extensions Pillow has a decoder for (.gif, .pgm, .webp, ...)."""
    Image.init()
    return frozenset(e.lower() for e in Image.registered_extensions())


def sniff(head: bytes) -> str | None:
    """Pillow's format name ('GIF', 'PPM', 'JPEG', ...) for these leading bytes, or None."""
    try:
        with Image.open(io.BytesIO(head)) as im:
            return str(im.format)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    except Exception:  # noqa: BLE001 - a hostile header must never crash a listing
        return None


def decodes(data: bytes) -> bool:
    """True when Pillow decodes the whole image (first frame), not just its header."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - truncated, corrupt or hostile: not decodable
        return False


def classify(name: str, head: bytes, decode: bool = False) -> tuple[str | None, str | None]:
    """(format, None) for an image, (None, reason) for a skipped file. `head`: the file's
    first bytes, or with `decode=True` the whole file, which must then decode fully."""
    if name.startswith(".") or name.endswith("~") or name.startswith("#"):
        return None, HIDDEN
    suffix = os.path.splitext(name)[1]
    if suffix and _EXT.fullmatch(suffix) and suffix.lower() not in image_extensions():
        return None, NOT_IMAGE_NAME
    if not head:
        return None, EMPTY
    fmt = sniff(head[:_SNIFF_BYTES])
    if fmt is None:
        return None, NOT_IMAGE_CONTENT
    if decode and not decodes(head):
        return None, DAMAGED
    return fmt, None


def classify_file(path: Path) -> tuple[str | None, str | None]:
    """`classify` for a file on disk, reading only its header."""
    with open(path, "rb") as f:
        return classify(path.name, f.read(_SNIFF_BYTES))


def natural_key(s: str) -> list:
    """Sort 's2' before 's10' (and '2.pgm' before '10.pgm'), as a person would."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


@dataclass
class FolderScan:
    """A one-folder-per-person tree, classified: the photos each person has, and every
    skipped file with its reason (paths relative to `root`, '/'-separated)."""

    root: Path
    people: dict[str, list[str]]
    skipped: dict[str, str] = field(default_factory=dict)
    format_of: dict[str, str] = field(default_factory=dict)  # photo -> Pillow format name

    @property
    def formats(self) -> Counter:
        """Photos in use per format (GIF, PPM, PNG, ...)."""
        return Counter(self.format_of[f] for fs in self.people.values() for f in fs)

    def skip(self, rel: str, reason: str) -> None:
        self.skipped[rel] = reason

    def skipped_counts(self) -> dict[str, int]:
        """How many files were skipped, per reason (only reasons that occurred)."""
        c = Counter(self.skipped.values())
        return {r: c[r] for r in REASONS if c[r]}

    def drop_people_with_few(self, minimum: int = 2) -> None:
        """Verification needs >= `minimum` photos a person: the others are skipped, listed."""
        for name in [n for n, fs in self.people.items() if len(fs) < minimum]:
            for rel in self.people.pop(name):
                self.skip(rel, TOO_FEW)

    def summary(self) -> dict[str, Any]:
        per = [len(v) for v in self.people.values()]
        return {"root": str(self.root), "people": len(self.people), "photos": sum(per),
                "photos_per_person": {"min": min(per, default=0), "max": max(per, default=0),
                                      "mean": round(sum(per) / len(per), 2) if per else 0.0},
                "formats": dict(self.formats), "skipped": len(self.skipped),
                "skipped_by_reason": self.skipped_counts()}

    def report(self, show: int = 3) -> str:
        """A few lines a person reads: what was used, what was skipped and why."""
        s = self.summary()
        lines = [f"{s['people']} people, {s['photos']} photos "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(self.formats.items())) or 'none'}) in {self.root}"]
        for reason, n in s["skipped_by_reason"].items():
            eg = [p for p, r in self.skipped.items() if r == reason][:show]
            lines.append(f"skipped {n} file(s): {reason} (e.g. {', '.join(eg)})")
        return "\n".join(lines)


def scan_folder(root: str | Path, min_photos: int = 2) -> FolderScan:
    """Classify every file under `root`: sub-folder = person (nested folders are searched
    too and count for the top-level person); files at the top level are skipped (LOOSE)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"Face folder {root} not found. Pass a folder with one sub-folder of photos per "
            "person, e.g. folder:./my_faces with my_faces/alice/1.jpg, my_faces/bob/1.jpg."
        )
    scan = FolderScan(root, {})
    for entry in sorted(os.scandir(root), key=lambda d: natural_key(d.name)):
        if entry.is_file(follow_symlinks=False):
            if entry.name not in ("manifest.json", "manifest.sig.json"):
                scan.skip(entry.name, HIDDEN if entry.name.startswith(".") else LOOSE)
            continue
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        photos: list[str] = []
        for dirpath, dirs, files in os.walk(entry.path):
            dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
            for fname in sorted(files, key=natural_key):
                full = Path(dirpath) / fname
                rel = full.relative_to(root).as_posix()
                if full.is_symlink():
                    scan.skip(rel, HIDDEN)
                    continue
                fmt, reason = classify_file(full)
                if reason:
                    scan.skip(rel, reason)
                else:
                    photos.append(rel)
                    scan.format_of[rel] = str(fmt)
        if photos:
            scan.people[entry.name] = photos
    scan.drop_people_with_few(min_photos)
    return scan
