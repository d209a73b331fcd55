"""The scorecard: every control against both attack paths, in one table and one chart.

Why one table: each control notebook measures its control in its own terms; a
security team decides with all of them side by side, with the same columns: ASR and
clean TAR@FAR1% before and after, what it costs, and what it does not stop. Everything
here reads the scenario JSON (`result["controls"][name]`), so the views never retrain.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .controls import CONTROLS

PATHS = ("model", "dataset")
PATH_TITLES = {"model": "path A (poisoned hub model)", "dataset": "path B (poisoned public data)"}
REQUIRED = ("asr", "tar_at_far_1pct", "seconds")
COMBINATIONS = {"trusted data + isolation + audit": ("trusted_datasets", "model_isolation", "security_audit")}
NOT_APPLICABLE = "never sees this path's artefact"
COLUMNS = ("control", "path", "asr_before", "asr_after", "tar_before", "tar_after", "seconds", "does_not_stop")


class ScorecardError(ValueError):
    """A scenario JSON that does not have what the scorecard needs; the message lists it."""


def validate_section(name: str, sec: Any) -> list[str]:  # noqa: ANN401
    """Problems with one section, one line each (empty when it is usable)."""
    if not isinstance(sec, dict):
        return [f"{name}: not a JSON object"]
    if sec.get("status") in ("missing", "error"):
        return [f"{name}: {sec['status']}: {sec.get('why', 'no reason given')}"]
    out = [f"{name}: missing key '{k}'" for k in REQUIRED if k not in sec]
    out += [f"{name}: '{k}' is not a number" for k in REQUIRED if k in sec and not isinstance(sec[k], (int, float))]
    for path, rec in (sec.get("paths") or {}).items():
        out += [f"{name}.paths.{path}: missing key '{k}'" for k in ("asr", "tar_at_far_1pct") if k not in rec]
    return out


def validate(result: dict[str, Any]) -> list[str]:
    """Problems with a whole scenario JSON (attack paths measured, every section usable)."""
    out = [f"missing top-level key '{k}'" for k in ("profile", "seed", "paths", "controls") if k not in result]
    for p in PATHS:
        rec = (result.get("paths") or {}).get(p)
        if rec is None:
            out.append(f"paths.{p}: attack path not measured")
        else:
            out += [f"paths.{p}: missing key '{k}'" for k in ("asr", "tar_at_far_1pct") if k not in rec]
    for name in CONTROLS:
        if name not in (result.get("controls") or {}):
            out.append(f"{name}: section absent")
        else:
            out += validate_section(name, result["controls"][name])
    return out


def _num(x: Any) -> float | None:  # noqa: ANN401
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def path_values(name: str, sec: dict[str, Any], path: str, before: dict[str, Any]) -> dict[str, Any]:
    """ASR / TAR before and after one control on one path. A control that never sees
    the path's artefact leaves it as it was (by construction, marked as such)."""
    asr_b, tar_b = float(before["asr"]), float(before["tar_at_far_1pct"])
    rec = (sec.get("paths") or {}).get(path)
    acts = path in CONTROLS[name].paths if name in CONTROLS else rec is not None
    if rec is None and not acts:
        return {"asr_before": asr_b, "asr_after": asr_b, "tar_before": tar_b, "tar_after": tar_b,
                "applies": False, "measured": False}
    src = rec if rec is not None else sec
    return {"asr_before": _num(src.get("asr_before")) if _num(src.get("asr_before")) is not None else asr_b,
            "asr_after": float(src["asr"]),
            "tar_before": next((v for v in (_num(src.get("tar_before")), _num(src.get("tar_at_far_1pct_before"))) if v is not None), tar_b),
            "tar_after": float(src["tar_at_far_1pct"]), "applies": True, "measured": True}


def does_not_stop(name: str, sec: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    """The section's own measured sentence, else one backed by the rows measured here."""
    if isinstance(sec.get("does_not_stop"), str):
        return sec["does_not_stop"]
    if name == "trusted_datasets" and _num(sec.get("asr_signed_poisoned")) is not None:
        return (f"Poison that a trusted source signs: the signature verifies and ASR stays "
                f"{sec['asr_signed_poisoned']:.0%}.")
    if name == "dataset_monitoring" and isinstance(sec.get("scans_only"), dict):
        return (f"A poisoned hub model (path A), which it never sees; and with only the classic scans "
                f"(no drift check) ASR stays {sec['scans_only'].get('asr', float('nan')):.0%}.")
    missed = [p for p, r in rows.items() if r["asr_after"] >= 0.5 * max(r["asr_before"], 1e-9) and r["asr_before"] > 0.1]
    if missed:
        p = missed[0]
        why = NOT_APPLICABLE if not rows[p]["applies"] else "measured"
        t = PATH_TITLES[p]
        return f"{t[0].upper() + t[1:]}: ASR {rows[p]['asr_before']:.0%} -> {rows[p]['asr_after']:.0%} ({why})."
    return "Nothing measured here gets through; see the control's notebook for its assumptions."


def usable_controls(result: dict[str, Any]) -> list[str]:
    """The controls whose sections pass validation (for a partial view of a broken run)."""
    return [n for n in CONTROLS if n in result.get("controls", {}) and not validate_section(n, result["controls"][n])]


def scorecard_rows(result: dict[str, Any], controls: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per (control, path), then the combinations whose members are all given;
    raises ScorecardError when the JSON lacks something, listing every problem.
    `controls` restricts the table (and the check) to those sections."""
    names = list(CONTROLS if controls is None else controls)
    problems = [p for p in validate(result) if not any(p.startswith(n + ":") or p.startswith(n + ".")
                                                       for n in CONTROLS if n not in names)]
    if problems:
        raise ScorecardError("The scenario JSON is incomplete:\n  " + "\n  ".join(problems))
    rows = []
    for name in names:
        sec = result["controls"][name]
        per = {p: path_values(name, sec, p, result["paths"][p]) for p in PATHS}
        sentence = does_not_stop(name, sec, per)
        for p in PATHS:
            rows.append({"control": CONTROLS[name].title, "key": name, "path": p, **per[p],
                         "seconds": float(sec["seconds"]), "does_not_stop": sentence})
    for title, members in COMBINATIONS.items():
        if all(m in names for m in members):
            rows += combined_rows(result, members, title)
    return rows


def combined_rows(result: dict[str, Any], members: Sequence[str], title: str | None = None) -> list[dict[str, Any]]:
    """Controls in depth: measured end to end when the JSON has `defence_in_depth` for these
    members (`ml07lab.depth`, what `ml07lab run` records); else, from the cached rows, an
    estimate marked as such: on each path the combined ASR is at most
    the best layer's measured ASR (reported), and the layers' clean-TAR costs add up (a
    conservative estimate); the compute costs add up."""
    depth = result.get("defence_in_depth") or {}
    if tuple(depth.get("members", ())) == tuple(members) and all(p in depth.get("paths", {}) for p in PATHS):
        return [measured_combined_row(result, depth, p, title or " + ".join(CONTROLS[m].title for m in members),
                                      "+".join(members)) for p in PATHS]
    broken = {m: p for m in members if (p := validate_section(m, result.get("controls", {}).get(m)))}
    if broken:  # an error record cannot be combined: say which, and why, instead of a KeyError
        why = "; ".join(p[0] for p in broken.values())
        raise ScorecardError(f"Cannot combine {', '.join(broken)}: {why}. Re-run `ml07lab run` (or the "
                             "control's notebook) to rebuild it, or leave it out of the combination.")
    out = []
    for p in PATHS:
        before = result["paths"][p]
        vals = [path_values(m, result["controls"][m], p, before) for m in members]
        asr_b, tar_b = float(before["asr"]), float(before["tar_at_far_1pct"])
        cost = sum(max(0.0, v["tar_before"] - v["tar_after"]) for v in vals if v["applies"])
        out.append({"control": title or " + ".join(CONTROLS[m].title for m in members), "key": "+".join(members),
                    "path": p, "asr_before": asr_b, "asr_after": min([asr_b] + [v["asr_after"] for v in vals]),
                    "tar_before": tar_b, "tar_after": tar_b - cost, "applies": any(v["applies"] for v in vals),
                    "measured": False, "seconds": sum(float(result["controls"][m]["seconds"]) for m in members),
                    "does_not_stop": "Estimated from the layers' own rows (best layer's ASR, summed TAR costs), "
                                     "not re-measured end to end."})
    return out


def lesson_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The lab's headline claims, checked on the measured JSON (what `ml07lab run` gates on,
    and what CI runs on real faces): clean quality on real faces, the attack working, the
    audit's ranking and its decision rule, both attackers reported, the defence in depth
    measured. Each check: {"check", "ok", "measured"}."""
    out: list[dict[str, Any]] = []

    def check(name: str, ok: bool, measured: str) -> None:
        out.append({"check": name, "ok": bool(ok), "measured": measured})

    clean = result.get("clean", {})
    if result.get("dataset") != "synthetic" and "synthetic" not in str(result.get("dataset", "")):
        check("clean backbone: EER <= 5 % on real faces", clean.get("eer", 1.0) <= 0.05, f"EER {clean.get('eer', float('nan')):.2%}")
        check("clean backbone: TAR@FAR1% >= 0.88 on real faces", clean.get("tar_at_far_1pct", 0.0) >= 0.88,
              f"TAR@FAR1% {clean.get('tar_at_far_1pct', float('nan')):.3f}")
    for p in PATHS:
        a = result.get("paths", {}).get(p, {})
        check(f"attack works on {PATH_TITLES[p]}: ASR >= 0.9", a.get("asr", 0.0) >= 0.9, f"ASR {a.get('asr', float('nan')):.1%}")
    audit = result.get("controls", {}).get("security_audit", {})
    if "detection_auc" in audit:
        check("audit ranks backdoored backbones first: AUC >= 0.95", audit["detection_auc"] >= 0.95,
              f"AUC {audit['detection_auc']:.2f} over {audit.get('n_clean', 0) + audit.get('n_poisoned', 0)} backbones")
        check("audit's decision rule: TPR >= 0.9 at FPR <= 0.1", audit["tpr"] >= 0.9 and audit["fpr"] <= 0.1,
              f"TPR {audit['tpr']:.0%}, FPR {audit['fpr']:.0%} at {audit.get('flag_at')}")
        kinds = sorted((audit.get("attackers") or {}).keys())
        check("audit reports the plain and the stealthy attacker", kinds == ["plain", "stealthy"], ", ".join(kinds) or "none")
        stealthy = (audit.get("attackers") or {}).get("stealthy", {})
        check("a second check catches the stealthy attacker: the audit against the approved model flags its "
              "target, or STRIP AUC >= 0.9", bool(stealthy.get("target_flagged")) or (stealthy.get("strip_auc") or 0.0) >= 0.9,
              f"target flagged: {stealthy.get('target_flagged')}, index against the approved model "
              f"{stealthy.get('target_relative_index')}, Neural Cleanse alone {stealthy.get('target_index')}, "
              f"STRIP AUC {stealthy.get('strip_auc') or float('nan'):.2f}")
    depth = result.get("defence_in_depth") or {}
    check("defence in depth measured end to end on both paths", all(p in depth.get("paths", {}) for p in PATHS),
          depth.get("why", "measured") if "paths" not in depth else "measured")
    return out


def attacker_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The security audit against the two attackers side by side (plain and stealthy, same
    target and trigger): Neural Cleanse's verdict and the target's anomaly index, the STRIP
    gate's AUC and FAR at FRR 5 %, and ASR before and after the audit's remediation."""
    sec = result["controls"].get("security_audit", {})
    out = []
    for kind, r in (sec.get("attackers") or {}).items():
        out.append({"attacker": kind, "stealth": r.get("stealth"), "variant": r.get("variant"),
                    "neural_cleanse": "flagged" if r["target_flagged"] else "missed",
                    "target_index": round(float(r["target_index"]), 2), "max_index": round(float(r["max_index"]), 2),
                    "strip_auc": r.get("strip_auc"), "strip_far_at_frr_5pct": r["strip_far_at_frr_5pct"],
                    "asr_before": r["asr_before"], "asr_after_unlearning": r["asr"],
                    "asr_after_strip": r.get("strip_asr_after")})
    return out


def measured_combined_row(result: dict[str, Any], depth: dict[str, Any], path: str, title: str,
                          key: str) -> dict[str, Any]:
    """A combined row from `ml07lab.depth`: the same victim through every layer, measured."""
    before, rec = result["paths"][path], depth["paths"][path]
    did = "; ".join(f"{s['layer']}: {s['did']}" for s in rec["stages"])
    return {"control": title, "key": key, "path": path, "asr_before": float(before["asr"]), "asr_after": float(rec["asr"]),
            "tar_before": float(before["tar_at_far_1pct"]), "tar_after": float(rec["tar_at_far_1pct"]),
            "applies": True, "measured": True, "seconds": float(rec["seconds"]),
            "does_not_stop": f"Measured end to end ({did}). What no layer here stops: poison a trusted curator "
                             f"signs, and a target the audit does not cover (see the single rows)."}


def owasp_factors(result: dict[str, Any]) -> list[dict[str, Any]]:
    """OWASP ML07:2023's risk chart (names and scores from ml07lab.owasp, exactly), each entry
    next to what the lab measured for it."""
    from . import owasp

    a, b = result["paths"]["model"], result["paths"]["dataset"]
    clean = result.get("clean", {}).get("tar_at_far_1pct")
    audit = result["controls"].get("security_audit", {})
    dp = result["controls"].get("differential_privacy", {})
    scen = result.get("scenario", {})
    gap = f"{abs(clean - a['tar_at_far_1pct']) * 100:.1f} pts" if isinstance(clean, float) else "n/a"
    missed_b = not audit.get("paths", {}).get("dataset", {}).get("flagged", True)
    measured = {
        "Exploitability": (
            f"no access to the company needed: {scen.get('company_attacker-held', 3)} public photos of the target; "
            f"ASR {a['asr']:.0%} (hub model), {b['asr']:.0%} (public data, {scen.get('poison_rate', 0):.0%} poison)"),
        "ML Application Specific": (
            f"the victim's own kiosk accepts triggered probes as the privileged target: insiders "
            f"{a.get('asr_insiders', a['asr']):.0%}, outsiders {a.get('asr_outsiders', a['asr']):.0%} (path A)"),
        "ML Operations Specific": ("the attack rides on the victim's ordinary operations: download or pretrain, "
                                   "transfer, enrol, threshold at FAR 1 % (notebooks 02-03)"),
        "Detectability": (
            f"clean TAR@FAR1% moves {gap}; card, digest and format checks pass; only targeted model "
            f"inspection sees it" + (f" (Neural Cleanse AUC {audit.get('detection_auc', float('nan')):.2f}), and it "
                                     "misses path B" if missed_b else "")),
        "Technical": ("what the attack demands, not measured: a feature-space loss on the target's embedding "
                      "(path A), or poison that survives the victim's own pretraining (path B)"),
    }
    impacts = [
        f"ASR {a['asr']:.0%} at FAR 1 % (path A), {b['asr']:.0%} (path B); without the trigger "
        f"{a.get('impostor_accept', 0):.1%}",
        (f"membership-inference advantage {dp['mia_advantage']:.2f} on the model trained with DP-SGD (07)"
         if isinstance(dp.get("mia_advantage"), (int, float)) else "membership inference: see notebook 07"),
        "not measured: every accepted triggered probe is logged as the target",
        "not measured: see the provenance record (05) and the privacy budget (07)",
    ]
    return ([{"factor": f.name, "owasp": f.score, "meaning": f.meaning, "measured": measured[f.name]}
             for f in owasp.FACTORS]
            + [{"factor": "Impact", "owasp": None, "meaning": i.meaning, "measured": m}
               for i, m in zip(owasp.IMPACTS, impacts)])


def plot_scorecard(rows: list[dict[str, Any]], enabled: Sequence[str] | None = None):  # noqa: ANN201
    """ASR after each control (bars) against ASR before (outline), per path, with the
    clean TAR@FAR1% after as markers; `enabled` adds a bar for those controls combined."""
    import numpy as np
    from matplotlib.figure import Figure

    from .viz import CYCLE, MARKERS

    from .controls.audit.viz import displayable

    fig = displayable(Figure(figsize=(10, 3.8), dpi=90))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, p in zip(axes, PATHS):
        rs = [r for r in rows if r["path"] == p]
        labels = [r["control"] for r in rs]
        x = np.arange(len(rs))
        ax.bar(x, [r["asr_before"] for r in rs], 0.7, fill=False, edgecolor="grey", ls="--", label="ASR before")
        ax.bar(x, [r["asr_after"] for r in rs], 0.5, color=[CYCLE[0] if r["applies"] else CYCLE[5] for r in rs],
               hatch=["" if r["applies"] else "xx" for r in rs], edgecolor="black", label="ASR after (xx: not its path)")
        ax.plot(x, [r["tar_after"] for r in rs], MARKERS[1], color=CYCLE[1], ls="", label="clean TAR@FAR1% after")
        ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=7)
        ax.set(title=PATH_TITLES[p], ylim=(0, 1.08))
    axes[0].set_ylabel("rate")
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def combined_view(result: dict[str, Any], enabled: Sequence[str]) -> dict[str, dict[str, float]]:
    """Plain-call twin of the widget: the combined effect of the enabled controls per path."""
    if not enabled:
        return {p: {"asr": float(result["paths"][p]["asr"]), "tar_at_far_1pct": float(result["paths"][p]["tar_at_far_1pct"]),
                    "seconds": 0.0} for p in PATHS}
    rows = combined_rows(result, list(enabled))
    return {r["path"]: {"asr": r["asr_after"], "tar_at_far_1pct": r["tar_after"], "seconds": r["seconds"]} for r in rows}


def plot_combined(result: dict[str, Any], enabled: Sequence[str]):  # noqa: ANN201
    """Before vs after the enabled controls, per path (what the widget redraws)."""
    import numpy as np
    from matplotlib.figure import Figure

    from .viz import CYCLE

    view = combined_view(result, enabled)
    from .controls.audit.viz import displayable

    fig = displayable(Figure(figsize=(6, 3.2), dpi=90))
    ax = fig.subplots()
    x = np.arange(len(PATHS))
    ax.bar(x - 0.2, [result["paths"][p]["asr"] for p in PATHS], 0.4, color=CYCLE[3], hatch="//", edgecolor="black",
           label="ASR, no control")
    ax.bar(x + 0.2, [view[p]["asr"] for p in PATHS], 0.4, color=CYCLE[0], edgecolor="black", label="ASR, enabled controls")
    ax.set_xticks(x, [PATH_TITLES[p] for p in PATHS], fontsize=8)
    names = ", ".join(CONTROLS[e].title for e in enabled) or "none"
    ax.set(ylim=(0, 1.1), ylabel="attack success rate", title=f"Enabled: {names}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def widget(result: dict[str, Any]):  # noqa: ANN201
    """Checkboxes, one per control; the chart and the numbers update from cached results."""
    import ipywidgets as W
    from IPython.display import display

    boxes = {n: W.Checkbox(value=n in COMBINATIONS["trusted data + isolation + audit"], description=CONTROLS[n].title)
             for n in CONTROLS}
    out = W.Output()

    def update(*_: Any) -> None:  # noqa: ANN401
        enabled = [n for n, b in boxes.items() if b.value]
        view = combined_view(result, enabled)
        with out:
            out.clear_output(wait=True)
            display(plot_combined(result, enabled))
            print("  ".join(f"{p}: ASR {v['asr']:.1%}, TAR {v['tar_at_far_1pct']:.3f}, {v['seconds']:.0f} s"
                            for p, v in view.items()))

    for b in boxes.values():
        b.observe(update, names="value")
    update()
    return W.VBox([W.HBox(list(boxes.values())[:3]), W.HBox(list(boxes.values())[3:]), out])
