"""Plots of the security audit. Every function returns a matplotlib Figure built
without pyplot, so the same code draws in a notebook and in a headless report; colours
are Okabe-Ito, and hatching or markers carry the meaning too."""
from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ...attack.triggers import Trigger
from ...viz import CYCLE, MARKERS, PALETTE
from .neural_cleanse import FLAG_AT, ReversedTriggers


def displayable(fig: Figure) -> Figure:
    """Let Jupyter show a pyplot-free Figure as a PNG (pyplot's inline hook may be absent)."""
    def png() -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()

    fig._repr_png_ = png  # type: ignore[attr-defined]
    return fig


def _fig(w: float, h: float, ncols: int = 1, nrows: int = 1):  # noqa: ANN202
    fig = displayable(Figure(figsize=(w, h), dpi=90))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def to_png_b64(fig: Figure) -> str:
    """A figure as base64 PNG: how the report inlines images (no server, no files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plot_anomaly(rev: ReversedTriggers, names: Sequence[str] | None = None, target: int | None = None,
                 known_weak: Sequence[int] = (), title: str = "Neural Cleanse: anomaly index per audited person",
                 relative: dict[int, float] | None = None, level: float | None = None) -> Figure:
    """One bar per audited identity and a dashed flag line: the raw index (flag at 2), or,
    given `relative` (model_audit.relative_scores), the index relative to the approved
    model's audit, flagged at `level` (the family-wise level)."""
    fig, ax = _fig(7, 3.2)
    ax = ax[0, 0]
    ids = list(relative) if relative else list(rev.identities)
    vals = [relative[i] for i in ids] if relative else list(rev.index)
    line = (level if level is not None else FLAG_AT) if relative else FLAG_AT
    for i, (ident, val) in enumerate(zip(ids, vals)):
        flagged = val >= line
        colour = PALETTE["vermillion"] if flagged and ident not in known_weak else (
            PALETTE["orange"] if flagged else PALETTE["blue"])
        ax.bar(i, val, color=colour, edgecolor="black", hatch="//" if ident == target else "")
    ax.axhline(line, color="black", ls="--", label=f"flag at {line:g}")
    labels = [(names[i] if names else str(i)) + (" (target)" if i == target else "") +
              (" (known weak)" if i in known_weak else "") for i in ids]
    ax.set_xticks(np.arange(len(ids)), labels, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="relative to the approved model" if relative else "anomaly index (MAD)", title=title)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_triggers(rev: ReversedTriggers, identities: Sequence[int], face: torch.Tensor,
                  real: Trigger | None = None, names: Sequence[str] | None = None) -> Figure:
    """The real trigger (when the lab knows it) next to each reverse-engineered one:
    the mask alone, and stamped on the same face."""
    cols = ([real] if real is not None else []) + list(identities)
    fig, axes = _fig(1.7 * max(2, len(cols)), 3.6, ncols=max(2, len(cols)), nrows=2)
    x = face.float() / 255.0 if face.dtype == torch.uint8 else face
    for j, c in enumerate(cols):
        if isinstance(c, Trigger):
            m, p, title = c.mask, c.pattern, f"real trigger\n({c.kind}, {float(c.mask.sum()):.0f} px)"
        else:
            k = rev.of(c)
            m, p = rev.masks[k], rev.patterns[k]
            who = names[c] if names else str(c)
            title = f"reversed: {who}\n({rev.mask_l1[k]:.0f} px, index {rev.index[k]:.1f})"
        axes[0, j].imshow(m[0].numpy(), cmap="viridis", vmin=0, vmax=1)
        axes[0, j].set_title(title, fontsize=7)
        axes[1, j].imshow(((1 - m) * x + m * p)[0].numpy(), cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].text(-0.15, 0.5, "mask", transform=axes[0, 0].transAxes, rotation=90, va="center", fontsize=8)
    axes[1, 0].text(-0.15, 0.5, "on a face", transform=axes[1, 0].transAxes, rotation=90, va="center", fontsize=8)
    fig.tight_layout()
    return fig


def plot_strip(strip: dict[str, Any]) -> Figure:
    """Persistence of the score under superimposition: genuine users vs triggered probes."""
    fig, ax = _fig(5.5, 3.2)
    ax = ax[0, 0]
    g, a = np.asarray(strip["persistence"]["genuine"]), np.asarray(strip["persistence"]["attack"])
    bins = np.linspace(min(g.min(initial=0), a.min(initial=0)), max(g.max(initial=1), a.max(initial=1)), 40)
    ax.hist(g, bins, color=PALETTE["blue"], alpha=0.6, label="genuine users (accepted)")
    ax.hist(a, bins, color=PALETTE["vermillion"], alpha=0.6, hatch="//", label="triggered probes (accepted)")
    ax.axvline(strip["tau"], color="black", ls="--", label=f"tau (FRR {strip['frr_target']:.0%})")
    ax.set(xlabel="score persistence (blended / own score)", ylabel="probes",
           title=f"STRIP gate: FAR {strip['far_at_frr_5pct']:.1%} at FRR 5 %")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_detection(study: dict[str, Any]) -> Figure:
    """Every audited backbone, clean vs poisoned, under both rules: Neural Cleanse alone
    (largest raw index, flag at 2) and against the approved model's audit (largest
    relative index, flag at the family-wise level)."""
    fig, axes = _fig(10, 3.4, ncols=2)
    panels = ((axes[0, 0], "max_index", study.get("flag_at_raw", FLAG_AT),
               f"Neural Cleanse alone: AUC {study.get('detection_auc_raw', float('nan')):.2f}"),
              (axes[0, 1], "max_relative_index", study.get("flag_at", FLAG_AT),
               f"Against the approved model: AUC {study['detection_auc']:.2f}"))
    for ax, key, line, title in panels:
        rows = [r for r in study["rows"] if r.get(key) is not None]
        for k, (poisoned, label) in enumerate(((False, "clean backbones"), (True, "poisoned backbones"))):
            ys = [r[key] for r in rows if r["poisoned"] == poisoned]
            ax.scatter(np.full(len(ys), k) + np.linspace(-0.15, 0.15, len(ys)), ys, color=CYCLE[3 * k],
                       marker=MARKERS[k], s=50, edgecolor="black", label=label)
        ax.axhline(line, color="black", ls="--", label=f"flag at {line:g}")
        ax.set_xticks([0, 1], ["clean", "poisoned"])
        top = max([r[key] for r in rows] + [line])
        ax.set_ylim(min(0, min(r[key] for r in rows)) - 0.5, top * 1.15)
        ax.set(ylabel="largest index in the backbone", xlim=(-0.6, 1.6), title=title)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Detection over {len([r for r in study['rows'] if not r.get('is_baseline')])} backbones "
                 "(+ the approved one as baseline)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_remediation(before: dict[str, float], after: dict[str, Any], control: dict[str, Any] | None = None) -> Figure:
    """ASR and clean TAR@FAR1% before and after unlearning (and plain fine-tuning)."""
    fig, ax = _fig(5.5, 3.2)
    ax = ax[0, 0]
    series = [("before", before), ("unlearned", after)] + ([("fine-tuned only", control)] if control else [])
    w = 0.8 / len(series)
    for j, (name, rec) in enumerate(series):
        vals = [rec.get("asr", np.nan), rec.get("tar_at_far_1pct", np.nan)]
        ax.bar(np.arange(2) + (j - (len(series) - 1) / 2) * w, vals, w, color=CYCLE[j], edgecolor="black",
               hatch=["", "//", ".."][j], label=name)
    ax.set_xticks([0, 1], ["ASR (lab trigger)", "clean TAR@FAR1%"])
    ax.set(ylim=(0, 1.3), ylabel="rate", title="Remediation by unlearning")
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    fig.tight_layout()
    return fig
