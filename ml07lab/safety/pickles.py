"""Pickle opcodes, read over *every* stream of a file; nothing is ever unpickled.

Why every stream: ``pickletools.genops`` stops at the first STOP opcode. torch's legacy
(non-zip) format starts with a pickle holding only a magic number, so a scanner that
reads one stream never sees the payload in the next ones (issue 13, item 2).
"""
from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING")
_PUTS = ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT")
_GETS = ("GET", "BINGET", "LONG_BINGET")


@dataclass
class PickleScan:
    """What the opcodes of a byte string say: streams, imports, where parsing stopped."""

    streams: int = 0
    imports: list[tuple[str, str]] = field(default_factory=list)
    first_ops: list[tuple[str, object]] = field(default_factory=list)  # opcodes of stream 1
    parsed_bytes: int = 0  # bytes covered by complete streams
    error: str | None = None  # why the stream after the last complete one did not parse

    @property
    def torch_legacy(self) -> bool:
        """torch.save's non-zip format: stream 1 is just the magic number."""
        return any(name in ("LONG1", "LONG", "LONG4") and arg == TORCH_LEGACY_MAGIC for name, arg in self.first_ops)


def _stream_globals(ops: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """Every (module, name) one stream would import. A STACK_GLOBAL whose names cannot be
    resolved statically is reported as ('?', '?')."""
    found: list[tuple[str, str]] = []
    strings: list[object] = []
    memo: dict[object, object] = {}
    for name, arg in ops:
        if name in _STRINGS:
            strings.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif name in _PUTS:
            memo[arg] = strings[-1] if strings else None
        elif name in _GETS:
            strings.append(memo.get(arg))
        elif name in ("GLOBAL", "INST"):
            mod, _, attr = str(arg).partition(" ")
            found.append((mod, attr))
        elif name == "STACK_GLOBAL":
            mod, attr = (strings[-2], strings[-1]) if len(strings) >= 2 else (None, None)
            found.append((mod, attr) if isinstance(mod, str) and isinstance(attr, str) else ("?", "?"))
        if name not in _PUTS and name not in _STRINGS and name not in _GETS:
            strings.append(None)  # anything else breaks a (module, name) pair
    return found


def scan_pickle_bytes(data: bytes, max_streams: int = 64) -> PickleScan:
    """Read stream after stream until the bytes end or one does not parse."""
    out = PickleScan()
    f = io.BytesIO(data)
    while out.parsed_bytes < len(data) and out.streams < max_streams:
        f.seek(out.parsed_bytes)
        ops: list[tuple[str, object]] = []
        try:
            for op, arg, _ in pickletools.genops(f):
                ops.append((op.name, arg))
        except Exception as e:  # noqa: BLE001 - truncated, unknown opcode, bad argument: not a pickle here
            out.error = f"{type(e).__name__}: {e}"[:160]
            break
        if not ops or ops[-1][0] != "STOP":
            out.error = "no STOP opcode"
            break
        if out.streams == 0:
            out.first_ops = ops[:8]
        out.streams += 1
        out.imports += _stream_globals(ops)
        out.parsed_bytes = f.tell()
    return out


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) any stream in `data` would import (opcodes only).
    Raises ValueError when not even the first stream is a pickle."""
    scan = scan_pickle_bytes(data)
    if scan.streams == 0:
        raise ValueError(f"not a pickle ({scan.error})")
    return scan.imports


def is_pickle(data: bytes) -> bool:
    """True when `data` starts with at least one complete pickle stream: a PROTO opcode
    (protocol 2-5), or protocol 0/1 opcodes that parse up to a STOP."""
    if len(data) >= 2 and data[0] == 0x80 and data[1] <= 5:
        return True
    return scan_pickle_bytes(data[: 1 << 24], max_streams=1).streams > 0


# The imports a plain torch state_dict needs, as torch.load(weights_only=True) allows.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch", "Size"), ("torch", "device"),
    *{("torch", f"{t}Storage") for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                        "Short", "Char", "Byte", "Bool")},
    *{("torch", t) for t in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool")},
}


def describe(scan: PickleScan) -> str:
    """'3 streams, imports posix.system' (what a refusal message shows)."""
    bad = sorted({f"{m}.{n}" for m, n in scan.imports if (m, n) not in ALLOWED_GLOBALS})
    what = f"imports {', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}" if bad else "no disallowed imports"
    return f"{scan.streams} pickle stream{'s' if scan.streams != 1 else ''}, {what}"
