"""Plots for the dataset controls (notebooks 04 and 05), in the lab's colour-blind-safe style:
every series differs by hatch or marker as well as colour."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...viz import CYCLE, MARKERS, PALETTE, _ax

HATCHES = ["", "//", "\\\\", "..", "xx", "oo"]


def plot_drift(drift: list[dict[str, Any]], top: int = 12, bar: float | None = None, ax=None):  # noqa: ANN001, ANN201
    """Images gained per identity in this refresh (largest first); flagged ones hatched."""
    ax = _ax(ax, (6, 3.5))
    rows = sorted(drift, key=lambda r: -r["delta"])[:top][::-1]
    y = np.arange(len(rows))
    for i, r in enumerate(rows):
        flagged = r.get("flagged", False)
        ax.barh(y[i], r["delta"], color=PALETTE["vermillion"] if flagged else PALETTE["blue"],
                hatch="//" if flagged else "", edgecolor="black", linewidth=0.4)
        ax.text(r["delta"], y[i], f" {r['old']}→{r['new']}", va="center", fontsize=7)
    ax.set_yticks(y, [r["identity"] + (" (flagged)" if r.get("flagged") else "") for r in rows], fontsize=7)
    if bar is not None:
        ax.axvline(bar, color="black", ls="--", label=f"drift bar ({bar:g} images)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set(xlabel="images gained in this refresh", title="Per-identity drift (largest gains)")
    return ax


def plot_scan_scores(report: Any, is_poison: torch.Tensor, is_trigger: torch.Tensor | None = None):  # noqa: ANN201
    """Histograms of the per-image scan scores: clean images vs the attacker's, one panel per scan."""
    import matplotlib.pyplot as plt

    groups = {"clean": ~is_poison}
    if is_trigger is not None:
        groups["poison: target look-alikes"] = is_poison & ~is_trigger
        groups["poison: triggered"] = is_trigger
    else:
        groups["poison"] = is_poison
    cand = report.candidates
    panels = [("spectral", "spectral signature score (÷ identity median)", None, np.ones_like(cand, dtype=bool)),
              ("disagreement_margin", "label disagreement margin (> 0 flags)", 0.0, cand.numpy()),
              ("near_duplicate_bits", "bits to nearest other image (dHash)", report.params.near_bits, cand.numpy())]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (key, label, line, where) in zip(axes, panels):
        s = report.scores[key]
        vals = [s[(m.numpy() & where)] for m in groups.values()]
        lo, hi = np.percentile(np.concatenate([v for v in vals if v.size]), [0.5, 99.5])
        bins = np.linspace(lo, hi, 40)
        for i, (name, v) in enumerate(zip(groups, vals)):
            if v.size:
                ax.hist(np.clip(v, lo, hi), bins=bins, density=True, alpha=0.5, color=CYCLE[i], hatch=HATCHES[i],
                        edgecolor=CYCLE[i], label=f"{name} (n={v.size})")
        if line is not None:
            ax.axvline(line, color="black", ls="--", label="flag threshold")
        ax.set(xlabel=label, ylabel="density")
        ax.legend(fontsize=7)
    axes[1].set_title("new images only", fontsize=9)
    axes[2].set_title("new images only", fontsize=9)
    axes[0].set_title("every image, per identity", fontsize=9)
    fig.tight_layout()
    return fig


def plot_detection(rows: list[dict[str, Any]], signals: Sequence[str] | None = None, ax=None):  # noqa: ANN001, ANN201
    """Precision and recall against the known poison, per signal."""
    ax = _ax(ax, (9, 3.8))
    rows = [r for r in rows if signals is None or r["signal"] in signals]
    x = np.arange(len(rows))
    for j, (key, name) in enumerate((("precision", "precision"), ("recall", "recall (all poison)"),
                                     ("recall_triggered", "recall (triggered images)"))):
        if key in rows[0]:
            ax.bar(x + (j - 1) * 0.27, [r[key] for r in rows], 0.27, color=CYCLE[j], hatch=HATCHES[j],
                   edgecolor="black", linewidth=0.4, label=name)
    ax.set_xticks(x, [r["signal"].replace("_", "\n").replace(": ", ":\n") for r in rows], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="share", title="What each signal finds")
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return ax


def plot_outcomes(outcomes: dict[str, dict[str, float]], ax=None, title: str = "Attack and clean quality"):  # noqa: ANN001, ANN201
    """ASR and clean TAR@FAR1 % for each named training set (bars, hatched per metric)."""
    ax = _ax(ax, (7, 3.5))
    names = list(outcomes)
    x = np.arange(len(names))
    for j, (key, label) in enumerate((("asr", "ASR (with trigger)"), ("tar_at_far_1pct", "clean TAR@FAR1%"))):
        vals = [outcomes[n][key] for n in names]
        ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, color=CYCLE[j * 2], hatch=HATCHES[j], edgecolor="black",
               linewidth=0.4, label=label)
        for xi, v in zip(x, vals):
            ax.text(xi + (j - 0.5) * 0.38, v + 0.02, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylim=(0, 1.3), ylabel="rate", title=title)
    ax.legend(fontsize=8, loc="upper center", ncols=2)
    return ax


def plot_verify_times(seconds: Sequence[float], ax=None):  # noqa: ANN001, ANN201
    """How long each verification took (signature + every file's digest)."""
    ax = _ax(ax, (5, 3))
    ax.plot(np.arange(1, len(seconds) + 1), seconds, ls="", marker=MARKERS[0], color=CYCLE[0], ms=4)
    ax.axhline(float(np.median(seconds)), color="black", ls="--", label=f"median {np.median(seconds):.2f} s")
    ax.set(xlabel="verification #", ylabel="seconds", title="Time to verify the dataset")
    ax.legend(fontsize=8)
    return ax
