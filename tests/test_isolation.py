"""Control 3, the deployment gate: every refusal, the one acceptance, and proof that a
planted pickle's payload never runs. No training: the models are random-init weights."""
from __future__ import annotations

import json
import pickle
import stat

import pytest
import torch

from ml07lab.artifacts import save_artifact
from ml07lab.config import get_config
from ml07lab.controls.isolation import hygiene
from ml07lab.controls.isolation import gate as iso
from ml07lab.models import build_backbone


def cli_main(argv: list[str]) -> int:
    """The `ml07lab` parser with this control's commands (the lead registers them in cli.py)."""
    import argparse

    from ml07lab.controls.isolation.cli import add_isolation_commands

    parser = argparse.ArgumentParser(prog="ml07lab")
    add_isolation_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def cfg():
    return get_config("ci")


@pytest.fixture()
def env(tmp_path):
    return iso.environments(tmp_path / "envs")


@pytest.fixture()
def model_dir(tmp_path, cfg):
    torch.manual_seed(0)
    d = tmp_path / "hub" / "some-model"
    save_artifact(d, build_backbone(cfg).state_dict(), {"name": "some-model"})
    (d / "README.md").write_text("A model card.\n")
    return d


@pytest.fixture()
def released(env, model_dir):
    out = env.models / "org-model"
    import shutil

    shutil.copytree(model_dir, out)
    iso.sign_model_dir(out, env.private_key)
    return iso.release(out, env, "org-model")


def _failed(res: iso.GateResult) -> list[str]:
    return [c["check"] for c in res.checks if not c["ok"]]


def test_environments_are_separate(env):
    assert env.private_key.is_file() and env.public_key.is_file()
    assert stat.S_IMODE(env.private_key.stat().st_mode) == 0o600
    deploy_files = [p.name for p in env.deployment.rglob("*")]
    assert env.private_key.name not in deploy_files, "the private key never leaves the training environment"
    assert json.loads(env.allowlist.read_text()) == {"models": {}}


def test_released_model_is_accepted_and_read_only(env, released, cfg):
    res = iso.gate(released, env)
    assert res.accepted, res.reason
    for p in [released, *released.rglob("*")]:
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), p
    tensors, digest = iso.load_weights(released, env)
    assert digest in json.loads(env.allowlist.read_text())["models"]
    build_backbone(cfg).load_state_dict(tensors)


def test_refuses_unsigned(env, model_dir):
    res = iso.gate(model_dir, env)
    assert not res.accepted and "no signature" in res.reason and "ml07lab sign" in res.reason
    assert _failed(res) == ["signed by the organisation", "digest on the allowlist"]


def test_refuses_wrong_key(env, model_dir, tmp_path):
    iso.generate_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    iso.sign_model_dir(model_dir, tmp_path / "k.pem")
    res = iso.gate(model_dir, env)
    assert not res.accepted and "another key" in res.reason


def test_refuses_one_byte_changed(env, released, tmp_path):
    bad = iso.copy_with_one_byte_changed(released, tmp_path / "tampered")
    res = iso.gate(bad, env)
    assert not res.accepted and "model.safetensors" in res.reason and "changed since signing" in res.reason
    assert "digest on the allowlist" in _failed(res)


def test_refuses_signed_but_not_released(env, model_dir):
    iso.sign_model_dir(model_dir, env.private_key)
    res = iso.gate(model_dir, env)
    assert not res.accepted and _failed(res) == ["digest on the allowlist"]


@pytest.mark.parametrize("evade", [False, True])
def test_refuses_malicious_pickle_and_payload_never_runs(env, released, tmp_path, evade):
    marker = tmp_path / "PAYLOAD_RAN"
    bad = iso.plant_malicious_pickle(released, tmp_path / "evil", marker, evade_scanner=evade)
    iso.sign_model_dir(bad, env.private_key)  # even an insider's signature does not help
    res = iso.gate(bad, env)
    assert not res.accepted and _failed(res)[0] == "weights-only format"
    assert "carries code" in res.reason
    with pytest.raises(iso.GateRefused):
        iso.load_weights(bad, env)
    assert cli_main(["deploy", "--model", str(bad), "--env", str(env.root)]) == 1
    assert not marker.exists(), "the gate must never unpickle the file"


def test_modelscan_misses_what_the_allowlist_catches(tmp_path, released):
    pytest.importorskip("modelscan")
    bad = iso.plant_malicious_pickle(released, tmp_path / "evil", tmp_path / "m", evade_scanner=True)
    assert iso.modelscan_issues(bad / "model.pt") == []  # a denylist scanner misses io.open
    assert any("io.open" in i for i in iso.scan_pickle_file(bad / "model.pt"))


def test_weights_only_torch_pickle_is_accepted(env, tmp_path, cfg):
    d = tmp_path / "pt-model"
    d.mkdir()
    torch.save(build_backbone(cfg).state_dict(), d / "model.pt")
    assert iso.scan_pickle_file(d / "model.pt") == []
    iso.sign_model_dir(d, env.private_key)
    rel = iso.release(d, env, "pt-model")
    assert iso.gate(rel, env).accepted
    tensors, _ = iso.load_weights(rel, env)
    assert "embed.weight" in tensors


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_globals_reads_opcodes(protocol):
    class P:
        def __reduce__(self):
            return (print, ("hi",))

    found = iso.pickle_globals(pickle.dumps({"a": [1, 2], "p": P()}, protocol=protocol))
    assert ("builtins", "print") in found or ("__builtin__", "print") in found


def test_refuses_code_files_and_non_folders(env, model_dir, tmp_path):
    (model_dir / "loader.py").write_text("print('hi')\n")
    assert "unknown file type" in iso.gate(model_dir, env).reason
    assert not iso.gate(tmp_path / "missing", env).accepted


def test_cli_sign_release_deploy(env, model_dir, capsys):
    assert cli_main(["deploy", "--model", str(model_dir), "--env", str(env.root)]) == 1
    assert "REFUSED" in capsys.readouterr().err
    assert cli_main(["sign", str(model_dir), "--env", str(env.root), "--release", "cli-model"]) == 0
    capsys.readouterr()
    assert cli_main(["deploy", "--model", str(env.registry / "cli-model"), "--env", str(env.root), "--profile", "ci"]) == 0
    assert "OK serving" in capsys.readouterr().out


def test_reinit_and_prune_helpers(cfg):
    from ml07lab.data.base import FaceSet

    torch.manual_seed(0)
    m = build_backbone(cfg).eval()
    r = hygiene.reinit_blocks(m, ("embed",))
    assert not torch.equal(r.embed.weight, m.embed.weight) and torch.equal(r.layer4[0].conv1.weight, m.layer4[0].conv1.weight)
    faces = FaceSet(torch.randint(0, 255, (16, 1, 32, 32), dtype=torch.uint8), torch.arange(16) % 4, tuple("abcd"), "t")
    p, mask = hygiene.prune(m, faces, 0.5)
    assert int(mask.sum()) == mask.numel() // 2
    assert torch.all(p.embed.weight[:, mask == 0] == 0)
    with pytest.raises(ValueError, match="Unknown hygiene option"):
        hygiene.hygiene_transfer(m, None, cfg, "magic")
