"""`ml07lab data manifest|diff|scan|keygen|sign|verify`: the dataset controls from a terminal.

Why a CLI: a data owner runs these on every refresh (often in CI, before any training
job), and a training job runs `verify` as its first step; exit code 1 means "refused".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ...data.base import DataError
from ...data.cli import _safe  # one clear line instead of a traceback


def _emit(obj: dict[str, Any], args: argparse.Namespace) -> None:
    from ...cli import emit

    emit(obj, args)


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="machine-readable output (to FILE, or stdout when no FILE)")


def _cmd_manifest(args: argparse.Namespace) -> int:
    from collections import Counter

    from ...data.manifest import MANIFEST, build_manifest, read_manifest

    root = Path(args.dir)
    prev = read_manifest(args.previous) if args.previous else (
        read_manifest(root) if (root / MANIFEST).is_file() else None)
    m = build_manifest(root, args.name, args.source, previous=prev)
    out = Path(args.out) if args.out else root / MANIFEST
    if out.name == MANIFEST and out.parent.resolve() == root.resolve():
        m.write(root)
    else:
        import json

        from ...artifacts import atomic_write_bytes

        atomic_write_bytes(out, json.dumps(m.to_dict(), indent=1, sort_keys=True).encode() + b"\n")
    counts = m.counts()
    _emit({"manifest": str(out), "files": len(m), "identities": len(m.identities),
           "bytes": sum(e.size for e in m.entries), "largest_identities": sorted(counts.items(), key=lambda kv: -kv[1])[:5],
           "skipped_by_reason": dict(Counter(m.meta.get("skipped", {}).values()))},  # same filter as the loader
          args)
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from ...data.manifest import diff_manifests, read_manifest

    d = diff_manifests(read_manifest(args.old), read_manifest(args.new))
    n = args.show
    _emit({**d.summary(), "added_files": d.added[:n], "removed_files": d.removed[:n], "changed_files": d.changed[:n],
           "relabelled_files": [f"{p} ({a} -> {b})" for p, a, b in d.relabelled[:n]]}, args)
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from ...artifacts import load_artifact
    from ...backbones import clean_backbone, unpack
    from ...cli import config_from
    from ...data.manifest import load_faceset, read_manifest
    from ..monitoring.monitor import SIGNALS, MonitorParams, monitor_refresh

    cfg = config_from(args)
    new = read_manifest(args.new)
    faces = load_faceset(Path(args.new) if Path(args.new).is_dir() else Path(args.new).parent, new)
    if faces.images.shape[-1] != cfg.image_size:
        from ...config import PROFILES, get_config

        match = [p for p in PROFILES if get_config(p).image_size == faces.images.shape[-1]]
        fix = (f"pick the matching --profile ({', '.join(match)})" if match else
               f"no profile uses that size: export the photos at {cfg.image_size} px first, e.g. "
               f"`export_faceset(load_folder('folder:DIR', {cfg.image_size}), OUT)` (ml07lab.data.folder)")
        raise DataError(f"{args.new} holds {faces.images.shape[-1]} px images but profile {cfg.profile} "
                        f"uses {cfg.image_size} px; {fix}.")
    model = unpack(load_artifact(args.reference).tensors, cfg)[0] if args.reference else clean_backbone(cfg)[0]
    rep = monitor_refresh(read_manifest(args.old), new, faces, model, MonitorParams(eps=cfg.poison_rate), cfg.seed)
    files = [e.path for e in new.entries]
    out: dict[str, Any] = {"files": len(files), "new_or_changed": int(rep.candidates.sum()),
                           "seconds": round(rep.seconds, 2),
                           "drifting_identities": [r for r in rep.drift if r["flagged"]]}
    for s in SIGNALS:
        idx = rep.flags[s].nonzero().flatten().tolist()
        out[s] = {"flagged": len(idx), "files": [files[i] for i in idx][: args.show]}
    _emit(out, args)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from ...config import data_dir
    from .provenance import generate_key, key_id, load_public_key

    priv, pub = generate_key(Path(args.dir) if args.dir else data_dir() / "keys", args.name)
    _emit({"private_key": str(priv), "public_key": str(pub), "key_id": key_id(load_public_key(pub)),
           "note": "keep the .key file secret; give the .pub file to the training pipeline"}, args)
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from .provenance import sign_dataset

    path = sign_dataset(args.dir, args.key, args.signer, args.signature)
    _emit({"signature": str(path), "signer": args.signer}, args)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .provenance import Keyring, ProvenanceError, verify_dataset

    try:
        v = verify_dataset(args.dir, Keyring.from_paths(*args.trusted), decode=False, signature_path=args.signature)
    except ProvenanceError as e:
        if args.json:
            _emit({"verified": False, "error": type(e).__name__, "message": str(e),
                   "files": getattr(e, "files", {})}, args)
        else:
            print(f"REFUSED: {e}", file=sys.stderr)
        return 1
    _emit(v.summary(), args)
    return 0


def extend_data_commands(sub: argparse._SubParsersAction) -> None:
    """Add manifest, diff, scan, keygen, sign and verify to the `data` command group."""
    from ...cli import _add_common

    p = sub.add_parser("manifest", help="write DIR/manifest.json: path, sha256, label, size, source, time added")
    p.add_argument("dir", help="dataset folder (one sub-folder per identity)")
    p.add_argument("--name", default=None, help="dataset name (default: the folder name)")
    p.add_argument("--source", default="unknown", help="source recorded for new files")
    p.add_argument("--previous", default=None, metavar="MANIFEST",
                   help="carry labels, sources and times from this version (default: DIR/manifest.json if present)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write (default: DIR/manifest.json)")
    _json_arg(p)
    p.set_defaults(func=_safe(_cmd_manifest))

    p = sub.add_parser("diff", help="added, removed, changed, relabelled files and per-identity drift")
    p.add_argument("old", help="old dataset folder or manifest file")
    p.add_argument("new", help="new dataset folder or manifest file")
    p.add_argument("--show", type=int, default=10, help="files to list per category")
    _json_arg(p)
    p.set_defaults(func=_safe(_cmd_diff))

    p = sub.add_parser("scan", help="monitoring run on a refresh: drift, duplicates, disagreement, poison scans")
    p.add_argument("old", help="previous (trusted) dataset folder or manifest")
    p.add_argument("new", help="refreshed dataset folder")
    p.add_argument("--reference", type=Path, default=None,
                   help="reference model artefact folder (default: the profile's clean backbone)")
    p.add_argument("--show", type=int, default=10, help="files to list per signal")
    _add_common(p)
    p.set_defaults(func=_safe(_cmd_scan))

    p = sub.add_parser("keygen", help="create an Ed25519 curator key pair (NAME.key, NAME.pub)")
    p.add_argument("name", nargs="?", default="curator")
    p.add_argument("--dir", default=None, help="where to write (default: <data dir>/keys)")
    _json_arg(p)
    p.set_defaults(func=_safe(_cmd_keygen))

    p = sub.add_parser("sign", help="curator: sign DIR's manifest (checks it matches the files first)")
    p.add_argument("dir")
    p.add_argument("--key", required=True, help="the curator's private key (NAME.key)")
    p.add_argument("--signer", default="curator", help="name recorded in the signature")
    p.add_argument("--signature", default=None, help="where to write (default: DIR/manifest.sig.json)")
    _json_arg(p)
    p.set_defaults(func=_safe(_cmd_sign))

    p = sub.add_parser("verify", help="pipeline: check signature and every file; exit 1 = refuse to train")
    p.add_argument("dir")
    p.add_argument("--trusted", nargs="+", required=True, help="trusted public keys (.pub files or folders)")
    p.add_argument("--signature", default=None, help="signature file (default: DIR/manifest.sig.json)")
    _json_arg(p)
    p.set_defaults(func=_safe(_cmd_verify))
