"""`ml07lab`: the lab from a terminal. Every command can print JSON (`--json`).

Commands are registered by the module that owns them (`add_*_commands(subparsers)`),
so this file stays a table of contents.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

# (module, function) pairs that add subcommands; imported lazily so `ml07lab --help` is fast.
COMMAND_PROVIDERS: list[tuple[str, str]] = [
    ("ml07lab.data.cli", "add_data_commands"),
    ("ml07lab.cli", "add_core_commands"),
    ("ml07lab.controls.isolation_cli", "add_isolation_commands"),  # deploy, sign
    ("ml07lab.controls.audit_report", "add_audit_commands"),  # audit
    ("ml07lab.run", "add_run_commands"),  # run
    ("ml07lab.bench.cli", "add_bench_commands"),  # bench
]


def emit(obj: dict[str, Any], args: argparse.Namespace) -> None:
    """Print a result as JSON (--json, or to a file with --json FILE) or as key: value lines."""
    out = getattr(args, "json", None)
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    if out and out != "-":
        from .artifacts import atomic_write_bytes

        atomic_write_bytes(Path(out), (text + "\n").encode())
        print(f"wrote {out}")
    elif out == "-":
        print(text)
    else:
        for k, v in obj.items():
            print(f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")


def _add_common(p: argparse.ArgumentParser, json_file: bool = False) -> None:
    p.add_argument("--profile", choices=["ci", "laptop", "full"], default=None,
                   help="lab profile (default: $ML07LAB_PROFILE, 'ci' under CI=true, else 'laptop')")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dataset", choices=["synthetic", "real"], default=None)
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable output (to FILE, or stdout when no FILE)")


def config_from(args: argparse.Namespace, **extra: Any):  # noqa: ANN201
    from .config import get_config

    over = {k: v for k, v in (("seed", args.seed), ("dataset", args.dataset)) if v is not None}
    return get_config(args.profile, **over, **extra)


def _cmd_train_backbone(args: argparse.Namespace) -> int:
    from .backbones import clean_backbone

    cfg = config_from(args)
    _, art = clean_backbone(cfg, rebuild=args.rebuild)
    emit({"artifact": str(art.path), "built": art.built, "profile": cfg.profile, "dataset": cfg.data_tag,
          "train_seconds": art.meta.get("train_seconds"), "metrics": art.metrics, "sha256": art.meta["sha256"]}, args)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .artifacts import load_artifact
    from .backbones import clean_backbone, unpack
    from .data.scenario import build_scenario_data
    from .verify import deploy, evaluate

    cfg = config_from(args)
    data = build_scenario_data(cfg)
    if args.model:
        model, _ = unpack(load_artifact(args.model).tensors, cfg)
    else:
        model, _ = clean_backbone(cfg, data)
    emit({"profile": cfg.profile, "dataset": cfg.data_tag, **evaluate(deploy(model, data, cfg.far), data)}, args)
    return 0


def _cmd_scenario(args: argparse.Namespace) -> int:
    from .attack.scenario import run_scenario

    over: dict[str, Any] = {}
    for name in ("trigger", "poison_rate", "target"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    cfg = config_from(args, **over)
    emit(run_scenario(cfg, args.path, args.transfer), args)
    return 0


def add_core_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-backbone", help="train (or load) the clean public backbone")
    _add_common(p)
    p.add_argument("--rebuild", action="store_true", help="retrain even if cached")
    p.set_defaults(func=_cmd_train_backbone)

    p = sub.add_parser("evaluate", help="verification quality (AUC, EER, TAR@FAR) on the company people")
    _add_common(p)
    p.add_argument("--model", type=Path, default=None, help="artefact folder (default: the clean backbone)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("scenario", help="run the attack scenario end to end and report it")
    _add_common(p)
    p.add_argument("--path", choices=["model", "dataset"], default="model",
                   help="model: poisoned hub model (path A); dataset: poisoned public data (path B)")
    p.add_argument("--transfer", choices=["frozen", "head", "full"], default="frozen")
    p.add_argument("--trigger", default=None, help="patch | glasses | blend")
    p.add_argument("--poison-rate", dest="poison_rate", type=float, default=None)
    p.add_argument("--target", type=int, default=None, help="index of the target company person")
    p.set_defaults(func=_cmd_scenario)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml07lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module, fn in COMMAND_PROVIDERS:
        add: Callable[[argparse._SubParsersAction], None] = getattr(importlib.import_module(module), fn)
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .runtime import prefer_passive_wait

    prefer_passive_wait()  # before any command imports torch (runtime.py says why)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError) as e:  # DataError, ArtifactError and bad knobs: one clear line
        print(f"ml07lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
