"""A model folder, file by file, judged by content: the one entry point the deployment
gate and the audit call before anything else reads the folder."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .archives import check_zip
from .findings import Finding, hazardous  # noqa: F401 - hazardous: re-exported for callers
from .pickles import describe, scan_pickle_bytes
from .sniff import npy_dtype
from .safetensors_check import check_safetensors
from .sniff import CODE_KINDS, _text, sniff

SAFE_WEIGHTS = (".safetensors",)
TORCH_WEIGHTS = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
JSON_DATA = (".json", ".sig")
TEXT_DATA = (".md", ".txt")
MAX_FILE_BYTES = 1 << 30  # no model of the kit comes near 1 GiB; a bigger file is refused unread
MAX_READ = 64 << 20  # plain-data files and raw pickles are read whole up to this size
MAX_FILES = 1000
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")
CODE_FINDINGS = frozenset({"pickle-imports", "pickle-extra-streams", "raw-pickle", "torch-legacy-format",
                           "disguised-pickle", "npy-object-array", "npz-pickle", "bad-pickle"})


def _pickle_finding(who: str, kind: str, data: bytes, suffix: str) -> Finding:
    scan = scan_pickle_bytes(data)
    if suffix not in TORCH_WEIGHTS:
        return Finding(who, "disguised-pickle", f"content is a pickle ({describe(scan)}) under "
                       f"{'a ' + suffix if suffix else 'an extension-less'} name")
    if kind == "torch-legacy":
        return Finding(who, "torch-legacy-format", f"legacy (non-zip) torch.save format ({describe(scan)}): "
                       "refused as unsafe; re-save it as safetensors")
    return Finding(who, "raw-pickle", f"raw pickle ({describe(scan)}): only torch.save's zip format is read")


def _npy_finding(who: str, path: Path) -> Finding:
    try:
        with open(path, "rb") as f:
            dtype = npy_dtype(f)
    except Exception as e:  # noqa: BLE001 - malformed header
        return Finding(who, "bad-npy", f"malformed .npy header ({str(e)[:60]})")
    if dtype.hasobject:
        return Finding(who, "npy-object-array", "numpy array of Python objects (np.load would unpickle them)")
    return Finding(who, "npy-array", "numpy array file: not a served weights format; convert to safetensors")


def scan_file(path: Path, who: str) -> list[Finding]:
    """Named reasons to refuse one regular file, decided by its content and checked
    against what its name promises."""
    size, suffix = path.stat().st_size, path.suffix.lower()
    plain = suffix in JSON_DATA + TEXT_DATA
    if plain and size > MAX_READ:
        return [Finding(who, "plain-data-too-large", f"{size} bytes of {suffix} (limit {MAX_READ})")]
    with open(path, "rb") as f:  # plain data is read whole (a protocol-0 pickle is text); others by their head
        data = f.read(MAX_READ if plain else 1 << 20)
        kind = sniff(data, size)
        if kind in CODE_KINDS and len(data) < size <= MAX_READ:  # describe every stream, not just the head's
            data += f.read()
    if kind in CODE_KINDS:
        return [_pickle_finding(who, kind, data, suffix)]
    if kind == "npy":
        return [_npy_finding(who, path)]
    if kind == "zip":
        return check_zip(path, who, torch_weights=suffix in TORCH_WEIGHTS)
    if suffix in SAFE_WEIGHTS:
        return check_safetensors(path, who)
    if suffix in TORCH_WEIGHTS:
        return [Finding(who, "not-torch-format", f"content is {kind}, not torch.save's zip format")]
    if suffix in JSON_DATA + TEXT_DATA:
        if kind not in ("text", "empty"):
            return [Finding(who, "content-name-mismatch", f"content is {kind}, named {suffix}")]
        if suffix in JSON_DATA:
            import json

            try:
                json.loads(data.decode("utf-8"))
            except ValueError as e:
                return [Finding(who, "bad-json", f"not valid JSON ({str(e)[:60]})")]
        return []
    return [Finding(who, "unknown-type", f"unknown file type {suffix or '(none)'} (content: {kind}); only "
                    f"weights ({', '.join(SAFE_WEIGHTS + TORCH_WEIGHTS)}) and plain data are served")]


def scan_folder(folder: str | Path, allow_subdirs: bool = False, max_file_bytes: int = MAX_FILE_BYTES) -> list[Finding]:
    """Every named reason to refuse `folder`, found without following links, opening
    special files, reading oversized files or unpacking archives."""
    root = Path(folder)
    if root.is_symlink():
        return [Finding(root.name, "symlink", f"the folder itself is a symbolic link to {os.readlink(root)}")]
    out: list[Finding] = []
    todo, seen = [root], 0
    while todo:
        cur = todo.pop()
        try:
            entries = sorted(os.scandir(cur), key=lambda e: e.name)
        except OSError as err:
            return out + [Finding(str(cur.relative_to(root)), "unreadable", f"folder cannot be listed ({err.strerror})")]
        for e in entries:
            who = str(Path(e.path).relative_to(root))
            seen += 1
            if seen > MAX_FILES:
                return out + [Finding(root.name, "too-many-files", f"more than {MAX_FILES} entries")]
            st = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(e.path)
                inside = Path(os.path.realpath(e.path)).is_relative_to(root.resolve())
                out.append(Finding(who, "symlink", f"symbolic link to {target}{'' if inside else ' (outside the folder)'}"
                                   "; copy real files into the model folder"))
            elif stat.S_ISDIR(st.st_mode):
                if allow_subdirs:
                    todo.append(Path(e.path))
                else:
                    out.append(Finding(who, "subfolder", "a sub-folder; a model folder holds plain files only"))
            elif not stat.S_ISREG(st.st_mode):
                out.append(Finding(who, "special-file", "not a regular file (device, FIFO or socket)"))
            elif st.st_size > max_file_bytes:
                out.append(Finding(who, "oversized", f"{st.st_size} bytes, over the {max_file_bytes}-byte limit"))
            elif not _NAME.fullmatch(e.name) or ".." in e.name:
                out.append(Finding(ascii(who), "unsafe-name", "a file name with path characters, control "
                                   "characters or a leading dot"))
            else:
                try:
                    out += scan_file(Path(e.path), who)
                except OSError as err:  # unreadable (permissions, I/O error): refuse, never crash
                    out.append(Finding(who, "unreadable", f"cannot be read ({err.strerror or err})"))
    return out


def refusal(findings: list[Finding]) -> str:
    """The one line a refusal shows: the first finding, worded by what it means."""
    f = findings[0]
    if f.code in CODE_FINDINGS and "no disallowed imports" not in f.detail:
        return f"a pickle carries code ({f}). Only weights are served: convert it to safetensors in the training environment."
    return f"{f}. Only weights-only files and plain data are served."
