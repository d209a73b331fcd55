"""Provenance: a curator signs, the pipeline verifies, and every kind of tampering is refused
with an error that names the files."""
from __future__ import annotations

import argparse
import base64
import json
import shutil

import numpy as np
import pytest

from ml07lab.controls.trusted_data import provenance as P
from ml07lab.controls.trusted_data import tampering as T
from ml07lab.controls.trusted_data.cli import extend_data_commands
from ml07lab.data.manifest import MANIFEST, export_faceset, read_manifest
from ml07lab.data.base import DataError
from test_manifest import toy_faces


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    priv, pub = P.generate_key(d, "curator")
    other, other_pub = P.generate_key(d / "untrusted", "mallory")
    return priv, P.Keyring.from_paths(pub), other


@pytest.fixture()
def signed(tmp_path, keys):
    faces = toy_faces(n_ids=4, per_id=6)
    root = tmp_path / "ds"
    export_faceset(faces, root, "toy")
    P.sign_dataset(root, keys[0], "curator")
    return faces, root


def test_sign_and_verify(signed, keys):
    faces, root = signed
    v = P.verify_dataset(root, keys[1])
    assert v.signer == "curator" and len(v.manifest) == len(faces)
    assert v.faces.fingerprint() == faces.fingerprint()  # decoded from the verified bytes
    assert P.load_verified(root, keys[1]).fingerprint() == faces.fingerprint()
    priv = keys[0]
    assert oct(priv.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("kind", T.TAMPER_KINDS)
@pytest.mark.parametrize("cover", [False, True])
def test_each_tampering_refused_and_named(signed, keys, kind, cover):
    _, root = signed
    rng = np.random.default_rng(3)
    for _ in range(3):  # relabel picks a move or a label edit at random: try a few
        touched, restore = T.tamper(root, kind, rng, cover=cover)
        with pytest.raises(P.DatasetTamperedError) as e:
            P.verify_dataset(root, keys[1])
        cat = T.EXPECTED[kind]
        assert any(touched in f for f in e.value.files[cat]), e.value.files
        assert f"{cat} 1: " in str(e.value) and touched in str(e.value)
        assert "Do not train on it" in str(e.value)
        restore()
        P.verify_dataset(root, keys[1])


def test_relabel_by_label_edit(signed, keys):
    _, root = signed
    d = json.loads((root / MANIFEST).read_text())
    d["entries"][2]["label"] = "p3"
    (root / MANIFEST).write_text(json.dumps(d))
    with pytest.raises(P.DatasetTamperedError, match=r"relabelled 1: p0/00002.png \(p0 -> p3\)"):
        P.verify_dataset(root, keys[1])


def test_unsigned_refused(signed, keys):
    _, root = signed
    (root / P.SIGNATURE).unlink()
    with pytest.raises(P.UnsignedDatasetError, match="unsigned"):
        P.verify_dataset(root, keys[1])


def test_wrong_key_refused(signed, keys):
    _, root = signed
    P.sign_dataset(root, keys[2], "curator")  # a stranger's key, claiming the curator's name
    with pytest.raises(P.UnknownKeyError, match="unknown key"):
        P.verify_dataset(root, keys[1])


def test_altered_signed_payload_refused(signed, keys):
    _, root = signed
    env = json.loads((root / P.SIGNATURE).read_text())
    body = json.loads(base64.b64decode(env["payload"]))
    body["manifest"]["entries"][0]["label"] = "p1"
    env["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    (root / P.SIGNATURE).write_text(json.dumps(env))
    with pytest.raises(P.BadSignatureError, match="altered after signing"):
        P.verify_dataset(root, keys[1])
    (root / P.SIGNATURE).write_text("not json")
    with pytest.raises(P.BadSignatureError, match="not a valid signature file"):
        P.verify_dataset(root, keys[1])


def test_curator_will_not_sign_a_stale_manifest(signed, keys):
    _, root = signed
    (root / "p0" / "00000.png").unlink()
    with pytest.raises(DataError, match="does not match the files"):
        P.sign_dataset(root, keys[0])


def test_detached_signature_for_another_folder(signed, keys, tmp_path):
    faces, root = signed
    other = tmp_path / "feed"
    shutil.copytree(root, other)
    (other / P.SIGNATURE).unlink()
    (other / "p1" / "upload.png").write_bytes((root / "p0" / "00000.png").read_bytes())
    with pytest.raises(P.DatasetTamperedError, match="added 1: p1/upload.png"):
        P.verify_dataset(other, keys[1], signature_path=root / P.SIGNATURE)


def test_tampering_study_catches_all(signed, keys):
    _, root = signed
    r = T.tampering_study(root, keys[1], n=16, seed=1, progress=False)
    assert r["tamperings_caught"] == r["tamperings_tried"] == 16
    assert r["tamperings_named"] == 16
    assert P.verify_dataset(root, keys[1])  # the signed original is untouched


def test_demonstrate_refusals(signed, keys):
    _, root = signed
    out = T.demonstrate_refusals(root, keys[1], keys[2])
    assert out["restored"] == "ACCEPTED"
    assert out["unsigned"].startswith("UnsignedDatasetError")
    assert out["unknown key"].startswith("UnknownKeyError")
    for cat in ("added", "removed", "modified", "relabelled"):
        assert out[cat].startswith("DatasetTamperedError") and f"{cat} 1:" in out[cat]


def _cli(argv):
    parser = argparse.ArgumentParser(prog="ml07lab data")
    extend_data_commands(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_manifest_diff_sign_verify(signed, keys, tmp_path, capsys):
    _, root = signed
    kd = tmp_path / "k"
    assert _cli(["keygen", "alice", "--dir", str(kd)]) == 0
    assert _cli(["sign", str(root), "--key", str(kd / "alice.key"), "--signer", "alice"]) == 0
    assert _cli(["verify", str(root), "--trusted", str(kd)]) == 0
    assert _cli(["verify", str(root), "--trusted", str(keys[0]).replace(".key", ".pub")]) == 1
    assert "unknown key" in capsys.readouterr().err
    (root / "p2" / "00013.png").unlink()
    out = tmp_path / "v.json"
    assert _cli(["verify", str(root), "--trusted", str(kd), "--json", str(out)]) == 1
    assert json.loads(out.read_text())["files"] == {"removed": ["p2/00013.png"]}
    old = read_manifest(root)
    shutil.copy(root / MANIFEST, tmp_path / "old.json")
    assert _cli(["manifest", str(root), "--source", "test"]) == 0
    assert len(read_manifest(root)) == len(old) - 1
    assert _cli(["diff", str(tmp_path / "old.json"), str(root), "--json", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["removed_files"] == ["p2/00013.png"]
    assert _cli(["sign", str(root), "--key", str(tmp_path / "missing.key")]) == 2
