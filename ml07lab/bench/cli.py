"""`ml07lab bench`: measure, or compare two measurements.

    ml07lab bench [--out reports/bench.json]          the stages (make bench)
    ml07lab bench --full --profile laptop             + the whole lab, cold and warm
    ml07lab bench --compare OLD.json NEW.json         ratios per figure
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read bench file {path}: {e}") from e


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..artifacts import atomic_write_json
    from .report import compare, lab_table, table, validate_shape

    if args.compare:
        old, new = (_load(p) for p in args.compare)
        for name, b in (("OLD", old), ("NEW", new)):
            problems = validate_shape(b)
            if problems:
                raise ValueError(f"{name} is not a bench file: {problems[0]}")
        text, ratios = compare(old, new)
        print(json.dumps(ratios, indent=2, sort_keys=True) if args.json else text)
        return 0
    from .runner import run_bench

    b = run_bench(progress=not args.quiet)
    if args.full:
        from ..config import get_config, project_root
        from .lab import run_lab

        profile = get_config(args.profile).profile
        from .measure import machine

        labs = Path(args.labs) if args.labs else (project_root() or Path.cwd()) / "labs"
        b["machine_at_lab_start"] = machine()  # the load when the lab starts, for the docs' table
        b["lab"] = run_lab(profile, labs, warm=not args.cold_only, timeout=args.cell_timeout,
                           only=args.notebooks.split(",") if args.notebooks else None)
        atomic_write_json(Path(args.out).with_name(f"bench-lab-{profile}.json"), b)
        print(lab_table(b["lab"]))
    problems = validate_shape(b)
    atomic_write_json(args.out, b)
    print(table(b))
    print(f"wrote {args.out}")
    if problems:
        print(f"bench: malformed output: {problems}", file=sys.stderr)
        return 1
    return 0


def add_bench_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks -> reports/bench.json; --compare OLD NEW")
    p.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    p.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"), default=None,
                   help="print each figure's ratio NEW/OLD (raw and reference-normalised)")
    p.add_argument("--full", action="store_true", help="also run every notebook cold and warm (slow)")
    p.add_argument("--profile", choices=["ci", "laptop", "full"], default=None, help="profile for --full")
    p.add_argument("--notebooks", default=None, help="--full: only these notebooks, by prefix (e.g. 00,01)")
    p.add_argument("--labs", default=None, help="--full: the notebooks' folder (default <checkout>/labs)")
    p.add_argument("--cold-only", action="store_true", help="--full: skip the warm re-run")
    p.add_argument("--cell-timeout", dest="cell_timeout", type=int, default=1800)
    p.add_argument("--json", action="store_true", help="--compare: ratios as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)
