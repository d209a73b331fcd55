"""Cache keys from the inputs an artefact depends on: knobs, data identities, trigger.

Why: a key that leaves out an input silently hands back an artefact built for other
inputs (issue 13: path A's poisoned model was keyed without the company dataset, so a
run on another company folder reused the backdoor built for AT&T's target). Here a key
is a digest of a plain dict of *named* inputs; the dict is recorded in the artefact's
metadata and compared on every load, so a mismatch is an error, never a silent reuse.
Nothing here touches the disk.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterable

# Knobs that never change an artefact's content: where it runs and how many threads.
NOT_INPUTS = frozenset({"device", "num_threads", "extra"})


def all_knobs(cfg: Any) -> tuple[str, ...]:
    """Every config field that can change an artefact (all but NOT_INPUTS)."""
    return tuple(f.name for f in dataclasses.fields(cfg) if f.name not in NOT_INPUTS)


def faces_identity(faces: Any) -> dict[str, Any]:
    """A FaceSet's identity: its pixel/label/name digest and its size."""
    return {"fingerprint": faces.fingerprint(), "images": len(faces), "people": faces.num_identities}


def data_identity(data: Any, company: bool = True) -> dict[str, Any]:
    """The scenario's data: public faces, and (company=True) company people, outsiders,
    the role of each company photo and the target's identity (index and name)."""
    out: dict[str, Any] = {"public": faces_identity(data.public)}
    if company:
        roles = hashlib.sha256(data.role.contiguous().numpy().tobytes()).hexdigest()
        out.update(company=faces_identity(data.company), outsiders=faces_identity(data.outsiders),
                   roles=roles, target={"index": int(data.target), "name": data.target_name})
    return out


def trigger_identity(trigger: Any) -> dict[str, Any]:
    """The trigger as stamped: its kind and a digest of its mask and pattern pixels."""
    h = hashlib.sha256()
    for t in (trigger.mask, trigger.pattern):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return {"kind": trigger.kind, "pixels": h.hexdigest(), "jitter": int(trigger.jitter)}


def artefact_inputs(cfg: Any, knobs: Iterable[str] | None = None, *, data: Any = None, company: bool = True,
                    faces: Any = None, trigger: Any = None, **extra: Any) -> dict[str, Any]:
    """The named inputs of one artefact: `knobs` (None: all but NOT_INPUTS) with their
    values, the data identity, an extra face set (e.g. a poisoned or cleaned public
    set), the trigger, and any site-specific values (`extra`, JSON-able)."""
    names = all_knobs(cfg) if knobs is None else tuple(dict.fromkeys(knobs))
    out: dict[str, Any] = {"knobs": {k: getattr(cfg, k) for k in sorted(names)}}
    if data is not None:
        out["data"] = data_identity(data, company)
    if faces is not None:
        out["faces"] = faces_identity(faces)
    if trigger is not None:
        out["trigger"] = trigger_identity(trigger)
    if extra:
        out["extra"] = extra
    return normalise(out)


def normalise(obj: Any) -> Any:
    """The JSON round trip of `obj` (what the metadata file will hold after a reload)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def inputs_key(inputs: dict[str, Any], length: int = 16) -> str:
    """The cache key: a digest of the normalised inputs."""
    blob = json.dumps(normalise(inputs), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def diff_inputs(recorded: Any, requested: Any, prefix: str = "") -> list[str]:
    """Dotted names of the inputs that differ between two input dicts (for error messages)."""
    if isinstance(recorded, dict) and isinstance(requested, dict):
        out: list[str] = []
        for k in sorted(set(recorded) | set(requested), key=str):
            out += diff_inputs(recorded.get(k), requested.get(k), f"{prefix}{k}.")
        return out
    return [] if recorded == requested else [prefix.rstrip(".") or "inputs"]
