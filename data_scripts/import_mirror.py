#!/usr/bin/env python
"""Import the real face datasets from a local mirror folder (offline), verified.

    python data_scripts/import_mirror.py --from ../shared/data att lfw
    python data_scripts/import_mirror.py                 # all, from $ML07LAB_MIRROR or ../shared/data

The mirror holds SHA256SUMS plus att_faces/, olivetti/olivettifaces.mat and lfw_min5/.
Every imported file is checked against SHA256SUMS; files already imported and intact are
skipped, so re-running is cheap. Same as `ml07lab data import NAME --from DIR`; this
script only calls ml07lab.data.fetch.import_mirror.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from ml07lab.config import data_dir, mirror_dir  # noqa: E402
from ml07lab.data.base import DataError  # noqa: E402
from ml07lab.data.cli import dataset_info  # noqa: E402
from ml07lab.data.fetch import DATASET_NAMES, import_mirror  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", choices=[*DATASET_NAMES, "all"], default="all")
    p.add_argument("--from", dest="src", type=Path, default=None,
                   help="mirror folder (default: $ML07LAB_MIRROR or ../shared/data)")
    p.add_argument("--data-root", type=Path, default=None, help="default: $ML07LAB_DATA or ./data")
    a = p.parse_args(argv)
    src, root = a.src or mirror_dir(), a.data_root or data_dir()
    names = DATASET_NAMES if "all" in a.names else a.names
    try:
        for n in names:
            import_mirror(n, src, root)
            i = dataset_info(n, root)
            print(f"{n}: {i['identities']} identities, {i['images']} images in {i['path']} (sha256 verified)")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
