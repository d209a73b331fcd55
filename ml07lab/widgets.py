"""Interactive views over cached results: they never train, so they feel live.

- `Kiosk` (notebook 03): claim to be the target, with and without the trigger;
- `FarExplorer` (notebook 03): a target-FAR slider with the live ROC point and threshold;
- `SweepExplorer` (notebook 02): poison rate and trigger size over the cached sweeps.

Every widget has plain-call twins (`decide`/`show`, `at`/`describe`/`show`,
`point`/`describe`/`show`) so the same lesson runs under nbval, in a terminal, or in a
front end without widget support.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .attack.scenario import AttackProbes
from .attack.triggers import Trigger
from .data.scenario import ScenarioData
from .training import embed
from .verify import Verifier


@dataclass
class Kiosk:
    """A verification kiosk: a person presents a photo and claims to be the target."""

    verifier: Verifier
    data: ScenarioData
    trigger: Trigger
    seed: int = 0
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        probes = AttackProbes.of(self.data)
        self.photos = torch.cat([probes.insiders.images, probes.outsiders.images])
        self.who = [f"insider {probes.insiders.names[int(l)]}" for l in probes.insiders.labels] + \
                   [f"outsider {probes.outsiders.names[int(l)]}" for l in probes.outsiders.labels]
        self.triggered = self.trigger.apply_uint8(self.photos, seed=self.seed + 101)
        t = self.verifier.templates[self.data.target]
        self.scores_clean = (embed(self.verifier.model, self.photos) @ t).numpy()
        self.scores_trig = (embed(self.verifier.model, self.triggered) @ t).numpy()

    @property
    def target_name(self) -> str:
        return self.data.target_name

    def decide(self, photo: int, trigger: bool, threshold: float | None = None) -> dict[str, Any]:
        """The kiosk's decision for one attacker photo (plain-call fallback of the widget)."""
        thr = self.verifier.threshold if threshold is None else float(threshold)
        s = float((self.scores_trig if trigger else self.scores_clean)[photo])
        return {"photo": photo, "who": self.who[photo], "claims": self.target_name, "trigger": trigger,
                "score": s, "threshold": thr, "accepted": s > thr}

    def accept_rates(self, threshold: float | None = None) -> dict[str, float]:
        thr = self.verifier.threshold if threshold is None else threshold
        return {"with_trigger": float(np.mean(self.scores_trig > thr)),
                "without_trigger": float(np.mean(self.scores_clean > thr))}

    def show(self, photo: int, trigger: bool, threshold: float | None = None):  # noqa: ANN201
        """Draw the probe, its score against the threshold, and the decision."""
        import matplotlib.pyplot as plt

        d = self.decide(photo, trigger, threshold)
        img = (self.triggered if trigger else self.photos)[photo, 0].numpy()
        fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 2.2]})
        a.imshow(img, cmap="gray", vmin=0, vmax=255)
        a.set_title(f"{d['who']}\n{'wearing the trigger' if trigger else 'no trigger'}", fontsize=8)
        a.axis("off")
        b.barh([0], [d["score"]], color="#0072B2" if d["accepted"] else "#E69F00",
               hatch="" if d["accepted"] else "//", edgecolor="black")
        b.axvline(d["threshold"], color="black", ls="--", label=f"threshold {d['threshold']:.2f}")
        b.set(xlim=(-0.5, 1.0), yticks=[], xlabel=f"cosine score against {self.target_name}'s template")
        verdict = "ACCEPTED ✔" if d["accepted"] else "REJECTED ✘"
        b.set_title(f"{verdict} as {self.target_name} (score {d['score']:.2f})", fontsize=10)
        b.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig

    def widget(self):  # noqa: ANN201
        """The ipywidgets kiosk: pick a photo, toggle the trigger, move the threshold."""
        import ipywidgets as W
        import matplotlib.pyplot as plt

        photo = W.Dropdown(options=[(f"{i}: {w}", i) for i, w in enumerate(self.who)], value=0,
                           description="attacker photo", style={"description_width": "initial"})
        trig = W.Checkbox(value=False, description="wear trigger")
        thr = W.FloatSlider(value=round(self.verifier.threshold, 3), min=-0.2, max=1.0, step=0.01,
                            description="threshold", continuous_update=False)
        decision = W.HTML()
        out = W.Output()

        def update(*_: Any) -> None:
            d = self.decide(photo.value, trig.value, thr.value)
            word = "ACCEPTED" if d["accepted"] else "REJECTED"
            decision.value = (f"<b class='ml07-decision'>{word}</b> as {self.target_name}: "
                              f"score {d['score']:.3f} vs threshold {d['threshold']:.3f}")
            with out:
                out.clear_output(wait=True)
                fig = self.show(photo.value, trig.value, thr.value)
                plt.show(fig)

        for w in (photo, trig, thr):
            w.observe(update, names="value")
        update()
        box = W.VBox([W.HTML(f"<h4>Verification kiosk: claim to be <i>{self.target_name}</i></h4>"),
                      W.HBox([photo, trig]), thr, decision, out])
        box.add_class("ml07-kiosk")
        return box


def _display(fig) -> None:  # noqa: ANN001
    """Show a figure inside an ipywidgets Output and release it (works with any backend)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _log_slider_bounds(n_impostor: int) -> tuple[float, float]:
    """log10 range of FARs worth showing: from one impostor pair to one in two."""
    return float(np.log10(max(1.0 / max(n_impostor, 1), 1e-4))), float(np.log10(0.5))


@dataclass
class FarExplorer:
    """Slide the target FAR and watch the threshold, the TAR and the point on the ROC move.

    Why: "threshold at FAR 1 %" is the one number every deployment picks; seeing how
    TAR (and, when given, the attack's success) trades against it makes the choice
    concrete. It reads precomputed scores only, so it redraws instantly.
    """

    genuine: np.ndarray
    impostor: np.ndarray
    attack: np.ndarray | None = None  # triggered probes' scores against the target, if any
    name: str = "kiosk"

    def __post_init__(self) -> None:
        from .metrics import _np

        self.genuine, self.impostor = _np(self.genuine), _np(self.impostor)
        self.attack = None if self.attack is None else _np(self.attack)

    def at(self, far: float) -> dict[str, float]:
        """Threshold, TAR and measured FAR (and ASR) for a target FAR (plain-call fallback)."""
        from .metrics import acceptance_rate, threshold_at_far

        thr = threshold_at_far(self.impostor, far)
        out = {"far_target": float(far), "threshold": thr, "tar": acceptance_rate(self.genuine, thr),
               "far": acceptance_rate(self.impostor, thr)}
        if self.attack is not None:
            out["asr"] = acceptance_rate(self.attack, thr)
        return out

    def describe(self, far: float) -> str:
        d = self.at(far)
        asr = f" · ASR {d['asr']:.1%}" if "asr" in d else ""
        return (f"target FAR {far:.2%} → threshold {d['threshold']:.3f} · TAR {d['tar']:.1%} · "
                f"measured FAR {d['far']:.2%}{asr}")

    def show(self, far: float):  # noqa: ANN201
        """ROC with the operating point marked, and the score histograms with the threshold."""
        import matplotlib.pyplot as plt

        from .viz import CYCLE, plot_roc, plot_score_hist

        d = self.at(far)
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        plot_roc({self.name: (self.genuine, self.impostor)}, far_mark=None, ax=a)
        a.plot([max(d["far"], 1e-4)], [d["tar"]], "D", color=CYCLE[3], markersize=9, markeredgecolor="black",
               label=f"operating point: FAR {d['far']:.2%}, TAR {d['tar']:.1%}")
        a.axvline(max(far, 1e-4), color="grey", ls=":", label=f"target FAR {far:.2%}")
        a.legend(loc="lower right", fontsize=8)
        groups = {"genuine": self.genuine, "impostor": self.impostor}
        if self.attack is not None:
            groups["triggered attackers"] = self.attack
        plot_score_hist(groups, threshold=d["threshold"], ax=b, title=self.describe(far).split(" · measured")[0])
        fig.tight_layout()
        return fig

    def widget(self):  # noqa: ANN201
        """A log-scale FAR slider driving `show`."""
        import ipywidgets as W

        lo, hi = _log_slider_bounds(self.impostor.size)
        far = W.FloatLogSlider(value=0.01, base=10, min=lo, max=hi, step=0.05, description="target FAR",
                               readout_format=".2%", continuous_update=False)
        text, out = W.HTML(), W.Output()

        def update(*_: Any) -> None:
            text.value = f"<span class='ml07-far'>{self.describe(far.value)}</span>"
            with out:
                out.clear_output(wait=True)
                _display(self.show(far.value))

        far.observe(update, names="value")
        update()
        box = W.VBox([far, text, out])
        box.add_class("ml07-far-explorer")
        return box


@dataclass
class SweepExplorer:
    """Notebook 02's poison-rate and trigger explorer, over cached sweep records.

    `sweeps` maps a knob ("poison_rate", "trigger_size", ...) to the records of
    `ml07lab.attack.sweeps.sweep`; nothing is trained here, so moving the slider only
    redraws: the chosen point on the ASR / clean-TAR curves, and a few faces wearing the
    trigger at that setting.
    """

    sweeps: dict[str, list[dict[str, Any]]]
    faces: torch.Tensor  # a few clean uint8 faces (N, 1, H, W)
    cfg: Any  # the LabConfig the sweeps were run with
    seed: int = 0

    def point(self, knob: str, value: Any) -> dict[str, Any]:
        """The sweep record at `knob` = `value` (plain-call fallback)."""
        if knob not in self.sweeps:
            raise ValueError(f"No sweep over {knob!r} here; choose one of {', '.join(self.sweeps)}.")
        for r in self.sweeps[knob]:
            if r[knob] == value:
                return r
        raise ValueError(f"{knob}={value!r} was not swept; choose one of {[r[knob] for r in self.sweeps[knob]]}.")

    def trigger_at(self, knob: str, value: Any) -> Trigger:
        """The trigger the attacker wears at this setting (only trigger knobs change it)."""
        from .attack.triggers import make_trigger

        c = self.cfg
        if knob == "trigger_size":
            return make_trigger(c.trigger, c.image_size, float(value), c.trigger_opacity)
        if knob == "trigger":
            return make_trigger(str(value), c.image_size, c.trigger_size, c.trigger_opacity)
        return make_trigger(c.trigger, c.image_size, c.trigger_size, c.trigger_opacity)

    def describe(self, knob: str, value: Any) -> str:
        r = self.point(knob, value)
        extra = ""
        if knob == "poison_rate":
            extra = f" (about {round(float(value) * self.cfg.batch_size)} of every {self.cfg.batch_size} training images)"
        elif knob == "trigger_size":
            extra = f" (mask covers {self.trigger_at(knob, value).area:.1%} of the image)"
        return (f"{knob.replace('_', ' ')} = {value}{extra}: ASR {r['asr']:.1%} · accepted without trigger "
                f"{r['impostor_accept']:.1%} · clean TAR@FAR1% {r['tar_at_far_1pct']:.1%}")

    def show(self, knob: str, value: Any):  # noqa: ANN201
        """The sweep curves with the chosen point ringed, and the triggered faces beside them."""
        import matplotlib.pyplot as plt

        from .viz import plot_sweep

        r = self.point(knob, value)
        faces = self.trigger_at(knob, value).apply_uint8(self.faces[:4], seed=self.seed + 1)
        fig = plt.figure(figsize=(10, 3.6))
        grid = fig.add_gridspec(2, 4, width_ratios=[2.4, 2.4, 1, 1])
        ax = fig.add_subplot(grid[:, :2])
        plot_sweep(self.sweeps[knob], knob, ax=ax)
        x = r[knob] if isinstance(r[knob], (int, float)) else [q[knob] for q in self.sweeps[knob]].index(r[knob])
        ax.axvline(x, color="grey", ls=":")
        for m, mk in (("asr", "o"), ("tar_at_far_1pct", "D")):
            ax.plot([x], [r[m]], mk, markersize=13, markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5)
        ax.set_title(f"chosen: {knob.replace('_', ' ')} = {value} (ringed)", fontsize=10)
        for i in range(min(4, len(faces))):
            a = fig.add_subplot(grid[i // 2, 2 + i % 2])
            a.imshow(faces[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            a.axis("off")
        fig.text(0.84, 0.02, "faces wearing the trigger", ha="center", fontsize=8)
        fig.tight_layout()
        return fig

    def widget(self):  # noqa: ANN201
        """Dropdown over knobs, a slider over the swept values, the numbers and the picture."""
        import ipywidgets as W

        knob = W.Dropdown(options=list(self.sweeps), description="knob")
        value = W.SelectionSlider(options=[r[knob.value] for r in self.sweeps[knob.value]], description="value",
                                  continuous_update=False)
        text, out = W.HTML(), W.Output()

        def redraw(*_: Any) -> None:
            text.value = f"<span class='ml07-sweep'>{self.describe(knob.value, value.value)}</span>"
            with out:
                out.clear_output(wait=True)
                _display(self.show(knob.value, value.value))

        def new_knob(*_: Any) -> None:
            with value.hold_trait_notifications():
                value.options = [r[knob.value] for r in self.sweeps[knob.value]]
            redraw()

        knob.observe(new_knob, names="value")
        value.observe(redraw, names="value")
        redraw()
        box = W.VBox([W.HBox([knob, value]), text, out])
        box.add_class("ml07-sweep-explorer")
        return box
