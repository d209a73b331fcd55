"""What a file *is*, from its first bytes (magic numbers), never from its name."""
from __future__ import annotations

import struct

from .pickles import is_pickle, scan_pickle_bytes

MAGIC = (  # (prefix, kind)
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x93NUMPY", "npy"), (b"\x1f\x8b", "gzip"),
    (b"\x7fELF", "executable"), (b"MZ", "executable"), (b"\x89HDF\r\n\x1a\n", "hdf5"), (b"#!", "script"),
)
CODE_KINDS = ("pickle", "torch-legacy")  # kinds whose loading runs code


def _text(data: bytes) -> str | None:
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if any(ord(c) < 32 and c not in "\t\n\r\f" for c in s) else s


def sniff(head: bytes, size: int) -> str:
    """The kind of a file from its first bytes (`head`, up to a few MB) and its size:
    empty, zip, npy, gzip, executable, hdf5, script, torch-legacy, pickle, safetensors,
    json, text or binary. Pickles are recognised before text: protocol 0 *is* text."""
    if size == 0:
        return "empty"
    for prefix, kind in MAGIC:
        if head.startswith(prefix):
            return kind
    # safetensors before pickles: a header length such as 640 starts with b"\x80\x02", which
    # looks like a pickle's PROTO opcode; byte 8 ("{") is no opcode, so no pickle loads from it.
    if len(head) >= 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return "safetensors"
    if is_pickle(head):
        return "torch-legacy" if scan_pickle_bytes(head, max_streams=1).torch_legacy else "pickle"
    return "text" if _text(head) is not None else "binary"


def npy_dtype(f):  # noqa: ANN001, ANN201
    """The dtype an .npy stream declares, read with numpy's literal-only header parser
    (ast.literal_eval: no code runs). Raises ValueError on anything malformed."""
    from numpy.lib import format as npf

    version = npf.read_magic(f)
    if version == (1, 0):
        return npf.read_array_header_1_0(f)[2]
    if version == (2, 0):
        return npf.read_array_header_2_0(f)[2]
    raise ValueError(f"unsupported .npy version {version}")
