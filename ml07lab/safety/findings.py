"""One refusal: which file, a short stable code (the named reason) and a sentence."""
from __future__ import annotations

from dataclasses import dataclass

# Findings that make the folder unsafe to read any further (hashing, signature checks):
# following a link, reading a FIFO or a huge file, inflating a bomb or extracting a
# traversal name is itself the harm.
HAZARDS = frozenset({"symlink", "special-file", "oversized", "zip-bomb", "zip-path-traversal", "pickle-too-large",
                     "too-many-files"})


@dataclass(frozen=True)
class Finding:
    """A named reason to refuse `file`."""

    file: str
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.detail} [{self.code}]"


def hazardous(findings: list[Finding]) -> bool:
    """True when reading the folder any further is itself unsafe."""
    return any(f.code in HAZARDS for f in findings)
