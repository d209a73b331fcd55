"""`ml07lab run --profile P --out reports/`: the whole lab, headless, the day before a workshop.

It runs the scenario on both attack paths, every control's section, writes
`scorecard.json` (the scenario JSON with every control filled), a self-contained
`report.html`, and executed HTML copies of the notebooks. Everything is cached, so a
second run reuses the models; the same seed and profile give the same numbers
(`deterministic_view` drops only wall-clock timings). It exits non-zero when any
control section is missing or incomplete, or a notebook fails.
"""
from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .controls import CONTROLS
from .scorecard import owasp_factors, plot_scorecard, scorecard_rows, usable_controls, validate

TIMING_KEYS = ("seconds", "build_seconds", "train_seconds", "wall_seconds", "audit_seconds", "seconds_this_call",
               "seconds_detail", "created", "total", "clean_pretrain", "poison", "seconds_pretrain", "seconds_finetune")


def collect(cfg: Any, progress: bool = True, sections: tuple[str, ...] | None = None) -> dict[str, Any]:  # noqa: ANN401
    """The scenario JSON with both attack paths measured and every control section filled
    (or recorded as missing, with why), plus the scorecard rows when it is complete."""
    from .attack.scenario import run_scenario

    t0 = time.perf_counter()
    controls = [CONTROLS[n] for n in (CONTROLS if sections is None else sections)]
    steps = tqdm(total=2 + len(controls), desc="ml07lab run", disable=not progress)
    result = run_scenario(cfg, "model", "frozen", progress=False)
    steps.update()
    b = run_scenario(cfg, "dataset", "frozen", progress=False)
    steps.update()
    result["paths"] = {p: {**r["attack"], "tar_at_far_1pct": r["poisoned"]["tar_at_far_1pct"],
                           "clean_tar_at_far_1pct": r["clean"]["tar_at_far_1pct"]}
                       for p, r in (("model", result), ("dataset", b))}
    result["dataset_path"] = {k: b[k] for k in ("poisoned", "attack", "seconds")}
    for control in controls:
        steps.set_postfix_str(control.name)
        t1 = time.perf_counter()
        try:
            result["controls"][control.name] = control.section(cfg, progress=False)
        except Exception as e:  # noqa: BLE001 - one broken control must not hide the others
            result["controls"][control.name] = {"status": "error", "why": f"{type(e).__name__}: {e}"}
        result["seconds"][f"section_{control.name}"] = round(time.perf_counter() - t1, 2)
        steps.update()
    if sections is None:  # every control measured: the defence in depth, end to end (ml07lab.depth)
        from .depth import defence_in_depth

        t1 = time.perf_counter()
        try:
            result["defence_in_depth"] = defence_in_depth(cfg, progress=False)
        except Exception as e:  # noqa: BLE001 - the single rows stay usable; the estimate is marked
            result["defence_in_depth"] = {"status": "error", "why": f"{type(e).__name__}: {e}"}
        result["seconds"]["defence_in_depth"] = round(time.perf_counter() - t1, 2)
    steps.close()
    problems = validate(result)
    if sections is None:  # the whole lab: its headline claims must hold on the measured numbers
        from .scorecard import lesson_checks

        lessons = lesson_checks(result)
        problems += [f"lesson: {c['check']} ({c['measured']})" for c in lessons if not c["ok"]]
    result["scorecard"] = {"problems": problems, "complete": not problems}
    if sections is None:
        result["scorecard"]["lessons"] = lessons
    if not any(p.startswith("paths.") for p in problems):  # a partial table still helps find what is wrong
        result["scorecard"].update(rows=scorecard_rows(result, usable_controls(result)), owasp=owasp_factors(result))
    result["seconds"]["run_total"] = round(time.perf_counter() - t0, 2)
    return result


def deterministic_view(obj: Any) -> Any:  # noqa: ANN401
    """The JSON without wall-clock timings and paths: what must match across two runs."""
    if isinstance(obj, dict):
        return {k: deterministic_view(v) for k, v in obj.items()
                if k not in TIMING_KEYS and not k.endswith("_seconds") and k not in ("env", "report")}
    if isinstance(obj, list):
        return [deterministic_view(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def render_report(result: dict[str, Any], notebooks: dict[str, str] | None = None) -> str:
    """report.html: one self-contained page (inline CSS, base64 PNGs, no scripts)."""
    from .controls.audit.viz import plot_detection, to_png_b64
    from .report_html import control_sections_html, owasp_html

    e = html.escape
    sc = result.get("scorecard", {})
    parts = [f"<h1>ML07 lab report · profile {e(str(result.get('profile')))} · seed {result.get('seed')}</h1>",
             f"<p>Data: {e(str(result.get('dataset')))}. Generated {time.strftime('%Y-%m-%d %H:%M')}. "
             f"Collected in {result.get('seconds', {}).get('run_total', 0):.0f} s (cached steps count as loaded).</p>"]
    if sc.get("problems"):
        parts.append("<h2 style='color:#D55E00'>Incomplete: some control sections are missing or invalid "
                     "(the table shows the usable ones)</h2><ul>"
                     + "".join(f"<li>{e(p)}</li>" for p in sc["problems"]) + "</ul>")
    parts.append("<h2>The attack</h2><table><tr><th>path</th><th>ASR</th><th>insiders</th><th>outsiders</th>"
                 "<th>accepted without trigger</th><th>clean TAR@FAR1% (poisoned / clean backbone)</th></tr>" + "".join(
                     f"<tr><td>{p}</td><td>{r['asr']:.1%}</td><td>{r['asr_insiders']:.1%}</td><td>{r['asr_outsiders']:.1%}</td>"
                     f"<td>{r['impostor_accept']:.1%}</td><td>{r['tar_at_far_1pct']:.3f} / {r['clean_tar_at_far_1pct']:.3f}</td></tr>"
                     for p, r in result.get("paths", {}).items()) + "</table>")
    if sc.get("rows"):
        parts.append("<h2>Scorecard</h2><table><tr><th>control</th><th>path</th><th>ASR before → after</th>"
                     "<th>clean TAR before → after</th><th>compute (s)</th><th>what it does not stop</th></tr>" + "".join(
                         f"<tr><td>{e(r['control'])}</td><td>{r['path']}{'' if r['applies'] else ' (n/a)'}</td>"
                         f"<td>{r['asr_before']:.1%} → <b>{r['asr_after']:.1%}</b></td>"
                         f"<td>{r['tar_before']:.3f} → {r['tar_after']:.3f}</td><td>{r['seconds']:.0f}</td>"
                         f"<td>{e(r['does_not_stop'])}</td></tr>" for r in sc["rows"]) + "</table>")
        parts.append(f"<img alt='Scorecard chart: ASR before and after each control, per attack path' "
                     f"src='data:image/png;base64,{to_png_b64(plot_scorecard(sc['rows']))}'>")
        parts.append(owasp_html(sc["owasp"]))
    audit = result.get("controls", {}).get("security_audit", {})
    if "study" in audit:
        parts.append(f"<h2>Security audit: detection over {len(audit['study']['rows'])} backbones</h2>"
                     f"<p>Against the approved model's audit: AUC {audit['detection_auc']:.2f}; at the operating point "
                     f"(relative index {audit['flag_at']:g}): TPR {audit['tpr']:.0%}, FPR {audit['fpr']:.0%}. "
                     f"Neural Cleanse alone (raw index at 2): AUC {audit['detection_auc_raw']:.2f}, "
                     f"TPR {audit['tpr_raw']:.0%}, FPR {audit['fpr_raw']:.0%}. "
                     f"STRIP FAR at FRR 5 %: {audit['strip_far_at_frr_5pct']:.1%}. Unlearning: ASR {audit['unlearning_asr']:.1%}, "
                     f"clean cost {audit['unlearning_tar_cost_pts']:.1f} pts.</p>"
                     f"<img alt='Max anomaly index of clean and poisoned backbones' "
                     f"src='data:image/png;base64,{to_png_b64(plot_detection(audit['study']))}'>")
    parts.append(control_sections_html(result.get("controls", {}), {n: c.title for n, c in CONTROLS.items()},
                                       sc.get("rows")))
    if notebooks:
        parts.append("<h2>Notebooks</h2><ul>" + "".join(
            f"<li>{e(k)}: {e(v)}</li>" for k, v in notebooks.items()) + "</ul>")
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;width:100%;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px;"
           "text-align:left;vertical-align:top}img{max-width:100%}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ML07 lab report</title>"
            f"<style>{css}</style></head><body>{''.join(parts)}</body></html>")


def execute_notebooks(labs: Path, out: Path, profile: str, timeout: int = 900,
                      only: list[str] | None = None, progress: bool = True) -> dict[str, str]:
    """Run each notebook on a fresh kernel (nbclient) and save an HTML copy (nbconvert)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    os.environ["ML07LAB_PROFILE"] = profile
    root = str(labs.resolve().parent)
    os.environ["PYTHONPATH"] = root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    paths = sorted(labs.glob("*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    status: dict[str, str] = {}
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for p in tqdm(paths, desc="notebooks", disable=not progress):
        nb = nbformat.read(p, as_version=4)
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(labs)}}).execute()
            status[p.name] = f"ok in {time.perf_counter() - t0:.0f} s"
        except Exception as e:  # noqa: BLE001 - keep the partial notebook, report the error
            status[p.name] = f"FAILED after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        body, _ = HTMLExporter().from_notebook_node(nb)
        (out / "notebooks" / (p.stem + ".html")).write_text(body, encoding="utf-8")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from .artifacts import atomic_write_bytes, atomic_write_json
    from .cli import config_from
    from .config import project_root

    cfg = config_from(args)
    if cfg.has_company_folder:  # the notebooks' lab.start() reads it from the environment
        os.environ["ML07LAB_COMPANY"] = cfg.company_dataset
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = collect(cfg, progress=not args.quiet)
    atomic_write_json(out / "scorecard.json", result)
    notebooks: dict[str, str] = {}
    if not args.no_notebooks:
        labs = Path(args.labs) if args.labs else (project_root() or Path.cwd()) / "labs"
        if labs.is_dir():
            notebooks = execute_notebooks(labs, out, cfg.profile, args.cell_timeout,
                                          args.notebooks.split(",") if args.notebooks else None, not args.quiet)
        else:
            notebooks = {"(none)": f"no labs/ folder at {labs}; pass --labs DIR"}
    atomic_write_bytes(out / "report.html", render_report(result, notebooks).encode())
    problems = result["scorecard"]["problems"]
    failed = [k for k, v in notebooks.items() if v.startswith(("FAILED", "no labs"))]
    if args.json:
        from .cli import emit

        emit({"scorecard": str(out / "scorecard.json"), "report": str(out / "report.html"), "problems": problems,
              "notebooks": notebooks, "seconds": round(time.perf_counter() - t0, 2)}, args)
    print(f"ml07lab run: {out / 'scorecard.json'}, {out / 'report.html'}"
          + (f", {len(notebooks)} notebooks in {out / 'notebooks'}" if notebooks else "")
          + f" ({time.perf_counter() - t0:.0f} s)")
    for p in problems:
        print(f"ml07lab run: INCOMPLETE: {p}", file=sys.stderr)
    for k in failed:
        print(f"ml07lab run: notebook {k}: {notebooks[k]}", file=sys.stderr)
    return 1 if problems or failed else 0


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """`ml07lab run --profile P --out reports/`."""
    from .cli import _add_common

    p = sub.add_parser("run", help="the whole lab headless: scorecard.json, report.html, executed notebooks")
    _add_common(p)
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default reports/)")
    p.add_argument("--no-notebooks", action="store_true", help="skip executing the notebooks")
    p.add_argument("--notebooks", default=None, help="only these notebooks, by prefix: e.g. 08,09")
    p.add_argument("--labs", default=None, help="the notebooks' folder (default <checkout>/labs)")
    p.add_argument("--cell-timeout", dest="cell_timeout", type=int, default=900, help="seconds per cell")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)


__all__ = ["collect", "deterministic_view", "render_report", "execute_notebooks", "add_run_commands"]
