"""Issue 13: a malicious-artefact corpus, generated at test time, run against the
deployment gate (`isolation.gate`, `ml07lab deploy`) and `ml07lab audit`. Every item
must be refused with a named reason and no traceback, and no payload may ever run."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ml07lab.cli import main
from ml07lab.controls.isolation import gate as iso
from ml07lab.safety.corpus import Canary, build_corpus
from ml07lab.safety.folder import scan_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    items = build_corpus(root / "items", root / "canaries")
    yield root, items
    assert not any((root / "canaries").iterdir()), "a payload ran"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return iso.environments(tmp_path_factory.mktemp("envs"))


def _run_cli(argv: list[str], capsys) -> tuple[int | None, str]:  # noqa: ANN001
    """rc and output of `ml07lab ARGV` in-process; an escaping exception is a traceback."""
    try:
        rc = main(argv)
    except BaseException as e:  # noqa: BLE001 - anything escaping main is what a user would see as a traceback
        return None, f"Traceback: {type(e).__name__}: {e}"
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_corpus_is_large_and_covers_the_issue(corpus):
    _, items = corpus
    assert len(items) >= 30
    codes = {i.expect for i in items}
    for needed in ("pickle-imports", "torch-legacy-format", "raw-pickle", "disguised-pickle", "safetensors-huge-header",
                   "safetensors-header-past-eof", "safetensors-bad-header", "safetensors-overlapping-offsets",
                   "safetensors-offsets-out-of-range", "safetensors-dtype-shape-mismatch", "npy-object-array",
                   "npz-pickle", "zip-bomb", "symlink", "zip-path-traversal", "unsafe-name", "oversized"):
        assert needed in codes, needed
    assert {f"raw-pickle-protocol-{p}" for p in range(6)} <= {i.name for i in items}


def test_gate_refuses_every_item_with_a_named_reason(corpus, env, capsys):
    root, items = corpus
    refused, problems = 0, []
    for it in items:
        res = iso.gate(it.path, env)
        first = next(c for c in res.checks if not c["ok"]) if res.checks else None
        named = f"[{it.expect}]" in res.reason
        rc, out = _run_cli(["deploy", "--model", str(it.path), "--env", str(env.root)], capsys)
        try:
            iso.load_weights(it.path, env)
            loaded = True
        except iso.GateRefused:
            loaded = False
        ok = (not res.accepted and first is not None and first["check"] == "weights-only format" and named
              and rc == 1 and "Traceback" not in out and "REFUSED" in out and not loaded)
        refused += ok
        if not ok:
            problems.append(f"{it.name}: {res.reason} | rc={rc} {out[-200:]}")
    print(f"\ndeployment gate: {refused} refused / {len(items)} tried")
    assert not problems, "\n".join(problems)
    assert not any((root / "canaries").iterdir()), "a payload ran"


def test_audit_refuses_every_item_with_a_named_reason(corpus, tmp_path, capsys):
    root, items = corpus
    refused, problems = 0, []
    for it in items:
        out_dir = tmp_path / it.name
        rc, out = _run_cli(["audit", str(it.path), "--out", str(out_dir), "--profile", "ci", "--quiet"], capsys)
        report = json.loads((out_dir / "audit.json").read_text()) if (out_dir / "audit.json").is_file() else {}
        first = (report.get("checks") or [{}])[0]
        ok = (rc == 1 and "Traceback" not in out and first.get("status") == "fail"
              and any(f"[{it.expect}]" in f for f in first.get("details", {}).get("findings", [])))
        refused += ok
        if not ok:
            problems.append(f"{it.name}: rc={rc} {first.get('summary')} {out[-200:]}")
    print(f"\nml07lab audit: {refused} refused / {len(items)} tried")
    assert not problems, "\n".join(problems)
    assert not any((root / "canaries").iterdir()), "a payload ran"


@pytest.mark.parametrize("how", ["system", "open", "exec"])
def test_the_payloads_are_live(tmp_path, how):
    """The corpus proves something only if its payloads work: unpickled in a separate
    process, each creates its canary (a harmless empty file in a temp folder)."""
    canary = tmp_path / "canary"
    blob = tmp_path / "p.pkl"
    blob.write_bytes(pickle.dumps(Canary(canary, how), protocol=2))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(blob)!r}, 'rb').read())"],
                   check=True, cwd=tmp_path, timeout=60)
    assert canary.exists()


def test_signed_released_legacy_torch_and_disguised_pickle_are_refused(corpus, env, tmp_path):
    """The issue's bypasses, as found: signed by the organisation and released."""
    import shutil

    _, items = corpus
    by = {i.name: i.path for i in items}
    for name, code in (("legacy-torch-payload", "torch-legacy-format"), ("pickle-as-txt-protocol-4", "disguised-pickle")):
        d = tmp_path / name
        shutil.copytree(by[name], d)
        iso.sign_model_dir(d, env.private_key)
        rel = iso.release(d, env, name)
        res = iso.gate(rel, env)
        assert not res.accepted and f"[{code}]" in res.reason, res.reason
        assert [c["check"] for c in res.checks if not c["ok"]] == ["weights-only format"]
    # before issue 13 this was [] (only the magic-number stream was read)
    assert any(f.endswith("builtin__.exec") for f in iso.scan_pickle_file(by["legacy-torch-payload"] / "model.pt"))


def test_multi_stream_pickles_are_read_to_the_end():
    blob = pickle.dumps({"a": 1}, protocol=2) + pickle.dumps(Canary(Path("/nonexistent/x")), protocol=2)
    assert ("posix", "system") in iso.pickle_globals(blob) or ("nt", "system") in iso.pickle_globals(blob)


def test_clean_artefacts_still_pass(corpus, env, tmp_path):
    root, _ = corpus
    assert scan_folder(root / "items" / "_outside") == []
    from ml07lab.artifacts import save_artifact

    d = tmp_path / "org"
    save_artifact(d, {"w": torch.ones(3)}, {"name": "org"})
    iso.sign_model_dir(d, env.private_key)
    assert iso.gate(iso.release(d, env, "org"), env).accepted


def test_unparsable_safetensors_is_one_clear_error(tmp_path):
    from ml07lab.artifacts import DIGEST, ArtifactError, artifact_digest, load_artifact, save_artifact, sha256_file

    d = tmp_path / "a"
    save_artifact(d, {"w": torch.ones(3)}, {"name": "a"})
    w = d / "model.safetensors"
    w.write_bytes(b"\xff" * 8 + w.read_bytes()[8:])  # header length now absurd
    meta = json.loads((d / "meta.json").read_text())
    meta["sha256"] = sha256_file(w)
    meta[DIGEST] = artifact_digest(meta)
    (d / "meta.json").write_text(json.dumps(meta))  # both digests agree: only parsing fails
    with pytest.raises(ArtifactError, match=r"not a valid safetensors file.*safetensors-huge-header"):
        load_artifact(d)


def test_cli_end_to_end_no_traceback(corpus, env, tmp_path):
    """Two items through the real `ml07lab` entry point, in a fresh process."""
    _, items = corpus
    by = {i.name: i.path for i in items}
    envv = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv in (["deploy", "--model", str(by["legacy-torch-payload"]), "--env", str(env.root)],
                 ["audit", str(by["st-overlapping-offsets"]), "--out", str(tmp_path / "r"), "--profile", "ci", "--quiet"]):
        p = subprocess.run([sys.executable, "-m", "ml07lab", *argv], capture_output=True, text=True, env=envv, timeout=300)
        assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr, p.stderr[-500:]


def test_safetensors_whose_header_length_looks_like_a_pickle_passes(tmp_path):
    """A header of 128 bytes starts the file with b'\\x80\\x00', a pickle's PROTO opcode
    to a naive sniffer: clean weights must never be refused for that."""
    from safetensors.torch import save_file

    for k in range(1, 200):
        save_file({"w" * k: torch.ones(1)}, str(tmp_path / "model.safetensors"))
        if (tmp_path / "model.safetensors").read_bytes()[0] == 0x80:
            break
    assert (tmp_path / "model.safetensors").read_bytes()[:2] == b"\x80\x00"
    assert scan_folder(tmp_path) == []
