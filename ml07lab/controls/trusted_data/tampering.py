"""Tampering with a signed dataset, to show that verification catches it: random
additions, removals, modifications and relabellings (with or without the attacker also
editing manifest.json), and the refusals the pipeline gives for each kind of bad dataset.

Why separate from provenance.py: that module is the control the pipeline runs; this one
is the red team's toolkit that measures it (notebook 05's "100 of 100 tamperings").
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...data.manifest import MANIFEST, Manifest, decode_png, now_utc, png_bytes, sha256_bytes
from .provenance import (SIGNATURE, Keyring, ProvenanceError,
                         sign_dataset, verify_dataset)

TAMPER_KINDS = ("add", "remove", "modify", "relabel")
EXPECTED = {"add": "added", "remove": "removed", "modify": "modified", "relabel": "relabelled"}


def tamper(root: Path, kind: str, rng: np.random.Generator, cover: bool = False) -> tuple[str, Callable[[], None]]:
    """One random tampering of a dataset folder; returns (the file touched, undo).

    cover=True also edits manifest.json to match, as a careful attacker would."""
    mp = root / MANIFEST
    mbytes = mp.read_bytes()
    m = Manifest.from_bytes(mbytes)
    e = m.entries[int(rng.integers(len(m.entries)))]
    src = root / e.path
    orig = src.read_bytes()
    undo: list[Callable[[], None]] = [lambda: mp.write_bytes(mbytes)]
    entries = list(m.entries)
    if kind == "add":
        target = root / e.path.rsplit("/", 1)[0] / f"extra_{int(rng.integers(1 << 30)):09d}.png"
        px = decode_png(orig, e.path).copy()
        px[int(rng.integers(px.shape[0])), int(rng.integers(px.shape[1]))] ^= 0x40
        target.write_bytes(png_bytes(torch.from_numpy(px)[None]))
        undo.append(target.unlink)
        touched = target.relative_to(root).as_posix()
        entries.append(e._replace(path=touched, sha256=sha256_bytes(target.read_bytes()), added=now_utc()))
    elif kind == "remove":
        src.unlink()
        undo.append(lambda: src.write_bytes(orig))
        touched = e.path
        entries.remove(e)
    elif kind == "modify":
        i = int(rng.integers(len(orig)))
        b = bytearray(orig)
        b[i] ^= int(rng.integers(1, 256))
        src.write_bytes(bytes(b))
        undo.append(lambda: src.write_bytes(orig))
        touched = e.path
        entries[entries.index(e)] = e._replace(sha256=sha256_bytes(bytes(b)))
    elif kind == "relabel":
        other = [n for n in m.identities if n != e.label]
        new_label = other[int(rng.integers(len(other)))]
        touched = e.path
        if rng.random() < 0.5:  # move the file into the other person's folder
            dst = root / new_label / Path(e.path).name.replace(".png", "_moved.png")
            dst.parent.mkdir(exist_ok=True)
            src.rename(dst)
            undo.append(lambda: dst.rename(src))
            entries[entries.index(e)] = e._replace(path=dst.relative_to(root).as_posix(), label=new_label)
        else:  # or just edit the label in manifest.json
            entries[entries.index(e)] = e._replace(label=new_label)
        cover = True  # labels come from the manifest, so a relabelling always edits it
    else:
        raise ValueError(f"Unknown tampering {kind!r}; choose one of {', '.join(TAMPER_KINDS)}.")
    if cover:
        Manifest(m.name, m.identities, entries, m.created, m.meta).write(root)

    def restore() -> None:
        for u in reversed(undo):
            u()
    return touched, restore


def tampering_study(signed_root: str | Path, trusted: Keyring, n: int = 100, seed: int = 0,
                    scratch: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """`n` random tamperings of a copy (in a fresh folder under `scratch`) of a signed
    dataset, each verified then undone.

    Caught = refused, with the touched file named in the right category."""
    from tqdm.auto import tqdm

    signed_root = Path(signed_root)
    work = Path(tempfile.mkdtemp(prefix=signed_root.name + "-scratch-", dir=scratch or signed_root.parent))
    copy = work / "dataset"
    shutil.copytree(signed_root, copy)
    rng = np.random.default_rng([seed, 4242])
    rows, t0 = [], time.perf_counter()
    try:
        for _ in tqdm(range(n), desc="tamper + verify", disable=not progress, leave=False):
            kind = TAMPER_KINDS[int(rng.integers(len(TAMPER_KINDS)))]
            touched, restore = tamper(copy, kind, rng, cover=bool(rng.random() < 0.5))
            caught, named, msg, t1 = False, False, "", time.perf_counter()
            try:
                verify_dataset(copy, trusted, decode=False)
            except ProvenanceError as e:
                caught, msg = True, str(e)
                named = any(touched in f for f in getattr(e, "files", {}).get(EXPECTED[kind], []))
            finally:
                secs = time.perf_counter() - t1
                restore()
            rows.append({"kind": kind, "file": touched, "caught": caught, "named": named,
                         "verify_seconds": secs, "message": msg[:300]})
        verify_dataset(copy, trusted, decode=False)  # every undo really restored the signed state
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_kind = {k: {"tried": sum(r["kind"] == k for r in rows), "caught": sum(r["kind"] == k and r["caught"] for r in rows)}
               for k in TAMPER_KINDS}
    return {"tamperings_tried": n, "tamperings_caught": sum(r["caught"] for r in rows),
            "tamperings_named": sum(r["named"] for r in rows), "by_kind": by_kind,
            "seconds": round(time.perf_counter() - t0, 2), "rows": rows}


def demonstrate_refusals(signed_root: str | Path, trusted: Keyring, stranger_key: str | Path) -> dict[str, str]:
    """One of each refusal on a scratch copy: kind -> the error the pipeline raises."""
    signed_root = Path(signed_root)
    work = Path(tempfile.mkdtemp(prefix=signed_root.name + "-demo-", dir=signed_root.parent))
    scratch = work / "dataset"
    shutil.copytree(signed_root, scratch)
    rng, out = np.random.default_rng(7), {}

    def attempt(kind: str) -> None:
        try:
            verify_dataset(scratch, trusted, decode=False)
            out[kind] = "ACCEPTED"
        except ProvenanceError as e:
            out[kind] = f"{type(e).__name__}: {e}".replace(str(scratch), f"{signed_root.name} (a copy)")
    try:
        for kind in TAMPER_KINDS:
            _, restore = tamper(scratch, kind, rng)
            attempt(EXPECTED[kind])
            restore()
        sig = (scratch / SIGNATURE).read_bytes()
        (scratch / SIGNATURE).unlink()
        attempt("unsigned")
        sign_dataset(scratch, stranger_key, signer="curator")  # someone else's key, claiming the name
        attempt("unknown key")
        (scratch / SIGNATURE).write_bytes(sig)
        attempt("restored")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
