"""Bring your own faces: the file filter, the folder loader, its reports and warnings, the
`--company folder:PATH` door (config, env, CLI, lab.start) and the cache keys.

The folder sets are built from the imported AT&T photos (ml07lab.data.folder_sets), so the
tests marked `real` need the mirror, like the other real-face tests."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml07lab.data import files as F
from ml07lab.data.base import DataError


def _img_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format=fmt)
    return buf.getvalue()


# --- the one file filter ----------------------------------------------------------------

@pytest.mark.parametrize("name,data,want", [
    ("1", _img_bytes("GIF"), ("GIF", None)),
    ("1.gif", _img_bytes("GIF"), ("GIF", None)),
    ("photo", _img_bytes("PNG"), ("PNG", None)),
    ("1.pgm", _img_bytes("PPM"), ("PPM", None)),
    ("1.pgm.bad", _img_bytes("PPM"), (None, F.NOT_IMAGE_NAME)),
    ("s1.info", b"photographer\n", (None, F.NOT_IMAGE_NAME)),
    ("WS_FTP.LOG", b"ok\n", (None, F.NOT_IMAGE_NAME)),
    ("DEADJOE", b"*** aborted\n", (None, F.NOT_IMAGE_CONTENT)),
    ("notes.jpg", b"not a photo\n", (None, F.NOT_IMAGE_CONTENT)),
    ("empty.png", b"", (None, F.EMPTY)),
    (".DS_Store", b"\0\0\0\1Bud1", (None, F.HIDDEN)),
    ("1.jpg~", _img_bytes("JPEG"), (None, F.HIDDEN)),
])
def test_classify_judges_content_and_refuses_non_image_names(name: str, data: bytes, want) -> None:
    assert F.classify(name, data) == want


def test_classify_decode_catches_a_truncated_image() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, format="PNG")
    b = buf.getvalue()
    assert F.classify("x.png", b[: len(b) // 2])[0] == "PNG"  # header only: looks fine
    assert F.classify("x.png", b[: len(b) // 2], decode=True) == (None, F.DAMAGED)


def test_scan_folder_reports_every_skip_and_missing_folder(tmp_path: Path) -> None:
    for person in ("alice", "bob"):
        (tmp_path / person).mkdir()
        for i in range(2):
            (tmp_path / person / f"{i}").write_bytes(_img_bytes("GIF"))
    (tmp_path / "bob" / "DEADJOE").write_bytes(b"junk")
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "1.png").write_bytes(_img_bytes("PNG"))
    s = F.scan_folder(tmp_path)
    assert list(s.people) == ["alice", "bob"] and s.formats == {"GIF": 4}
    assert s.skipped == {"bob/DEADJOE": F.NOT_IMAGE_CONTENT, "carol/1.png": F.TOO_FEW}
    assert s.skipped_counts() == {F.NOT_IMAGE_CONTENT: 1, F.TOO_FEW: 1}
    with pytest.raises(DataError, match="one sub-folder of photos per person"):
        F.scan_folder(tmp_path / "nope")


def test_folder_spec_parsing() -> None:
    from ml07lab.data.folder import parse_spec
    from ml07lab.data.real import ATT_BOX

    assert parse_spec("folder:/x#crop=att")[1] == ATT_BOX
    assert parse_spec("folder:/x")[1] is None
    assert parse_spec("folder:/x#crop=0.1,0.2,0.9,0.95")[1] == (0.1, 0.2, 0.9, 0.95)
    for bad in ("att", "folder:/x#crop=big", "folder:/x#crop=0.9,0,0.1,1", "folder:/x#box=att"):
        with pytest.raises(DataError):
            parse_spec(bad)


# --- the door: config, env, CLI, lab.start ------------------------------------------------

def test_company_option_reaches_every_profile(tmp_path: Path, monkeypatch) -> None:
    from ml07lab.config import get_config

    spec = f"folder:{tmp_path}#crop=att"
    for profile in ("ci", "laptop"):
        cfg = get_config(profile, company=spec)
        assert cfg.company_dataset == spec and cfg.has_company_folder
    assert get_config("ci", company=spec).data_tag == f"synthetic->{spec}"
    assert not get_config("ci").has_company_folder and get_config("ci").data_tag == "synthetic"
    monkeypatch.setenv("ML07LAB_COMPANY", f"folder:{tmp_path}")
    assert get_config("ci").company_dataset == f"folder:{tmp_path.resolve()}"
    with pytest.raises(ValueError, match="ML07LAB_COMPANY"):
        get_config("ci", company="att")
    with pytest.raises(ValueError, match="not used on synthetic faces"):  # never silently ignored
        get_config("ci", company_dataset="att")
    assert get_config("ci", dataset="real", company_dataset="att").company_dataset == "att"
    monkeypatch.delenv("ML07LAB_COMPANY")
    monkeypatch.setenv("ML07LAB_DATASET", f"folder:{tmp_path}")  # the name the issue tried first
    assert get_config("ci").company_dataset == f"folder:{tmp_path.resolve()}"


def test_cli_accepts_company(tmp_path: Path, capsys) -> None:
    from ml07lab.cli import build_parser, config_from, main

    for cmd in (["scenario"], ["evaluate"], ["train-backbone"], ["run"]):
        args = build_parser().parse_args([*cmd, "--profile", "ci", "--company", f"folder:{tmp_path}"])
        assert config_from(args).company_dataset == f"folder:{tmp_path.resolve()}"
    assert main(["evaluate", "--profile", "ci", "--company", f"folder:{tmp_path}/missing"]) == 2
    assert "not found" in capsys.readouterr().err


# --- on folders built from AT&T -------------------------------------------------------------

@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    from ml07lab.config import data_dir, mirror_dir
    from ml07lab.data import fetch
    from ml07lab.data.folder_sets import build_face_folders

    if not fetch.is_prepared("att", data_dir()):
        m = mirror_dir()
        if not (m / "SHA256SUMS").is_file():
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"AT&T mirror not found at {m}")
            pytest.skip(f"AT&T mirror not found at {m}")
        fetch.import_mirror("att", m, data_dir())
    return build_face_folders(tmp_path_factory.mktemp("faces"))


@pytest.mark.real
def test_export_with_att_crop_is_the_kits_att(sets) -> None:
    from ml07lab.config import data_dir
    from ml07lab.data.fetch import raw_root
    from ml07lab.data.folder import load_folder
    from ml07lab.data.real import load_att

    fs = load_folder(f"folder:{sets['export']}#crop=att", 32)
    att = load_att(raw_root("att", data_dir()), 32)
    assert fs.names == att.names and fs.fingerprint() == att.fingerprint()
    centre = load_folder(f"folder:{sets['export']}", 32)
    assert centre.fingerprint() != fs.fingerprint()  # the default centre square frames differently


@pytest.mark.real
def test_gif_and_extensionless_copies_load_like_the_export(sets) -> None:
    from ml07lab.data.folder import load_folder

    gif, png = load_folder(sets["gif"], 32), load_folder(sets["export"], 32)
    assert gif.meta["scan"]["formats"] == {"GIF": 400}
    assert any("." not in Path(f).name for f in gif.files) and any(f.endswith(".gif") for f in gif.files)
    assert gif.fingerprint() == png.fingerprint()  # grey GIF is lossless


@pytest.mark.real
def test_junk_is_skipped_with_its_reason_and_manifest_agrees(sets) -> None:
    from ml07lab.data.manifest import build_manifest
    from ml07lab.data.folder import load_folder
    from ml07lab.data.folder_sets import junk_files

    fs = load_folder(sets["junk"], 32)
    want = {rel: why for rel, (_, why) in junk_files(sets["junk"]).items()}
    assert fs.meta["skipped_files"] == want
    assert fs.fingerprint() == load_folder(sets["export"], 32).fingerprint()
    m = build_manifest(sets["junk"])
    listed = {e.path for e in m.entries}
    # The manifest lists by name and content, like the loader; it keeps a damaged image
    # (its bytes changed: a diff must show that) and the one-photo person (a dataset rule).
    kept = {"zz_one_photo/only.png", "s2/truncated.jpg"}
    assert listed - kept == set(fs.files) and kept <= listed
    assert set(m.meta["skipped"]) == set(want) - kept


@pytest.mark.real
def test_quality_and_size_warnings(sets) -> None:
    from ml07lab.data.folder import load_folder, size_warnings

    dark = load_folder(sets["dark"], 32).meta["quality_counts"]
    assert dark.get("too dark", 0) >= 300
    assert load_folder(sets["export"], 32).meta["quality_counts"].get("too dark", 0) == 0
    tiny = load_folder(f"folder:{sets['export']}#crop=0.4,0.4,0.6,0.6", 32).meta["quality_counts"]
    assert tiny.get("too small") == 400  # an 18x22 px crop upscaled to 32 px
    w = size_warnings({"company_people": 7, "outsider_people": 8},
                      {"n_genuine": 640, "n_splits": 20, "tar_at_far_1pct_split_sd": 0.03})
    assert len(w) == 3 and "Only 7 company people" in w[0] and "32 genuine pairs" in w[1] and "6 points" in w[2]


@pytest.mark.real
def test_scenario_data_and_keys_follow_the_folder(sets) -> None:
    from ml07lab.attack.scenario import attack_inputs
    from ml07lab.config import get_config
    from ml07lab.data.scenario import build_scenario_data
    from ml07lab.keys import inputs_key

    cfg = get_config("ci", company=f"folder:{sets['subset15']}")
    data = build_scenario_data(cfg)
    assert data.public.names[0].startswith("synth-") and data.company.num_identities == 7
    assert data.outsiders.num_identities == 8 and data.company.meta["scan"]["people"] == 15
    def key(c):  # the poisoned model's cache key: covers the company folder's content
        return inputs_key(attack_inputs(c, build_scenario_data(c)))

    keys = {key(get_config("ci", company=f"folder:{sets[v]}")) for v in ("export", "dark", "subset15")}
    keys.add(key(get_config("ci")))
    assert len(keys) == 4
