"""Build the "your own faces" test folders from the imported AT&T photos.

    python tools/make_face_folders.py OUT [--variants export,gif,junk,dark,subset15]

Each variant is described in ml07lab/data/folder_sets.py. Then, e.g.:
    ml07lab scenario --profile ci --company folder:OUT/export#crop=att
"""
from __future__ import annotations

import argparse
import sys

from ml07lab.data.base import DataError
from ml07lab.data.folder import describe, load_folder
from ml07lab.data.folder_sets import VARIANTS, build_face_folders


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder to write the variants into (OUT/<variant>)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--size", type=int, default=32, help="image size for the summary (default 32, the ci profile's)")
    args = ap.parse_args(argv)
    try:
        for name, path in build_face_folders(args.out, args.variants.split(",")).items():
            print(f"{name}: {path}\n  " + describe(load_folder(f"folder:{path}", args.size)).replace("\n", "\n  "))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
