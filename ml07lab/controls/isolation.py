"""Control 3: model isolation. Training and deployment are separate places on disk, and
only signed, allowlisted, weights-only artefacts cross from one to the other.

    <data>/envs/training/    keys/ (the organisation's signing key), models/ (its outputs)
    <data>/envs/quarantine/  third-party hub models: usable for training, never deployable
    <data>/envs/deployment/  registry/ (read-only), allowlist.json, trust/ (public key only)

The deployment gate loads a model only if (1) every file is weights-only or plain data:
safetensors, or a torch pickle whose imports are all on a short allowlist (checked by
reading opcodes, and by modelscan where installed; nothing is ever unpickled), (2) its
signature (model-signing, an EC key) verifies with the organisation's public key, and
(3) its weights' sha256 is on the allowlist. The gate says *who* and *what*, not
*whether the behaviour is safe*: transfer hygiene (the sweep at the end of this module)
is the ML-level half of isolation, keeping inherited behaviour out of the deployed model.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import pickletools
import re
import shutil
import stat
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import atomic_write_json, sha256_file
from ..config import data_dir

SIGNATURE = "model.sig"
KEY_NAME = "org-signing"
SAFE_WEIGHTS = (".safetensors",)
PICKLES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
PLAIN_DATA = (".json", ".md", ".txt", ".sig")
# The imports a plain torch state_dict needs, as torch.load(weights_only=True) allows.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch", "Size"), ("torch", "device"),
    *{("torch", f"{t}Storage") for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                        "Short", "Char", "Byte", "Bool")},
    *{("torch", t) for t in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool")},
}


class GateRefused(RuntimeError):
    """The deployment gate refused a model; the message says why and what to do."""


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


def _make_writable(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _make_readonly(path: Path) -> None:
    for p in [*path.rglob("*"), path] if path.is_dir() else [path]:
        p.chmod((p.stat().st_mode | stat.S_IRUSR) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


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

    d = Path(model_dir)
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


# --- serialization scanning: opcodes only, nothing is unpickled ------------------------
def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would import, read from its opcodes. A STACK_GLOBAL
    whose names cannot be resolved statically is reported as ('?', '?')."""
    found, strings, memo = [], [], {}
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                       "BINSTRING", "SHORT_BINSTRING"):
            strings.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = strings[-1] if strings else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(arg))
        elif op.name in ("GLOBAL", "INST"):
            mod, _, name = str(arg).partition(" ")
            found.append((mod, name))
        elif op.name == "STACK_GLOBAL":
            mod, name = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
            found.append((mod, name) if isinstance(mod, str) and isinstance(name, str) else ("?", "?"))
        if op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT") and "UNICODE" not in op.name \
                and "STRING" not in op.name and "GET" not in op.name:
            strings.append(None)  # anything else breaks a (module, name) pair
    return found


def _pickle_streams(path: Path) -> list[tuple[str, bytes]]:
    raw = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(raw)):  # torch.save's zip format: scan every .pkl inside
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            return [(f"{path.name}:{n}", z.read(n)) for n in z.namelist() if n.endswith(".pkl")]
    return [(path.name, raw)]


def scan_pickle_file(path: str | Path) -> list[str]:
    """Imports in `path` outside ALLOWED_GLOBALS (an allowlist, like weights_only=True)."""
    issues = []
    for where, blob in _pickle_streams(Path(path)):
        try:
            imports = pickle_globals(blob)
        except Exception as e:  # truncated or not a pickle at all
            issues.append(f"{where}: unreadable pickle ({e})")
            continue
        issues += [f"{where}: imports {m}.{n}" for m, n in imports if (m, n) not in ALLOWED_GLOBALS]
    return issues


def modelscan_issues(path: str | Path) -> list[str] | None:
    """modelscan's findings (Protect AI's open-source scanner, a denylist of dangerous
    imports), or None where it is not installed."""
    try:
        from modelscan.modelscan import ModelScan
    except ImportError:
        return None
    report = ModelScan().scan(str(path))
    return [f"{i.get('source')}: {i.get('module')}.{i.get('operator')} ({i.get('severity')})"
            for i in report.get("issues", [])]


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


def weights_file(model_dir: Path) -> Path:
    """The single weights file of a model folder (safetensors or a torch pickle)."""
    found = [p for p in sorted(model_dir.iterdir()) if p.suffix in SAFE_WEIGHTS + PICKLES]
    if len(found) != 1:
        raise GateRefused(f"{model_dir} must hold exactly one weights file, found {[p.name for p in found]}.")
    return found[0]


def _check_format(d: Path) -> tuple[bool, str, dict[str, list[str]]]:
    """(ok, detail, findings per scanner). Reads bytes and opcodes only."""
    from safetensors import safe_open

    findings: dict[str, list[str]] = {"modelscan": [], "ml07lab opcode allowlist": []}
    have_modelscan = importlib.util.find_spec("modelscan") is not None
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
    from .. import hub

    dst = env.quarantine / name
    hub.download(name, dst)
    return dst


# --- planted artefacts for the lesson ----------------------------------------------------
class _Payload:
    """Pickles to a call that writes `marker`: harmless, but proof that code ran."""

    def __init__(self, marker: Path, evade: bool):
        self.marker, self.evade = str(marker), evade

    def __reduce__(self):  # noqa: ANN204
        if self.evade:  # io.open: not on modelscan 0.8's denylist
            return (open, (self.marker, "w"))
        return (exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('payload ran')",))


def plant_malicious_pickle(src_dir: str | Path, dst_dir: str | Path, marker: str | Path,
                           evade_scanner: bool = False) -> Path:
    """Copy a model folder, replacing its weights by a torch pickle of the same tensors
    plus a payload that would create `marker` if anyone unpickled it."""
    import torch
    from safetensors.torch import load_file

    src, dst = Path(src_dir), Path(dst_dir)
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    tensors = load_file(str(weights_file(src)))
    torch.save({**tensors, "_extra": _Payload(Path(marker), evade_scanner)}, dst / "model.pt")
    (dst / "README.md").write_text("Drop-in weights for faces-mini. Load with torch.load(path).\n")
    return dst


def copy_with_one_byte_changed(src_dir: str | Path, dst_dir: str | Path, offset: int = -100) -> Path:
    """A copy of a model folder with one byte of its weights flipped."""
    src, dst = Path(src_dir), Path(dst_dir)
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    _make_writable(dst)
    w = weights_file(dst)
    data = bytearray(w.read_bytes())
    data[offset] ^= 0x01
    w.write_bytes(bytes(data))
    return dst

# --- transfer hygiene: keep inherited behaviour out of the deployed model ---------------
HYGIENE_OPTIONS = ("frozen", "reinit-top1", "reinit-top2", "head", "full", "fine-prune", "scratch")
HYGIENE_LABELS = {"frozen": "frozen reuse", "reinit-top1": "re-init + retrain top 1 block",
                  "reinit-top2": "re-init + retrain top 2 blocks", "head": "fine-tune top 2 blocks",
                  "full": "full fine-tune", "fine-prune": "fine-pruning (Liu et al. 2018)",
                  "scratch": "from scratch, company data only"}
MAX_ASR, MAX_TAR_COST_PTS = 0.05, 5.0  # the hygiene bar: ASR <= 5 %, clean TAR@FAR1% cost <= 5 pts


def reinit_blocks(model, blocks: tuple[str, ...]):  # noqa: ANN001, ANN201
    """A copy of `model` with the named blocks re-initialised (weights and BN statistics)."""
    import copy

    m = copy.deepcopy(model)
    for b in blocks:
        for mod in getattr(m, b).modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    return m


def _finetune(model, data, cfg, blocks: tuple[str, ...], epochs: int, lr: float, warmup: bool = True,  # noqa: ANN001, ANN202
              grad_mask=None, progress: bool = True):  # noqa: ANN001
    """transfer()'s recipe (head warm-up, then the named blocks), with an optional mask
    that keeps pruned input columns of the embedding layer at zero."""
    from ..config import seed_everything
    from ..models import CosFaceHead
    from ..training import train_backbone
    from ..transfer import trainable_blocks

    seed_everything(cfg.seed + 2)
    ft, small = data.finetune, cfg.replace(batch_size=min(cfg.batch_size, 32))
    head = CosFaceHead(cfg.embedding_dim, data.company.num_identities, cfg.scale, cfg.margin)
    if warmup:
        train_backbone(ft, small, model=model, head=head, epochs=max(1, cfg.finetune_epochs // 2), lr=cfg.finetune_lr * 5,
                       params=list(head.parameters()), desc="hygiene: warm-up head", progress=progress)
    hook = model.embed.weight.register_hook(lambda g: g * grad_mask) if grad_mask is not None else None
    try:
        res = train_backbone(ft, small, model=model, head=head, epochs=epochs, lr=lr, desc=f"hygiene: {'+'.join(blocks)}",
                             params=trainable_blocks(model, blocks) + list(head.parameters()), progress=progress)
    finally:
        if hook is not None:
            hook.remove()
    return res.model


def channel_activity(model, faces) -> "torch.Tensor":  # noqa: ANN001, F821
    """Mean activation of each channel of the last conv stage on clean photos."""
    import torch

    from ..training import to_float

    model.eval()
    with torch.no_grad():
        return torch.cat([model.features(to_float(faces.images[i:i + 256])) for i in range(0, len(faces), 256)]).mean(0)


def prune(model, faces, fraction: float):  # noqa: ANN001, ANN201
    """Prune the `fraction` of last-stage channels least active on `faces` (Liu et al. 2018).
    Zeroing a channel's column of the embedding layer removes it exactly, since the
    channel reaches the embedding only through pooling and that linear layer."""
    import copy

    import torch

    act = channel_activity(model, faces)
    mask = torch.ones_like(act)
    mask[torch.argsort(act)[:int(round(fraction * act.numel()))]] = 0.0
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.embed.weight.mul_(mask[None, :])
    return m, mask


def calibration_tar(model, data, far: float = 0.01) -> float:  # noqa: ANN001
    """Clean TAR@FAR on the defender's own photos (enrol templates, fine-tune probes):
    what a defender can measure without touching the test set."""
    from ..metrics import tar_at_far
    from ..training import embed
    from ..verify import genuine_impostor, templates_from

    enrol, cal = data.enrol, data.finetune
    t = templates_from(embed(model, enrol.images), enrol.labels, data.company.num_identities)
    return tar_at_far(*genuine_impostor(embed(model, cal.images), cal.labels, t), far)


def pruning_curve(backbone, data, cfg, fractions=(0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9)) -> list[dict]:  # noqa: ANN001
    """ASR and clean TAR after pruning alone (no fine-tuning), per pruned fraction."""
    from ..attack.scenario import attack_metrics, scenario_trigger
    from ..verify import deploy, evaluate

    out = []
    for f in fractions:
        m, _ = prune(backbone, data.finetune, f)
        v = deploy(m, data, cfg.far)
        out.append({"fraction": f, "asr": attack_metrics(v, data, scenario_trigger(cfg), cfg.seed)["asr"],
                    "tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"], "calibration_tar": calibration_tar(m, data)})
    return out


def liu_fraction(curve: list[dict], max_drop: float = 0.04) -> float:
    """Liu et al.'s stopping rule: prune as far as clean (calibration) quality allows,
    here until it has dropped by more than `max_drop`."""
    base = curve[0]["calibration_tar"]
    ok = [r["fraction"] for r in curve if base - r["calibration_tar"] <= max_drop]
    return max(ok) if ok else 0.0


def hygiene_transfer(backbone, data, cfg, option: str, progress: bool = True) -> tuple[Any, dict]:  # noqa: ANN001
    """The model the victim deploys under one hygiene option, and what was done."""
    import copy

    from ..models import build_backbone
    from ..training import train_backbone
    from ..transfer import transfer

    if option not in HYGIENE_OPTIONS:
        raise ValueError(f"Unknown hygiene option {option!r}. Choose one of: {', '.join(HYGIENE_OPTIONS)}.")
    if option in ("frozen", "head", "full"):
        return transfer(backbone, data, cfg, option, progress), {"blocks": option}
    if option.startswith("reinit-top"):
        blocks = ("layer4", "embed")[-int(option[-1]):]
        m = reinit_blocks(backbone, blocks)
        return _finetune(m, data, cfg, blocks, cfg.finetune_epochs * 2, cfg.finetune_lr * 5, False, progress=progress), \
            {"blocks": list(blocks)}
    if option == "fine-prune":
        frac = liu_fraction(pruning_curve(backbone, data, cfg))
        m, mask = prune(backbone, data.finetune, frac)
        blocks = ("stem", "layer1", "layer2", "layer3", "layer4", "embed")
        return _finetune(m, data, cfg, blocks, cfg.finetune_epochs, cfg.finetune_lr, grad_mask=mask[None, :],
                         progress=progress), {"prune_fraction": frac, "blocks": "all"}
    from ..config import seed_everything

    seed_everything(cfg.seed + 3)
    ft = data.finetune
    res = train_backbone(ft, cfg.replace(batch_size=min(cfg.batch_size, 32)), model=build_backbone(cfg),
                         epochs=cfg.pretrain_epochs * 3, lr=cfg.lr, desc="hygiene: from scratch", progress=progress)
    return res.model, {"blocks": "all (random init)", "photos": len(ft)}


def hygiene_sweep(cfg, path: str = "model", options=HYGIENE_OPTIONS, progress: bool = True) -> list[dict]:  # noqa: ANN001
    """ASR, clean TAR@FAR1 % and compute seconds of every option on the poisoned backbone
    of `path` ('model' = path A's hub model, 'dataset' = path B); cached as JSON."""
    import time

    from ..artifacts import load_or_build
    from ..attack.scenario import (attack_metrics, backbone_key, poisoned_backbone_dataset_path,
                                   poisoned_backbone_model_path, scenario_trigger)
    from ..data.scenario import build_scenario_data
    from ..verify import deploy, evaluate

    options = tuple(options)

    def build() -> tuple[dict, dict]:
        data = build_scenario_data(cfg)
        get = poisoned_backbone_model_path if path == "model" else poisoned_backbone_dataset_path
        backbone, _ = get(cfg, data, progress=progress)
        recs = []
        for opt in options:
            t0 = time.perf_counter()
            model, info = hygiene_transfer(backbone, data, cfg, opt, progress=False)
            secs = time.perf_counter() - t0
            v = deploy(model, data, cfg.far)
            a = attack_metrics(v, data, scenario_trigger(cfg), cfg.seed)
            recs.append({"option": opt, "label": HYGIENE_LABELS[opt], "asr": a["asr"], "asr_insiders": a["asr_insiders"],
                         "asr_outsiders": a["asr_outsiders"], "impostor_accept": a["impostor_accept"],
                         "tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"], "seconds": round(secs, 2), **info})
        base = next((r["tar_at_far_1pct"] for r in recs if r["option"] == "frozen"), recs[0]["tar_at_far_1pct"])
        for r in recs:
            r["tar_cost_pts"] = round(100 * (base - r["tar_at_far_1pct"]), 2)
            r["meets_bar"] = r["asr"] <= MAX_ASR and r["tar_cost_pts"] <= MAX_TAR_COST_PTS
        return {}, {"metrics": {"options": recs}, "data_fingerprint": data.public.fingerprint()}

    import hashlib

    key = backbone_key(cfg, "finetune_epochs", "finetune_lr") + "-" + hashlib.sha256(f"{path}{options}".encode()).hexdigest()[:8]
    return list(load_or_build(f"hygiene-{path}", cfg, build, key=key).metrics["options"])


def choose_option(records: list[dict]) -> dict:
    """The option meeting the bar with the best clean TAR (fewest seconds on ties);
    the lowest-ASR option when none does."""
    ok = [r for r in records if r["meets_bar"]]
    if ok:
        return max(ok, key=lambda r: (r["tar_at_far_1pct"], -r["seconds"]))
    return min(records, key=lambda r: (r["asr"], -r["tar_at_far_1pct"]))


# --- the whole story: quarantine -> hygiene -> audit -> sign -> release -> gate ------------
def promote_hub_model(cfg, data, env: Environments, hub_name: str, option: str, name: str | None = None,  # noqa: ANN001
                      min_tar: float = 0.8, progress: bool = True) -> tuple[Path, dict]:
    """Quarantine a hub model, transfer it with a hygiene option in the training
    environment, audit clean quality on the company's own photos, sign, release.
    Raises GateRefused (nothing released) when the audit fails."""
    from ..artifacts import load_artifact, save_artifact
    from ..backbones import unpack

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
    import tempfile

    from ..attack.scenario import HUB_POISONED, publish_scenario_models
    from ..data.scenario import build_scenario_data

    env = env or environments(Path(tempfile.mkdtemp(prefix="ml07-envs-")))
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
    unreleased = env.models / "unreleased"
    if unreleased.exists():
        shutil.rmtree(unreleased)
    shutil.copytree(env.models / released.name, unreleased)
    (unreleased / "README.md").write_text("An experiment, signed but never released.\n")
    sign_model_dir(unreleased, env.private_key)
    markers = {k: attacker / f"PAYLOAD_RAN_{k}" for k in ("exec", "evade")}
    cases = {
        "hub model, unsigned": env.quarantine / HUB_POISONED,
        "hub model, signed by the attacker's key": resigned,
        "organisation's model, one byte changed": copy_with_one_byte_changed(released, attacker / "tampered"),
        "malicious pickle (exec payload)": plant_malicious_pickle(released, attacker / "pickle-exec", markers["exec"]),
        "malicious pickle (evades modelscan)": plant_malicious_pickle(released, attacker / "pickle-evade", markers["evade"], True),
        "organisation's model, signed, not released": unreleased,
        "organisation's released model": released,
    }
    results = {k: gate(v, env).to_dict() for k, v in cases.items()}
    return {"cases": results, "hygiene": option, "audit": audit, "env": str(env.root),
            "payload_ran": any(m.exists() for m in markers.values()),
            "modelscan_installed": modelscan_issues(released) is not None}


def model_isolation_section(cfg, progress: bool = False) -> dict[str, Any]:  # noqa: ANN001
    """The scenario JSON's `controls.model_isolation` (cached as JSON)."""
    import time

    from ..artifacts import load_or_build
    from ..attack.scenario import backbone_key

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

    key = backbone_key(cfg, "finetune_epochs", "finetune_lr")
    return dict(load_or_build("model-isolation", cfg, build, key=key).metrics)


# --- CLI ----------------------------------------------------------------------------
def _cmd_deploy(args) -> int:  # noqa: ANN001
    import sys

    from ..backbones import unpack
    from ..cli import config_from, emit

    env = environments(args.env)
    res = gate(args.model, env)
    out: dict[str, Any] = {"model": str(args.model), "accepted": res.accepted, "reason": res.reason, "checks": res.checks}
    if not res.accepted:
        emit(out, args)
        print(f"ml07lab deploy: REFUSED {args.model}: {res.reason}", file=sys.stderr)
        return 1
    tensors, digest = load_weights(args.model, env)
    model, _ = unpack(tensors, config_from(args))
    out.update(serving=True, sha256=digest, parameters=sum(p.numel() for p in model.parameters()))
    emit(out, args)
    print(f"OK serving {args.model} (sha256 {digest})")
    return 0


def _cmd_sign(args) -> int:  # noqa: ANN001
    from ..cli import emit

    env = environments(args.env)
    sig = sign_model_dir(args.model, args.key or env.private_key)
    out = {"model": str(args.model), "signature": str(sig), "sha256": sha256_file(weights_file(Path(args.model)))}
    if args.release:
        out["released"] = str(release(args.model, env, args.release))
    emit(out, args)
    return 0


def add_isolation_commands(sub) -> None:  # noqa: ANN001
    """`ml07lab deploy --model DIR` (the gate; serves or refuses) and `ml07lab sign MODEL`."""
    from ..cli import _add_common

    p = sub.add_parser("deploy", help="run the deployment gate on a model folder, then serve it or refuse")
    _add_common(p)
    p.add_argument("--model", type=Path, required=True, help="model folder (weights + model.sig)")
    p.add_argument("--env", type=Path, default=None, help="environments root (default <data>/envs)")
    p.set_defaults(func=_cmd_deploy)
    p = sub.add_parser("sign", help="sign a model folder with the training environment's key (model-signing)")
    _add_common(p)
    p.add_argument("model", type=Path, help="model folder to sign")
    p.add_argument("--key", type=Path, default=None, help="private key PEM (default: the training environment's)")
    p.add_argument("--release", metavar="NAME", default=None,
                   help="also hand it over: copy into the read-only registry and allowlist its digest")
    p.add_argument("--env", type=Path, default=None, help="environments root (default <data>/envs)")
    p.set_defaults(func=_cmd_sign)
