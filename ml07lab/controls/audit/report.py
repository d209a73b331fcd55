"""`ml07lab audit MODEL_DIR --out DIR`: audit a model folder and write the report.

The report is what a person signs off: Markdown (for a ticket or a pull request) and
one self-contained HTML file (images inlined as base64, no server, no network), plus
audit.json for machines. The command exits 1 when any check fails, so it can gate a
pipeline; 2 when the input itself is unusable (one line says what to do).
"""
from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path
from typing import Any

import torch

from ...artifacts import atomic_write_bytes, atomic_write_json
from ...config import LabConfig
from .model_audit import AuditResult, audit_backbone
from .artefact_checks import FAIL, INFO, PASS, WARN, Check, provenance_check, serialization_check

ICONS = {PASS: "PASS", WARN: "WARN", FAIL: "FAIL", INFO: "info"}
FIGURE_TITLES = {"anomaly": "Neural Cleanse: anomaly index", "triggers": "Reverse-engineered triggers",
                 "strip": "STRIP gate at the kiosk", "remediation": "Remediation"}


def recommendations(r: AuditResult) -> list[str]:
    """What to do next, one sentence per finding."""
    out = []
    names = {c.name: c for c in r.checks}
    ins = names.get("model inspection (Neural Cleanse)")
    if ins and ins.status == FAIL:
        out.append(f"Do not deploy. Identities {ins.details['new_flags']} can be impersonated with a tiny trigger: "
                   "ask the publisher for the training data and recipe, or use a model you trained yourself.")
        if r.remediation:
            out.append("If you must use it, deploy only the unlearned model, after a fresh audit and a person's sign-off; "
                       "keep the STRIP gate on at the kiosk while you do.")
    if ins and ins.details.get("known_weak"):
        out.append(f"Known weak templates {ins.details['known_weak']}: re-enrol these people with more photos, or "
                   "require a second factor for them.")
    for c in r.checks:
        if c.name == "provenance and signature" and c.status != PASS:
            out.append("Sign models in your training environment and verify the signature at deployment "
                       "(`ml07lab sign`, `ml07lab deploy`): a matching digest only proves the file is the one uploaded.")
        if c.name == "serialization scan" and c.status == FAIL:
            out.append("Never load this file outside a sandbox; ask for safetensors weights.")
        if c.name == "model card vs measured" and c.status == FAIL:
            out.append("The card's metrics do not reproduce on your people: treat every other claim on it as unverified.")
    out.append("The audit only checks the people it audits: keep the list of privileged users current, and re-run "
               "the audit on every new model and on a schedule.")
    return out


def _table_md(checks: list[Check]) -> str:
    rows = ["| check | result | finding |", "| --- | --- | --- |"]
    rows += [f"| {c.name} | **{ICONS[c.status]}** | {c.summary.replace('|', '/')} |" for c in checks]
    return "\n".join(rows)


def render_markdown(r: AuditResult, figures: dict[str, str]) -> str:
    """The report as Markdown; figures are file names beside it."""
    verdict = "PASSED" if r.passed else f"FAILED ({len(r.failed)} check{'s' * (len(r.failed) != 1)})"
    lines = [f"# Security audit: {r.name}", "", f"**Verdict: {verdict}** · {time.strftime('%Y-%m-%d %H:%M')}", "",
             _table_md(r.checks), ""]
    if r.measured:
        m = r.measured
        lines += [f"Measured on the organisation's own people: AUC {m['auc']:.3f}, EER {m['eer']:.3f}, "
                  f"TAR@FAR1% {m['tar_at_far_1pct']:.3f}.", ""]
    for key, title in FIGURE_TITLES.items():
        if key in figures:
            lines += [f"## {title}", "", f"![{title}]({figures[key]})", ""]
    if r.lab:
        lines += ["## Lab ground truth (not available to a real auditor)", "",
                  f"Target {r.lab['target']}; ASR with the real trigger {r.lab['asr']:.1%}; target flagged: "
                  f"{r.lab['target_flagged']}.", ""]
    lines += ["## Recommendations", ""] + [f"- {x}" for x in recommendations(r)]
    lines += ["", "Sign-off: ______________________ (name, date)", ""]
    return "\n".join(lines)


def render_html(r: AuditResult, images_b64: dict[str, str], title: str | None = None) -> str:
    """One self-contained HTML page (inline CSS and base64 PNGs)."""
    e = html.escape
    colour = {PASS: "#009E73", WARN: "#E69F00", FAIL: "#D55E00", INFO: "#56B4E9"}
    rows = "".join(f"<tr><td>{e(c.name)}</td><td><b style='color:{colour[c.status]}'>{ICONS[c.status]}</b></td>"
                   f"<td>{e(c.summary)}</td></tr>" for c in r.checks)
    verdict = "PASSED" if r.passed else f"FAILED ({len(r.failed)} failing)"
    imgs = "".join(f"<h2>{e(FIGURE_TITLES.get(k, k))}</h2><img alt='{e(FIGURE_TITLES.get(k, k))}' "
                   f"src='data:image/png;base64,{v}'>" for k, v in images_b64.items())
    recs = "".join(f"<li>{e(x)}</li>" for x in recommendations(r))
    lab = (f"<h2>Lab ground truth</h2><p>Target {r.lab['target']}; ASR with the real trigger {r.lab['asr']:.1%}; "
           f"target flagged: {r.lab['target_flagged']}. A real auditor does not know these.</p>") if r.lab else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title or 'Audit: ' + r.name)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>Security audit: {e(r.name)}</h1><p><b>Verdict: {verdict}</b></p>"
            f"<table><thead><tr><th>check</th><th>result</th><th>finding</th></tr></thead><tbody>{rows}</tbody></table>"
            f"{imgs}{lab}<h2>Recommendations</h2><ul>{recs}</ul><p>Sign-off: ____________________</p></body></html>")


def audit_figures(r: AuditResult, data: Any) -> dict[str, Any]:  # noqa: ANN401
    """The report's figures (matplotlib Figures), keyed by section."""
    from .viz import plot_anomaly, plot_remediation, plot_strip, plot_triggers

    figs: dict[str, Any] = {}
    if r.inspection is not None:
        ins = next(c for c in r.checks if c.name.startswith("model inspection"))
        figs["anomaly"] = plot_anomaly(r.inspection, data.company.names, data.target, ins.details["known_weak"])
        shown = (ins.details["new_flags"] or [r.inspection.identities[int(r.inspection.index.argmax())]])[:3]
        face = data.insider_probes().images[0]
        figs["triggers"] = plot_triggers(r.inspection, shown, face, r.real_trigger, data.company.names)
    if r.strip:
        figs["strip"] = plot_strip(r.strip)
    if r.remediation:
        figs["remediation"] = plot_remediation(r.remediation["before"], r.remediation["unlearned"],
                                               r.remediation["finetuned_only"])
    return figs


def write_report(r: AuditResult, data: Any, out: Path) -> dict[str, Path]:  # noqa: ANN401
    """audit.md (+ PNGs), audit.html (self-contained) and audit.json in `out`."""
    from .viz import to_png_b64

    out.mkdir(parents=True, exist_ok=True)
    figs = audit_figures(r, data)
    files = {}
    for k, fig in figs.items():
        fig.savefig(out / f"audit_{k}.png", bbox_inches="tight")
        files[k] = f"audit_{k}.png"
    atomic_write_bytes(out / "audit.md", render_markdown(r, files).encode())
    atomic_write_bytes(out / "audit.html", render_html(r, {k: to_png_b64(f) for k, f in figs.items()}).encode())
    atomic_write_json(out / "audit.json", r.to_dict())
    return {"markdown": out / "audit.md", "html": out / "audit.html", "json": out / "audit.json"}


def load_model_dir(model_dir: Path, cfg: LabConfig) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """Weights (safetensors only: never unpickled) and the model card, if any."""
    from ...backbones import unpack
    from ...safety.safetensors_check import load_safetensors

    card_path = model_dir / "model_card.json"
    try:
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
    except json.JSONDecodeError as e:
        raise ValueError(f"{card_path} is not valid JSON ({e}); fix or remove it.") from e
    card = card if isinstance(card, dict) else None
    tensors = load_safetensors(model_dir / "model.safetensors")  # one clear line if it does not parse
    try:
        model, _ = unpack(tensors, cfg)
    except RuntimeError as e:
        raise ValueError(f"{model_dir} does not hold a {cfg.arch} backbone for the '{cfg.profile}' profile "
                         f"({str(e).splitlines()[0]}). Audit it with the profile it was built for (--profile).") from e
    return model, card


def audit_model_dir(model_dir: str | Path, cfg: LabConfig, out: str | Path | None = None,
                    baseline: dict[str, Any] | None = None, public_key: Path | None = None,
                    lab_trigger: bool = True, remediate: bool = True, progress: bool = True) -> AuditResult:
    """The full audit of a model folder (weights + model card), report written to `out`."""
    from ...attack.scenario import scenario_trigger
    from ...data.scenario import build_scenario_data

    d = Path(model_dir)
    if not d.is_dir():
        raise ValueError(f"{d} is not a model folder; pass the folder holding model.safetensors.")
    checks = [serialization_check(d)]
    card = None
    if checks[0].status == FAIL:  # read nothing more from a folder that failed the content scan
        checks.append(Check("provenance and signature", INFO, "not checked: the serialization scan failed"))
    elif (d / "model_card.json").is_file():
        try:
            card = json.loads((d / "model_card.json").read_text())
        except json.JSONDecodeError:
            card = None
        card = card if isinstance(card, dict) else None
    if checks[0].status != FAIL:
        checks.append(provenance_check(d, card, public_key))
    data = None
    if any(c.status == FAIL for c in checks):  # never load weights that failed the artefact checks
        r = AuditResult(d.name, checks)
    else:
        data = build_scenario_data(cfg)
        model, card = load_model_dir(d, cfg)
        r = audit_backbone(model, data, cfg, d.name, checks, card, baseline,
                           scenario_trigger(cfg) if lab_trigger else None, remediate, progress)
    if out is not None:
        write_report(r, data, Path(out))
    return r


def _cmd_audit(args: argparse.Namespace) -> int:
    from ...cli import config_from, emit

    cfg = config_from(args)
    baseline = None
    if args.baseline:
        try:
            prev = json.loads(Path(args.baseline).read_text())
            baseline = prev.get("inspection") or prev
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read the baseline audit {args.baseline} ({e}); pass an audit.json.") from e
    r = audit_model_dir(args.model_dir, cfg, args.out, baseline, args.public_key, not args.no_lab_trigger,
                        not args.no_remediate, progress=not args.quiet)
    emit({"model": str(args.model_dir), "passed": r.passed, "failed": [c.name for c in r.failed],
          "checks": {c.name: c.status for c in r.checks}, "report": str(Path(args.out) / "audit.html")}, args)
    return 0 if r.passed else 1


def add_audit_commands(sub: argparse._SubParsersAction) -> None:
    """`ml07lab audit MODEL_DIR --out DIR`."""
    from ...cli import _add_common

    p = sub.add_parser("audit", help="security audit of a model folder: report + non-zero exit when a check fails")
    _add_common(p)
    p.add_argument("model_dir", type=Path, help="folder with model.safetensors (+ model_card.json, model.sig)")
    p.add_argument("--out", type=Path, required=True, help="where to write audit.md, audit.html, audit.json")
    p.add_argument("--baseline", type=Path, default=None,
                   help="audit.json of the approved model: its known weak templates are signed off")
    p.add_argument("--public-key", dest="public_key", type=Path, default=None, help="PEM key to verify model.sig")
    p.add_argument("--no-lab-trigger", action="store_true", help="leave out the lab's ground-truth rows")
    p.add_argument("--no-remediate", action="store_true", help="do not run unlearning when a person is flagged")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_audit)
