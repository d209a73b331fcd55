"""Path B's data as the organisation receives it: two dataset versions on disk, each a
folder of PNGs with its manifest. The snapshot is the public dataset it last trained on;
the refresh carries the attacker's additions, marked as a community upload.

Why here and not in `data.manifest`: the refresh is the attack's output, and the data
layer must not import the attack. Notebooks 04 and 05 and both dataset controls read
these folders.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import LabConfig, data_dir
from ..data.manifest import Manifest, ManifestDiff, diff_manifests, export_faceset
from ..data.scenario import ScenarioData, build_scenario_data
from .poison_data import PoisonedDataset
from .scenario import poisoned_dataset


@dataclass
class ScenarioFeeds:
    """The public dataset as the organisation last trained on it (snapshot) and the
    refresh that arrives with the attacker's path-B additions, both as folders."""

    snapshot: Path
    refresh: Path
    old: Manifest
    new: Manifest
    poisoned: PoisonedDataset  # ground truth for measuring

    def diff(self) -> ManifestDiff:
        return diff_manifests(self.old, self.new)


UPLOAD_SOURCE = "community upload"


def feeds_root(cfg: LabConfig, pd: PoisonedDataset) -> Path:
    """Named by the refresh's content (public faces plus the attacker's additions), so
    another company, target or attack gets its own folders instead of rewriting these."""
    return data_dir() / "feeds" / f"{cfg.profile}-{pd.faces.fingerprint()[:16]}"


def scenario_feeds(cfg: LabConfig, data: ScenarioData | None = None) -> ScenarioFeeds:
    """Export (once; seconds) the snapshot and the poisoned refresh under <data>/feeds/."""
    data = data or build_scenario_data(cfg)
    pd = poisoned_dataset(cfg, data)
    root = feeds_root(cfg, pd)
    old = export_faceset(data.public, root / "snapshot", "public-snapshot", data.public.source)
    srcs = [data.public.source if not p else UPLOAD_SOURCE for p in pd.is_poison.tolist()]
    new = export_faceset(pd.faces, root / "refresh", "public-refresh", srcs, previous=old)
    return ScenarioFeeds(root / "snapshot", root / "refresh", old, new, pd)


__all__ = ["ScenarioFeeds", "UPLOAD_SOURCE", "feeds_root", "scenario_feeds"]
