"""Control 2 measured in the scenario: sign the snapshot, tamper with it and get caught,
train on the verified data vs the tampered feed, then the limit (a curator who signs a
refresh poisoned upstream); and its scorecard section, `controls.trusted_datasets`.

Why a module of its own: it drives both the control (`provenance.py`) and the red
team's toolkit that measures it (`tampering.py`), which itself builds on provenance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .provenance import SIGNATURE, Keyring, ProvenanceError, VerifiedDataset, scenario_keys, sign_dataset, verify_dataset
from .tampering import demonstrate_refusals, tampering_study


@dataclass
class TrustedRun:
    verified: VerifiedDataset
    verify_seconds: list[float]
    refusals: dict[str, str]
    study: dict[str, Any]
    tampered_feed_error: str
    on_verified: dict[str, Any]  # trained on the verified snapshot
    on_tampered: dict[str, Any]  # trained on the tampered feed, unchecked
    signed_poisoned: VerifiedDataset  # the curator signed a refresh already poisoned upstream
    on_signed_poisoned: dict[str, Any]

    def section(self) -> dict[str, Any]:
        """The scenario JSON's controls.trusted_datasets."""
        return {
            "asr": self.on_verified["asr"], "tar_at_far_1pct": self.on_verified["tar_at_far_1pct"],
            "seconds": round(float(np.median(self.verify_seconds)), 3),
            "tamperings_caught": self.study["tamperings_caught"], "tamperings_tried": self.study["tamperings_tried"],
            "tamperings_named": self.study["tamperings_named"], "tampering_by_kind": self.study["by_kind"],
            "refusals": {k: v.split(":", 1)[0] for k, v in self.refusals.items()},
            "files_verified": len(self.verified.manifest), "signature": "ed25519 (cryptography)",
            "asr_tampered_feed": self.on_tampered["asr"], "tar_at_far_1pct_tampered_feed": self.on_tampered["tar_at_far_1pct"],
            "signed_poisoned_passes_verification": True, "asr_signed_poisoned": self.on_signed_poisoned["asr"],
            "tar_at_far_1pct_signed_poisoned": self.on_signed_poisoned["tar_at_far_1pct"],
        }


def run_trusted_datasets(cfg: Any, data: Any = None, n_tamper: int = 100, progress: bool = True,
                         study: dict[str, Any] | None = None) -> TrustedRun:
    """Sign, tamper and get caught; train on the verified snapshot vs the tampered feed;
    then the limit: a curator signs a refresh that was poisoned upstream. Pass `study` (a
    `tampering_study` of the snapshot with `cfg.seed`) to reuse one already run."""
    from ...attack.feeds import scenario_feeds
    from ...data.manifest import load_faceset
    from ...data.scenario import build_scenario_data
    from ..monitoring.monitor import train_and_measure

    data = data or build_scenario_data(cfg)
    feeds = scenario_feeds(cfg, data)
    priv, pub, stranger = scenario_keys()
    trusted = Keyring.from_paths(pub)
    sign_dataset(feeds.snapshot, priv, "curator")
    runs = [verify_dataset(feeds.snapshot, trusted) for _ in range(3)]
    refusals = demonstrate_refusals(feeds.snapshot, trusted, stranger)
    if study is None or study.get("tamperings_tried") != n_tamper:
        study = tampering_study(feeds.snapshot, trusted, n_tamper, cfg.seed, progress=progress)
    try:  # the feed server now serves the refresh, next to the curator's snapshot signature
        verify_dataset(feeds.refresh, trusted, decode=False, signature_path=feeds.snapshot / SIGNATURE)
        feed_error = "ACCEPTED"
    except ProvenanceError as e:
        feed_error = f"{type(e).__name__}: {e}"
    on_verified = train_and_measure(cfg, data, runs[-1].faces, progress)
    on_tampered = train_and_measure(cfg, data, load_faceset(feeds.refresh), progress)
    sign_dataset(feeds.refresh, priv, "curator")  # poisoned upstream, signed in good faith
    sp = verify_dataset(feeds.refresh, trusted)
    on_sp = train_and_measure(cfg, data, sp.faces, progress)
    return TrustedRun(runs[-1], [r.seconds for r in runs], refusals, study, feed_error, on_verified, on_tampered,
                      sp, on_sp)


def trusted_datasets_section(cfg: Any, progress: bool = False, study: dict[str, Any] | None = None) -> dict[str, Any]:
    """controls.trusted_datasets for the scenario JSON (cached; `study` as in run_trusted_datasets)."""
    from ...artifacts import load_or_build
    from ...attack.scenario import control_inputs, poisoned_dataset
    from ...data.scenario import build_scenario_data
    from ...verify import EVAL_VERSION

    data = build_scenario_data(cfg)
    inputs = control_inputs(cfg, data, poisoned=poisoned_dataset(cfg, data).faces.fingerprint(), version="p1",
                            eval_version=EVAL_VERSION, study=study)
    art = load_or_build("control-trusted-datasets", cfg,
                        lambda: ({}, {"metrics": run_trusted_datasets(cfg, data, progress=progress, study=study).section()}),
                        inputs=inputs)
    return art.metrics


__all__ = ["TrustedRun", "run_trusted_datasets", "trusted_datasets_section"]
