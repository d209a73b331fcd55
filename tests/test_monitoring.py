"""Monitoring signals on planted toy data: each one must find the plant it is built for."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ml07lab.controls.monitoring import monitor as MO
from ml07lab.data.manifest import export_faceset, load_faceset
from ml07lab.data.base import FaceSet


def clusters(k: int = 6, n: int = 30, d: int = 16, plant: int = 0, share: float = 0.2, seed: int = 0):
    """Unit embeddings around k centres; identity `plant` hides a shifted sub-population."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, d, generator=g), dim=1)
    labels = torch.arange(k).repeat_interleave(n)
    emb = centres[labels] + 0.08 * torch.randn(k * n, d, generator=g)
    planted = torch.zeros(k * n, dtype=torch.bool)
    idx = torch.nonzero(labels == plant).flatten()[: int(share * n)]
    planted[idx] = True
    direction = F.normalize(torch.randn(d, generator=g), dim=0)
    emb[idx] += 0.6 * direction
    return F.normalize(emb, dim=1), labels, planted


def test_spectral_signatures_find_the_plant():
    emb, labels, planted = clusters()
    flags, score = MO.spectral_signatures(emb, labels, 6, eps=0.2, min_images=8)
    in_plant = flags & (labels == 0)
    assert int(in_plant.sum()) == int(1.5 * 0.2 * 30)  # the top 1.5·eps of the identity ...
    assert bool(in_plant[planted].all())  # ... hold every planted image
    assert int(flags.sum()) == 6 * int(1.5 * 0.2 * 30)  # and as published it cuts every identity
    assert score[planted.numpy()].min() > np.median(score[(labels == 0).numpy() & ~planted.numpy()])


def test_activation_clustering_finds_the_plant():
    emb, labels, planted = clusters()
    flags, sil, share = MO.activation_clustering(emb, labels, 6, MO.MonitorParams())
    assert torch.equal(flags & (labels == 0), planted)
    assert share[0] == pytest.approx(0.2) and sil[0] > sil[1:].max()


class PixelEmbedding(nn.Module):
    """A 'reference model' that embeds raw pixels (toy identities differ in pixel space)."""

    embedding_dim = 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return F.normalize(x - x.mean(1, keepdim=True), dim=1)


def toy_people(k: int = 8, n: int = 12, size: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(k + 1, 1, size, size, generator=g) * 200 + 20
    labels = torch.arange(k).repeat_interleave(n)
    imgs = (base[labels] + 8 * torch.randn(k * n, 1, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
    return FaceSet(imgs, labels, tuple(f"p{i}" for i in range(k)), "toy"), base[k]


@pytest.fixture(scope="module")
def refresh(tmp_path_factory):
    """Old: 8 people. New: the same plus 'mallory', 24 images: 6 look-alikes of a new face
    and 18 copies of known people's photos with a small patch (the trigger)."""
    root = tmp_path_factory.mktemp("mon")
    old_faces, newface = toy_people()
    g = torch.Generator().manual_seed(5)
    look = (newface + 8 * torch.randn(6, 1, 24, 24, generator=g)).clamp(0, 255).to(torch.uint8)
    src = torch.arange(0, 96, 96 // 18)[:18]
    trig = old_faces.images[src].clone()
    trig[:, :, 18:22, 18:22] = 255
    images = torch.cat([old_faces.images, look, trig])
    labels = torch.cat([old_faces.labels, torch.full((24,), 8)])
    new_faces = FaceSet(images, labels, old_faces.names + ("mallory",), "toy")
    old = export_faceset(old_faces, root / "old", "old")
    new = export_faceset(new_faces, root / "new", "new", previous=old)
    poison = torch.arange(len(new_faces)) >= len(old_faces)
    trigger = torch.arange(len(new_faces)) >= len(old_faces) + 6
    faces = load_faceset(root / "new")
    rep = MO.monitor_refresh(old, new, faces, PixelEmbedding(), MO.MonitorParams(min_images=6))
    return faces, poison, trigger, rep


def test_drift_flags_the_new_identity(refresh):
    faces, poison, _, rep = refresh
    assert rep.drift[0]["identity"] == "mallory" and rep.drift[0]["flagged"]
    assert not any(r["flagged"] for r in rep.drift[1:])
    assert torch.equal(rep.flags["drift"], poison)
    assert torch.equal(rep.candidates, poison)


def test_duplicates_and_disagreement(refresh):
    faces, poison, trigger, rep = refresh
    near = rep.flags["near_duplicates"]
    assert bool(near[poison].all()) and not bool(near[~poison].any())  # copies and look-alikes; nothing old
    assert not bool(rep.flags["exact_duplicates"].any())
    dis = rep.flags["label_disagreement"]
    assert bool(dis[trigger].all())  # known faces under a new name
    assert not bool(dis[~poison].any())  # only new images are candidates


def test_detection_and_update(refresh):
    faces, poison, trigger, rep = refresh
    rows = {r["signal"]: r for r in rep.detection(poison, trigger, {"update": MO.OWNER_CHECKS})}
    assert rows["drift"]["precision"] == rows["drift"]["recall"] == 1.0
    assert rows["label_disagreement"]["recall_triggered"] == 1.0
    assert rows["label_disagreement"]["precision"] == 1.0
    assert rows["update"]["clean_flagged"] == 0
    cleaned = MO.remove_flagged(faces, rep.flagged())
    assert len(cleaned) == int((~poison).sum()) and "mallory" not in cleaned.names
    assert cleaned.names == faces.names[:-1]


def test_relabelled_photo_disagrees_with_its_new_label(tmp_path):
    faces, _ = toy_people()
    old = export_faceset(faces, tmp_path / "ds", "toy")
    entries = list(old.entries)
    entries[13] = entries[13]._replace(label="p5")  # a photo of p1, now filed under p5
    new = old.__class__(old.name, old.identities, entries)
    rep = MO.monitor_refresh(old, new, load_faceset(tmp_path / "ds", new), PixelEmbedding(),
                             MO.MonitorParams(min_images=6))
    assert rep.candidates.nonzero().flatten().tolist() == [13]
    assert rep.flags["label_disagreement"].nonzero().flatten().tolist() == [13]
    assert not rep.flags["drift"].any()


def test_robust_z():
    z = MO.robust_z(np.array([1.0, 1.1, 0.9, 1.0, 5.0]))
    assert z[-1] > 10 and abs(z[0]) < 1
