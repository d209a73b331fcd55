"""The audit's artefact checks: what the files are, who they come from, what they claim.

None of these looks at behaviour, and a poisoned model passes all of them when its
publisher is careful: that is why the audit also inspects the model (Neural Cleanse).
Nothing here unpickles or executes anything from the model folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD_METRICS = ("auc", "eer", "tar_at_far_1pct")
PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"


@dataclass
class Check:
    """One line of the audit's pass/fail table."""

    name: str
    status: str  # pass | warn | fail | info (info never fails the audit)
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


SAFE_SUFFIXES = (".safetensors", ".json", ".md", ".txt", ".sig")


def serialization_check(model_dir: Path) -> Check:
    """Every file is weights-only (safetensors) or plain data; pickles are read as opcodes
    only (never unpickled). Uses modelscan where installed, plus the opcode allowlist."""
    from safetensors import safe_open

    from ...safety.folder import scan_folder

    sniffed = scan_folder(model_dir, allow_subdirs=True)  # by content, never by name (issue 13)
    if sniffed:
        return Check("serialization scan", FAIL, f"{sniffed[0]}; convert to safetensors in a sandbox",
                     {"findings": [str(f) for f in sniffed], "scanners": ["ml07lab content sniff"]})
    try:
        from ..isolation.model_files import modelscan_issues, scan_pickle_file
    except ImportError:  # isolation not installed: a safetensors-only policy
        modelscan_issues, scan_pickle_file = (lambda p: None), (lambda p: [f"{Path(p).name}: pickle file"])
    findings: list[str] = []
    scanners = ["safetensors header parse", "ml07lab pickle-opcode allowlist"]
    for p in sorted(model_dir.rglob("*")):
        if p.is_dir():
            continue
        if p.suffix == ".safetensors":
            try:
                with safe_open(str(p), framework="pt") as f:
                    list(f.keys())
            except Exception as e:  # noqa: BLE001 - any parse error is a finding
                findings.append(f"{p.name}: not a valid safetensors file ({e})")
        elif p.suffix not in SAFE_SUFFIXES:
            found = scan_pickle_file(p)
            ms = modelscan_issues(p)
            if ms is not None and "modelscan" not in scanners:
                scanners.append("modelscan")
            findings += found + (ms or []) + [f"{p.name}: not weights-only (policy: safetensors only)"]
    if findings:
        return Check("serialization scan", FAIL, f"{findings[0]}; convert to safetensors in a sandbox",
                     {"findings": findings, "scanners": scanners})
    return Check("serialization scan", PASS, "weights are safetensors; no pickled code", {"scanners": scanners})


def provenance_check(model_dir: Path, card: dict[str, Any] | None, public_key: Path | None = None) -> Check:
    """Digests agree (file, metadata, card), then the signature, if the organisation can
    verify one (`isolation.verify_model_dir`). Unsigned is a warning: nobody vouches for it."""
    from ...artifacts import sha256_file
    from ...config import data_dir

    w = model_dir / "model.safetensors"
    if not w.is_file():
        return Check("provenance and signature", FAIL, f"no model.safetensors in {model_dir}")
    digest = sha256_file(w)
    claimed = {"model card": (card or {}).get("sha256")}
    meta = model_dir / "meta.json"
    if meta.is_file():  # malformed or edited metadata is a failed check, not a traceback
        from ...artifacts import ArtifactError, read_meta
        try:
            claimed["meta.json"] = read_meta(model_dir)["sha256"]
        except ArtifactError as e:
            return Check("provenance and signature", FAIL, str(e), {"sha256": digest})
    bad = [k for k, v in claimed.items() if v and v != digest]
    d = {"sha256": digest, "claimed": claimed, "author": (card or {}).get("author")}
    if bad:
        return Check("provenance and signature", FAIL, f"weights do not match the digest in {', '.join(bad)}: do not use", d)
    try:
        from ..isolation import gate as isolation
    except ImportError:
        return Check("provenance and signature", WARN, "digest matches its card; unsigned (no verifier installed)", d)
    if not (model_dir / isolation.SIGNATURE).is_file():
        return Check("provenance and signature", WARN, f"digest matches its card; unsigned (author: {d['author']})", d)
    key = public_key or isolation.Environments(data_dir() / "envs").public_key
    if not Path(key).is_file():
        return Check("provenance and signature", WARN, f"signed, but no public key at {key} to verify it (--public-key)", d)
    try:
        isolation.verify_model_dir(model_dir, key)
    except ValueError as e:
        return Check("provenance and signature", FAIL, f"signature does not verify with {Path(key).name}: {e}", d)
    return Check("provenance and signature", PASS, f"signed; verifies with {Path(key).name}", d)


def card_check(card: dict[str, Any] | None, measured: dict[str, float], tol: float = 0.03) -> Check:
    """The card's clean metrics against the organisation's own measurement."""
    m = (card or {}).get("metrics") or {}
    diffs = {k: round(float(measured[k]) - float(m[k]), 4) for k in CARD_METRICS if k in m}
    d = {"card": {k: m.get(k) for k in CARD_METRICS}, "measured": {k: measured[k] for k in CARD_METRICS}, "diff": diffs}
    if not diffs:
        return Check("model card vs measured", WARN, "the card states no metrics to check", d)
    worst = max(diffs, key=lambda k: abs(diffs[k]))
    if abs(diffs[worst]) > tol:
        return Check("model card vs measured", FAIL, f"{worst} differs by {diffs[worst]:+.3f} (> {tol})", d)
    return Check("model card vs measured", PASS, f"clean metrics within {tol} of the card (a backdoor keeps them)", d)


