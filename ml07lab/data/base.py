"""The one in-memory form of a face dataset that every loader returns.

Why uint8 tensors: a whole prepared dataset (LFW at 64 px is ~25 MB) fits in memory,
caches as one safetensors file, and hashes into a fingerprint that artefacts record.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import torch


class DataError(ValueError):
    """A dataset problem the user can fix; the message says how."""


@dataclass(frozen=True)
class FaceSet:
    """Images of people, one integer label per image.

    images: uint8 tensor (N, C, H, W), C = 1 (grey).
    labels: int64 tensor (N,), values index `names`.
    names:  identity names, one per label value.
    source: where it came from ("synthetic", "att", "lfw", "folder:/path", ...).
    files:  per-image source file (relative path) when there is one; manifests use it.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]
    source: str
    files: tuple[str, ...] | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError("FaceSet.images must be a uint8 tensor of shape (N, C, H, W).")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError("FaceSet.labels must hold one label per image.")
        if self.files is not None and len(self.files) != len(self.labels):
            raise DataError("FaceSet.files must name one file per image.")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_identities(self) -> int:
        return len(self.names)

    def counts(self) -> torch.Tensor:
        """Images per identity, indexed by label."""
        return torch.bincount(self.labels, minlength=len(self.names))

    def fingerprint(self) -> str:
        """sha256 over pixels, labels and names: the data identity artefacts record."""
        h = hashlib.sha256()
        h.update(self.images.contiguous().numpy().tobytes())
        h.update(self.labels.contiguous().numpy().tobytes())
        h.update("\n".join(self.names).encode())
        return h.hexdigest()

    def subset(self, index: torch.Tensor | Sequence[int], relabel: bool = False) -> "FaceSet":
        """The images at `index`. With relabel=True, labels become 0..K-1 over the
        identities present, and `names` shrinks to match."""
        idx = torch.as_tensor(index, dtype=torch.long)
        labels = self.labels[idx]
        names = self.names
        if relabel:
            present = torch.unique(labels)
            remap = torch.full((len(self.names),), -1, dtype=torch.long)
            remap[present] = torch.arange(len(present))
            labels = remap[labels]
            names = tuple(self.names[i] for i in present.tolist())
        files = tuple(self.files[i] for i in idx.tolist()) if self.files is not None else None
        return FaceSet(self.images[idx], labels, names, self.source, files, dict(self.meta))

    def select_identities(self, ids: Sequence[int]) -> "FaceSet":
        """All images of the given identities, relabelled 0..len(ids)-1 in that order."""
        ids = list(ids)
        mask = torch.isin(self.labels, torch.tensor(ids, dtype=torch.long))
        idx = torch.nonzero(mask).flatten()
        fs = self.subset(idx)
        remap = torch.full((len(self.names),), -1, dtype=torch.long)
        remap[torch.tensor(ids)] = torch.arange(len(ids))
        return FaceSet(fs.images, remap[fs.labels], tuple(self.names[i] for i in ids),
                       fs.source, fs.files, dict(self.meta))

    def check_min_images(self, minimum: int = 2) -> None:
        """Verification needs at least two photos of a person (one to enrol, one to test)."""
        c = self.counts()
        few = [self.names[i] for i in torch.nonzero(c < minimum).flatten().tolist()]
        if few:
            shown = ", ".join(few[:5]) + (" ..." if len(few) > 5 else "")
            raise DataError(
                f"{len(few)} identities in {self.source} have fewer than {minimum} images "
                f"({shown}). Add photos or remove those folders: verification needs at "
                f"least {minimum} images per person."
            )


def concat(sets: Sequence[FaceSet], source: str) -> FaceSet:
    """Stack FaceSets with disjoint identities into one, offsetting labels."""
    imgs, labels, names, files = [], [], [], []
    offset = 0
    for s in sets:
        imgs.append(s.images)
        labels.append(s.labels + offset)
        names.extend(s.names)
        files.extend(s.files if s.files is not None else [""] * len(s))
        offset += len(s.names)
    return FaceSet(torch.cat(imgs), torch.cat(labels), tuple(names), source, tuple(files))
