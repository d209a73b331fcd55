"""Build "your own faces" folders from the kit's AT&T photos, to test and teach the folder path.

Why from AT&T: every machine that runs the lab has it (`make data`), so the appendix
notebook and the tests need nothing extra, and the folder path's results can be compared
with the kit's own AT&T numbers. Each variant reproduces one thing a workshop's folder does:

- `export`:      PNG copies of the original 92x112 photos, one sub-folder per person;
- `gif`:         the same photos as GIF files, half named `.gif`, half with no extension;
- `junk`:        the export plus the clutter real folders carry (`.info`, `WS_FTP.LOG`,
                 `DEADJOE`, `1.pgm.bad`, text named `.jpg`, a truncated JPEG, an empty file,
                 `.DS_Store`, a README at the top, a person folder with one photo);
- `dark`:        the export with lighting shifted down (grey x 0.3: ambient-light shots);
- `subset15`:    15 people only (7 company people once the 8 outsiders are set aside).
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .base import DataError
from .real import natural_key

VARIANTS = ("export", "gif", "junk", "dark", "subset15")


def att_pgm_dir(data_root: Path | None = None) -> Path:
    """The imported AT&T PGM folder (s1..s40) under the data directory."""
    from ..config import data_dir
    from .fetch import raw_root
    from .real import _att_dir

    root = raw_root("att", data_root or data_dir())
    d = _att_dir(root) if root.is_dir() else None
    if d is None:
        raise DataError(f"AT&T PGM folders not found under {root}. Run `make data` (offline: "
                        "`ml07lab data import att --from ../shared/data`).")
    return d


def _people(src: Path, n: int | None = None) -> list[Path]:
    ps = sorted((p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: natural_key(p.name))
    return ps[:n] if n else ps


def _photos(person: Path) -> list[Path]:
    return sorted((f for f in person.iterdir() if f.suffix.lower() == ".pgm"), key=lambda f: natural_key(f.name))


def _write(out: Path, src: Path, fmt: str = "PNG", suffix: str = ".png", n_people: int | None = None,
           gain: float = 1.0, no_ext_every: int = 0) -> None:
    for person in _people(src, n_people):
        (out / person.name).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(_photos(person)):
            with Image.open(f) as im:
                g = im.convert("L")
            if gain != 1.0:
                g = Image.fromarray(np.clip(np.asarray(g, np.float64) * gain, 0, 255).round().astype(np.uint8))
            ext = "" if no_ext_every and i % no_ext_every == 0 else suffix
            g.save(out / person.name / (f.stem + ext), format=fmt)


def junk_files(out: Path, src: Path | None = None) -> dict[str, tuple[bytes, str]]:
    """The `junk` variant's clutter: relative path -> (bytes, the reason the loader must
    give when it skips it). `out` must already hold the export."""
    from . import files as F

    out, src = Path(out), Path(src) if src else att_pgm_dir()
    p1, p2 = _people(out)[:2]
    buf = io.BytesIO()
    with Image.open(_photos(_people(src)[0])[0]) as im:
        im.convert("L").save(buf, format="JPEG")
    junk = {
        f"{p1.name}/{p1.name}.info": (b"photographer: unknown\n", F.NOT_IMAGE_NAME),
        f"{p1.name}/WS_FTP.LOG": (b"101.1.1 transfer ok\n", F.NOT_IMAGE_NAME),
        f"{p1.name}/DEADJOE": (b"*** Modified files in JOE when it aborted\n", F.NOT_IMAGE_CONTENT),
        f"{p2.name}/1.pgm.bad": (_photos(_people(src)[1])[0].read_bytes(), F.NOT_IMAGE_NAME),
        f"{p2.name}/notes.jpg": (b"not a photo, just notes\n", F.NOT_IMAGE_CONTENT),
        f"{p2.name}/truncated.jpg": (buf.getvalue()[: len(buf.getvalue()) // 3], F.DAMAGED),
        f"{p2.name}/empty.png": (b"", F.EMPTY),
        f"{p2.name}/.DS_Store": (b"\0\0\0\1Bud1", F.HIDDEN),
        "README.txt": (b"our faces\n", F.LOOSE),
        "zz_one_photo/only.png": ((p1 / f"{_photos(_people(src)[0])[0].stem}.png").read_bytes(), F.TOO_FEW),
    }
    return junk


def _add_junk(out: Path, src: Path) -> None:
    for rel, (b, _) in junk_files(out, src).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b)


def build_face_folder(variant: str, out: str | Path, src: Path | None = None) -> Path:
    """Write one variant (see VARIANTS) into `out` (replaced if it exists); returns `out`."""
    if variant not in VARIANTS:
        raise DataError(f"Unknown variant {variant!r}: choose from {', '.join(VARIANTS)}.")
    src = Path(src) if src else att_pgm_dir()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if variant == "export":
        _write(out, src)
    elif variant == "gif":
        _write(out, src, "GIF", ".gif", no_ext_every=2)
    elif variant == "junk":
        _write(out, src)
        _add_junk(out, src)
    elif variant == "dark":
        _write(out, src, gain=0.3)
    else:
        _write(out, src, n_people=15)
    return out


def att_available() -> bool:
    """Whether the AT&T PGMs are imported (else `demo_source` falls back to synthetic people)."""
    try:
        att_pgm_dir()
        return True
    except DataError:
        return False


def demo_source(out: str | Path) -> Path:
    """The photos the appendix builds its folder from: the imported AT&T PGMs, or, where
    they are not prepared (a hosted notebook), 48 synthetic people written as 92x112 PGMs
    into `out` (say so: numbers on synthetic faces say nothing about real ones)."""
    try:
        return att_pgm_dir()
    except DataError:
        from .synthetic import generate_faces

        fs = generate_faces(48, 10, size=112, seed=0, id_offset=5000)
        out = Path(out)
        for i, (img, lab) in enumerate(zip(fs.images, fs.labels.tolist())):
            d = out / f"s{lab + 1}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0].numpy()).resize((92, 112)).save(d / f"{i % 10 + 1}.pgm")
        return out


def build_face_folders(out: str | Path, variants=VARIANTS, src: Path | None = None) -> dict[str, Path]:  # noqa: ANN001
    """Every variant under `out/<variant>`."""
    return {v: build_face_folder(v, Path(out) / v, src) for v in variants}
