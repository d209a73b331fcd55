"""Real-data layer: loaders, digests, downloads, safe extraction, mirror import, CLI.

Everything runs on tiny fixtures written to tmp_path, except the tests marked `real`,
which read the offline mirror (../shared/data or $ML07LAB_MIRROR). Without the mirror
they skip, or fail under CI=true, where the mirror is part of the contract.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from ml07lab.config import mirror_dir
from ml07lab.data import fetch as F
from ml07lab.data import real
from ml07lab.data.base import DataError
from ml07lab.data.folder import load_folder
from ml07lab.data.cli import add_data_commands


# --- fixtures ------------------------------------------------------------------------------

def _img(w: int, h: int, seed: int, mode: str = "L") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w) if mode == "L" else (h, w, 3)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _att_tree(root: Path, people=("s1", "s2", "s10"), n: int = 3) -> Path:
    for k, person in enumerate(people):
        (root / person).mkdir(parents=True)
        for i in range(1, n + 1):
            _img(92, 112, k * 10 + i).save(root / person / f"{i}.pgm")
    return root


def _lfw_tree(root: Path, counts: dict[str, int]) -> Path:
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(1, n + 1):
            _img(250, 250, k * 100 + i, "RGB").save(root / name / f"{name}_{i:04d}.jpg", quality=90)
    return root


def _olivetti_mat(path: Path, n_people: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (n_people * 10, 64, 64), dtype=np.uint8)
    faces[:, :8, :] = 255  # a bright band at the top: catches a transposed reshape
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = np.stack([f.reshape(-1, order="F") for f in faces], axis=1)  # MATLAB column-major
    scipy.io.savemat(str(path), {"faces": cols})
    return faces


def _write_sums(mirror: Path) -> None:
    lines = [f"{_sha(p)}  ./{p.relative_to(mirror).as_posix()}"
             for p in sorted(mirror.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (mirror / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _mirror(tmp: Path) -> Path:
    m = tmp / "mirror"
    _att_tree(m / "att_faces", people=("s1", "s2"), n=2)
    _olivetti_mat(m / "olivetti" / "olivettifaces.mat")
    _lfw_tree(m / "lfw_min5", {"Ann_Bee": 5, "Cy_Dee": 6})
    (m / "lfw_min5" / "Ann_Bee" / ".MATLABDriveTag").write_text("junk")
    _write_sums(m)
    return m


def _tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _jpeg_bytes(seed: int) -> bytes:
    b = io.BytesIO()
    _img(250, 250, seed, "RGB").save(b, "JPEG")
    return b.getvalue()


# --- loaders ------------------------------------------------------------------------------

def test_load_att_pgm_shapes_labels_names_files(tmp_path: Path) -> None:
    _att_tree(tmp_path / "att_faces")
    fs = real.load_att(tmp_path, 32)  # finds att_faces/ below the raw root
    assert fs.images.shape == (9, 1, 32, 32) and fs.images.dtype == torch.uint8
    assert fs.names == ("s1", "s2", "s10")  # natural order, not s1, s10, s2
    assert fs.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert fs.files[:3] == ("s1/1.pgm", "s1/2.pgm", "s1/3.pgm") and fs.source == "att"


def test_load_olivetti_orientation_labels_and_fallback(tmp_path: Path) -> None:
    faces = _olivetti_mat(tmp_path / "olivetti" / "olivettifaces.mat")
    fs = real.load_att(tmp_path, 64)  # no PGMs: falls back to the .mat
    assert fs.images.shape == (20, 1, 64, 64) and fs.names == ("s1", "s2")
    assert fs.labels.tolist() == [i // 10 for i in range(20)]
    assert np.array_equal(fs.images[:, 0].numpy(), faces)  # upright, not transposed
    assert fs.files[0] == "olivetti/olivettifaces.mat#0"
    assert real.load_olivetti(tmp_path / "olivetti" / "olivettifaces.mat", 32).images.shape[-1] == 32
    _att_tree(tmp_path / "att_faces", people=("s1",), n=2)
    assert real.load_att(tmp_path, 32).files[0] == "s1/1.pgm"  # PGMs win when present


def test_load_lfw_min_images_names_files(tmp_path: Path) -> None:
    _lfw_tree(tmp_path / "lfw_min5", {"Zed_Z": 3, "Amy_A": 2, "Bob_B": 1})
    fs = real.load_lfw(tmp_path, 24, min_images=2)
    assert fs.names == ("Amy_A", "Zed_Z") and fs.images.shape == (5, 1, 24, 24)
    assert fs.labels.tolist() == [0, 0, 1, 1, 1]
    assert fs.files[0] == "Amy_A/Amy_A_0001.jpg" and fs.source == "lfw"
    with pytest.raises(DataError, match="min_images"):
        real.load_lfw(tmp_path, 24, min_images=10)


def test_load_folder_mixed_formats_and_hidden_files(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    _img(120, 90, 1, "RGB").save(root / "alice" / "a.jpg")
    _img(80, 100, 2).save(root / "alice" / "b.png")
    _img(60, 60, 3).save(root / "bob" / "1.bmp")
    _img(60, 60, 4).save(root / "bob" / "2.pgm")
    (root / "bob" / ".DS_Store").write_bytes(b"\0junk")
    (root / "bob" / "notes.txt").write_text("not a face")
    fs = load_folder(root, 16)
    assert fs.names == ("alice", "bob") and fs.images.shape == (4, 1, 16, 16)
    assert fs.source == f"folder:{root}"


# --- bad input: one clear DataError each --------------------------------------------------

def test_missing_dataset_folder_says_how_to_prepare(tmp_path: Path) -> None:
    for load in (real.load_att, real.load_lfw):
        with pytest.raises(DataError) as e:
            load(tmp_path / "nope", 32)
        msg = str(e.value)
        assert str(tmp_path / "nope") in msg and "make data" in msg
        assert "ml07lab data import" in msg and "ML07LAB_MIRROR" in msg


def test_corrupt_image_names_file_and_chains_cause(tmp_path: Path) -> None:
    _lfw_tree(tmp_path / "lfw_min5", {"Amy_A": 2})
    bad = tmp_path / "lfw_min5" / "Amy_A" / "Amy_A_0002.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage, not a jpeg")
    with pytest.raises(DataError) as e:
        real.load_lfw(tmp_path, 32, min_images=2)
    assert "Amy_A/Amy_A_0002.jpg" in str(e.value) and "delete or replace" in str(e.value)
    assert e.value.__cause__ is not None  # PIL's error is chained, not the message


def test_folder_errors_empty_and_too_few_images(tmp_path: Path) -> None:
    (tmp_path / "empty" / "alice").mkdir(parents=True)
    with pytest.raises(DataError, match="No images usable"):
        load_folder(tmp_path / "empty", 16)
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "missing", 16)
    root = tmp_path / "few"
    for person, n in (("alice", 2), ("bob", 1)):
        (root / person).mkdir(parents=True)
        for i in range(n):
            _img(40, 40, i).save(root / person / f"{i}.png")
    fs = load_folder(root, 16)  # bob is skipped, and the report says why
    assert fs.names == ("alice",) and fs.meta["skipped_files"] == {"bob/0.png": "person folder with fewer than 2 usable photos"}
    (root / "alice" / "1.png").unlink()
    with pytest.raises(DataError, match="fewer than 2") as e:
        load_folder(root, 16)
    assert "bob/0.png" in str(e.value)


# --- download: verify, skip when cached, atomic --------------------------------------------

def test_download_file_url_verify_and_skip_when_cached(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(3000))
    dest = tmp_path / "cache" / "blob.bin"
    assert F.download(src.as_uri(), _sha(src), dest, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()

    def no_network(*a, **k):
        raise AssertionError("a verified cached file must not be fetched again")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    F.download(src.as_uri(), _sha(src), dest, progress=False)


def test_download_mismatch_raises_and_leaves_no_partial_file(tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(b"tampered payload")
    dest = tmp_path / "cache" / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(DataError) as e:
        F.download(src.as_uri(), wrong, dest, progress=False)
    msg = str(e.value)
    assert wrong in msg and _sha(src) in msg and "expected" in msg and "Retry" in msg
    assert not dest.exists() and list((tmp_path / "cache").iterdir()) == []


def test_download_replaces_a_cached_file_with_the_wrong_digest(tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(b"good")
    dest = tmp_path / "blob.cached"
    dest.write_bytes(b"stale")
    F.download(src.as_uri(), _sha(src), dest, progress=False)
    assert dest.read_bytes() == b"good"


def test_download_unreachable_url_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="offline"):
        F.download((tmp_path / "absent").as_uri(), "0" * 64, tmp_path / "x", progress=False)
    assert list(tmp_path.iterdir()) == []


# --- safe extraction --------------------------------------------------------------------

@pytest.mark.parametrize("evil", ["../evil", "lfw/../../evil", "/abs/evil"])
def test_safe_extract_refuses_path_traversal(tmp_path: Path, evil: str) -> None:
    arc = _tgz(tmp_path / "evil.tgz", {"lfw/ok.jpg": b"x", evil: b"pwned"})
    with pytest.raises(DataError, match="Refusing"):
        F.safe_extract(arc, tmp_path / "out")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "lfw" / "ok.jpg").exists()


def test_safe_extract_refuses_symlinks(tmp_path: Path) -> None:
    arc = tmp_path / "link.tgz"
    with tarfile.open(arc, "w:gz") as tar:
        info = tarfile.TarInfo("lfw/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="links"):
        F.safe_extract(arc, tmp_path / "out")


# --- fetch (file:// stands in for figshare) ----------------------------------------------

def test_fetch_lfw_and_att_via_file_url(tmp_path: Path, monkeypatch) -> None:
    files = {f"lfw/Ann_Bee/Ann_Bee_{i:04d}.jpg": _jpeg_bytes(i) for i in range(1, 6)}
    files.update({f"lfw/Few_Pics/Few_Pics_{i:04d}.jpg": _jpeg_bytes(10 + i) for i in range(1, 3)})
    arc = _tgz(tmp_path / "lfw.tgz", files)
    mat = tmp_path / "srv" / "olivettifaces.mat"
    _olivetti_mat(mat)
    monkeypatch.setitem(F.DATA_HUB, "lfw.tgz", (arc.as_uri(), _sha(arc)))
    monkeypatch.setitem(F.DATA_HUB, "olivettifaces.mat", (mat.as_uri(), _sha(mat)))
    data = tmp_path / "data"
    assert not F.is_prepared("lfw", data)
    root = F.fetch("lfw", data, progress=False)
    assert root == F.raw_root("lfw", data) and F.is_prepared("lfw", data)
    assert sorted(p.name for p in (root / "lfw_min5").iterdir()) == ["Ann_Bee"]  # >= 5 only
    assert real.load_lfw(root, 16).images.shape == (5, 1, 16, 16)
    F.fetch("att", data, progress=False)
    assert F.is_prepared("att", data) and len(real.load_att(F.raw_root("att", data), 16)) == 20

    monkeypatch.setitem(F.DATA_HUB, "lfw.tgz", (arc.as_uri(), "f" * 64))
    (data / "downloads" / "lfw.tgz").unlink()
    with pytest.raises(DataError, match="sha256 mismatch"):
        F.fetch("lfw", data, progress=False)


def test_unknown_dataset_name_lists_valid_names(tmp_path: Path) -> None:
    for call in (lambda: F.fetch("celeba", tmp_path), lambda: F.raw_root("celeba", tmp_path),
                 lambda: F.import_mirror("celeba", tmp_path, tmp_path)):
        with pytest.raises(DataError) as e:
            call()
        assert "celeba" in str(e.value) and "att, lfw" in str(e.value)


# --- import from a mirror ------------------------------------------------------------------

def test_import_mirror_verifies_copies_and_is_idempotent(tmp_path: Path) -> None:
    m, data = _mirror(tmp_path), tmp_path / "data"
    for name in ("att", "lfw"):
        F.import_mirror(name, m, data)
        assert F.is_prepared(name, data)
    att, lfw = F.raw_root("att", data), F.raw_root("lfw", data)
    assert (att / "olivetti" / "olivettifaces.mat").is_file()
    assert len(real.load_att(att, 16)) == 4 and len(real.load_lfw(lfw, 16)) == 11
    assert not (lfw / "lfw_min5" / "Ann_Bee" / ".MATLABDriveTag").exists()
    one = lfw / "lfw_min5" / "Cy_Dee" / "Cy_Dee_0001.jpg"
    before = (one.stat().st_ino, one.stat().st_mtime_ns)
    F.import_mirror("lfw", m, data)  # second run: nothing rewritten
    assert (one.stat().st_ino, one.stat().st_mtime_ns) == before


def test_import_mirror_names_a_tampered_file(tmp_path: Path) -> None:
    m = _mirror(tmp_path)
    bad = m / "lfw_min5" / "Cy_Dee" / "Cy_Dee_0003.jpg"
    bad.write_bytes(bad.read_bytes() + b"!")
    with pytest.raises(DataError) as e:
        F.import_mirror("lfw", m, tmp_path / "data")
    assert "Cy_Dee_0003.jpg" in str(e.value) and "checksum" in str(e.value)
    assert not F.is_prepared("lfw", tmp_path / "data")


def test_import_mirror_missing_source_or_sums(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        F.import_mirror("att", tmp_path / "no_mirror", tmp_path / "data")
    assert "no_mirror" in str(e.value) and "--from" in str(e.value) and "ML07LAB_MIRROR" in str(e.value)
    (tmp_path / "bare").mkdir()
    with pytest.raises(DataError, match="SHA256SUMS"):
        F.import_mirror("att", tmp_path / "bare", tmp_path / "data")


# --- CLI -----------------------------------------------------------------------------------

def _cli(*argv: str) -> int:
    p = argparse.ArgumentParser(prog="ml07lab")
    add_data_commands(p.add_subparsers(dest="command"))
    a = p.parse_args(list(argv))
    return a.func(a)


def test_cli_import_and_info_json(tmp_path: Path, monkeypatch, capsys) -> None:
    m = _mirror(tmp_path)
    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path / "data"))
    assert _cli("data", "import", "all", "--from", str(m)) == 0
    capsys.readouterr()
    assert _cli("data", "info", "--json") == 0
    info = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert info["att"]["prepared"] and info["att"]["identities"] == 2 and info["att"]["images"] == 4
    assert info["lfw"]["by_min_images"]["5"] == {"identities": 2, "images": 11}
    assert _cli("data", "import", "lfw", "--from", str(tmp_path / "nowhere")) == 2
    assert "nowhere" in capsys.readouterr().err


# --- the real mirror -------------------------------------------------------------------------

def _real_mirror() -> Path:
    m = mirror_dir()
    if (m / "SHA256SUMS").is_file():
        return m
    msg = (f"Real-face mirror not found at {m} (no SHA256SUMS). Put the mirror at "
           "../shared/data beside the checkout or set ML07LAB_MIRROR=/path/to/mirror.")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.mark.real
def test_real_mirror_import_and_load(tmp_path: Path) -> None:
    m, data = _real_mirror(), tmp_path / "data"
    for name in ("att", "lfw"):  # (how long this takes is for `make bench`, not a test)
        F.import_mirror(name, m, data)
    att = real.load_att(F.raw_root("att", data), 32)
    lfw = real.load_lfw(F.raw_root("lfw", data), 32, min_images=20)
    assert att.images.shape == (400, 1, 32, 32) and att.num_identities == 40
    assert att.names[:3] == ("s1", "s2", "s3") and att.counts().tolist() == [10] * 40
    assert lfw.num_identities >= 40 and int(lfw.counts().min()) >= 20
    # Framing guard: the PGM crop, the hand-aligned Olivetti faces and the LFW crop must
    # frame the mean face alike, or the LFW -> AT&T transfer learns framing, not faces.
    oli = real.load_olivetti(F.raw_root("att", data) / "olivetti" / "olivettifaces.mat", 32)
    mean = [s.images.float().mean((0, 1)).flatten().numpy() for s in (att, oli, lfw)]
    assert np.corrcoef(mean[0], mean[1])[0, 1] > 0.8
    assert np.corrcoef(mean[0], mean[2])[0, 1] > 0.7


@pytest.mark.real
def test_real_mirror_olivetti_digest(tmp_path: Path) -> None:
    """The mirror's .mat must match its own SHA256SUMS; and ideally scikit-learn's digest."""
    m = _real_mirror()
    mat = m / "olivetti" / "olivettifaces.mat"
    assert _sha(mat) == F.read_sha256sums(m / "SHA256SUMS")["olivetti/olivettifaces.mat"]


@pytest.mark.real
@pytest.mark.xfail(strict=True, reason=(
    "The mirror's olivettifaces.mat (sha256 b1988d02...) is not byte-identical to the "
    "figshare file scikit-learn pins (b612fb96...); whether only the bytes or also the "
    "pixels differ cannot be checked offline. "
    "When the mirror is refreshed with the figshare file this XPASSes: drop the xfail."))
def test_real_mirror_olivetti_is_the_scikit_learn_file() -> None:
    m = _real_mirror()
    assert _sha(m / "olivetti" / "olivettifaces.mat") == F.DATA_HUB["olivettifaces.mat"][1]
