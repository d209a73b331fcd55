"""Dataset manifests: round trip, what a diff reports, and paths that must be refused."""
from __future__ import annotations

import json

import pytest
import torch

from ml07lab.data.manifest import (MANIFEST, Manifest, build_manifest, check_rel_path, diff_manifests,
                                       export_faceset, load_faceset, read_manifest)
from ml07lab.data.base import DataError, FaceSet


def toy_faces(n_ids: int = 4, per_id: int = 5, size: int = 16, seed: int = 0) -> FaceSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_ids * per_id, 1, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    return FaceSet(images, labels, tuple(f"p{i}" for i in range(n_ids)), "toy")


@pytest.fixture()
def exported(tmp_path):
    faces = toy_faces()
    return faces, tmp_path / "ds", export_faceset(faces, tmp_path / "ds", "toy")


def test_round_trip(exported):
    faces, root, m = exported
    assert (root / MANIFEST).is_file() and len(m) == len(faces)
    again = read_manifest(root)
    assert again.canonical_bytes() == m.canonical_bytes()
    e = again.entries[0]
    assert set(e._fields) == {"path", "sha256", "label", "size", "source", "added"}
    assert e.path == "p0/00000.png" and e.label == "p0" and e.source == "toy" and e.size > 0
    loaded = load_faceset(root)
    assert loaded.fingerprint() == faces.fingerprint()  # PNG is lossless, order and labels kept


def test_export_is_idempotent_and_build_matches(exported):
    faces, root, m = exported
    assert export_faceset(faces, root, "toy").canonical_bytes() == m.canonical_bytes()
    built = build_manifest(root, "toy", previous=m)
    assert [(e.path, e.sha256, e.label, e.added) for e in built.entries] == \
           [(e.path, e.sha256, e.label, e.added) for e in m.entries]


def test_export_refuses_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="refusing"):
        export_faceset(toy_faces(), tmp_path / "x")


def test_diff_categories_and_drift(exported):
    faces, root, old = exported
    (root / "p1" / "00005.png").unlink()  # removed
    b = bytearray((root / "p2" / "00010.png").read_bytes())
    b[-20] ^= 1
    (root / "p2" / "00010.png").write_bytes(bytes(b))  # changed
    for i in range(3):  # added: p3 gains 3 images
        (root / "p3" / f"new_{i}.png").write_bytes((root / "p0" / "00000.png").read_bytes())
    new = build_manifest(root, "toy", previous=old)
    d = Manifest(new.name, new.identities, [e._replace(label="p0") if e.path == "p3/00015.png" else e
                                            for e in new.entries])
    diff = diff_manifests(old, d)
    assert diff.removed == ["p1/00005.png"]
    assert diff.changed == ["p2/00010.png"]
    assert sorted(diff.added) == [f"p3/new_{i}.png" for i in range(3)]
    assert diff.relabelled == [("p3/00015.png", "p3", "p0")]
    drift = {r["identity"]: r["delta"] for r in diff.drift}
    assert drift == {"p0": 1, "p1": -1, "p2": 0, "p3": 2}
    assert diff.drift[0]["identity"] == "p3"  # largest gain first
    assert diff.summary()["added"] == 3
    assert diff.touched() == {*diff.added, "p2/00010.png", "p3/00015.png"}


def test_labels_come_from_the_manifest(exported):
    faces, root, m = exported
    d = m.to_dict()
    d["entries"][0]["label"] = "p3"
    (root / MANIFEST).write_text(json.dumps(d))
    loaded = load_faceset(root)  # an unchecked loader trusts the edited label
    assert loaded.names[int(loaded.labels[0])] == "p3"


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x.png", "a/../../x.png", "a\\b.png", "a//b.png"])
def test_unsafe_paths_refused(bad):
    with pytest.raises(DataError, match="Unsafe path"):
        check_rel_path(bad)


def test_manifest_with_unsafe_path_refused(exported):
    _, root, m = exported
    d = m.to_dict()
    d["entries"][0]["path"] = "../outside.png"
    (root / MANIFEST).write_text(json.dumps(d))
    with pytest.raises(DataError, match="Unsafe path"):
        read_manifest(root)


def test_not_a_manifest(tmp_path):
    (tmp_path / MANIFEST).write_text('{"format": "something-else"}')
    with pytest.raises(DataError, match="not an ml07lab dataset manifest"):
        read_manifest(tmp_path)
    with pytest.raises(DataError, match="No manifest"):
        read_manifest(tmp_path / "nothing")
