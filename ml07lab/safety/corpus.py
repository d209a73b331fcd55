"""A malicious-artefact corpus, generated on demand: model folders an attacker (or a
careless colleague) could hand over, each of which the deployment gate and
`ml07lab audit` must refuse with a named reason.

Why generated, not stored: crafted pickles in the repository would be exactly the files
the kit teaches never to keep. Every payload is harmless: it would only create a canary
file in a temp folder, so a test can prove that no payload ever ran.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class CorpusItem:
    """One crafted folder and the code of the reason it must be refused for."""

    name: str
    path: Path
    expect: str  # a Finding code (safety.findings)


class Canary:
    """Pickles to a call that creates `path` (os.system, open or exec): harmless, but
    proof that code ran if the file ever appears."""

    def __init__(self, path: Path, how: str = "system"):
        self.path, self.how = str(path), how

    def __reduce__(self):  # noqa: ANN204
        if self.how == "system":
            return (os.system, (f"touch {shlex.quote(self.path)}",))
        if self.how == "open":
            return (open, (self.path, "w"))
        return (exec, (f"import pathlib; pathlib.Path({self.path!r}).write_text('payload ran')",))


def _clean_folder(d: Path) -> Path:
    """A tiny, valid model folder: safetensors weights, meta.json, README.md."""
    import torch
    from safetensors.torch import save_file

    d.mkdir(parents=True)
    save_file({"w": torch.ones(3)}, str(d / "model.safetensors"))
    (d / "meta.json").write_text(json.dumps({"name": d.name}))
    (d / "README.md").write_text("A model folder.\n")
    return d


def _safetensors(header: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def _st_header(entries: dict) -> bytes:
    return json.dumps(entries).encode()


def _torch_zip(members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def _torch_save(obj: object, legacy: bool) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _bomb(path: Path, name: str, mib: int = 64) -> None:
    """A zip whose member inflates about 1000:1 (written in chunks, never held in memory)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(OrderedDict(), protocol=2))
        with z.open(name, "w") as f:
            for _ in range(mib):
                f.write(bytes(1 << 20))


def build_corpus(root: str | Path, canary_dir: str | Path, max_file_bytes: int | None = None) -> list[CorpusItem]:
    """Write every crafted folder under `root`; payloads would create files in `canary_dir`.
    `max_file_bytes`: the size limit the oversized item must exceed (default: the gate's)."""
    import numpy as np
    import torch

    from .folder import MAX_FILE_BYTES

    root, canaries = Path(root), Path(canary_dir)
    root.mkdir(parents=True, exist_ok=True)
    canaries.mkdir(parents=True, exist_ok=True)
    outside = _clean_folder(root / "_outside")  # a real folder the symlinks point into
    items: list[CorpusItem] = []

    def add(name: str, expect: str, make: Callable[[Path, Canary], None], clean: bool = True) -> None:
        d = _clean_folder(root / name) if clean else root / name
        make(d, Canary(canaries / name, ("system", "open", "exec")[len(items) % 3]))
        items.append(CorpusItem(name, d, expect))

    def put(fname: str, blob: bytes, drop_weights: bool = False) -> Callable[[Path, Canary], None]:
        def make(d: Path, c: Canary) -> None:  # noqa: ARG001
            if drop_weights:
                (d / "model.safetensors").unlink()
            (d / fname).write_bytes(blob)
        return make

    def put_payload(fname: str, encode: Callable[[Canary], bytes], drop_weights: bool = True) -> Callable[[Path, Canary], None]:
        def make(d: Path, c: Canary) -> None:
            if drop_weights:
                (d / "model.safetensors").unlink()
            (d / fname).write_bytes(encode(c))
        return make

    state = OrderedDict(w=torch.ones(3))
    # pickles in torch's zip format, torch's legacy format and raw form, protocols 0-5
    add("zip-torch-system", "pickle-imports", put_payload("model.pt", lambda c: _torch_save({**state, "x": c}, False)))
    add("zip-torch-open-evades-modelscan", "pickle-imports",
        put_payload("model.pt", lambda c: _torch_save({**state, "x": Canary(c.path, "open")}, False)))
    add("legacy-torch-payload", "torch-legacy-format", put_payload("model.pt", lambda c: _torch_save({**state, "x": c}, True)))
    add("legacy-torch-clean", "torch-legacy-format", put_payload("model.pt", lambda c: _torch_save(state, True)))
    for proto in range(6):
        add(f"raw-pickle-protocol-{proto}", "raw-pickle", put_payload("model.pkl", lambda c, p=proto: pickle.dumps(c, protocol=p)))
    # several pickle streams in one file
    add("raw-two-streams", "raw-pickle",
        put_payload("model.bin", lambda c: pickle.dumps({"w": [1.0]}, protocol=2) + pickle.dumps(c, protocol=2)))
    add("zip-torch-second-stream", "pickle-imports", put_payload("model.pt", lambda c: _torch_zip({
        "archive/data.pkl": pickle.dumps(OrderedDict(), protocol=2) + pickle.dumps(c, protocol=2), "archive/version": b"3\n"})))
    add("zip-torch-hidden-clean-stream", "pickle-extra-streams", put_payload("model.pt", lambda c: _torch_zip({
        "archive/data.pkl": pickle.dumps(OrderedDict(), protocol=2) * 2, "archive/version": b"3\n"})))
    # a pickle under a name that promises something else
    add("pickle-as-txt-protocol-0", "disguised-pickle", put_payload("notes.txt", lambda c: pickle.dumps(c, protocol=0), False))
    add("pickle-as-txt-protocol-4", "disguised-pickle", put_payload("notes.txt", lambda c: pickle.dumps(c, protocol=4), False))
    add("pickle-as-md-protocol-1", "disguised-pickle", put_payload("README.md", lambda c: pickle.dumps(c, protocol=1), False))
    add("pickle-as-json", "disguised-pickle", put_payload("config.json", lambda c: pickle.dumps(c, protocol=2), False))
    add("pickle-as-bin", "raw-pickle", put_payload("model.bin", lambda c: pickle.dumps(c, protocol=3)))
    add("pickle-as-safetensors", "disguised-pickle", put_payload("model.safetensors", lambda c: pickle.dumps(c, protocol=5)))
    add("torch-zip-as-safetensors", "zip-not-torch",
        put_payload("model.safetensors", lambda c: _torch_save({**state, "x": c}, False)))
    add("legacy-torch-as-txt", "disguised-pickle", put_payload("notes.txt", lambda c: _torch_save({"x": c}, True), False))
    add("pickle-without-extension", "disguised-pickle", put_payload("weights", lambda c: pickle.dumps(c, protocol=4), False))
    # malformed safetensors
    ok_entry = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    for name, expect, blob in [
        ("st-header-past-eof", "safetensors-header-past-eof", _safetensors(b'{"w": {}}', b"", 10_000)),
        ("st-huge-header", "safetensors-huge-header", _safetensors(b"{}", b"", 1 << 40)),
        ("st-non-json-header", "safetensors-bad-header", _safetensors(b"{this is not json}", bytes(8))),
        ("st-header-not-object", "safetensors-bad-header", _safetensors(b"[1, 2, 3]")),
        ("st-overlapping-offsets", "safetensors-overlapping-offsets", _safetensors(_st_header(
            {**ok_entry, "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}), bytes(12))),
        ("st-offsets-out-of-range", "safetensors-offsets-out-of-range", _safetensors(_st_header(ok_entry), bytes(4))),
        ("st-dtype-shape-mismatch", "safetensors-dtype-shape-mismatch", _safetensors(_st_header(
            {"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}), bytes(8))),
        ("st-unknown-dtype", "safetensors-bad-header", _safetensors(_st_header(
            {"w": {"dtype": "OBJECT", "shape": [2], "data_offsets": [0, 8]}}), bytes(8))),
        ("st-truncated", "safetensors-truncated", b"\x10\x00\x00"),
    ]:
        add(name, expect, put("model.safetensors", blob))
    # numpy: object arrays pickle their items
    def npy(c: Canary) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.array([c, 1], dtype=object), allow_pickle=True)
        return buf.getvalue()

    def npz(c: Canary) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, weights=np.ones(3), extra=np.array([c], dtype=object))
        return buf.getvalue()

    add("npy-object-array", "npy-object-array", put_payload("weights.npy", npy, False))
    add("npy-object-array-as-bin", "npy-object-array", put_payload("model.bin", npy))
    add("npz-holding-pickles", "npz-pickle", put_payload("weights.npz", npz, False))
    add("npz-as-pt", "npz-pickle", put_payload("model.pt", npz))
    # archives: bombs and traversal names
    add("zip-bomb-as-pt", "zip-bomb", lambda d, c: (d / "model.safetensors").unlink() or _bomb(d / "model.pt", "archive/data/0"))
    add("zip-bomb-as-txt", "zip-bomb", lambda d, c: _bomb(d / "notes.txt", "notes"))
    add("zip-traversal-member", "zip-path-traversal", put_payload("model.pt", lambda c: _torch_zip({
        "archive/data.pkl": pickle.dumps(OrderedDict(), protocol=2), "../../escape/data.pkl": pickle.dumps(c, protocol=2)})))
    add("zip-absolute-member", "zip-path-traversal", put_payload("model.pt", lambda c: _torch_zip({
        "archive/data.pkl": pickle.dumps(OrderedDict(), protocol=2), "/tmp/ml07lab-escape.pkl": pickle.dumps(c, protocol=2)})))
    # the folder itself: links out of it, special files, names, sizes, code
    add("symlink-weights-outside", "symlink", lambda d, c: (d / "model.safetensors").unlink()
        or (d / "model.safetensors").symlink_to(outside / "model.safetensors"))
    add("symlink-to-etc-passwd", "symlink", lambda d, c: (d / "notes.txt").symlink_to("/etc/passwd"))
    add("symlink-dir-outside", "symlink", lambda d, c: (d / "extra").symlink_to(outside, target_is_directory=True))
    add("symlink-folder-itself", "symlink", lambda d, c: d.symlink_to(outside, target_is_directory=True), clean=False)
    add("fifo-in-folder", "special-file", lambda d, c: os.mkfifo(d / "notes.txt"))
    add("traversal-name-on-disk", "unsafe-name",
        put_payload("..\\..\\escape.txt", lambda c: pickle.dumps(c, protocol=0), False))
    add("hidden-pickle", "unsafe-name", put_payload(".cache.pkl", lambda c: pickle.dumps(c, protocol=2), False))
    limit = max_file_bytes or MAX_FILE_BYTES

    def oversized(d: Path, c: Canary) -> None:  # noqa: ARG001 - sparse: no disk used
        with open(d / "model.bin", "wb") as f:
            f.truncate(limit + 1)
    add("oversized-file", "oversized", oversized)
    add("code-file", "unknown-type", put("loader.py", b"import os\nos.system('touch canary')\n"))
    return items
