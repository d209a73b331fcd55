"""Zip archives (torch's format, numpy's .npz) read through their directory only:
bombs, traversal names and pickles inside are found without extracting anything."""
from __future__ import annotations

import zipfile
from pathlib import Path

from .findings import Finding
from .pickles import ALLOWED_GLOBALS, describe, scan_pickle_bytes
from .sniff import npy_dtype

MAX_MEMBERS = 10_000
MAX_UNZIPPED = 4 << 30  # bytes, all members together
MAX_RATIO = 100  # deflate rarely beats 100:1 on weights; bombs reach 1000:1
MAX_PICKLE_BYTES = 64 << 20


def _bad_name(n: str) -> bool:
    parts = n.replace("\\", "/").split("/")
    return n.startswith(("/", "\\")) or ".." in parts or (len(n) > 1 and n[1] == ":") or "\\" in n or "\x00" in n


def _npy_object(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool | None:
    """Whether an .npy member holds Python objects (pickles); None if unreadable."""
    try:
        with z.open(info) as f:
            dtype = npy_dtype(f)
        return bool(dtype.hasobject)
    except Exception:  # noqa: BLE001 - any malformed header is simply not a plain array
        return None


def check_zip(path: Path, who: str, torch_weights: bool) -> list[Finding]:
    """Named reasons to refuse a zip. `torch_weights`: the name promises torch.save's zip
    format, whose .pkl members must hold one pickle with allowlisted imports only."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:
        return [Finding(who, "bad-zip", f"not a readable zip archive ({str(e)[:80]})")]
    with z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            return [Finding(who, "zip-bomb", f"{len(infos)} members (limit {MAX_MEMBERS})")]
        names = [i.filename for i in infos]
        bad = [n for n in names if _bad_name(n)]
        if bad:
            return [Finding(who, "zip-path-traversal", f"member name {bad[0]!r} escapes the archive")]
        if len(set(names)) != len(names):
            return [Finding(who, "zip-duplicate-name", "two members share a name")]
        total = sum(i.file_size for i in infos)
        bomb = [i for i in infos if i.file_size > (1 << 20) and i.file_size > MAX_RATIO * max(i.compress_size, 1)]
        if total > MAX_UNZIPPED or bomb:
            what = f"{bomb[0].filename!r} inflates {bomb[0].file_size // max(bomb[0].compress_size, 1)}:1" if bomb \
                else f"{total} bytes unpacked"
            return [Finding(who, "zip-bomb", f"compression bomb ({what})")]
        npys = [i for i in infos if i.filename.endswith(".npy")]
        if npys and len(npys) == len(infos):
            objs = [i.filename for i in npys if _npy_object(z, i) is not False]
            if objs:
                return [Finding(who, "npz-pickle", f"numpy archive whose {objs[0]!r} holds pickled objects")]
            return [Finding(who, "npz-archive", "numpy archive: not a served weights format; convert to safetensors")]
        pkls = [i for i in infos if i.filename.endswith(".pkl")]
        if not torch_weights or not any(i.filename.split("/")[-1] == "data.pkl" for i in pkls):
            return [Finding(who, "zip-not-torch", "a zip archive that is not torch.save's format"
                            + ("" if torch_weights else f" under a {Path(who).suffix or 'plain'} name"))]
        out = []
        for i in pkls:
            where = f"{who}:{i.filename}"
            if i.file_size > MAX_PICKLE_BYTES:
                return [Finding(where, "pickle-too-large", f"{i.file_size} bytes of pickle (limit {MAX_PICKLE_BYTES})")]
            with z.open(i) as f:
                blob = f.read(MAX_PICKLE_BYTES + 1)
            scan = scan_pickle_bytes(blob)
            bad_imports = [f"{m}.{n}" for m, n in scan.imports if (m, n) not in ALLOWED_GLOBALS]
            if scan.streams == 0:
                out.append(Finding(where, "bad-pickle", f"unreadable pickle ({scan.error})"))
            elif bad_imports:
                out.append(Finding(where, "pickle-imports", describe(scan)))
            elif scan.streams > 1 or scan.parsed_bytes < len(blob):
                out.append(Finding(where, "pickle-extra-streams", f"{describe(scan)}; torch reads one, so the rest "
                                   "is hidden cargo"))
        return out
