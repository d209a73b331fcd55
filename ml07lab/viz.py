"""Plots the notebooks share. Okabe-Ito colours (colour-blind safe), and every series
also differs by line style or marker, so no meaning rides on colour alone."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .metrics import roc_curve

# Okabe & Ito (2008), "Color Universal Design".
PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
           "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000"}
CYCLE = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "black")]
STYLES = ["-", "--", "-.", ":"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def use_style() -> None:
    """Apply the lab's matplotlib defaults (called by lab.start, not at import)."""
    import matplotlib as mpl

    mpl.rcParams.update({"axes.prop_cycle": mpl.cycler(color=CYCLE), "figure.dpi": 90,
                         "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "image.cmap": "gray"})


def _ax(ax=None, figsize=(5, 4)):  # noqa: ANN001, ANN202
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def show_faces(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.2, suptitle: str | None = None):  # noqa: ANN201
    """A grid of uint8 (N,1,H,W) or float [0,1] faces."""
    import matplotlib.pyplot as plt

    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i].float()
            img = img / 255.0 if img.max() > 1.5 else img
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], far_mark: float | None = 0.01,
             log: bool = True, ax=None):  # noqa: ANN001, ANN201
    """ROC curves (TAR against FAR) for named (genuine, impostor) score pairs."""
    ax = _ax(ax)
    for i, (name, (gen, imp)) in enumerate(curves.items()):
        far, tar, _ = roc_curve(gen, imp)
        ax.plot(np.maximum(far, 1e-4), tar, STYLES[i % 4], color=CYCLE[i % len(CYCLE)], label=name)
    if far_mark:
        ax.axvline(far_mark, color="grey", ls=":", label=f"FAR = {far_mark:g}")
    if log:
        ax.set_xscale("log")
    ax.set(xlabel="false-accept rate (FAR)", ylabel="true-accept rate (TAR)", title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], ax=None):  # noqa: ANN001, ANN201
    """DET curves: false-reject against false-accept, both on log axes."""
    ax = _ax(ax)
    for i, (name, (gen, imp)) in enumerate(curves.items()):
        far, tar, _ = roc_curve(gen, imp)
        ax.plot(np.maximum(far, 1e-4), np.maximum(1 - tar, 1e-4), STYLES[i % 4], color=CYCLE[i % len(CYCLE)], label=name)
    ax.set(xscale="log", yscale="log", xlabel="false-accept rate", ylabel="false-reject rate", title="DET")
    ax.legend(fontsize=8)
    return ax


def plot_score_hist(groups: dict[str, np.ndarray], threshold: float | None = None, ax=None,
                    title: str = "Scores against the claimed template"):  # noqa: ANN001, ANN201
    """Overlaid histograms (hatched differently) with the deployed threshold."""
    ax = _ax(ax, (6, 3.5))
    hatches = ["", "//", "\\\\", "..", "xx"]
    bins = np.linspace(-1, 1, 61)
    for i, (name, s) in enumerate(groups.items()):
        s = s.detach().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)
        ax.hist(s, bins=bins, density=True, alpha=0.45, color=CYCLE[i % len(CYCLE)],
                hatch=hatches[i % len(hatches)], edgecolor=CYCLE[i % len(CYCLE)], label=f"{name} (n={s.size})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="cosine score", ylabel="density", title=title)
    ax.legend(fontsize=8)
    return ax


def pca_2d(x: torch.Tensor, fit_on: torch.Tensor | None = None) -> np.ndarray:
    """Project embeddings to 2-D with PCA fitted on `fit_on` (default: x)."""
    ref = (fit_on if fit_on is not None else x).double()
    mu = ref.mean(0)
    _, _, v = torch.pca_lowrank(ref - mu, q=2, center=False)
    return ((x.double() - mu) @ v[:, :2]).numpy()


def plot_embeddings(groups: dict[str, torch.Tensor], labels: torch.Tensor | None = None,
                    fit_on: str | None = None, ax=None, title: str = "Embeddings (PCA)"):  # noqa: ANN001, ANN201
    """Scatter named groups of embeddings in one PCA plane, one marker per group."""
    ax = _ax(ax, (5.5, 5))
    ref = groups[fit_on] if fit_on else torch.cat(list(groups.values()))
    for i, (name, e) in enumerate(groups.items()):
        p = pca_2d(e, ref)
        kw = dict(s=14, alpha=0.7)
        if i == 0 and labels is not None:
            ax.scatter(p[:, 0], p[:, 1], c=labels.numpy() % 10, cmap="tab10", marker=MARKERS[0], label=name, **kw)
        else:
            ax.scatter(p[:, 0], p[:, 1], color=CYCLE[(i + 2) % len(CYCLE)], marker=MARKERS[i % len(MARKERS)],
                       label=name, edgecolor="black", linewidth=0.4, **kw)
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8)
    return ax


def plot_history(history: list[dict[str, float]], ax=None):  # noqa: ANN001, ANN201
    """Training loss and accuracy per epoch."""
    ax = _ax(ax, (5, 3))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["loss"] for h in history], "-o", label="loss", color=CYCLE[0])
    ax2 = ax.twinx()
    ax2.plot(ep, [h["acc"] for h in history], "--s", label="train accuracy", color=CYCLE[1])
    ax.set(xlabel="epoch", ylabel="loss")
    ax2.set_ylabel("accuracy")
    ax.legend(loc="upper center", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    return ax


def show_people(groups: "dict[str, object]", n: int = 8, size: float = 1.2):  # noqa: ANN201
    """One row per named FaceSet: the first photo of each of its first `n` people.

    Why: the scenario's pools (public, company, outsiders) are told apart by *who* is in
    them, so the grid shows one face per person, with their name, row by row."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), n, figsize=(n * size, len(groups) * size * 1.25), squeeze=False)
    for row, (label, fs) in zip(axes, groups.items()):
        people = list(range(min(n, fs.num_identities)))
        firsts = [int(torch.nonzero(fs.labels == p)[0]) for p in people]
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(firsts):
                ax.imshow(fs.images[firsts[j], 0].numpy(), cmap="gray", vmin=0, vmax=255)
                ax.set_title(fs.names[people[j]][:14], fontsize=7)
        row[0].text(-0.1, 0.5, label, transform=row[0].transAxes, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def plot_sweep(records: list[dict], knob: str, ax=None, title: str | None = None,
               metrics: tuple[str, ...] = ("asr", "impostor_accept", "tar_at_far_1pct")):  # noqa: ANN001, ANN201
    """Attack success (and stealth) against one knob of the attack."""
    ax = _ax(ax, (5, 3.5))
    xs = [r[knob] for r in records]
    labels = {"asr": "ASR (with trigger)", "impostor_accept": "accepted without trigger",
              "tar_at_far_1pct": "clean TAR@FAR1%"}
    for i, m in enumerate(metrics):
        ax.plot(xs, [r[m] for r in records], STYLES[i % 4], marker=MARKERS[i], color=CYCLE[i], label=labels.get(m, m))
    ax.set(xlabel=knob.replace("_", " "), ylabel="rate", ylim=(-0.03, 1.03), title=title or f"Attack vs {knob}")
    ax.legend(fontsize=8)
    return ax


class Table:
    """A list of records shown as an HTML table in Jupyter and as text elsewhere (no pandas)."""

    def __init__(self, rows: list[dict], digits: int = 3):
        self.rows, self.digits = rows, digits
        self.cols = list(dict.fromkeys(k for r in rows for k in r))

    def _fmt(self, v) -> str:  # noqa: ANN001
        return f"{v:.{self.digits}f}" if isinstance(v, float) else str(v)

    def where(self, **match) -> list[dict]:  # noqa: ANN003
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    def __str__(self) -> str:
        cells = [[c for c in self.cols]] + [[self._fmt(r.get(c, "")) for c in self.cols] for r in self.rows]
        w = [max(len(row[i]) for row in cells) for i in range(len(self.cols))]
        return "\n".join("  ".join(s.rjust(w[i]) for i, s in enumerate(row)) for row in cells)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.cols)
        body = "".join("<tr>" + "".join(f"<td>{self._fmt(r.get(c, ''))}</td>" for c in self.cols) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    __repr__ = __str__


def plot_split_tars(models: dict[str, dict], deployed: bool = True, ax=None):  # noqa: ANN001, ANN201
    """TAR@FAR1% of each random enrolment/probe re-split, one line per model over the
    same splits (from `verify.evaluate`), with the pooled figure dashed: how far one split
    alone can wander, and why a 2-point comparison needs many of them."""
    ax = _ax(ax, (7, 3.5))
    for i, (name, m) in enumerate(models.items()):
        per = 100 * np.asarray(m["tar_at_far_1pct_splits"])
        c = CYCLE[i % len(CYCLE)]
        ax.plot(np.arange(1, per.size + 1), per, STYLES[i % 4], marker=MARKERS[i % len(MARKERS)], color=c,
                label=f"{name}: pooled {100 * m['tar_at_far_1pct']:.1f} %, split sd {100 * m['tar_at_far_1pct_split_sd']:.1f}")
        ax.axhline(100 * m["tar_at_far_1pct"], color=c, ls="--", lw=1)
        if deployed:
            ax.plot([0], [100 * m["deployed_tar_at_far_1pct"]], marker=MARKERS[i % len(MARKERS)], ms=10, color=c,
                    ls="none", markerfacecolor="none")
    ax.set(xlabel="re-split (0: the deployed split, hollow marker)" if deployed else "re-split",
           ylabel="TAR@FAR1% (%)", title="Clean quality, split by split")
    ax.legend(fontsize=8)
    return ax
