"""Dataset versions as manifests: every file's path, sha256, label, size, source and time added.

Why manifests: "regularly monitor and update the training datasets" (OWASP ML07) needs
something to compare. A manifest pins one version of a face dataset, file by file, and
`diff_manifests` says what a refresh changed: added, removed, changed and relabelled
files, and how many images each identity gained or lost. Labels live in the manifest,
not in folder names, so a relabelling is a visible edit (and, once the manifest is
signed, a detectable one: see `provenance`).

On disk a dataset is a folder of PNGs, one sub-folder per identity, plus `manifest.json`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image

from ..artifacts import atomic_write_bytes
from .base import DataError, FaceSet
from .files import classify

FORMAT = "ml07lab-dataset-manifest/1"
MANIFEST = "manifest.json"
CONTROL_FILES = (MANIFEST, "manifest.sig.json")  # never counted as data files


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def check_rel_path(p: str) -> str:
    """A manifest path must stay inside the dataset: relative, '/'-separated, no '..'."""
    if not p or p.startswith("/") or "\\" in p or any(part in ("", ".", "..") for part in p.split("/")):
        raise DataError(f"Unsafe path {p!r} in a dataset manifest: paths must be relative, "
                        "use '/', and never contain '..'. Rebuild the manifest with `ml07lab data manifest`.")
    return p


class ManifestEntry(NamedTuple):
    path: str  # relative to the dataset folder, '/'-separated
    sha256: str  # of the file's bytes
    label: str  # identity name: THE label the training pipeline uses
    size: int  # bytes
    source: str  # who delivered it ("synthetic", "lfw", "community upload", ...)
    added: str  # ISO time this file first entered the dataset


@dataclass
class Manifest:
    """One version of a dataset. `identities` fixes the label order (label i = identities[i])."""

    name: str
    identities: list[str]
    entries: list[ManifestEntry]
    created: str = field(default_factory=now_utc)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "created": self.created, "meta": self.meta,
                "identities": list(self.identities), "entries": [e._asdict() for e in self.entries]}

    def canonical_bytes(self) -> bytes:
        """The exact bytes a curator signs: sorted keys, no whitespace, UTF-8."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> "Manifest":
        if d.get("format") != FORMAT:
            raise DataError(f"{where} is not an ml07lab dataset manifest (format {d.get('format')!r}, "
                            f"expected {FORMAT!r}). Build one with `ml07lab data manifest DIR`.")
        try:
            entries = [ManifestEntry(**e) for e in d["entries"]]
        except (KeyError, TypeError) as e:
            raise DataError(f"{where} has a malformed entry ({e}). Rebuild it with `ml07lab data manifest`.") from e
        for e in entries:
            check_rel_path(e.path)
        if len({e.path for e in entries}) != len(entries):
            raise DataError(f"{where} lists a path twice; rebuild it with `ml07lab data manifest`.")
        return cls(d["name"], list(d["identities"]), entries, d.get("created", ""), dict(d.get("meta", {})))

    @classmethod
    def from_bytes(cls, b: bytes, where: str = "manifest") -> "Manifest":
        try:
            return cls.from_dict(json.loads(b.decode("utf-8")), where)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{where} is not valid JSON ({e}). Rebuild it with `ml07lab data manifest`.") from e

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}

    def counts(self) -> dict[str, int]:
        out = {n: 0 for n in self.identities}
        for e in self.entries:
            out[e.label] = out.get(e.label, 0) + 1
        return out

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1, sort_keys=True).encode() + b"\n")
        return path

    def __len__(self) -> int:
        return len(self.entries)


def read_manifest(where: str | Path) -> Manifest:
    """A manifest from a dataset folder (its manifest.json) or a manifest file."""
    p = Path(where)
    p = p / MANIFEST if p.is_dir() else p
    if not p.is_file():
        raise DataError(f"No manifest at {p}. Create one with `ml07lab data manifest {p.parent}`.")
    return Manifest.from_bytes(p.read_bytes(), str(p))


def read_bytes(root: str | Path, rel: str) -> bytes:
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


def data_files(root: str | Path) -> list[str]:
    """Every regular file under `root` except the control files, as sorted relative paths.
    Symlinks are refused: a link can point a 'verified' path at anything."""
    out: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as it:
            for d in it:
                rel = prefix + d.name
                if d.is_symlink():
                    raise DataError(f"{root} contains a symlink ({rel}); datasets must hold plain files. Remove it.")
                if d.is_dir():
                    walk(d.path, rel + "/")
                elif d.is_file() and rel not in CONTROL_FILES:
                    out.append(rel)
    walk(str(root), "")
    return sorted(out)


def build_manifest(root: str | Path, name: str | None = None, source: str = "unknown",
                   previous: Manifest | None = None, labels: dict[str, str] | None = None) -> Manifest:
    """Manifest of a folder as it is now. Labels: `labels[path]`, else the previous
    manifest's label for that path, else the file's folder name. Source and time added
    carry over from `previous` for files whose bytes did not change."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder. Pass a dataset folder (one sub-folder per identity).")
    prev = previous.by_path() if previous else {}
    stamp, entries, skipped = now_utc(), [], {}
    for rel in data_files(root):
        b = read_bytes(root, rel)
        _, why = classify(PurePosixPath(rel).name, b)  # the loader's file filter; damaged bytes stay listed (a change)
        if why:
            skipped[rel] = why
            continue
        digest = sha256_bytes(b)
        old = prev.get(rel)
        label = (labels or {}).get(rel) or (old.label if old else PurePosixPath(rel).parts[0])
        same = old is not None and old.sha256 == digest
        entries.append(ManifestEntry(rel, digest, label, len(b), old.source if same else source,
                                     old.added if same else stamp))
    idents = list(previous.identities) if previous else []
    idents += sorted({e.label for e in entries} - set(idents))
    return Manifest(name or root.name, idents, entries, meta={"skipped": skipped} if skipped else {})


# --- faces <-> folders ----------------------------------------------------------------

def png_bytes(img: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img[0].numpy())).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def default_files(faces: FaceSet) -> list[str]:
    """`<identity>/<file>.png` per image: the FaceSet's own file names when it has them."""
    if faces.files is not None and all(faces.files) and len(set(faces.files)) == len(faces):
        return [str(PurePosixPath(f).with_suffix(".png")) for f in faces.files]
    return [f"{faces.names[int(l)]}/{i:05d}.png" for i, l in enumerate(faces.labels)]


def export_faceset(faces: FaceSet, root: str | Path, name: str | None = None,
                   sources: Sequence[str] | str | None = None, previous: Manifest | None = None) -> Manifest:
    """Write `faces` as PNGs (one folder per identity) plus manifest.json, in FaceSet order.

    Idempotent: when `root` already holds this exact FaceSet (same fingerprint, same files
    present) nothing is rewritten, so a signature over it stays valid. Otherwise the
    folder is replaced. Source and time added carry over from `previous` where the bytes match.
    """
    root = Path(root)
    fp = faces.fingerprint()
    if (root / MANIFEST).is_file():
        try:
            m = read_manifest(root)
            if m.meta.get("fingerprint") == fp and set(data_files(root)) == {e.path for e in m.entries}:
                return m
        except DataError:
            pass
        shutil.rmtree(root)  # a dataset folder we wrote before, now stale
    elif root.is_dir() and any(root.iterdir()):
        raise DataError(f"{root} is not empty and holds no {MANIFEST}: refusing to write a dataset over it. "
                        "Choose an empty or new folder.")
    root.mkdir(parents=True, exist_ok=True)
    files = [check_rel_path(f) for f in default_files(faces)]
    srcs = [sources] * len(faces) if sources is None or isinstance(sources, str) else list(sources)
    prev, stamp, entries = (previous.by_path() if previous else {}), now_utc(), []
    for i, rel in enumerate(files):
        b = png_bytes(faces.images[i])
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b)
        digest, old = sha256_bytes(b), prev.get(rel)
        same = old is not None and old.sha256 == digest
        entries.append(ManifestEntry(rel, digest, faces.names[int(faces.labels[i])], len(b),
                                     old.source if same else (srcs[i] or faces.source),
                                     old.added if same else stamp))
    m = Manifest(name or root.name, list(faces.names), entries, meta={"fingerprint": fp})
    m.write(root)
    return m


def decode_png(b: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"Cannot decode {where} as an image ({e}); replace or remove it.") from e


def faces_from_bytes(manifest: Manifest, blobs: Iterable[bytes], source: str) -> FaceSet:
    """A FaceSet in manifest order, labels from the manifest (not from folder names)."""
    index = {n: i for i, n in enumerate(manifest.identities)}
    names = list(manifest.identities)
    arrs, labels = [], []
    for e, b in zip(manifest.entries, blobs):
        if e.label not in index:
            index[e.label] = len(names)
            names.append(e.label)
        arrs.append(decode_png(b, e.path))
        labels.append(index[e.label])
    shapes = {a.shape for a in arrs}
    if len(shapes) > 1:
        raise DataError(f"Images in {source} differ in size ({sorted(shapes)[:3]}); a dataset needs one size.")
    images = torch.from_numpy(np.stack(arrs)[:, None]) if arrs else torch.zeros(0, 1, 1, 1, dtype=torch.uint8)
    return FaceSet(images, torch.tensor(labels, dtype=torch.long), tuple(names), source,
                   tuple(e.path for e in manifest.entries))


def load_faceset(root: str | Path, manifest: Manifest | None = None) -> FaceSet:
    """Load a dataset folder as its manifest.json describes it, WITHOUT any check: what a
    pipeline with no provenance control does. See `provenance.load_verified` for the safe path."""
    root = Path(root)
    m = manifest or read_manifest(root)
    return faces_from_bytes(m, (read_bytes(root, e.path) for e in m.entries), f"folder:{root}")


# --- diff -----------------------------------------------------------------------------

@dataclass
class ManifestDiff:
    added: list[str]
    removed: list[str]
    changed: list[str]  # same path, different bytes
    relabelled: list[tuple[str, str, str]]  # (path, old label, new label)
    drift: list[dict[str, Any]]  # per identity: name, old, new, delta; largest gain first

    def touched(self) -> set[str]:
        """Paths a monitoring run must look at: new bytes or a new label."""
        return set(self.added) | set(self.changed) | {p for p, _, _ in self.relabelled}

    def summary(self) -> dict[str, Any]:
        top = [d for d in self.drift if d["delta"] != 0][:5]
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed),
                "relabelled": len(self.relabelled), "identities_changed": sum(d["delta"] != 0 for d in self.drift),
                "largest_drift": top}


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    """What changed from `old` to `new`, by path, plus per-identity count drift."""
    a, b = old.by_path(), new.by_path()
    added = [p for p in b if p not in a]
    removed = [p for p in a if p not in b]
    both = [p for p in b if p in a]
    changed = [p for p in both if a[p].sha256 != b[p].sha256]
    relabelled = [(p, a[p].label, b[p].label) for p in both if a[p].label != b[p].label]
    co, cn = old.counts(), new.counts()
    drift = [{"identity": n, "old": co.get(n, 0), "new": cn.get(n, 0), "delta": cn.get(n, 0) - co.get(n, 0)}
             for n in dict.fromkeys([*old.identities, *new.identities, *co, *cn])]
    drift.sort(key=lambda d: (-d["delta"], d["identity"]))
    return ManifestDiff(added, removed, changed, relabelled, drift)
