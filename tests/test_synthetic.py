"""The built-in synthetic faces: stable and hard enough to need learning (speed: `make bench`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml07lab.data.base import FaceSet
from ml07lab.data.synthetic import generate_faces, identity_params, raw_pixel_eer


def test_shapes_dtype_labels_names():
    fs = generate_faces(3, 4, size=32, seed=0, id_offset=40, source="synthetic-test")
    assert isinstance(fs, FaceSet)
    assert fs.images.shape == (12, 1, 32, 32) and fs.images.dtype == torch.uint8
    assert fs.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # identity-major
    assert fs.names == ("synth-0040", "synth-0041", "synth-0042")
    assert fs.source == "synthetic-test"
    assert fs.images.float().std() > 10  # not a blank canvas
    assert generate_faces(2, 2, size=64).images.shape == (4, 1, 64, 64)
    assert len(generate_faces(0, 3)) == 0


def test_deterministic_by_seed():
    a = generate_faces(4, 3, size=32, seed=5)
    b = generate_faces(4, 3, size=32, seed=5)
    c = generate_faces(4, 3, size=32, seed=6)
    assert a.fingerprint() == b.fingerprint()
    assert not torch.equal(a.images, c.images)


def test_identity_stable_across_pools_and_batches():
    # Pools (public / company / outsiders) are slices of one id space, so person 12
    # must look the same whichever call draws them.
    small = generate_faces(5, 4, size=32, seed=1, id_offset=10)
    big = generate_faces(20, 4, size=32, seed=1)
    assert torch.equal(small.images[8:12], big.images[48:52])
    assert small.names[2] == big.names[12] == "synth-0012"
    # Chunking (a speed detail) and asking for more photos change nothing either.
    assert torch.equal(generate_faces(20, 4, size=32, seed=1, chunk=7).images, big.images)
    assert torch.equal(generate_faces(1, 6, size=32, seed=1, id_offset=12).images[:4],
                       big.images[48:52])
    one = identity_params(np.array([12]), seed=1)
    many = identity_params(np.arange(20), seed=1)
    assert all(one[k][0] == many[k][12] for k in one)


def test_raw_pixels_do_not_solve_verification():
    fs = generate_faces(40, 10, size=32, seed=0, id_offset=10_000)  # unseen identities
    for centred in (False, True):
        eer = raw_pixel_eer(fs, centred=centred)
        assert 0.20 <= eer <= 0.45, (centred, eer)  # hard, but identity not drowned


def test_identities_differ_more_than_photos_of_one_person():
    fs = generate_faces(10, 20, size=32, seed=2)
    x = fs.images.float().reshape(10, 20, -1)
    first, second = x[:, :10].mean(1), x[:, 10:].mean(1)
    within = (first - second).norm(dim=1).mean()
    between = torch.cdist(first, first)[~torch.eye(10, dtype=torch.bool)].mean()
    assert between > 1.5 * within, (float(between), float(within))


def test_raw_pixel_eer_extremes():
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    same = FaceSet(torch.from_numpy(np.repeat(protos, 3, axis=0)),
                   torch.arange(4).repeat_interleave(3), tuple("abcd"), "test")
    assert raw_pixel_eer(same) == pytest.approx(0.0)
    noise = FaceSet(torch.from_numpy(rng.integers(0, 256, (200, 1, 8, 8), dtype=np.uint8)),
                    torch.arange(20).repeat_interleave(10), tuple(map(str, range(20))), "t")
    assert 0.35 < raw_pixel_eer(noise, centred=True) < 0.65
