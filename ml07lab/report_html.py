"""HTML pieces of report.html: OWASP's risk chart next to the measurements, and each control's
section as a table in the scorecard's words.

Why a module of its own: a reader of report.html should see `images after the update: 3,200`,
not `images_after = 3.2e+03`. The words and number formats live here, apart from the collection
logic in run.py and the scorecard's rows in scorecard.py.
"""
from __future__ import annotations

import html
from typing import Any

from . import owasp

_e = html.escape

# Exact labels for keys the sections share; other keys are worded by _label's rules.
LABELS = {
    "asr": "ASR after the control",
    "asr_before": "ASR before the control",
    "tar_at_far_1pct": "clean TAR@FAR1% after the control",
    "tar_at_far_1pct_before": "clean TAR@FAR1% before the control",
    "tar_before": "clean TAR@FAR1% before the control",
    "seconds": "compute (s)",
    "build_seconds": "time to build this section (s)",
    "seconds_this_call": "time of this call (s)",
    "clean_images_removed": "clean images removed",
    "images": "training images",
    "images_after": "training images after the update",
    "images_before": "training images before the update",
    "impostor_accept": "impostors accepted without the trigger",
    "asr_insiders": "ASR, insiders",
    "asr_outsiders": "ASR, outsiders",
    "mia_advantage": "membership-inference advantage",
    "detection_auc": "detection AUC over the backbones audited (against the approved model's audit)",
    "tpr": "poisoned backbones flagged at the operating point (TPR)",
    "fpr": "clean backbones flagged at the operating point (FPR)",
    "flag_at": "operating point: relative index at the family-wise 10 % level (the false-alarm budget)",
    "detection_auc_raw": "detection AUC, Neural Cleanse alone (raw index)",
    "tpr_raw": "poisoned backbones flagged, Neural Cleanse alone at index 2 (TPR)",
    "fpr_raw": "clean backbones flagged, Neural Cleanse alone at index 2 (FPR)",
    "n_clean": "clean backbones audited",
    "n_poisoned": "poisoned backbones audited",
    "strip_far_at_frr_5pct": "STRIP: triggered probes let through at 5 % false rejects",
    "strip_frr": "STRIP: clean probes rejected",
    "unlearning_asr": "ASR after unlearning",
    "unlearning_tar_cost_pts": "clean cost of unlearning (TAR points)",
    "asr_without_dp": "ASR without DP",
    "tar_at_far_1pct_without_dp": "clean TAR@FAR1% without DP",
    "payload_ran": "malicious payload ran",
    "max_asr": "bar: highest acceptable ASR",
    "max_tar_cost_pts": "bar: highest acceptable clean cost (TAR points)",
}
_WORDS = {"asr": "ASR", "tar": "TAR", "far": "FAR", "frr": "FRR", "tpr": "TPR", "fpr": "FPR", "auc": "AUC",
          "mia": "membership-inference", "dp": "DP", "pct": "%", "1pct": "1 %", "pts": "(points)", "nc": "Neural Cleanse"}
_SHARE = ("asr", "far", "frr", "tpr", "fpr", "precision", "recall", "accept", "rate", "share")
_ROW_LIMIT = 40  # a section with more numbers than this is summarised, not dumped


def _label(key: str) -> str:
    """LABELS, else the key in words: `asr_signed_poisoned` -> `ASR signed poisoned`."""
    if key in LABELS:
        return LABELS[key]
    parts = key.split(".")
    last = LABELS.get(parts[-1]) or " ".join(_WORDS.get(w, w) for w in parts[-1].split("_"))
    return " · ".join([*(" ".join(_WORDS.get(w, w) for w in p.split("_")) for p in parts[:-1]), last])


def _value(key: str, v: Any) -> str:  # noqa: ANN401
    """A number in the scorecard's format: shares as %, TAR to 3 decimals, seconds, counts."""
    last = key.split(".")[-1]
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return _e(v)
    if v is None:
        return "none (no DP)" if "epsilon" in last else "none"
    x = float(v)
    if "seconds" in last:
        return f"{x:.1f}" if x < 10 else f"{x:,.0f}"
    if last.endswith("pts"):
        return f"{x:.1f}"
    if "tar" in last.split("_"):
        return f"{x:.3f}"
    if any(w in last for w in _SHARE) and 0 <= x <= 1:
        return f"{x:.1%}"
    if x.is_integer():
        return f"{int(x):,}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2g}"


def _scalars(sec: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """(dotted key, value) of the section's numbers, flags and short texts, one level of nesting."""
    out: list[tuple[str, Any]] = []
    for k, v in sec.items():
        key = f"{prefix}{k}"
        if isinstance(v, (bool, int, float)) or v is None or (isinstance(v, str) and len(v) <= 200):
            out.append((key, v))
        elif isinstance(v, dict) and depth < 2:
            out += _scalars(v, f"{key}.", depth + 1)
    return out


def table(rows: list[tuple[str, str]], head: tuple[str, str] = ("measure", "value")) -> str:
    """A two-column HTML table; cells are already escaped/formatted."""
    return (f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>"
            + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows) + "</table>")


def _headline(rows: list[dict[str, Any]]) -> str:
    """The scorecard's own rows for one control: the same columns and words as its table."""
    return ("<table><tr><th>path</th><th>ASR before → after</th><th>clean TAR@FAR1% before → after</th>"
            "<th>compute (s)</th><th>what it does not stop</th></tr>" + "".join(
                f"<tr><td>{_e(str(r['path']))}{'' if r.get('applies', True) else ' (n/a)'}</td>"
                f"<td>{r['asr_before']:.1%} → <b>{r['asr_after']:.1%}</b></td>"
                f"<td>{r['tar_before']:.3f} → {r['tar_after']:.3f}</td><td>{_value('seconds', r['seconds'])}</td>"
                f"<td>{_e(str(r.get('does_not_stop', '')))}</td></tr>" for r in rows) + "</table>")


def control_section_html(title: str, sec: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> str:
    """One control's section: its scorecard rows (ASR and clean TAR before → after, compute,
    what it does not stop), then its other measurements in words."""
    if sec.get("status"):
        return f"<h3>{_e(title)}</h3><p>Not measured ({_e(str(sec.get('status')))}): {_e(str(sec.get('why')))}</p>"
    rest = [(k, v) for k, v in _scalars(sec) if not (rows and k in ("asr", "tar_at_far_1pct", "seconds", "does_not_stop"))]
    more = len(rest) - _ROW_LIMIT
    detail = [(_e(_label(k)), _value(k, v)) for k, v in rest[:_ROW_LIMIT]]
    tail = f"<p>… and {more} more values in scorecard.json.</p>" if more > 0 else ""
    return (f"<h3>{_e(title)}</h3>" + (_headline(rows) if rows else "")
            + "<p>Its measurements:</p>" + table(detail) + tail)


def control_sections_html(controls: dict[str, Any], titles: dict[str, str],
                          rows: list[dict[str, Any]] | None = None) -> str:
    """Every control's section, with its rows of the scorecard (`rows`, matched by their key)."""
    rows = rows or []
    return "<h2>Control sections</h2>" + "".join(
        control_section_html(titles.get(n, n), s, [r for r in rows if r.get("key") == n])
        for n, s in controls.items() if isinstance(s, dict))


def owasp_html(factors: list[dict[str, Any]]) -> str:
    """OWASP's risk chart (names and scores exactly as OWASP publishes them), each entry next to
    what the lab measured; cites the OWASP page."""
    rows = "".join(
        f"<tr><td>{_e(f['factor'])}</td><td>{_e(str(f['owasp'])) if f.get('owasp') else ''}</td>"
        f"<td>{_e(f.get('meaning', ''))}</td><td>{_e(f['measured'])}</td></tr>" for f in factors)
    return ("<h2>OWASP ML07 risk chart, next to the measurements</h2>"
            "<table><tr><th>OWASP's factor</th><th>OWASP's score</th><th>what it means</th><th>measured here</th></tr>"
            + rows + "</table>"
            + f"<p>Threat actor: {_e(owasp.THREAT_ACTOR.meaning)}. Attack vector: {_e(owasp.ATTACK_VECTOR.meaning)}. "
            f"Security weakness: {_e('; '.join(w.meaning for w in owasp.SECURITY_WEAKNESSES))}. "
            f"{_e(owasp.SAMPLE_NOTE)} Source: <a href='{owasp.URL}'>{_e(owasp.CITATION.split(' (')[0])}</a>.</p>")
