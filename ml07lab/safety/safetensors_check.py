"""A strict reading of a safetensors header before any library parses the file.

Why our own check: the format is simple enough to verify completely (an 8-byte length,
a JSON header, byte ranges that tile the data), and doing it ourselves gives every
refusal a named reason instead of a library traceback.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from .findings import Finding

MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own limit (100 MB)
ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
            "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys")
    return dict(pairs)


def _entry_problem(name: str, e: object, data_len: int) -> str | None:
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
        return f"tensor {name!r}: entry must hold exactly dtype, shape and data_offsets"
    dtype, shape, off = e["dtype"], e["shape"], e["data_offsets"]
    if dtype not in ITEMSIZE:
        return f"tensor {name!r}: unknown dtype {str(dtype)[:20]!r}"
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        return f"tensor {name!r}: shape must be a list of non-negative integers"
    if not (isinstance(off, list) and len(off) == 2 and all(type(o) is int for o in off)):
        return f"tensor {name!r}: data_offsets must be two integers"
    if not 0 <= off[0] <= off[1] <= data_len:
        return f"tensor {name!r}: data_offsets {off} out of range (data is {data_len} bytes)"
    if off[1] - off[0] != math.prod(shape) * ITEMSIZE[dtype]:
        return (f"tensor {name!r}: {dtype} {shape} needs {math.prod(shape) * ITEMSIZE[dtype]} bytes, "
                f"offsets give {off[1] - off[0]} (dtype/shape mismatch)")
    return None


def check_safetensors(path: str | Path, name: str | None = None) -> list[Finding]:
    """Named reasons `path` is not a well-formed safetensors file ([] when it is)."""
    p = Path(path)
    who = name or p.name
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return [Finding(who, "safetensors-truncated", f"{size} bytes: too short for a safetensors header")]
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            return [Finding(who, "safetensors-huge-header", f"header length {n} exceeds {MAX_HEADER_BYTES} bytes")]
        if 8 + n > size:
            return [Finding(who, "safetensors-header-past-eof", f"header length {n} runs past the end of the {size}-byte file")]
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        return [Finding(who, "safetensors-bad-header", f"header is not valid JSON ({str(e)[:80]})")]
    if not isinstance(header, dict):
        return [Finding(who, "safetensors-bad-header", f"header is a JSON {type(header).__name__}, not an object")]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        return [Finding(who, "safetensors-bad-header", "__metadata__ must map strings to strings")]
    data_len = size - 8 - n
    for tname, e in header.items():
        problem = _entry_problem(tname, e, data_len)
        if problem:
            code = "safetensors-dtype-shape-mismatch" if "mismatch" in problem else (
                "safetensors-offsets-out-of-range" if "out of range" in problem else "safetensors-bad-header")
            return [Finding(who, code, problem)]
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], t) for t, e in header.items())
    end = 0
    for b, e, t in spans:
        if b < end:
            return [Finding(who, "safetensors-overlapping-offsets", f"tensor {t!r} overlaps the tensor before it")]
        if b > end:
            return [Finding(who, "safetensors-gap", f"{b - end} unused bytes before tensor {t!r}")]
        end = e
    if end != data_len:
        return [Finding(who, "safetensors-trailing-bytes", f"{data_len - end} bytes after the last tensor")]
    return []


def load_safetensors(path: str | Path, remedy: str = "Delete it to rebuild it, or fetch it again.") -> dict:
    """safetensors.torch.load_file after the strict check; one clear ValueError otherwise
    (ending with `remedy`: what the caller's user should do about it)."""
    from safetensors.torch import load_file

    bad = check_safetensors(path)
    if bad:
        raise ValueError(f"{path} is not a valid safetensors file: {bad[0].detail} [{bad[0].code}]. {remedy}")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - the library's SafetensorError is not a ValueError
        raise ValueError(f"{path} is not a valid safetensors file ({str(e).splitlines()[0][:160]}). {remedy}") from e
