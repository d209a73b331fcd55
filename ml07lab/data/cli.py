"""`ml07lab data fetch|import|info`: get the real faces onto a machine, verified.

Why a CLI and not only notebook cells: instructors prepare classroom machines before the
workshop (often offline, from a USB mirror), and `make data` calls these commands.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .base import DataError
from .fetch import DATA_HUB, DATASET_NAMES, _ONLINE, fetch, import_mirror, is_prepared, raw_root

_IMG = (".pgm", ".jpg", ".jpeg", ".png", ".bmp")


def _names(name: str | None) -> list[str]:
    if name in (None, "all"):
        return list(DATASET_NAMES)
    if name not in DATASET_NAMES:
        raise DataError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASET_NAMES)}, all.")
    return [name]


def dataset_info(name: str, data_root: Path) -> dict[str, Any]:
    """What is on disk for `name`, from file listings only (no decoding: instant)."""
    root = raw_root(name, data_root)
    info: dict[str, Any] = {"name": name, "prepared": is_prepared(name, data_root),
                            "path": str(root), "bytes": 0}
    if root.is_dir():
        info["bytes"] = sum(f.stat().st_size for f in root.rglob("*")  # temp files of an import do not count
                            if f.is_file() and not (f.name.startswith(".") and f.name.endswith(".tmp")))
    per_person: dict[str, int] = {}
    folder = root / ("att_faces" if name == "att" else "lfw_min5")
    if folder.is_dir():
        for d in folder.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                n = sum(1 for f in d.iterdir() if f.suffix.lower() in _IMG and not f.name.startswith("."))
                if n:
                    per_person[d.name] = n
    if name == "att":
        info["pgm"] = bool(per_person)
        info["olivetti_mat"] = (root / "olivetti" / "olivettifaces.mat").is_file()
        if not per_person and info["olivetti_mat"]:
            import scipy.io  # whosmat reads the header only

            shapes = dict((v, s) for v, s, _ in scipy.io.whosmat(str(root / "olivetti" / "olivettifaces.mat")))
            n = shapes.get("faces", (0, 0))[1]
            per_person = {f"s{i + 1}": 10 for i in range(n // 10)}
    info["identities"] = len(per_person)
    info["images"] = sum(per_person.values())
    if name == "lfw":
        info["by_min_images"] = {
            str(m): {"identities": sum(1 for c in per_person.values() if c >= m),
                     "images": sum(c for c in per_person.values() if c >= m)}
            for m in (5, 10, 20, 50)
        }
    info["source_url"], info["source_sha256"] = DATA_HUB[_ONLINE[name]]
    return info


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ..config import data_dir

    root = data_dir()
    for n in _names(args.name):
        print(f"fetching {n} into {raw_root(n, root)} ...")
        fetch(n, root, progress=not args.quiet)
        print(f"  {n}: ok (sha256 verified)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ..config import data_dir, mirror_dir

    src = Path(args.src) if args.src else mirror_dir()
    root = data_dir()
    for n in _names(args.name):
        print(f"importing {n} from {src} into {raw_root(n, root)} ...")
        import_mirror(n, src, root)
        i = dataset_info(n, root)
        print(f"  {n}: ok, {i['identities']} identities, {i['images']} images (sha256 verified)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..config import data_dir

    root = data_dir()
    infos = [dataset_info(n, root) for n in _names(args.name)]
    if args.json:
        json.dump({"data_root": str(root), "datasets": infos}, sys.stdout, indent=2)
        print()
        return 0
    print(f"data root: {root}")
    for i in infos:
        state = "prepared" if i["prepared"] else "NOT prepared"
        print(f"  {i['name']:4s} {state:13s} {i['identities']:4d} ids {i['images']:5d} images "
              f"{i['bytes'] / 1e6:7.1f} MB  {i['path']}")
        for m, c in i.get("by_min_images", {}).items():
            print(f"       min_images {m:>2s}: {c['identities']:4d} ids {c['images']:5d} images")
    if not all(i["prepared"] for i in infos):
        print("Prepare with `make data`, `ml07lab data import all --from ../shared/data` "
              "(offline) or `ml07lab data fetch all` (online).")
    return 0


def _safe(func):  # noqa: ANN001, ANN202
    """A DataError becomes one clear line on stderr and exit code 2, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    run.__name__ = func.__name__
    return run


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `data {fetch,import,info}` to the `ml07lab` command line. The dataset controls add
    manifest/diff/scan/keygen/sign/verify to the same group (`controls.trusted_data.cli`)."""
    p = subparsers.add_parser("data", help="get, inspect, manifest, scan, sign and verify face datasets",
                              description=__doc__)
    sub = p.add_subparsers(dest="data_command",
                           metavar="{fetch,import,info,manifest,diff,scan,keygen,sign,verify}")
    sub.required = True
    choices = [*DATASET_NAMES, "all"]

    f = sub.add_parser("fetch", help="download + verify + unpack (online)")
    f.add_argument("name", choices=choices)
    f.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_safe(_cmd_fetch))

    i = sub.add_parser("import", help="verify + copy from a local mirror folder (offline)")
    i.add_argument("name", choices=choices)
    i.add_argument("--from", dest="src", metavar="DIR", default=None,
                   help="mirror folder with SHA256SUMS (default: $ML07LAB_MIRROR or ../shared/data)")
    i.set_defaults(func=_safe(_cmd_import))

    n = sub.add_parser("info", help="what is prepared, with counts and sizes")
    n.add_argument("name", nargs="?", choices=choices, default="all")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    n.set_defaults(func=_safe(_cmd_info))
