"""Plots for control 3: the transfer-hygiene trade-off and the pruning curve."""
from __future__ import annotations

from ...viz import CYCLE, MARKERS, STYLES, _ax


def plot_hygiene(records: list[dict], max_asr: float = 0.05, max_cost_pts: float = 5.0, ax=None):  # noqa: ANN001, ANN201
    """ASR against clean TAR@FAR1 %, one marker per option; the shaded corner meets the bar."""
    ax = _ax(ax, (6.5, 4.5))
    base = next((r["tar_at_far_1pct"] for r in records if r["option"] == "frozen"), None)
    if base is not None:
        ax.axvspan(base - max_cost_pts / 100, 1.02, ymin=0, ymax=(max_asr + 0.03) / 1.06, color="#009E73", alpha=0.12,
                   label=f"the bar: ASR ≤ {max_asr:.0%}, TAR cost ≤ {max_cost_pts:g} pts")
    for i, r in enumerate(records):
        ax.scatter(r["tar_at_far_1pct"], r["asr"], s=70, marker=MARKERS[i % len(MARKERS)], color=CYCLE[i % len(CYCLE)],
                   edgecolor="black", linewidth=0.5, label=f"{r['label']} ({r['seconds']:.0f} s)", zorder=3)
    ax.set(xlabel="clean TAR@FAR1% (higher is better)", ylabel="ASR (lower is better)", ylim=(-0.03, 1.03),
           xlim=(min(0.4, min(r["tar_at_far_1pct"] for r in records) - 0.05), 1.02),
           title="Transfer hygiene: security against clean quality")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def plot_pruning_curve(curve: list[dict], chosen: float | None = None, ax=None):  # noqa: ANN001, ANN201
    """ASR and clean TAR against the share of last-stage channels pruned (no fine-tuning)."""
    ax = _ax(ax, (5, 3.5))
    xs = [r["fraction"] for r in curve]
    for i, (k, lab) in enumerate((("asr", "ASR"), ("tar_at_far_1pct", "clean TAR@FAR1%"))):
        ax.plot(xs, [r[k] for r in curve], STYLES[i], marker=MARKERS[i], color=CYCLE[i], label=lab)
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls=":", label=f"Liu et al.'s stop: {chosen:.0%}")
    ax.set(xlabel="share of last-stage channels pruned", ylabel="rate", ylim=(-0.03, 1.03), title="Pruning alone")
    ax.legend(fontsize=8)
    return ax
