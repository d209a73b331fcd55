#!/usr/bin/env python3
"""Rewrite the per-notebook timing tables in README.md and docs/instructor.md from
`make bench FULL=1 PROFILE=...` output (reports/bench-lab-<profile>.json by default).

    python tools/update_timings.py                       # every reports/bench-lab-*.json
    python tools/update_timings.py reports/bench-lab-ci.json reports/bench-lab-laptop.json
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml07lab.bench.docs import update_files  # noqa: E402


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((ROOT / "reports").glob("bench-lab-*.json"))
    if not files:
        print("update_timings: no bench files; run `make bench FULL=1 PROFILE=ci` (and laptop) first", file=sys.stderr)
        return 2
    try:
        changed = update_files(files, [ROOT / "README.md", ROOT / "docs" / "instructor.md"])
    except ValueError as e:
        print(f"update_timings: {e}", file=sys.stderr)
        return 2
    print(f"update_timings: from {', '.join(map(str, files))}: "
          + (f"rewrote {', '.join(str(c.relative_to(ROOT)) for c in changed)}" if changed else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
