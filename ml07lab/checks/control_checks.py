"""Checkers for exercises 4.1-9.1: the five controls and the scorecard."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ._common import _call, _fail, _number, _passed, _short


# --- 4.1 -------------------------------------------------------------------------------

def _drifting(old: dict[str, int], new: dict[str, int], min_gain: int) -> set[str]:
    """Notebook 04's drift rule (monitoring.monitor_refresh with its default gain_factor 1)."""
    albums = [c for c in old.values() if c > 0]
    bar = max(min_gain, float(np.median(albums)) if albums else 0.0)
    return {n for n in dict.fromkeys([*old, *new]) if new.get(n, 0) - old.get(n, 0) >= bar}


def check_drift(fn: Callable) -> None:
    """Exercise 4.1: `fn(old_counts, new_counts, min_gain) -> identities that drifted`."""
    ex = "4.1"
    cases = [
        ({"ann": 10, "bo": 12, "cy": 9, "di": 11}, {"ann": 10, "bo": 12, "cy": 9, "di": 11, "eve": 30}, 5),
        ({"ann": 6, "bo": 6, "cy": 6}, {"ann": 12, "bo": 6, "cy": 11}, 5),  # a gain exactly at the bar counts
        ({"ann": 2, "bo": 2, "cy": 3, "di": 2}, {"ann": 7, "bo": 5, "cy": 3, "di": 2}, 5),  # min_gain decides
        ({"ann": 4, "bo": 5, "cy": 6, "big": 500}, {"ann": 4, "bo": 5, "cy": 6, "big": 500, "xi": 60}, 5),  # median
        ({"ann": 20, "bo": 20, "cy": 20, "gone": 9}, {"ann": 20, "bo": 20, "cy": 20, "n1": 8, "n2": 8, "n3": 8,
                                                      "n4": 8, "n5": 25}, 5),  # new names; one removed
        ({"ann": 3, "bo": 4, "cy": 5}, {"ann": 12, "bo": 4, "cy": 5}, 10),
        # Listed with 0 images before (added to the index, no photo yet): not an album. The median
        # of all old counts is 0 here (bar 5); over the people who had images it is 10.
        ({"ann": 10, "bo": 10, "cy": 10, "z1": 0, "z2": 0, "z3": 0, "z4": 0},
         {"ann": 10, "bo": 10, "cy": 10, "z1": 7, "z2": 0, "z3": 0, "z4": 12}, 5),
    ]
    for old, new, min_gain in cases:
        got = _call(ex, fn, dict(old), dict(new), min_gain,
                    hint="an identity missing from old_counts had 0 images before: use old_counts.get(name, 0).")
        if isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            _fail(ex, f"return a list of identity names; got {_short(got)}.", "return sorted(flagged_names).")
        got_set, want = set(got), _drifting(old, new, min_gain)
        if got_set == want:
            continue
        albums = [c for c in old.values() if c > 0]
        bar = max(min_gain, float(np.median(albums)))
        what = (f"old counts {old}, new counts {new}, min_gain={min_gain}: you flagged {sorted(got_set)}, "
                f"expected {sorted(want)} (the bar is {bar:g} images gained).")
        gains = {n: new.get(n, 0) - old.get(n, 0) for n in dict.fromkeys([*old, *new])}
        if got_set == {n for n, g in gains.items() if g > bar}:
            hint = "a gain exactly at the bar is flagged: use >=, not >."
        elif got_set == {n for n, g in gains.items() if g >= max(min_gain, float(np.median(list(old.values()))))}:
            hint = ("take the median over the people who had images before the refresh: leave out the "
                    "old counts that are 0 (they are not albums).")
        elif got_set == {n for n, g in gains.items() if g >= float(np.median(albums))}:
            hint = "the bar is never below min_gain: bar = max(min_gain, median album)."
        elif got_set == {n for n, g in gains.items() if g >= max(min_gain, float(np.mean(albums)))}:
            hint = "use the median album, not the mean: one huge album pulls the mean far up."
        elif not {n for n in want if n not in old} <= got_set:
            hint = "identities that are new in the refresh count too: loop over the names of both dicts."
        else:
            hint = ("the median is over the albums that existed before the refresh (old count > 0); "
                    "the gain is new - old.")
        _fail(ex, what, hint)
    _passed(ex, "you flag every identity whose gain reaches max(min_gain, the median album).")


# --- 5.1 -------------------------------------------------------------------------------

def check_modified_files(fn: Callable) -> None:
    """Exercise 5.1: `fn(recorded, files) -> sorted paths whose bytes no longer match their sha256`."""
    from ..data.manifest import sha256_bytes

    ex = "5.1"
    blobs = {f"p{i:02d}/{j}.png": bytes([i, j]) * (20 + i) for i in range(3) for j in range(2)}
    recorded = {p: sha256_bytes(b) for p, b in blobs.items()}
    one_byte = {**blobs, "p01/0.png": b"\x00" + blobs["p01/0.png"][1:]}
    two = {**blobs, "p02/1.png": b"", "p00/1.png": blobs["p00/1.png"] + b"!"}
    moved = {p: b for p, b in blobs.items() if p != "p00/0.png"} | {"p09/9.png": b"new", "p02/0.png": b"x"}
    cases = [("one byte of p01/0.png changed", recorded, one_byte), ("nothing changed", recorded, dict(blobs)),
             ("p02/1.png emptied and p00/1.png extended; the manifest lists paths in reverse order",
              dict(reversed(list(recorded.items()))), two),
             ("p00/0.png removed, p09/9.png added, p02/0.png rewritten", recorded, moved)]
    for case, rec, files in cases:
        got = _call(ex, fn, dict(rec), dict(files),
                    hint="loop over recorded.items(); skip a path that is not in files (removed files are another check).")
        want = sorted(p for p, h in rec.items() if p in files and sha256_bytes(files[p]) != h)
        if isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            _fail(ex, f"return a list of paths; got {_short(got)}.", "return sorted(modified).")
        got = list(got)
        if got == want:
            continue
        what = f"{case}: you returned {got}; expected {want}."
        if sorted(got) == want:
            hint = "return the paths sorted: sorted(modified), so the report is the same on every run."
        elif set(got) - set(rec):
            hint = (f"{sorted(set(got) - set(rec))} is not in the signed manifest: added files are another "
                    "check; compare only the paths in `recorded`.")
        elif set(got) >= {p for p in rec if p in files}:
            hint = ("every file looks modified: compare hex strings. hashlib.sha256(data).hexdigest() is the "
                    "64-character lowercase text the manifest records (digest() returns bytes).")
        else:
            hint = "a file is modified when hashlib.sha256(files[path]).hexdigest() != recorded[path]."
        _fail(ex, what, hint)
    _passed(ex, "you name every file whose bytes no longer match the sha256 the curator signed.")


# --- 5.2 -------------------------------------------------------------------------------

def check_signature(fn: Callable) -> None:
    """Exercise 5.2: `fn(public_key, payload, signature) -> bool`, Ed25519 over DOMAIN + payload."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..controls.trusted_data.provenance import DOMAIN

    ex = "5.2"
    curator = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    stranger = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    payload = b'{"manifest":{"entries":[{"label":"ann","path":"ann/0.png"}]},"signer":"curator"}'
    good = curator.sign(DOMAIN + payload)
    pub = curator.public_key()
    cases = [
        ("the curator's signature over DOMAIN + payload", pub, payload, good, True),
        ("a relabelled payload (ann -> eve) with the old signature", pub, payload.replace(b"ann", b"eve"), good, False),
        ("a stranger's signature over DOMAIN + payload", pub, payload, stranger.sign(DOMAIN + payload), False),
        ("the curator's signature over the payload alone, without DOMAIN", pub, payload, curator.sign(payload), False),
        ("a signature cut to 10 bytes", pub, payload, good[:10], False),
        ("the curator's signature checked with the stranger's key", stranger.public_key(), payload, good, False),
    ]
    for what, key, msg, sig, want in cases:
        got = _call(ex, fn, key, msg, sig, hint="public_key.verify(signature, DOMAIN + payload) raises "
                    "cryptography.exceptions.InvalidSignature on a bad signature: catch it and return False.")
        if not isinstance(got, (bool, np.bool_)):
            _fail(ex, f"for {what} you returned {_short(got)}; return True or False.",
                  "verify() returns None when the signature is good: return True after it, False in the except.")
        if bool(got) != want:
            hint = ("the curator signs provenance.DOMAIN + payload, not the payload alone: verify exactly "
                    "those bytes." if want or "DOMAIN" in what else
                    "return True only when public_key.verify(signature, DOMAIN + payload) does not raise.")
            _fail(ex, f"for {what} you returned {bool(got)}; expected {want}.", hint)
    _passed(ex, "you accept the curator's signature and refuse altered payloads, other keys and bare payloads.")


# --- 6.1 -------------------------------------------------------------------------------

_PAYLOAD_RAN: list[str] = []


def _exercise_payload(tag: str) -> dict:
    """What the planted pickle calls if someone unpickles it: it only records that it ran."""
    _PAYLOAD_RAN.append(tag)
    return {}


class _Planted:
    def __init__(self, fn: Callable, *args: Any):
        self.fn, self.args = fn, args

    def __reduce__(self):  # noqa: ANN204 - recorded by pickle.dumps, never run by the checker
        return (self.fn, self.args)


def check_unsafe_imports(fn: Callable) -> None:
    """Exercise 6.1: `fn(data) -> sorted 'module.name' imports of a pickle not on ALLOWED_GLOBALS`."""
    import io
    import pickle
    import zipfile
    from collections import OrderedDict

    from ..controls.isolation.gate import ALLOWED_GLOBALS, pickle_globals

    ex = "6.1"
    buf = io.BytesIO()
    torch.save(OrderedDict(weight=torch.ones(2, 2), steps=torch.zeros(1, dtype=torch.int64)), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        state_dict = z.read(next(n for n in z.namelist() if n.endswith(".pkl")))
    cases = [
        ("a pickle that calls a function of this kit", pickle.dumps(_Planted(_exercise_payload, "6.1"), protocol=4)),
        ("a torch.save'd state_dict (its data.pkl)", state_dict),
        ("a protocol-0 pickle calling os.system", b"cos\nsystem\n(S'true'\ntR."),
        ("a pickle opening a file with open() (io.open)", pickle.dumps(_Planted(open, "/nonexistent/marker", "w"), protocol=4)),
        ("a state_dict carrying exec and eval payloads", pickle.dumps(OrderedDict(
            w=_Planted(exec, "1"), b=_Planted(eval, "2"), bias=_Planted(OrderedDict)), protocol=2)),
        ("a protocol-0 pickle importing os.system once and builtins.exec twice",
         b"(cos\nsystem\n(S'true'\ntRcbuiltins\nexec\n(S'1'\ntRcbuiltins\nexec\n(S'2'\ntRl."),
    ]
    _PAYLOAD_RAN.clear()
    for what, data in cases:
        got = _call(ex, fn, data, hint="never unpickle untrusted bytes: isolation.pickle_globals(data) reads "
                    "the opcodes and lists the (module, name) pairs the pickle would import.")
        if _PAYLOAD_RAN:
            _fail(ex, f"for {what}, the pickle's payload RAN: your function unpickled the data.",
                  "pickle.loads (and torch.load without weights_only=True) runs the pickle's code. Read the "
                  "opcodes instead: isolation.pickle_globals(data).")
        if isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            _fail(ex, f"for {what} return a list of 'module.name' strings; got {_short(got)}.",
                  "e.g. [f'{m}.{n}' for m, n in pairs].")
        got = list(got)
        pairs = pickle_globals(data)
        want = sorted({f"{m}.{n}" for m, n in pairs if (m, n) not in ALLOWED_GLOBALS})
        if got == want:
            continue
        if got and not all(isinstance(g, str) for g in got):
            hint = "return strings 'module.name', e.g. f'{module}.{name}', not tuples."
        elif sorted(set(got)) == want:
            hint = "list each import once, sorted: sorted({...})."
        elif set(want) - set(got):
            hint = ("a denylist of dangerous imports misses what is not on it. Refuse everything that is not "
                    "on isolation.ALLOWED_GLOBALS, the imports a plain state_dict needs.")
        else:
            hint = ("the imports of a plain state_dict (collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                    "torch.FloatStorage, ...) are allowed: keep only the pairs not in isolation.ALLOWED_GLOBALS.")
        _fail(ex, f"for {what} you returned {got}; expected {want}.", hint)
    _passed(ex, "you list every import outside the allowlist, without ever unpickling the file.")


# --- 7.1 -------------------------------------------------------------------------------

def check_mia_advantage(fn: Callable) -> None:
    """Exercise 7.1: `fn(members, nonmembers) -> max over t of TPR - FPR`, "score > t is a member"."""
    from ..controls.privacy.membership import _best_threshold

    ex = "7.1"
    rng = np.random.default_rng(7)
    cases = [
        ([0.9, 0.8, 0.7], [0.1, 0.2, 0.3]),  # perfectly separated
        (np.array([0.9, 0.6, 0.4, 0.2]), np.array([0.5, 0.3, 0.1, 0.05])),
        ([0.1, 0.2], [0.8, 0.9]),  # members score lower: the attack can do no better than guessing
        (np.round(rng.normal(0.5, 1.0, 50), 3), np.round(rng.normal(0.0, 1.0, 80), 3)),  # unequal sizes
        (torch.tensor([0.5, 0.5, 0.7]), torch.tensor([0.5, 0.2, 0.2])),  # ties, tensors
    ]
    for m, n in cases:
        got = _number(ex, _call(ex, fn, m, n, hint="convert first (m = np.asarray(members, dtype=float)), then try every score "
                                "as the threshold t: TPR = np.mean(m > t), FPR = np.mean(n > t); keep the largest TPR - FPR."), "the advantage")
        want = _best_threshold(np.asarray(m, dtype=float), np.asarray(n, dtype=float))[1]
        if np.isclose(got, want):
            continue
        mm, nn = np.asarray(m, dtype=float), np.asarray(n, dtype=float)
        if got < 0:
            hint = ("a threshold below every score calls everyone a member: TPR = FPR = 1, advantage 0. "
                    "So the best advantage is never negative: include that threshold.")
        elif got > 1 + 1e-9:
            hint = "TPR and FPR are shares: divide by the number of members and of non-members."
        elif np.isclose(got, mm.mean() - nn.mean()):
            hint = "the advantage is not the difference of the mean scores: maximise TPR - FPR over thresholds."
        else:
            hint = ("higher score = member: TPR is the share of members with score > t, FPR the share of "
                    "non-members with score > t; try every observed score as t (and one below them all).")
        _fail(ex, f"for members {_short(m)} and non-members {_short(n)} you returned {got:.3f}; expected {want:.3f}.", hint)
    _passed(ex, "your advantage is the best TPR - FPR of the threshold attack (the same-data maximum).")


# --- 7.2 -------------------------------------------------------------------------------

def check_largest_epsilon(fn: Callable) -> None:
    """Exercise 7.2: `fn(epsilons, max_advantage, delta) -> the largest ε whose tight bound stays
    within max_advantage`, or None."""
    from ..controls.privacy.membership import tight_bound, yeom_bound

    ex = "7.2"
    base = tight_bound(0.5, 0.0)
    cases = [([1.0, 3.0, 8.0], 0.5, 0.0), ([0.1, 0.25, 0.5, 1.0, 2.0], 0.3, 1e-5),
             ([2.0, 0.5, 1.0, 0.25], 0.25, 0.0),  # not sorted
             ([1.0, 3.0], 0.1, 0.0),  # nothing is private enough
             ([0.25, 0.5], base + 1e-3, 0.01)]  # δ tips ε = 0.5 over the target
    for eps, target, delta in cases:
        got = _call(ex, fn, list(eps), target, delta,
                    hint="for each ε compute the bound (math.exp(ε) - 1 + 2 * delta) / (math.exp(ε) + 1); return "
                    "the largest ε whose bound is at most max_advantage, or None (max() of an empty list raises).")
        ok = [e for e in eps if tight_bound(e, delta) <= target]
        want = max(ok) if ok else None
        what = (f"for ε in {eps}, max_advantage={target:.4g} and δ={delta:g} you returned {got!r}; expected "
                f"{want!r} (tight bounds: {[round(tight_bound(e, delta), 4) for e in eps]}).")
        if want is None:
            if got is not None:
                _fail(ex, what, "return None when no ε keeps the bound within max_advantage.")
            continue
        if got is None or not np.isclose(_number(ex, got, "ε"), want):
            yeom = [e for e in eps if yeom_bound(e) <= target]
            no_delta = [e for e in eps if tight_bound(e, 0.0) <= target]
            if (max(yeom) if yeom else None) == got:
                hint = ("that is Yeom's bound e^ε - 1, which is loose; use the tight one: "
                        "(e^ε - 1 + 2δ) / (e^ε + 1).")
            elif ok and got == min(ok):
                hint = "the largest ε that qualifies: more ε means less noise and better accuracy."
            elif delta and no_delta and got == max(no_delta):
                hint = "δ counts: the bound is (e^ε - 1 + 2·δ) / (e^ε + 1)."
            else:
                hint = "keep the ε whose bound is at most max_advantage, and return the largest of them."
            _fail(ex, what, hint)
    _passed(ex, "you pick the largest ε whose tight bound keeps any membership test within the target.")


# --- 8.1 -------------------------------------------------------------------------------
def check_anomaly_index(fn: Callable) -> None:
    """Exercise 8.1: Neural Cleanse's anomaly index, (median - x) / (1.4826 * MAD)."""
    from ..controls.audit.neural_cleanse import anomaly_index

    cases = [np.array([10.0, 11.0, 9.0, 10.5, 2.0]), np.array([5.0, 5.5, 4.5, 6.0, 5.2, 4.8]),
             np.array([1.0, 2.0, 3.0, 4.0, 100.0])]
    for x in cases:
        got = np.asarray(_call("8.1", fn, x.copy(), hint="median, then the median of absolute deviations"),
                         dtype=np.float64).ravel()
        want = anomaly_index(x)
        if got.shape != want.shape:
            _fail("8.1", f"for {x.size} mask sizes you returned {got.size} indices.", "one index per identity.")
        if np.allclose(-got, want, atol=1e-6):
            _fail("8.1", "your signs are flipped: a *small* mask must get a *positive* index.",
                  "use (median - x), not (x - median): only easy-to-reach identities are suspicious.")
        if not np.allclose(got, want, atol=1e-6):
            _fail("8.1", f"for sizes {_short(x)} you returned {_short(got)}, expected {_short(want)}.",
                  "MAD = 1.4826 * median(|x - median(x)|); index = (median(x) - x) / MAD.")
    _passed("8.1", "identity 4 in the first case has index "
            f"{anomaly_index(cases[0])[4]:.1f} >= 2: Neural Cleanse would flag it.")


# --- 9.1 -------------------------------------------------------------------------------
def check_controls_meeting(fn: Callable) -> None:
    """Exercise 9.1: which controls bring ASR under a bar at an affordable clean cost?"""
    rows = [
        {"control": "a", "asr_before": 1.0, "asr_after": 0.02, "tar_before": 0.95, "tar_after": 0.94},
        {"control": "b", "asr_before": 1.0, "asr_after": 0.60, "tar_before": 0.95, "tar_after": 0.95},
        {"control": "c", "asr_before": 1.0, "asr_after": 0.01, "tar_before": 0.95, "tar_after": 0.80},
        {"control": "d", "asr_before": 1.0, "asr_after": 0.05, "tar_before": 0.95, "tar_after": 0.92},
    ]
    for max_asr, max_cost, want in ((0.05, 0.03, {"a", "d"}), (0.02, 0.2, {"a", "c"}), (0.001, 1.0, set())):
        got = _call("9.1", fn, [dict(r) for r in rows], max_asr, max_cost,
                    hint="loop over the rows; cost = tar_before - tar_after")
        if isinstance(got, (str, bytes, dict)) or (got is not None and not hasattr(got, "__iter__")):
            _fail("9.1", f"return a list of control names; got {_short(got)}.", "return [r['control'] for r in ...].")
        got = list(got or [])
        if any(isinstance(g, dict) for g in got):
            _fail("9.1", "you returned whole rows (dicts); the exercise asks for the controls' names.",
                  "keep r['control'] of each row you select, not r itself.")
        if not all(isinstance(g, str) for g in got):
            _fail("9.1", f"return the controls' names (strings); got {_short(got)}.", "use r['control'].")
        got = set(got)
        if got != want:
            _fail("9.1", f"with max_asr={max_asr}, max_cost={max_cost} you chose {sorted(got)}, expected {sorted(want)}.",
                  "keep a control when asr_after <= max_asr AND (tar_before - tar_after) <= max_cost.")
    _passed("9.1", "you can read a scorecard like a security reviewer.")
