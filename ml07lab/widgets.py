"""Interactive views over cached results: they never train, so they feel live.

Every widget has a plain-call twin (`Kiosk.decide`, `Kiosk.show`) so the same lesson
runs under nbval, in a terminal, or in a front end without widget support.
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
                           description="attacker photo")
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
