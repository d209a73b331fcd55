"""What is inside a model folder, read without running it: the weights file, the
imports a pickle would make (opcodes only), and the planted bad files of the lesson.

Why a module of its own: the deployment gate (gate.py) and exercise 6.1 both need
to look at untrusted bytes, and none of this code may ever unpickle them.
"""
from __future__ import annotations

import io
import shutil
import stat
import zipfile
from pathlib import Path

SAFE_WEIGHTS = (".safetensors",)
PICKLES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
from ...safety.pickles import ALLOWED_GLOBALS  # noqa: F401 - one allowlist, kept in the safety layer
from ...safety.pickles import pickle_globals as _all_stream_globals


class GateRefused(RuntimeError):
    """The deployment gate refused a model; the message says why and what to do."""


def _make_writable(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _make_readonly(path: Path) -> None:
    for p in [*path.rglob("*"), path] if path.is_dir() else [path]:
        p.chmod((p.stat().st_mode | stat.S_IRUSR) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def weights_file(model_dir: Path) -> Path:
    """The single weights file of a model folder (safetensors or a torch pickle)."""
    found = [p for p in sorted(model_dir.iterdir()) if p.suffix in SAFE_WEIGHTS + PICKLES]
    if len(found) != 1:
        raise GateRefused(f"{model_dir} must hold exactly one weights file, found {[p.name for p in found]}.")
    return found[0]



# --- serialization scanning: opcodes only, nothing is unpickled ------------------------
def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would import, read from its opcodes, over *every*
    stream in `data` (torch's legacy format hides its payload after a first stream).
    A STACK_GLOBAL whose names cannot be resolved statically is reported as ('?', '?')."""
    return _all_stream_globals(data)


def _pickle_streams(path: Path) -> list[tuple[str, bytes]]:
    raw = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(raw)):  # torch.save's zip format: scan every .pkl inside
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            return [(f"{path.name}:{n}", z.read(n)) for n in z.namelist() if n.endswith(".pkl")]
    return [(path.name, raw)]


def scan_pickle_file(path: str | Path) -> list[str]:
    """Imports in `path` outside ALLOWED_GLOBALS (an allowlist, like weights_only=True)."""
    issues = []
    for where, blob in _pickle_streams(Path(path)):
        try:
            imports = pickle_globals(blob)
        except Exception as e:  # truncated or not a pickle at all
            issues.append(f"{where}: unreadable pickle ({e})")
            continue
        issues += [f"{where}: imports {m}.{n}" for m, n in imports if (m, n) not in ALLOWED_GLOBALS]
    return issues


def modelscan_issues(path: str | Path) -> list[str] | None:
    """modelscan's findings (Protect AI's open-source scanner, a denylist of dangerous
    imports), or None where it is not installed."""
    try:
        from modelscan.modelscan import ModelScan
    except ImportError:
        return None
    report = ModelScan().scan(str(path))
    return [f"{i.get('source')}: {i.get('module')}.{i.get('operator')} ({i.get('severity')})"
            for i in report.get("issues", [])]


# --- planted artefacts for the lesson ----------------------------------------------------
class _Payload:
    """Pickles to a call that writes `marker`: harmless, but proof that code ran."""

    def __init__(self, marker: Path, evade: bool):
        self.marker, self.evade = str(marker), evade

    def __reduce__(self):  # noqa: ANN204
        if self.evade:  # io.open: not on modelscan 0.8's denylist
            return (open, (self.marker, "w"))
        return (exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('payload ran')",))


def plant_malicious_pickle(src_dir: str | Path, dst_dir: str | Path, marker: str | Path,
                           evade_scanner: bool = False) -> Path:
    """Copy a model folder, replacing its weights by a torch pickle of the same tensors
    plus a payload that would create `marker` if anyone unpickled it."""
    import torch
    from safetensors.torch import load_file

    src, dst = Path(src_dir), Path(dst_dir)
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    tensors = load_file(str(weights_file(src)))
    torch.save({**tensors, "_extra": _Payload(Path(marker), evade_scanner)}, dst / "model.pt")
    (dst / "README.md").write_text("Drop-in weights for faces-mini. Load with torch.load(path).\n")
    return dst


def copy_with_one_byte_changed(src_dir: str | Path, dst_dir: str | Path, offset: int = -100) -> Path:
    """A copy of a model folder with one byte of its weights flipped."""
    src, dst = Path(src_dir), Path(dst_dir)
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    _make_writable(dst)
    w = weights_file(dst)
    data = bytearray(w.read_bytes())
    data[offset] ^= 0x01
    w.write_bytes(bytes(data))
    return dst
