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

# (module, function, group) triples that add subcommands, at the top level (group None) or
# inside an existing command group; imported lazily so `ml07lab --help` is fast.
COMMAND_PROVIDERS: list[tuple[str, str, str | None]] = [
    ("ml07lab.data.cli", "add_data_commands", None),  # data fetch|import|info
    ("ml07lab.controls.trusted_data.cli", "extend_data_commands", "data"),  # data manifest|diff|scan|keygen|sign|verify
    ("ml07lab.cli", "add_core_commands", None),
    ("ml07lab.controls.isolation.cli", "add_isolation_commands", None),  # deploy, sign
    ("ml07lab.controls.audit.report", "add_audit_commands", None),  # audit
    ("ml07lab.run", "add_run_commands", None),  # run
    ("ml07lab.bench.cli", "add_bench_commands", None),  # bench
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
    p.add_argument("--company", default=None, metavar="folder:PATH",
                   help="your own faces as the company people: one sub-folder per person; add "
                        "#crop=att to frame like AT&T (default: $ML07LAB_COMPANY, else the profile's)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable output (to FILE, or stdout when no FILE)")


def config_from(args: argparse.Namespace, **extra: Any):  # noqa: ANN201
    from .config import get_config

    over = {k: v for k in ("seed", "dataset") if (v := getattr(args, k, None)) is not None}
    return get_config(args.profile, company=getattr(args, "company", None), **over, **extra)


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
    result = run_scenario(cfg, args.path, args.transfer)
    emit(result, args)
    for w in result.get("company_folder", {}).get("warnings", []):
        print(f"ml07lab: warning: {w}", file=sys.stderr)
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the option) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _mark_leaves(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Record on each subcommand's parser its name ("data verify") and itself, for checks."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.set_defaults(_command=path.strip(), _parser=parser)
    for a in subs:
        for name, p in a.choices.items():
            _mark_leaves(p, f"{path} {name}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ml07lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module, fn, group in COMMAND_PROVIDERS:
        add: Callable[[argparse._SubParsersAction], None] = getattr(importlib.import_module(module), fn)
        add(sub if group is None else subcommands_of(sub.choices[group]))
    _mark_leaves(parser)
    return parser


def subcommands_of(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommands of a command group (`ml07lab data ...`), so a control can add its own
    commands to a group a lower layer created, without that layer importing the control."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def main(argv: list[str] | None = None) -> int:
    """Bad arguments and environment variables: exit 2 with one line naming the option,
    before any work. Refusals (verify, deploy, audit) exit 1, as their help says."""
    from .runtime import prefer_passive_wait
    from .validation import check_cli_args, check_environment

    prefer_passive_wait()  # before any command imports torch (runtime.py says why)
    args = build_parser().parse_args(argv)
    try:
        check_environment()
        check_cli_args(args._command, args._parser, args)
        if hasattr(args, "profile"):  # every knob the command line sets, checked before any work
            import dataclasses

            from .config import LabConfig
            knobs = {f.name for f in dataclasses.fields(LabConfig)} - {"profile", "seed", "dataset"}
            config_from(args, **{k: getattr(args, k) for k in knobs if getattr(args, k, None) is not None})
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, OSError) as e:  # DataError, ArtifactError, bad knobs: one clear line
        print(f"ml07lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
