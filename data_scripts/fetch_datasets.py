#!/usr/bin/env python
"""Download the real face datasets (online), verify their sha256, unpack them.

    python data_scripts/fetch_datasets.py att lfw        # both (~175 MB for LFW)
    python data_scripts/fetch_datasets.py att --data-root /somewhere

Files land in <data root>/raw/<name>/ ($ML07LAB_DATA, else ./data in the checkout).
Same as `ml07lab data fetch NAME`; this script only calls ml07lab.data.fetch.fetch.
No internet? Use import_mirror.py with a local mirror instead (see README.md here).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from ml07lab.config import data_dir  # noqa: E402
from ml07lab.data.base import DataError  # noqa: E402
from ml07lab.data.cli import dataset_info  # noqa: E402
from ml07lab.data.fetch import DATASET_NAMES, fetch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", choices=[*DATASET_NAMES, "all"], default="all")
    p.add_argument("--data-root", type=Path, default=None, help="default: $ML07LAB_DATA or ./data")
    a = p.parse_args(argv)
    root = a.data_root or data_dir()
    names = DATASET_NAMES if "all" in a.names else a.names
    try:
        for n in names:
            fetch(n, root)
            i = dataset_info(n, root)
            print(f"{n}: {i['identities']} identities, {i['images']} images in {i['path']} (sha256 verified)")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
