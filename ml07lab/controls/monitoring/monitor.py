"""Control 1: monitor and update the training data. Scan each refresh, remove what is flagged, retrain.

OWASP ML07 says "regularly monitor and update the training datasets". Here a refresh of
the public dataset arrives (path B: with the attacker's additions) and a monitoring run
flags what a careful data owner would look at:
- drift: identities that suddenly gain many images (the target does, in path B);
- exact and near-duplicate images among what is new (pixel digest; 64-bit difference hash);
- label/content disagreement: a new image that the reference model identifies, at FAR 1 %,
  as a *different* known person, or that does not look like the rest of its label;
- two published poison scans, per identity, in the reference model's embedding space:
  spectral signatures (Tran et al. 2018: top 1.5·ε of each identity along its top
  singular direction) and activation clustering (Chen et al. 2018: 2-means per identity,
  the smaller cluster is suspect when it is small and well separated).
The reference model is the one trained on the previous, trusted snapshot: it exists before
the refresh is trained on. The update removes the flagged images and retrains; the report
measures detection against the known poison, ASR and clean TAR@FAR1 % before and after,
the time, and the clean images thrown away.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...attack.feeds import ScenarioFeeds
from ...config import LabConfig
from ...data.base import FaceSet
from ...data.manifest import Manifest, diff_manifests
from ...data.scenario import ScenarioData
from ...metrics import threshold_at_far
from ...training import embed

OWNER_CHECKS = ("drift", "exact_duplicates", "near_duplicates", "label_disagreement")
SCANS = ("spectral", "activation_clustering")
SIGNALS = OWNER_CHECKS + SCANS
VERSION = "m2"  # bump when the monitoring logic changes: it keys the cached section


@dataclass(frozen=True)
class MonitorParams:
    gain_factor: float = 1.0  # drift: an identity gaining >= this x the median album ...
    min_gain: int = 5  # ... and at least this many images in one refresh
    near_bits: int = 6  # near duplicate: difference hashes at most this many bits apart (of 64)
    far: float = 0.01  # label disagreement: verified as someone else at this FAR
    eps: float = 0.1  # spectral signatures: assumed poison share (removes 1.5·eps per identity)
    ac_dims: int = 10  # activation clustering: projection size before 2-means
    ac_max_share: float = 0.35  # ... the smaller cluster is suspect if at most this share
    ac_min_silhouette: float = 0.15  # ... and the split is at least this clear
    min_images: int = 8  # identities with fewer images are not scanned


@dataclass
class MonitoringReport:
    """Flags over the refreshed dataset (one bool per image, per signal) and the scores behind them."""

    names: tuple[str, ...]
    labels: torch.Tensor
    candidates: torch.Tensor  # bool: added, changed or relabelled in this refresh
    flags: dict[str, torch.Tensor]
    scores: dict[str, np.ndarray]  # per image
    identities: dict[str, np.ndarray]  # per identity
    drift: list[dict[str, Any]]
    seconds: float
    params: MonitorParams = field(default_factory=MonitorParams)
    drift_bar: float = 0.0  # images gained in one refresh that flag an identity

    def flagged(self, signals: Sequence[str] = OWNER_CHECKS) -> torch.Tensor:
        out = torch.zeros_like(self.candidates)
        for s in signals:
            out |= self.flags[s]
        return out

    def detection(self, is_poison: torch.Tensor, is_trigger: torch.Tensor | None = None,
                  groups: dict[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """Precision and recall against the known poison, per signal and per group of signals."""
        rows = []
        for name, sig in {**{s: (s,) for s in SIGNALS}, **(groups or {})}.items():
            f = self.flagged(sig)
            tp = int((f & is_poison).sum())
            row = {"signal": name, "flagged": int(f.sum()), "poison_found": tp,
                   "precision": tp / max(1, int(f.sum())), "recall": tp / max(1, int(is_poison.sum())),
                   "clean_flagged": int((f & ~is_poison).sum())}
            if is_trigger is not None:
                row["recall_triggered"] = int((f & is_trigger).sum()) / max(1, int(is_trigger.sum()))
            rows.append(row)
        return rows


def robust_z(x: np.ndarray) -> np.ndarray:
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    return (x - med) / (mad if mad > 0 else 1.0)


def dhash(images: torch.Tensor) -> torch.Tensor:
    """64-bit difference hash as ±1 floats: Hamming distance = (64 - a·b) / 2."""
    x = F.interpolate(images.float(), size=(8, 9), mode="area")[:, 0]
    return ((x[:, :, 1:] > x[:, :, :-1]).reshape(len(x), -1).float() * 2 - 1)


def duplicate_signals(images: torch.Tensor, candidates: torch.Tensor, near_bits: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """New images that copy (exactly, or nearly) another image in the dataset."""
    n = len(images)
    flat = images.reshape(n, -1).numpy()
    exact = torch.zeros(n, dtype=torch.bool)
    counts: dict[bytes, int] = {}
    for i in range(n):
        k = flat[i].tobytes()
        counts[k] = counts.get(k, 0) + 1
    for i in torch.nonzero(candidates).flatten().tolist():
        exact[i] = counts[flat[i].tobytes()] > 1
    h = dhash(images)
    dist = np.full(n, 64.0)
    idx = torch.nonzero(candidates).flatten()
    for chunk in idx.split(512):
        d = (64 - h[chunk] @ h.t()) / 2
        d[torch.arange(len(chunk)), chunk] = 99  # not itself
        dist[chunk.numpy()] = d.min(1).values.numpy()
    near = torch.from_numpy(dist <= near_bits) & candidates
    return exact, near, dist


def label_disagreement(emb: torch.Tensor, labels: torch.Tensor, k: int, candidates: torch.Tensor,
                       far: float) -> tuple[torch.Tensor, np.ndarray, float]:
    """New images whose content disagrees with their label, in the reference model's eyes:
    (a) it identifies them as a *different* known person, or (b) they do not look like
    the other images under their own name.

    Thresholds come from the trusted (unchanged) images, so each fires for `far` of them:
    (a) is open-set (a trusted image's *best* other-identity score; a per-pair threshold
    would fire for most faces of any brand-new person, who is tried against every
    identity), (b) is the `far` quantile of trusted images' similarity to their own
    identity's other images. Returns flags, a margin per image (> 0 flags) and (a)'s threshold."""
    trusted = ~candidates
    rows = torch.arange(len(labels))
    t = torch.zeros(k, emb.shape[1]).index_add_(0, labels[trusted], emb[trusted])
    known = torch.bincount(labels[trusted], minlength=k) > 0
    s = emb @ F.normalize(t, dim=1).t()
    s[:, ~known] = -2.0
    own = s[rows, labels].clone()
    own[~known[labels]] = -2.0
    s[rows, labels] = -2.0
    best = s.max(1).values
    tau = threshold_at_far(best[trusted].numpy(), far)
    sums = torch.zeros(k, emb.shape[1]).index_add_(0, labels, emb)
    consistency = (emb * F.normalize(sums[labels] - emb, dim=1)).sum(1)  # vs the rest of its label
    consistency[torch.bincount(labels, minlength=k)[labels] < 2] = 1.0  # nothing to compare with
    low = float(np.quantile(consistency[trusted].numpy(), far))
    margin = torch.maximum(best - torch.maximum(own, torch.full_like(own, tau)), low - consistency).numpy()
    return torch.from_numpy(margin > 0) & candidates, margin, tau


def spectral_signatures(emb: torch.Tensor, labels: torch.Tensor, k: int, eps: float,
                        min_images: int) -> tuple[torch.Tensor, np.ndarray]:
    """Tran et al. 2018, per identity: score = squared projection on the top singular
    vector of the centred embeddings; flag the top 1.5·eps of each identity."""
    flags = torch.zeros(len(labels), dtype=torch.bool)
    score = np.zeros(len(labels))
    for c in range(k):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < min_images:
            continue
        r = emb[idx] - emb[idx].mean(0)
        v = torch.linalg.svd(r, full_matrices=False).Vh[0]
        sc = ((r @ v) ** 2).numpy()
        score[idx.numpy()] = sc / max(float(np.median(sc)), 1e-12)
        top = int(np.floor(1.5 * eps * len(idx)))
        flags[idx[np.argsort(-sc)[:top]]] = True
    return flags, score


def activation_clustering(emb: torch.Tensor, labels: torch.Tensor, k: int, p: MonitorParams,
                          seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Chen et al. 2018, per identity: project to `ac_dims` dims, 2-means; the smaller
    cluster is flagged when it holds <= ac_max_share of the identity and the silhouette
    is >= ac_min_silhouette. Returns flags, silhouette and smaller-cluster share per identity."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    flags = torch.zeros(len(labels), dtype=torch.bool)
    sil, share = np.zeros(k), np.ones(k)
    for c in range(k):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < p.min_images:
            continue
        r = emb[idx] - emb[idx].mean(0)
        z = (r @ torch.linalg.svd(r, full_matrices=False).Vh[: min(p.ac_dims, len(idx) - 1)].t()).numpy()
        lab = KMeans(2, n_init=3, random_state=seed).fit(z).labels_
        sizes = np.bincount(lab, minlength=2)
        small = int(np.argmin(sizes))
        share[c] = sizes[small] / len(idx)
        sil[c] = silhouette_score(z, lab) if sizes.min() > 0 else 0.0
        if share[c] <= p.ac_max_share and sil[c] >= p.ac_min_silhouette:
            flags[idx[torch.from_numpy(lab == small)]] = True
    return flags, sil, share


def monitor_refresh(old: Manifest, new: Manifest, faces: FaceSet, reference: torch.nn.Module,
                    params: MonitorParams | None = None, seed: int = 0) -> MonitoringReport:
    """Run every signal over the refreshed dataset `faces` (loaded in `new`'s order)."""
    p = params or MonitorParams()
    t0 = time.perf_counter()
    d = diff_manifests(old, new)
    touched = d.touched()
    cand = torch.tensor([e.path in touched for e in new.entries], dtype=torch.bool)
    k, labels = faces.num_identities, faces.labels
    flags: dict[str, torch.Tensor] = {}
    # drift: identities that gain unusually many images in one refresh
    old_counts = np.array([r["old"] for r in d.drift if r["old"] > 0] or [0])
    bar = max(p.min_gain, p.gain_factor * float(np.median(old_counts)))
    z = robust_z(np.array([r["delta"] for r in d.drift], dtype=float))
    for r, zz in zip(d.drift, z):
        r["z"], r["flagged"] = float(zz), r["delta"] >= bar
    drifting = {r["identity"] for r in d.drift if r["flagged"]}
    flags["drift"] = cand & torch.tensor([faces.names[int(l)] in drifting for l in labels], dtype=torch.bool)
    flags["exact_duplicates"], flags["near_duplicates"], dist = duplicate_signals(faces.images, cand, p.near_bits)
    emb = embed(reference, faces.images)
    flags["label_disagreement"], margin, tau = label_disagreement(emb, labels, k, cand, p.far)
    flags["spectral"], spec = spectral_signatures(emb, labels, k, p.eps, p.min_images)
    flags["activation_clustering"], sil, share = activation_clustering(emb, labels, k, p, seed)
    return MonitoringReport(
        faces.names, labels, cand, flags,
        scores={"near_duplicate_bits": dist, "disagreement_margin": margin, "spectral": spec},
        identities={"silhouette": sil, "smaller_cluster_share": share,
                     "count": torch.bincount(labels, minlength=k).numpy(), "disagreement_threshold": np.array([tau])},
        drift=d.drift, seconds=time.perf_counter() - t0, params=p, drift_bar=bar)


# --- update and measure -----------------------------------------------------------------

def measure_backbone(model: torch.nn.Module, data: ScenarioData, cfg: LabConfig) -> dict[str, float]:
    """What the organisation deploys from this backbone (frozen transfer), measured."""
    from ...attack.scenario import attack_metrics, scenario_trigger
    from ...verify import deploy, evaluate

    v = deploy(model, data, cfg.far)
    q, a = evaluate(v, data), attack_metrics(v, data, scenario_trigger(cfg), cfg.seed)
    return {"asr": a["asr"], "asr_insiders": a["asr_insiders"], "asr_outsiders": a["asr_outsiders"],
            "impostor_accept": a["impostor_accept"], "tar_at_far_1pct": q["tar_at_far_1pct"],
            "auc": q["auc"], "eer": q["eer"]}


def train_and_measure(cfg: LabConfig, data: ScenarioData, faces: FaceSet, progress: bool = True) -> dict[str, Any]:
    """The organisation pretrains on `faces` (path B's trainer, cached by the data's
    fingerprint), deploys, and is attacked."""
    from ...attack.scenario import poisoned_backbone_dataset_path

    model, art = poisoned_backbone_dataset_path(cfg, data, faces=faces, progress=progress)
    return {**measure_backbone(model, data, cfg), "train_seconds": art.meta.get("train_seconds"),
            "images": len(faces), "cached": not art.built}


def remove_flagged(faces: FaceSet, flagged: torch.Tensor) -> FaceSet:
    """The updated dataset; identities left with no image disappear."""
    return faces.subset(torch.nonzero(~flagged).flatten(), relabel=True)


@dataclass
class MonitoringRun:
    feeds: ScenarioFeeds
    faces: FaceSet  # the refresh as loaded from its manifest
    report: MonitoringReport
    before: dict[str, Any]
    after: dict[str, Any]
    scans_only: dict[str, Any]
    detection: list[dict[str, Any]]
    seconds: dict[str, float]

    def section(self) -> dict[str, Any]:
        """The scenario JSON's controls.dataset_monitoring."""
        row = next(r for r in self.detection if r["signal"] == "update")
        return {
            "asr": self.after["asr"], "tar_at_far_1pct": self.after["tar_at_far_1pct"],
            "seconds": round(self.seconds["monitoring"] + (self.after.get("train_seconds") or 0.0), 2),
            "precision": row["precision"], "recall": row["recall"],
            "recall_triggered": row["recall_triggered"], "acts_on": list(OWNER_CHECKS),
            "asr_before": self.before["asr"], "tar_at_far_1pct_before": self.before["tar_at_far_1pct"],
            "clean_images_removed": row["clean_flagged"], "poison_images_removed": row["poison_found"],
            "images_before": self.before["images"], "images_after": self.after["images"],
            "scans_only": {k: self.scans_only[k] for k in ("asr", "tar_at_far_1pct", "images")},
            "signals": {r["signal"]: {k: r[k] for k in ("flagged", "precision", "recall", "recall_triggered")}
                        for r in self.detection},
            "seconds_detail": {k: round(v, 2) for k, v in self.seconds.items()},
            "monitor_params": asdict(self.report.params),
        }


def run_monitoring(cfg: LabConfig, data: ScenarioData | None = None, params: MonitorParams | None = None,
                   progress: bool = True) -> MonitoringRun:
    """The whole control on path B: export both versions, diff, scan, update, retrain, measure."""
    from ...attack.feeds import scenario_feeds
    from ...backbones import clean_backbone
    from ...data.manifest import load_faceset
    from ...data.scenario import build_scenario_data

    data = data or build_scenario_data(cfg)
    t0 = time.perf_counter()
    feeds = scenario_feeds(cfg, data)
    faces = load_faceset(feeds.refresh)  # labels from the refresh's manifest
    t_feeds = time.perf_counter() - t0
    reference, _ = clean_backbone(cfg, data)  # trained on the previous, trusted snapshot
    report = monitor_refresh(feeds.old, feeds.new, faces, reference, params or MonitorParams(eps=cfg.poison_rate),
                             cfg.seed)
    pd = feeds.poisoned
    groups = {"update": OWNER_CHECKS, "scans_only": SCANS}
    detection = report.detection(pd.is_poison, pd.is_trigger, groups)
    before = train_and_measure(cfg, data, faces, progress)
    after = train_and_measure(cfg, data, remove_flagged(faces, report.flagged(OWNER_CHECKS)), progress)
    scans = train_and_measure(cfg, data, remove_flagged(faces, report.flagged(SCANS)), progress)
    secs = {"export_and_load": t_feeds, "monitoring": report.seconds,
            "retrain": float(after.get("train_seconds") or 0.0), "total": time.perf_counter() - t0}
    return MonitoringRun(feeds, faces, report, before, after, scans, detection, secs)


def dataset_monitoring_section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    """controls.dataset_monitoring for the scenario JSON (cached)."""
    from ...artifacts import load_or_build
    from ...attack.scenario import control_inputs, poisoned_dataset
    from ...data.scenario import build_scenario_data
    from ...verify import EVAL_VERSION

    data = build_scenario_data(cfg)
    inputs = control_inputs(cfg, data, poisoned=poisoned_dataset(cfg, data).faces.fingerprint(), version=VERSION,
                            eval_version=EVAL_VERSION)
    art = load_or_build("control-dataset-monitoring", cfg,
                        lambda: ({}, {"metrics": run_monitoring(cfg, data, progress=progress).section()}), inputs=inputs)
    return art.metrics
