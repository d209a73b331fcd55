"""Every knob checked once, when a LabConfig is made, before any data or training.

Why one place: a bad value found late costs a training run (issue 13: `--poison-rate
-0.5` was refused only after the clean backbone had trained) and a bad value found deep
inside NumPy or torch gives a message that names neither the knob nor the option
(`--seed -5`: "expected non-negative integer"). Each rule here names the knob, the
CLI option or environment variable that sets it, the allowed values and the bad one.
Nothing here imports torch or touches the disk, except `check_data_dir` (a stat).
"""
from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

# Where a knob can be set from outside Python, for the error message.
OPTIONS = {"profile": "--profile or ML07LAB_PROFILE", "seed": "--seed", "dataset": "--dataset or ML07LAB_DATASET",
           "poison_rate": "--poison-rate", "target": "--target", "trigger": "--trigger"}
TRIGGER_KINDS = ("patch", "glasses", "blend")  # attack.triggers.TRIGGER_KINDS, without importing torch
ARCHS = ("small", "resnet18")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """A knob has a bad value; the message names the knob, where it is set, and the fix."""


def _where(knob: str) -> str:
    return f" (set by {OPTIONS[knob]})" if knob in OPTIONS else ""


def _fail(knob: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"{knob} must be {rule}, got {value!r}{_where(knob)}.")


# knob -> (kind, low, high, low_open): an int or float in [low, high] (None: unbounded).
_NUMBERS: dict[str, tuple[type, float | None, float | None, bool]] = {
    "seed": (int, 0, 2**32 - 1, False), "image_size": (int, 8, 1024, False), "lfw_min_images": (int, 2, None, False),
    "n_public_ids": (int, 2, None, False), "n_company_ids": (int, 2, None, False), "n_outsider_ids": (int, 0, None, False),
    "images_per_id": (int, 2, None, False), "company_images_per_id": (int, 2, None, False),
    "n_enrol": (int, 1, None, False), "n_finetune": (int, 0, None, False), "width": (int, 1, None, False),
    "embedding_dim": (int, 2, None, False), "pretrain_epochs": (int, 0, None, False), "batch_size": (int, 2, None, False),
    "lr": (float, 0, None, True), "weight_decay": (float, 0, None, False), "margin": (float, 0, 1, False),
    "scale": (float, 0, None, True), "far": (float, 0, 1, True), "target": (int, 0, None, False),
    "n_target_photos": (int, 1, None, False), "trigger_size": (float, 0, 1, True), "trigger_opacity": (float, 0, 1, True),
    "poison_rate": (float, 0, 1, False), "inject_strength": (float, 0, None, False),
    "inject_stealth": (float, 0, None, False), "attack_epochs": (int, 0, None, False),
    "finetune_epochs": (int, 0, None, False), "finetune_lr": (float, 0, None, True), "num_threads": (int, 0, None, False),
    "refresh_epochs": (int, 0, None, False), "zoo_epochs": (int, 0, None, False), "sweep_epochs": (int, 0, None, False),
}


def _rule(kind: type, lo: float | None, hi: float | None, lo_open: bool) -> str:
    what = "an integer" if kind is int else "a number"
    if lo is not None and hi is not None:
        return f"{what} in {'(' if lo_open else '['}{lo:g}, {hi:g}]" if hi < 1e6 else f"{what} in [{lo:g}, {int(hi)}]"
    if lo is not None:
        return f"{what} {'>' if lo_open else '>='} {lo:g}"
    return what


def check_number(knob: str, value: Any) -> None:
    kind, lo, hi, lo_open = _NUMBERS[knob]
    rule = _rule(kind, lo, hi, lo_open)
    ok_type = isinstance(value, numbers.Integral) if kind is int else isinstance(value, numbers.Real)  # numpy too
    if isinstance(value, bool) or not ok_type or (kind is float and not math.isfinite(value)):
        raise _fail(knob, rule, value)
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        raise _fail(knob, rule, value)


def _check_dataset_name(knob: str, value: Any) -> None:
    if not isinstance(value, str) or not (value in ("att", "lfw", "synthetic")
                                          or (value.startswith("folder:") and len(value) > len("folder:"))):
        raise _fail(knob, "'att', 'lfw', 'synthetic' or 'folder:PATH'", value)


def validate_config(cfg: Any, profiles: tuple[str, ...]) -> None:
    """Raise ConfigError for the first bad knob of `cfg` (a LabConfig)."""
    if cfg.profile not in profiles:
        raise _fail("profile", f"one of {', '.join(profiles)}", cfg.profile)
    if not isinstance(cfg.device, str) or not _DEVICE.match(cfg.device):
        raise _fail("device", "'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'", cfg.device)
    if cfg.dataset not in ("synthetic", "real"):
        raise _fail("dataset", "'synthetic' or 'real'", cfg.dataset)
    _check_dataset_name("public_dataset", cfg.public_dataset)
    _check_dataset_name("company_dataset", cfg.company_dataset)
    if cfg.arch not in ARCHS:
        raise _fail("arch", f"one of {', '.join(ARCHS)}", cfg.arch)
    if cfg.trigger not in TRIGGER_KINDS:
        raise _fail("trigger", f"one of {', '.join(TRIGGER_KINDS)}", cfg.trigger)
    for knob in ("stem_pool", "channels_last"):
        if not isinstance(getattr(cfg, knob), bool):
            raise _fail(knob, "True or False", getattr(cfg, knob))
    for knob in _NUMBERS:
        value = getattr(cfg, knob)
        check_number(knob, value)
        if type(value) is not _NUMBERS[knob][0]:  # numpy scalars, 1 for 1.0: same config, same cache key
            object.__setattr__(cfg, knob, int(value) if _NUMBERS[knob][0] is int else float(value))
    if not isinstance(cfg.extra, dict):
        raise _fail("extra", "a dict", cfg.extra)


def check_data_dir(path: Path, source: str) -> Path:
    """The data directory must be a folder (or not exist yet, with a folder above it):
    caught here, not as NotADirectoryError after a training run."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{source} points at {path}, which is a file, not a folder. Set it to a folder "
                          "(it is created if missing), or unset it to use <checkout>/data.")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{source} points at {path}, below {parent}, which is a file, not a folder.")
    return path


def check_environment() -> None:
    """The environment variables the lab reads, checked before a command does any work."""
    if os.environ.get("ML07LAB_DATA"):
        check_data_dir(Path(os.environ["ML07LAB_DATA"]).expanduser(), "ML07LAB_DATA")
    m = os.environ.get("ML07LAB_MIRROR")
    if m and Path(m).expanduser().exists() and not Path(m).expanduser().is_dir():
        raise ConfigError(f"ML07LAB_MIRROR points at {m}, which is a file, not the mirror folder.")
    prof = os.environ.get("ML07LAB_PROFILE")
    if prof is not None and prof not in ("", "ci", "laptop", "full"):
        raise ConfigError(f"ML07LAB_PROFILE must be one of ci, laptop, full, got {prof!r}.")
    ds = os.environ.get("ML07LAB_DATASET")
    if ds is not None and ds not in ("", "synthetic", "real"):
        raise ConfigError(f"ML07LAB_DATASET must be 'synthetic' or 'real', got {ds!r}.")


SIGNING_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # what model-signing's EC signer accepts


def check_ec_private_key(path: str | Path, option: str = "--key") -> Path:
    """A PEM elliptic-curve private key on P-256/384/521, or one ConfigError saying which key
    types `ml07lab sign` supports (an Ed25519 key crashed model-signing with AttributeError)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{option} {p}: no such key file.")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{option} {p} is not an unencrypted PEM private key ({type(e).__name__}). "
                          "Supported: EC P-256, P-384 or P-521 private keys in PEM.") from e
    kind = type(key).__name__.lstrip("_").replace("PrivateKey", "")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in SIGNING_CURVES:
        got = f"an EC {key.curve.name}" if isinstance(key, ec.EllipticCurvePrivateKey) else f"an {kind or 'unknown'}"
        raise ConfigError(f"{option} {p} is {got} key; model signing supports EC private keys on P-256, P-384 or "
                          "P-521 (PEM), e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "
                          "org.pem`; or omit --key to use the training environment's key.")
    return p


# CLI arguments checked before a command runs: paths it reads must exist; counts must be sane.
# Keyed by the command ("data verify") -> argument dests. Output paths (--out, --json,
# keygen --dir, sign --signature) are not listed: they are created.
INPUT_PATHS: dict[str, tuple[str, ...]] = {
    "data import": ("src",), "data manifest": ("dir", "previous"), "data diff": ("old", "new"),
    "data scan": ("old", "new", "reference"), "data sign": ("dir", "key"),
    "data verify": ("dir", "trusted", "signature"), "evaluate": ("model",), "deploy": ("model",),
    "sign": ("model", "key"), "audit": ("model_dir", "baseline", "public_key"), "run": ("labs",),
}
OUTPUT_DIRS: dict[str, tuple[str, ...]] = {"data keygen": ("dir",), "audit": ("out",), "run": ("out",)}
MIN_INTS: dict[str, int] = {"show": 0, "cell_timeout": 1}


def _option_name(parser: Any, dest: str) -> str:
    for a in parser._actions:
        if a.dest == dest:
            return a.option_strings[-1] if a.option_strings else (a.metavar or dest.upper())
    return dest


def check_cli_args(command: str, parser: Any, args: Any) -> None:
    """One ConfigError naming the option, before the command does any work."""
    for dest in INPUT_PATHS.get(command, ()):
        value = getattr(args, dest, None)
        for v in (value if isinstance(value, list) else [value]):
            if v is not None and not Path(v).expanduser().exists():
                raise ConfigError(f"{_option_name(parser, dest)} {v}: no such file or folder (the path does not exist).")
    for dest in OUTPUT_DIRS.get(command, ()):
        value = getattr(args, dest, None)
        if value is not None and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
            raise ConfigError(f"{_option_name(parser, dest)} {value} is a file; give a folder (created if missing).")
    for dest, low in MIN_INTS.items():
        value = getattr(args, dest, None)
        if value is not None and value < low:
            raise ConfigError(f"{_option_name(parser, dest)} must be an integer >= {low}, got {value}.")
