"""Plots for control 4: what DP does to poisons, to quality and to membership inference."""
from __future__ import annotations

from ...viz import CYCLE, MARKERS, STYLES


def _eps_label(e: float | None) -> str:
    return "∞ (no DP)" if e is None else f"{e:g}"


def plot_dp_sweep(records: list[dict]):  # noqa: ANN201
    """Three panels against ε (no DP on the left): ASR after DP pretraining and in the
    deployed system, per number of poisoned records; clean TAR; MIA advantage and bounds."""
    import matplotlib.pyplot as plt

    eps = list(dict.fromkeys(r["epsilon"] for r in records))
    xs, labels = range(len(eps)), [_eps_label(e) for e in eps]
    counts = sorted({r["poisoned_records"] for r in records})
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, k in enumerate(counts):
        rs = {r["epsilon"]: r for r in records if r["poisoned_records"] == k}
        for j, (key, what) in enumerate((("asr_after_pretraining", "after DP pretraining"), ("asr", "deployed"))):
            axes[0].plot(xs, [rs[e][key] for e in eps], STYLES[j], marker=MARKERS[i], color=CYCLE[i],
                         label=f"{k} poisoned records, {what}")
        axes[1].plot(xs, [rs[e]["tar_at_far_1pct"] for e in eps], STYLES[i], marker=MARKERS[i], color=CYCLE[i],
                     label=f"{k} poisoned records")
        axes[2].plot(xs, [rs[e]["mia_advantage"] for e in eps], STYLES[i], marker=MARKERS[i], color=CYCLE[i],
                     label=f"measured ({k} poisoned records)")
    first = {r["epsilon"]: r for r in records if r["poisoned_records"] == counts[0]}
    axes[2].plot(xs, [first[e]["mia_bound_tight"] for e in eps], ":", color="black", label="bound (e^ε−1+2δ)/(e^ε+1)")
    axes[2].plot(xs, [first[e]["mia_bound_yeom"] for e in eps], "--", color="grey", label="bound e^ε − 1 (capped at 1)")
    titles = ("Attack success", "Clean TAR@FAR1%", "Membership inference")
    ylabels = ("ASR", "TAR@FAR1%", "attacker's advantage")
    for ax, t, yl in zip(axes, titles, ylabels):
        ax.set_xticks(list(xs), labels)
        ax.set(xlabel="ε (smaller = more private)", ylabel=yl, title=t, ylim=(-0.1, 1.05))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
