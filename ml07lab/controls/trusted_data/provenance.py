"""Control 2: train only on secure, trusted datasets. A curator signs; the pipeline verifies.

How: a trusted curator signs the dataset's manifest (every file's path, sha256, label,
source and time added; see `manifest`). Before training, `verify_dataset` checks the
signature against the organisation's trusted keys, then every file's digest, and
refuses, naming the files, if anything was modified, added, removed or relabelled,
if the dataset is unsigned, or if it was signed by a key nobody trusts. The images it
returns are decoded from the very bytes it hashed, so nothing can change in between.

Why Ed25519 via `cryptography`, and not sigstore `model-signing`'s offline key method:
- what must be signed is the *manifest*, labels included. model-signing signs a
  directory's files (paths and digests) and knows nothing of labels, so a relabelling
  would only show up as "manifest.json changed", without naming the relabelled images;
- the signed envelope here carries the manifest itself, so the pipeline can name every
  file that differs from what the curator signed, in the four categories above;
- Ed25519 is one small primitive with 32-byte keys, deterministic signatures and no
  bundle format; `cryptography` is already a dependency and works fully offline.
  (model-signing's key method takes EC P-256/384/521 keys and writes a sigstore
  bundle; notebook 06's deployment gate uses it for model weights, where that fits.)

What it does NOT do: prove the data is clean. A curator who signs data that was
already poisoned upstream produces a perfectly valid signature (see notebook 05).
"""
from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ...artifacts import atomic_write_bytes
from ...data.base import DataError, FaceSet
from ...data.manifest import (MANIFEST, Manifest, data_files, diff_manifests, faces_from_bytes, now_utc,
                       read_bytes, read_manifest, sha256_bytes)

SIGNATURE = "manifest.sig.json"
SIG_FORMAT = "ml07lab-dataset-signature/1"
DOMAIN = b"ml07lab-dataset-manifest/1\n"  # domain separation: this key signs nothing else this way
CATEGORIES = ("modified", "added", "removed", "relabelled")
_WHAT_TO_DO = ("Do not train on it: restore the dataset from the curator's signed release, or ask "
               "the curator to review the change and re-sign it (`ml07lab data sign`).")


class ProvenanceError(DataError):
    """The dataset failed provenance checks; the pipeline must not train on it."""


class UnsignedDatasetError(ProvenanceError):
    pass


class UnknownKeyError(ProvenanceError):
    pass


class BadSignatureError(ProvenanceError):
    pass


class UnsafeDatasetError(ProvenanceError):
    """The dataset folder holds something no dataset may hold (a symlink): refused, exit 1."""


class DatasetTamperedError(ProvenanceError):
    """Files differ from what the curator signed. `files[category]` lists them."""

    def __init__(self, root: Path, files: dict[str, list[str]]):
        self.files = files
        parts = []
        for cat in CATEGORIES:
            fs = files.get(cat, [])
            if fs:
                shown = ", ".join(fs[:5]) + (f" and {len(fs) - 5} more" if len(fs) > 5 else "")
                parts.append(f"{cat} {len(fs)}: {shown}")
        super().__init__(f"Dataset {root} does not match its signed manifest. " + "; ".join(parts)
                         + ". " + _WHAT_TO_DO)


# --- keys -----------------------------------------------------------------------------

def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_bytes(raw)[:16]


def generate_key(folder: str | Path, name: str = "curator", overwrite: bool = False) -> tuple[Path, Path]:
    """Write <name>.key (private, mode 0600) and <name>.pub. Keeps an existing pair."""
    folder = Path(folder)
    priv, pub = folder / f"{name}.key", folder / f"{name}.pub"
    if priv.is_file() and pub.is_file() and not overwrite:
        return priv, pub
    folder.mkdir(parents=True, exist_ok=True)
    k = Ed25519PrivateKey.generate()
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    atomic_write_bytes(priv, pem)
    os.chmod(priv, 0o600)
    atomic_write_bytes(pub, k.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        k = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"Cannot read the private key {path} ({e}). Create one with `ml07lab data keygen`.") from e
    if not isinstance(k, Ed25519PrivateKey):
        raise DataError(f"{path} is not an Ed25519 private key; create one with `ml07lab data keygen`.")
    return k


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        k = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read the public key {path} ({e}); expected a PEM Ed25519 key (.pub).") from e
    if not isinstance(k, Ed25519PublicKey):
        raise DataError(f"{path} is not an Ed25519 public key.")
    return k


@dataclass
class Keyring:
    """The public keys the training pipeline trusts, by key id."""

    keys: dict[str, tuple[str, Ed25519PublicKey]]

    @classmethod
    def from_paths(cls, *paths: str | Path) -> "Keyring":
        """From .pub files and/or folders of them."""
        keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
        for p in map(Path, paths):
            for f in (sorted(p.glob("*.pub")) if p.is_dir() else [p]):
                k = load_public_key(f)
                keys[key_id(k)] = (f.stem, k)
        if not keys:
            raise DataError(f"No trusted public keys (*.pub) in {', '.join(map(str, paths))}.")
        return cls(keys)


# --- sign -----------------------------------------------------------------------------

def _disk_problems(root: Path, signed: Manifest, blobs: dict[str, bytes] | None = None) -> dict[str, list[str]]:
    """Compare the files on disk, and the working manifest.json, with the signed manifest.
    Fills `blobs` with the bytes of every file that matched (read and hashed once)."""
    want = signed.by_path()
    on_disk = set(data_files(root))
    modified: list[str] = []
    removed: list[str] = []
    added = sorted(on_disk - set(want))
    for e in signed.entries:
        if e.path not in on_disk:
            removed.append(e.path)
            continue
        b = read_bytes(root, e.path)
        if sha256_bytes(b) != e.sha256:
            modified.append(e.path)
        elif blobs is not None:
            blobs[e.path] = b
    # a file moved into another identity's folder keeps its bytes: that is a relabelling
    relabelled: list[str] = []
    gone = {want[p].sha256: p for p in removed}
    for p in list(added):
        src = gone.pop(sha256_bytes(read_bytes(root, p)), None)
        if src is not None:
            relabelled.append(f"{src} -> {p}")
            added.remove(p)
            removed.remove(src)
    seen = set(modified) | set(removed) | set(added) | {q for r in relabelled for q in r.split(" -> ")}
    if (root / MANIFEST).is_file():  # labels come from the manifest: a label edit is a relabelling
        try:
            work = read_manifest(root)
        except DataError:
            modified.append(MANIFEST)
        else:
            d = diff_manifests(signed, work)
            relabelled += [f"{p} ({a} -> {b})" for p, a, b in d.relabelled]
            for dest, fs in ((added, d.added), (removed, d.removed), (modified, d.changed)):
                dest += [f for f in fs if f not in seen]
    out = {"modified": modified, "added": added, "removed": removed, "relabelled": relabelled}
    return {c: v for c, v in out.items() if v}


def sign_dataset(root: str | Path, private_key: str | Path | Ed25519PrivateKey, signer: str = "curator",
                 signature_path: str | Path | None = None) -> Path:
    """The curator signs the folder's manifest.json, after checking it matches the files."""
    root = Path(root)
    m = read_manifest(root)
    problems = _disk_problems(root, m)
    if problems:
        raise DataError(f"manifest.json in {root} does not match the files ({', '.join(problems)}: "
                        f"{sum(map(len, problems.values()))} files); rebuild it with `ml07lab data manifest` "
                        "and review the change before signing.")
    k = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    payload = json.dumps({"manifest": m.to_dict(), "signer": signer, "signed_at": now_utc()},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    env = {"format": SIG_FORMAT, "algorithm": "ed25519", "key_id": key_id(k.public_key()), "signer": signer,
           "payload": base64.b64encode(payload).decode(),
           "signature": base64.b64encode(k.sign(DOMAIN + payload)).decode()}
    out = Path(signature_path) if signature_path else root / SIGNATURE
    atomic_write_bytes(out, json.dumps(env, indent=1, sort_keys=True).encode() + b"\n")
    return out


# --- verify ---------------------------------------------------------------------------

@dataclass
class VerifiedDataset:
    manifest: Manifest  # as signed
    signer: str
    key_id: str
    signed_at: str
    seconds: float
    faces: FaceSet | None = None  # decoded from the verified bytes

    def summary(self) -> dict[str, Any]:
        return {"verified": True, "files": len(self.manifest), "identities": len(self.manifest.identities),
                "signer": self.signer, "key_id": self.key_id, "signed_at": self.signed_at,
                "seconds": round(self.seconds, 3)}


def verify_dataset(root: str | Path, trusted: Keyring, decode: bool = True,
                   signature_path: str | Path | None = None) -> VerifiedDataset:
    """Signature, then every file's digest; raise a ProvenanceError naming what is wrong."""
    t0 = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Dataset folder {root} " + ("is a file, not a folder." if root.exists() else "does not exist."))
    sp = Path(signature_path) if signature_path else root / SIGNATURE
    if not sp.is_file():
        raise UnsignedDatasetError(
            f"Dataset {root} is unsigned: no {sp.name}. The pipeline trains only on datasets signed by a "
            "trusted curator. Ask the curator to review and sign it (`ml07lab data sign`).")
    try:
        env = json.loads(sp.read_bytes())
        payload, sig = base64.b64decode(env["payload"]), base64.b64decode(env["signature"])
        kid = str(env["key_id"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadSignatureError(f"{sp} is not a valid signature file ({e!r}). Get the dataset's signature "
                                "from the curator again.") from e
    if kid not in trusted.keys:
        raise UnknownKeyError(
            f"Dataset {root} is signed by an unknown key {kid} (claims to be {env.get('signer')!r}); trusted "
            f"keys: {', '.join(f'{n} {k}' for k, (n, _) in trusted.keys.items())}. Do not train on it unless "
            "you have checked, out of band, that this key belongs to a curator you trust.")
    name, pub = trusted.keys[kid]
    try:
        pub.verify(sig, DOMAIN + payload)
    except InvalidSignature as e:
        raise BadSignatureError(
            f"The signature in {sp} does not verify with {name}'s key {kid}: the signed manifest was "
            "altered after signing. " + _WHAT_TO_DO) from e
    body = json.loads(payload)
    signed = Manifest.from_dict(body["manifest"], f"signed manifest in {sp}")
    blobs: dict[str, bytes] = {}
    try:
        problems = _disk_problems(root, signed, blobs if decode else None)
    except ProvenanceError:
        raise
    except DataError as e:  # a symlink in the folder: a refusal (exit 1), not a usage error
        raise UnsafeDatasetError(str(e)) from e
    if problems:
        raise DatasetTamperedError(root, problems)
    faces = faces_from_bytes(signed, (blobs[e.path] for e in signed.entries), f"verified:{root}") if decode else None
    return VerifiedDataset(signed, name, kid, body.get("signed_at", ""), time.perf_counter() - t0, faces)


def load_verified(root: str | Path, trusted: Keyring) -> FaceSet:
    """The only loader a trusted training pipeline uses."""
    faces = verify_dataset(root, trusted).faces
    assert faces is not None
    return faces


def scenario_keys() -> tuple[Path, Path, Path]:
    """(curator private key, curator public key, a stranger's private key) under <data>/keys."""
    from ...config import data_dir

    priv, pub = generate_key(data_dir() / "keys", "curator")
    stranger, _ = generate_key(data_dir() / "keys" / "untrusted", "stranger")
    return priv, pub, stranger
