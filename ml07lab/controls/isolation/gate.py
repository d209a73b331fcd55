"""Control 3: model isolation. Training and deployment are separate places on disk, and
only signed, allowlisted, weights-only artefacts cross from one to the other.

    <data>/envs/training/    keys/ (the organisation's signing key), models/ (its outputs)
    <data>/envs/quarantine/  third-party hub models: usable for training, never deployable
    <data>/envs/deployment/  registry/ (read-only), allowlist.json, trust/ (public key only)

The deployment gate loads a model only if (1) every file is weights-only or plain data,
judged by its content, never its name (ml07lab.safety): safetensors, or a torch zip pickle
whose imports, in every stream, are all on a short allowlist (checked by reading opcodes,
and by modelscan where installed; nothing is ever unpickled), (2) its
signature (model-signing, an EC key) verifies with the organisation's public key, and
(3) its weights' sha256 is on the allowlist. The gate says *who* and *what*, not
*whether the behaviour is safe*: transfer hygiene (hygiene.py)
(hygiene.py) is the ML-level half of isolation, keeping inherited behaviour out of the deployed model.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...artifacts import atomic_write_json, sha256_file
from ...config import data_dir
from .model_files import (  # noqa: F401 - re-exported: notebooks use isolation.pickle_globals & co
    ALLOWED_GLOBALS, PICKLES, SAFE_WEIGHTS, GateRefused, _make_readonly, _make_writable,
    copy_with_one_byte_changed, modelscan_issues, pickle_globals, plant_malicious_pickle, scan_pickle_file,
    weights_file,
)
from .hygiene import MAX_ASR, MAX_TAR_COST_PTS, calibration_tar, choose_option, hygiene_sweep, hygiene_transfer

SIGNATURE = "model.sig"
KEY_NAME = "org-signing"
PLAIN_DATA = (".json", ".md", ".txt", ".sig")
# --- the two environments -------------------------------------------------------------
@dataclass(frozen=True)
class Environments:
    root: Path

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def private_key(self) -> Path:
        return self.training / "keys" / f"{KEY_NAME}.pem"

    @property
    def models(self) -> Path:
        return self.training / "models"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def deployment(self) -> Path:
        return self.root / "deployment"

    @property
    def registry(self) -> Path:
        return self.deployment / "registry"

    @property
    def allowlist(self) -> Path:
        return self.deployment / "allowlist.json"

    @property
    def public_key(self) -> Path:
        return self.deployment / "trust" / f"{KEY_NAME}.pub.pem"

    def tree(self) -> str:
        """The folders and files, one per line (what notebook 06 shows)."""
        lines = []
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root)
            mode = stat.filemode(p.stat().st_mode)
            lines.append(f"{mode}  {'  ' * (len(rel.parts) - 1)}{rel.name}{'/' if p.is_dir() else ''}")
        return "\n".join(lines)


def generate_key(private_path: Path, public_path: Path) -> None:
    """A fresh P-256 key pair (model-signing's EC signer); the private half is 0600."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def environments(root: str | Path | None = None) -> Environments:
    """The environments under `root` (default <data>/envs), created with a signing key
    on first use. Only the public key is copied to the deployment side."""
    env = Environments(Path(root) if root else data_dir() / "envs")
    for d in (env.models, env.quarantine, env.registry):
        d.mkdir(parents=True, exist_ok=True)
    if not env.private_key.is_file():
        generate_key(env.private_key, env.public_key)
    if not env.allowlist.is_file():
        _write_readonly_json(env.allowlist, {"models": {}})
    return env


def _write_readonly_json(path: Path, obj: Any) -> None:
    if path.exists():
        _make_writable(path)
    atomic_write_json(path, obj)
    _make_readonly(path)


# --- signing --------------------------------------------------------------------------
def _hashing_config():  # noqa: ANN202
    import model_signing

    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=True)


def sign_model_dir(model_dir: str | Path, private_key: str | Path) -> Path:
    """Sign every file of `model_dir` (model-signing, EC key, offline); writes model.sig."""
    import model_signing

    from ...validation import check_ec_private_key

    d = Path(model_dir)
    if not d.is_dir():
        raise ValueError(f"model folder {d} does not exist (or is not a folder).")
    check_ec_private_key(private_key)  # before the old signature is removed
    (d / SIGNATURE).unlink(missing_ok=True)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=str(private_key)) \
        .set_hashing_config(_hashing_config()).sign(d, d / SIGNATURE)
    return d / SIGNATURE


def verify_model_dir(model_dir: str | Path, public_key: str | Path) -> None:
    """Raise ValueError (with model-signing's reason) unless the signature verifies."""
    import model_signing

    d = Path(model_dir)
    if not (d / SIGNATURE).is_file():
        raise ValueError(f"no signature ({SIGNATURE}) in {d}")
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=str(public_key)) \
            .set_hashing_config(_hashing_config()).verify(d, d / SIGNATURE)
    except Exception as e:  # InvalidSignature, key mismatch, hash mismatch, bad bundle
        raise ValueError(str(e) or type(e).__name__) from e


# --- the gate -------------------------------------------------------------------------
@dataclass
class GateResult:
    model: str
    accepted: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None
    scanners: dict[str, list[str]] = field(default_factory=dict)  # findings per scanner that ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_format(d: Path) -> tuple[bool, str, dict[str, list[str]]]:
    """(ok, detail, findings per scanner). Reads bytes and opcodes only."""
    from safetensors import safe_open

    from ...safety.folder import hazardous, refusal, scan_folder

    findings: dict[str, list[str]] = {"modelscan": [], "ml07lab opcode allowlist": []}
    have_modelscan = importlib.util.find_spec("modelscan") is not None
    sniffed = scan_folder(d)  # by content, never by name (issue 13); nothing is unpickled
    findings["ml07lab content sniff"] = [str(f) for f in sniffed]
    if sniffed:  # the scanners still run on pickles, for the record, unless reading is itself unsafe
        for p in [] if hazardous(sniffed) else sorted(q for q in d.iterdir() if q.suffix in PICKLES):
            try:
                findings["ml07lab opcode allowlist"] += scan_pickle_file(p)
                findings["modelscan"] += (modelscan_issues(p) or []) if have_modelscan else []
            except Exception as e:  # noqa: BLE001 - a scanner choking on crafted bytes is one more finding
                findings["ml07lab opcode allowlist"].append(f"{p.name}: scanner error ({type(e).__name__})")
        if not have_modelscan:
            del findings["modelscan"]
        if hazardous(sniffed):
            findings["hazard"] = [str(f) for f in sniffed if hazardous([f])]
        return False, refusal(sniffed), findings
    for p in sorted(d.rglob("*")):
        if p.is_symlink():
            return False, f"{p.name} is a symbolic link; copy real files into the model folder.", findings
        if p.is_dir():
            return False, f"{p.name}/ is a sub-folder; a model folder holds plain files only.", findings
        if p.suffix not in SAFE_WEIGHTS + PICKLES + PLAIN_DATA:
            return False, (f"{p.name}: unknown file type {p.suffix or '(none)'}; only weights "
                           f"({', '.join(SAFE_WEIGHTS + PICKLES)}) and plain data are served."), findings
        if p.suffix in SAFE_WEIGHTS:
            try:
                with safe_open(str(p), framework="pt") as f:
                    list(f.keys())
            except Exception as e:
                return False, f"{p.name} is not a valid safetensors file ({e}).", findings
        if p.suffix in PICKLES:
            findings["ml07lab opcode allowlist"] += scan_pickle_file(p)
            ms = modelscan_issues(p)
            findings["modelscan"] += ms or []
    if not have_modelscan:
        del findings["modelscan"]
    bad = [f"{k}: {v[0]}" for k, v in findings.items() if v]
    if bad:
        return False, (f"a pickle carries code ({bad[0]}). Only weights are served: convert it to "
                       "safetensors in the training environment."), findings
    try:
        weights_file(d)
    except GateRefused as e:
        return False, str(e), findings
    return True, "weights-only", findings


def gate(model_dir: str | Path, env: Environments) -> GateResult:
    """Run every check (none executes model code) and accept only if all pass."""
    d = Path(model_dir)
    if not d.is_dir():
        return GateResult(str(d), False, f"refused: {d} is not a model folder.", [])
    checks: list[dict[str, Any]] = []
    ok, detail, scanners = _check_format(d)
    checks.append({"check": "weights-only format", "ok": ok, "detail": detail})
    if scanners.pop("hazard", None):  # links, special files, huge files, bombs: read nothing more
        checks += [{"check": c, "ok": False, "detail": "not run: reading this folder any further is unsafe"}
                   for c in ("signed by the organisation", "digest on the allowlist")]
        return GateResult(str(d), False, f"refused (weights-only format): {detail}", checks, None, scanners)
    try:
        verify_model_dir(d, env.public_key)
        checks.append({"check": "signed by the organisation", "ok": True, "detail": "signature verifies"})
    except ValueError as e:
        msg = str(e)
        if msg.startswith("no signature"):
            msg += ". Only models signed in the training environment are deployed (`ml07lab sign`)."
        elif "Key mismatch" in msg or "Signature" not in msg:
            msg = f"signed with another key, not the organisation's ({env.public_key.name}): {msg}"
        else:
            changed = re.findall(r"Hash mismatch for '([^']+)'", msg) + [
                f"{kind.lower()}: {names}" for kind, names in re.findall(r"(Extra|Missing) files? found in model '[^']*': ([^\"\\]]+)", msg)]
            changed = changed or [msg[:120]]
            msg = f"files changed since signing ({', '.join(changed)}). Do not deploy it; rebuild and re-sign it."
        checks.append({"check": "signed by the organisation", "ok": False, "detail": msg})
    digest = None
    try:
        digest = sha256_file(weights_file(d))
        allowed = json.loads(env.allowlist.read_text()).get("models", {})
        on = digest in allowed
        checks.append({"check": "digest on the allowlist", "ok": on, "detail": (
            f"released as {allowed[digest].get('name')}" if on else
            f"sha256 {digest[:16]}… is not on {env.allowlist.name}; release it from the training environment.")})
    except GateRefused as e:
        checks.append({"check": "digest on the allowlist", "ok": False, "detail": str(e)})
    failed = [c for c in checks if not c["ok"]]
    reason = "all checks passed" if not failed else f"refused ({failed[0]['check']}): {failed[0]['detail']}"
    return GateResult(str(d), not failed, reason, checks, digest, scanners)


def load_weights(model_dir: str | Path, env: Environments) -> tuple[dict, str]:
    """The deployment side's only loader: gate first, then safetensors or
    torch.load(weights_only=True). Raises GateRefused with the gate's reason."""
    import torch
    from safetensors.torch import load_file

    res = gate(model_dir, env)
    if not res.accepted:
        raise GateRefused(res.reason)
    w = weights_file(Path(model_dir))
    tensors = load_file(str(w)) if w.suffix in SAFE_WEIGHTS else torch.load(w, map_location="cpu", weights_only=True)
    return tensors, str(res.digest)


def release(model_dir: str | Path, env: Environments, name: str) -> Path:
    """The hand-over: verify the training side's signature, copy the folder into the
    deployment registry (read-only) and add its digest to the allowlist."""
    src = Path(model_dir)
    verify_model_dir(src, env.public_key)
    dst = env.registry / name
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    _make_readonly(dst)
    allow = json.loads(env.allowlist.read_text())
    allow.setdefault("models", {})[sha256_file(weights_file(dst))] = {"name": name}
    _write_readonly_json(env.allowlist, allow)
    return dst


def quarantine_hub_model(name: str, env: Environments) -> Path:
    """Download a hub model into quarantine (digest-checked against its card)."""
    from ... import hub

    dst = env.quarantine / name
    hub.download(name, dst)
    return dst


# --- the whole story: quarantine -> hygiene -> audit -> sign -> release -> gate ------------
def promote_hub_model(cfg, data, env: Environments, hub_name: str, option: str, name: str | None = None,  # noqa: ANN001
                      min_tar: float = 0.8, progress: bool = True) -> tuple[Path, dict]:
    """Quarantine a hub model, transfer it with a hygiene option in the training
    environment, audit clean quality on the company's own photos, sign, release.
    Raises GateRefused (nothing released) when the audit fails."""
    from ...artifacts import load_artifact, save_artifact
    from ...backbones import unpack

    q = quarantine_hub_model(hub_name, env)
    art = load_artifact(q)  # safetensors only, digest-checked
    model, info = hygiene_transfer(unpack(art.tensors, cfg)[0], data, cfg, option, progress)
    audit = {"source": hub_name, "source_sha256": art.meta["sha256"], "hygiene": option, **info,
             "calibration_tar_at_far_1pct": calibration_tar(model, data), "min_required": min_tar}
    audit["passed"] = audit["calibration_tar_at_far_1pct"] >= min_tar
    if not audit["passed"]:
        raise GateRefused(f"audit failed: calibration TAR {audit['calibration_tar_at_far_1pct']:.3f} < {min_tar}; not released.")
    name = name or f"{hub_name}-{option}"
    out = env.models / name
    if out.exists():
        shutil.rmtree(out)
    save_artifact(out, dict(model.state_dict()), {"name": name, "audit": audit})
    atomic_write_json(out / "audit.json", audit)
    sign_model_dir(out, env.private_key)
    return release(out, env, name), audit


def gate_demo(cfg, env: Environments | None = None, option: str | None = None, progress: bool = False) -> dict[str, Any]:  # noqa: ANN001
    """Every case notebook 06 shows, run through the gate: the hub model as downloaded,
    re-signed by the attacker, the organisation's model (released, tampered, unreleased),
    and two malicious pickles. Records whether either payload ran."""
    from ...attack.scenario import HUB_POISONED, publish_scenario_models
    from ...data.scenario import build_scenario_data

    if env is None:  # a fresh, throw-away pair of environments beside the real ones
        root = data_dir() / "envs-demo"
        if root.exists():
            _make_writable(root)
            shutil.rmtree(root)
        env = environments(root)
    data = build_scenario_data(cfg)
    publish_scenario_models(cfg, data, progress)
    option = option or choose_option(hygiene_sweep(cfg, progress=progress))["option"]
    released, audit = promote_hub_model(cfg, data, env, HUB_POISONED, option, progress=progress)
    attacker = env.root / "attacker"
    generate_key(attacker / "key.pem", attacker / "key.pub.pem")
    resigned = attacker / "resigned"
    if resigned.exists():
        shutil.rmtree(resigned)
    shutil.copytree(env.quarantine / HUB_POISONED, resigned)
    sign_model_dir(resigned, attacker / "key.pem")
    unreleased = env.models / "hub-model-signed-by-mistake"  # valid signature, never released
    if unreleased.exists():
        shutil.rmtree(unreleased)
    shutil.copytree(env.quarantine / HUB_POISONED, unreleased)
    sign_model_dir(unreleased, env.private_key)
    markers = {k: attacker / f"PAYLOAD_RAN_{k}" for k in ("exec", "evade")}
    cases = {
        "hub model, unsigned": env.quarantine / HUB_POISONED,
        "hub model, signed by the attacker's key": resigned,
        "organisation's model, one byte changed": copy_with_one_byte_changed(released, attacker / "tampered"),
        "malicious pickle (exec payload)": plant_malicious_pickle(released, attacker / "pickle-exec", markers["exec"]),
        "malicious pickle (evades modelscan)": plant_malicious_pickle(released, attacker / "pickle-evade", markers["evade"], True),
        "hub model, signed with the organisation's key by mistake (not released)": unreleased,
        "organisation's released model": released,
    }
    results = {k: gate(v, env).to_dict() for k, v in cases.items()}
    return {"cases": results, "hygiene": option, "audit": audit, "env": str(env.root),
            "payload_ran": any(m.exists() for m in markers.values()),
            "modelscan_installed": modelscan_issues(released) is not None}


def model_isolation_section(cfg, progress: bool = False) -> dict[str, Any]:  # noqa: ANN001
    """The scenario JSON's `controls.model_isolation` (cached as JSON)."""
    import time

    from ...artifacts import load_or_build
    from ...attack.scenario import control_inputs
    from ...data.scenario import build_scenario_data
    from ...verify import EVAL_VERSION

    def build() -> tuple[dict, dict]:
        t0 = time.perf_counter()
        recs = hygiene_sweep(cfg, progress=progress)
        chosen = choose_option(recs)
        demo = gate_demo(cfg, option=chosen["option"], progress=progress)
        gate_summary = {k: {"accepted": v["accepted"], "reason": v["reason"]} for k, v in demo["cases"].items()}
        out = {"asr": chosen["asr"], "tar_at_far_1pct": chosen["tar_at_far_1pct"], "chosen": chosen["option"],
               "bar": {"max_asr": MAX_ASR, "max_tar_cost_pts": MAX_TAR_COST_PTS}, "options": recs,
               "gate": {"cases": gate_summary, "payload_ran": demo["payload_ran"],
                        "scanners": demo["cases"]["malicious pickle (exec payload)"]["scanners"]},
               "seconds": round(sum(r["seconds"] for r in recs), 2), "build_seconds": round(time.perf_counter() - t0, 2)}
        return {}, {"metrics": out}

    # v5: the content-sniffing gate (its recorded reasons changed)
    inputs = control_inputs(cfg, build_scenario_data(cfg), version="v5", eval_version=EVAL_VERSION)
    return dict(load_or_build("model-isolation", cfg, build, inputs=inputs).metrics)
