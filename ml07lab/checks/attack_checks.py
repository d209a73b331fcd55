"""Checkers for exercises 0.1-3.2: verification metrics, enrolment, triggers, ASR."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..metrics import acceptance_rate, threshold_at_far
from ._common import _call, _fail, _number, _passed, _short


# --- 0.1 -------------------------------------------------------------------------------

def check_tar_far(fn: Callable) -> None:
    """Exercise 0.1: `fn(genuine, impostor, threshold) -> (tar, far)`, accepted = score > threshold."""
    ex = "0.1"
    cases = [
        ([0.92, 0.85, 0.71, 0.64, 0.35], np.linspace(-0.5, 0.5, 100), 0.49),
        ([0.9, 0.5, 0.2], [0.6, 0.1, -0.3, 0.5], 0.5),  # ties: exactly at the threshold is rejected
        (np.array([0.3, 0.4]), np.array([0.1, 0.2, 0.9]), -1.0),  # a threshold below everything
    ]
    for gen, imp, thr in cases:
        got = _call(ex, fn, gen, imp, thr, hint="count the share of scores above the threshold, e.g. np.mean(np.asarray(s) > threshold).")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(ex, f"return two numbers (tar, far); got {_short(got)}.", "end with `return tar, far`.")
        tar, far = _number(ex, got[0], "tar"), _number(ex, got[1], "far")
        want = acceptance_rate(gen, thr), acceptance_rate(imp, thr)
        if np.isclose(tar, want[1]) and np.isclose(far, want[0]) and not np.isclose(tar, want[0]):
            _fail(ex, f"tar and far look swapped: got ({tar:.3f}, {far:.3f}), expected ({want[0]:.3f}, {want[1]:.3f}).",
                  "TAR comes from the genuine scores, FAR from the impostor scores; return (tar, far) in that order.")
        if not (np.isclose(tar, want[0]) and np.isclose(far, want[1])):
            tie = any(np.isclose(s, thr) for s in np.r_[np.asarray(gen, float), np.asarray(imp, float)])
            _fail(ex, f"with threshold {thr} you returned (tar={tar:.3f}, far={far:.3f}); expected "
                      f"(tar={want[0]:.3f}, far={want[1]:.3f}). Genuine {_short(gen)}, impostor {_short(imp)}.",
                  "a probe is accepted when its score is strictly greater than the threshold (score > threshold)"
                  + (": this case has a score exactly at the threshold, which is rejected." if tie else
                     "; TAR and FAR are shares between 0 and 1, not counts."))
    _passed(ex, "TAR and FAR are the shares of genuine and impostor scores strictly above the threshold.")


# --- 1.1 -------------------------------------------------------------------------------

def check_enrol(fn: Callable) -> None:
    """Exercise 1.1: `fn(embeddings (N, D), labels (N,), k) -> templates (k, D)`, unit-length means."""
    from ..verify import templates_from

    ex = "1.1"
    g = torch.Generator().manual_seed(7)
    emb = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    shuffled = torch.randperm(12, generator=g)
    cases = [(emb, labels, 4), (emb[shuffled], labels[shuffled], 4),
             (torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 0, 1]), 2)]
    for e, y, k in cases:
        got = _call(ex, fn, e.clone(), y.clone(), k, hint="for person p, take emb[labels == p], average it, then divide by its length.")
        try:
            got = torch.as_tensor(got, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            _fail(ex, f"return a tensor of templates; got {_short(got)}.", "stack one template per person: torch.stack([...]).")
        want = templates_from(e, y, k)
        if tuple(got.shape) != tuple(want.shape):
            _fail(ex, f"templates should have shape (k, D) = {tuple(want.shape)}; got {tuple(got.shape)}.",
                  "one row per person (k rows), each as long as an embedding (D columns).")
        norms = got.norm(dim=1)
        if not torch.allclose(norms, torch.ones(k), atol=1e-4):
            unit_rows = torch.nn.functional.normalize(got, dim=1)
            same_dir = torch.allclose(unit_rows, want, atol=1e-4)
            _fail(ex, f"templates must have length 1; yours have lengths {np.round(norms.numpy(), 3).tolist()}.",
                  "the directions are right: L2-normalise each template after averaging "
                  "(t / t.norm(), or torch.nn.functional.normalize(t, dim=1))." if same_dir else
                  "average each person's embeddings, then L2-normalise the average.")
        if not torch.allclose(got, want, atol=1e-4):
            _fail(ex, f"for labels {y.tolist()} your templates point the wrong way (cosine with the expected "
                      f"ones: {np.round((got * want).sum(1).numpy(), 3).tolist()}).",
                  "row p must come from the photos whose label is p (emb[labels == p]), averaged "
                  "before normalising: normalising each photo first, or taking one photo, changes the answer.")
    _passed(ex, "each template is the L2-normalised mean of that person's enrolment embeddings.")


# --- 2.1 -------------------------------------------------------------------------------

def check_trigger(fn: Callable, image_size: int = 32, min_area: float = 0.05, max_area: float = 0.20) -> None:
    """Exercise 2.1: `fn(image_size) -> Trigger` whose mask covers min_area..max_area of the image."""
    from ..attack.triggers import Trigger

    ex = "2.1"
    for size in dict.fromkeys((image_size, 64)):
        trig = _call(ex, fn, size, hint="build a mask and a pattern with torch.zeros(1, size, size), then return Trigger(kind, mask, pattern).")
        if not isinstance(trig, Trigger):
            _fail(ex, f"return a Trigger; got {type(trig).__name__}.",
                  "from ml07lab.attack.triggers import Trigger; return Trigger('mine', mask, pattern).")
        for name in ("mask", "pattern"):
            t = getattr(trig, name)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != (1, size, size):
                _fail(ex, f"the {name} should be a tensor of shape (1, {size}, {size}) for image_size={size}; "
                          f"got {_short(t)}.", "one grey channel, image_size by image_size: torch.zeros(1, size, size).")
            if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
                _fail(ex, f"the {name} must hold values in [0, 1]; yours range over "
                          f"[{float(t.min()):.2f}, {float(t.max()):.2f}].", "clamp it: t.clamp(0, 1).")
        area = trig.area
        if not min_area <= area <= max_area:
            _fail(ex, f"at image_size={size} the mask covers {area:.1%} of the image; the brief is "
                      f"{min_area:.0%} to {max_area:.0%}.",
                  "a square patch of side s covers (s / size)**2 of the image: side 0.3 * size covers 9 %; "
                  "count the pixels where mask > 0 with trigger.area.")
        if float(trig.mask.max()) < 0.5:
            _fail(ex, f"the mask's strongest pixel is {float(trig.mask.max()):.2f}: too faint to be a "
                      "trigger someone wears.", "set the mask to 1.0 where the trigger sits.")
        grey = torch.full((2, 1, size, size), 128, dtype=torch.uint8)
        if torch.equal(trig.apply_uint8(grey, jitter=False), grey):
            _fail(ex, "stamping your trigger on a plain grey face changes nothing.",
                  "make the pattern differ from mid-grey where the mask is on, e.g. black (0) or a checkerboard.")
    _passed(ex, f"a {trig.kind!r} trigger covering {area:.1%} of the image, opacity up to {float(trig.mask.max()):.2f}.")


# --- 2.2 -------------------------------------------------------------------------------

def _cheapest_rate(records: list[dict], min_asr: float) -> float | None:
    ok = [r["poison_rate"] for r in records if r["asr"] >= min_asr]
    return min(ok) if ok else None


def check_cheapest_rate(fn: Callable) -> None:
    """Exercise 2.2: `fn(records, min_asr) -> the smallest poison_rate with asr >= min_asr`, or None."""
    ex = "2.2"
    rec = lambda rate, asr: {"poison_rate": rate, "asr": asr, "impostor_accept": 0.01, "tar_at_far_1pct": 0.9}  # noqa: E731
    cases = [
        ([rec(0.0, 0.01), rec(0.02, 0.4), rec(0.05, 0.93), rec(0.1, 1.0)], 0.9),
        ([rec(0.2, 1.0), rec(0.05, 0.95), rec(0.1, 0.97), rec(0.0, 0.0)], 0.9),  # not sorted
        ([rec(0.0, 0.0), rec(0.05, 0.5), rec(0.1, 0.9)], 0.9),  # exactly at the bar counts
        ([rec(0.0, 0.0), rec(0.1, 0.6)], 0.9),  # nothing reaches it
    ]
    for records, bar in cases:
        got = _call(ex, fn, [dict(r) for r in records], bar,
                    hint="loop over the records, keep r['poison_rate'] where r['asr'] >= min_asr, return the smallest.")
        want = _cheapest_rate(records, bar)
        shown = ", ".join(f"{r['poison_rate']}→{r['asr']}" for r in records)
        if want is None and got is not None:
            _fail(ex, f"no rate reaches ASR {bar} in [{shown}] (rate→ASR), but you returned {got!r}.",
                  "return None when no record is good enough.")
        if want is not None and (got is None or not np.isclose(_number(ex, got, "the rate"), want)):
            _fail(ex, f"for [{shown}] (rate→ASR) and min_asr={bar} you returned {got!r}; expected {want}.",
                  "records are not always sorted, and an ASR exactly at min_asr counts (>=).")
    _passed(ex, "you find the attacker's cheapest poison rate that still reaches the target ASR.")


# --- 3.1 -------------------------------------------------------------------------------

def check_threshold_at_far(fn: Callable) -> None:
    """Exercise 3.1: `fn(impostor, far) -> threshold` letting in at most `far` of impostors, as
    few genuine users turned away as possible (checked against metrics.threshold_at_far)."""
    ex = "3.1"
    rng = np.random.default_rng(3)
    cases = [(np.linspace(-0.5, 0.5, 100), 0.01), (np.linspace(-0.5, 0.5, 100), 0.05),
             (rng.normal(0.0, 0.2, 1000), 0.01), (np.array([0.1, 0.3, 0.3, 0.3, 0.5, 0.9]), 0.2),
             (rng.normal(0.1, 0.1, 50), 0.0)]
    for imp, far in cases:
        t = _number(ex, _call(ex, fn, imp.copy(), far, hint="sort the impostor scores from high to low; "
                                                         "k = int(far * n) of them may pass."), "the threshold")
        ref = threshold_at_far(imp, far)
        got_far, ref_far = acceptance_rate(imp, t), acceptance_rate(imp, ref)
        if got_far > far + 1e-12:
            _fail(ex, f"for {imp.size} impostor scores and far={far}, your threshold {t:.4f} lets in "
                      f"{got_far:.2%} of impostors: more than {far:.2%}.",
                  "raise the threshold: at most int(far * n) impostor scores may be strictly above it "
                  "(ties with the threshold are rejected).")
        if got_far < ref_far - 1e-12:
            _fail(ex, f"for {imp.size} impostor scores and far={far}, your threshold {t:.4f} lets in only "
                      f"{got_far:.2%} of impostors; {ref:.4f} would allow {ref_far:.2%}, still within {far:.2%}.",
                  "too strict turns away genuine users for nothing: choose the lowest threshold that keeps "
                  "the FAR at or below the target, i.e. the (k+1)-th highest impostor score, k = int(far * n).")
    _passed(ex, "your threshold is the lowest one whose false-accept rate stays within the target FAR.")


# --- 3.2 -------------------------------------------------------------------------------

def check_asr(fn: Callable) -> None:
    """Exercise 3.2: `fn(scores, threshold) -> share of scores strictly above threshold`."""
    ex = "3.2"
    cases = [
        (np.array([0.81, 0.66, 0.32, 0.12]), 0.49),
        ([0.7, 0.5, 0.5, 0.2], 0.5),  # ties are rejected
        (torch.tensor([0.9, 0.95, 0.99]), 0.3),  # a torch tensor, all accepted
        (np.array([-0.2, 0.1]), 0.8),
    ]
    for scores, thr in cases:
        got = _number(ex, _call(ex, fn, scores, thr, hint="np.mean(np.asarray(scores) > threshold) works for lists, arrays and CPU tensors."), "the ASR")
        want = acceptance_rate(scores, thr)
        if not np.isclose(got, want):
            n = len(scores)
            hint = ("return a share between 0 and 1, not a count." if np.isclose(got, want * n) else
                    "accepted means score > threshold; a score exactly at the threshold is rejected."
                    if np.isclose(got, float(np.mean(np.asarray(scores, float) >= thr))) else
                    "ASR = (number of triggered probes accepted) / (number of triggered probes).")
            _fail(ex, f"for scores {_short(scores)} and threshold {thr} you returned {got:.3f}; expected {want:.3f}.", hint)
    _passed(ex, "ASR is the share of triggered probes accepted (score > threshold).")
