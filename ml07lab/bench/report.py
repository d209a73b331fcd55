"""bench.json: its shape, the printed table, and the comparison of two runs.

Every figure is stored raw and normalised by an in-run reference: `per_ref` is
value / reference for higher-is-better figures (images per GFLOP of matmul capacity)
and value * reference for lower-is-better ones (seconds x GFLOP/s: reference work
units). Comparing `per_ref` across machines cancels most of the CPU's speed.
"""
from __future__ import annotations

from typing import Any

SCHEMA = "ml07lab-bench/1"
FIGURE_KEYS = {"value": (int, float), "unit": str, "better": str, "ref": str, "per_ref": (int, float), "stage": str}
STAGE_KEYS = {"wall_s": (int, float), "cpu_s": (int, float), "peak_rss_mb": (int, float), "detail": dict}
MACHINE_KEYS = ("cpu_model", "cores", "usable_cpus", "torch_threads", "load_avg_1_5_15")


def normalise(value: float, better: str, ref: float) -> float:
    """value per unit of reference capacity (see the module docstring)."""
    if not ref:
        return 0.0
    return value / ref if better == "higher" else value * ref


def validate_shape(b: dict[str, Any]) -> list[str]:
    """Problems with bench.json's shape (keys and types, never values); [] when valid."""
    out: list[str] = []
    if b.get("schema") != SCHEMA:
        out.append(f"schema is {b.get('schema')!r}, not {SCHEMA!r}")
    for k in MACHINE_KEYS:
        if k not in b.get("machine", {}):
            out.append(f"machine.{k} missing")
    refs = b.get("reference", {})
    for k in ("matmul_gflops", "sha256_mb_s"):
        if not isinstance(refs.get(k), (int, float)):
            out.append(f"reference.{k} missing or not a number")
    for section, keys in (("figures", FIGURE_KEYS), ("stages", STAGE_KEYS)):
        items = b.get(section)
        if not isinstance(items, dict) or not items:
            out.append(f"{section} missing or empty")
            continue
        for name, rec in items.items():
            for k, t in keys.items():
                if not isinstance(rec.get(k), t):
                    out.append(f"{section}.{name}.{k} missing or not {t}")
    for name, rec in (b.get("figures") or {}).items():
        if rec.get("better") not in ("higher", "lower"):
            out.append(f"figures.{name}.better must be 'higher' or 'lower'")
        if rec.get("ref") not in refs:
            out.append(f"figures.{name}.ref {rec.get('ref')!r} is not a measured reference")
        if rec.get("stage") not in (b.get("stages") or {}):
            out.append(f"figures.{name}.stage {rec.get('stage')!r} is not a stage")
    if not isinstance(b.get("total_seconds"), (int, float)):
        out.append("total_seconds missing")
    return out


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(b: dict[str, Any]) -> str:
    """The bench as a fixed-width text table (what `make bench` prints)."""
    m, r = b["machine"], b["reference"]
    lines = [f"ml07lab bench, {b.get('created', '')}: {m['cpu_model']}, {m['cores']} cores "
             f"({m['usable_cpus']} usable, {m['torch_threads']} torch threads), load {m['load_avg_1_5_15']}",
             f"references: 1-thread matmul {r['matmul_gflops']} GFLOP/s, sha256 {r['sha256_mb_s']} MB/s",
             "per ref: rates / reference, times x reference (matmul: 1-thread GFLOP/s; sha256: MB/s); "
             "peak RSS: the process's peak during the stage, added: over its RSS at the stage's start",
             f"{'figure':34} {'value':>10} {'unit':12} {'per ref':>10} {'ref':>7} {'stage wall':>10} {'peak RSS':>9} {'added':>9}"]
    order = b.get("stage_order") or list(b["stages"])  # run order (the JSON's keys are sorted)
    for name, f in sorted(b["figures"].items(), key=lambda kv: (order.index(kv[1]["stage"]), kv[0])):
        s = b["stages"][f["stage"]]
        ref = "matmul" if f["ref"] == "matmul_gflops" else "sha256"
        lines.append(f"{name:34} {_fmt(f['value']):>10} {f['unit']:12} {_fmt(f['per_ref']):>10} {ref:>7} "
                     f"{s['wall_s']:>9.1f}s {s['peak_rss_mb']:>7.0f}MB {s['peak_rss_mb'] - s.get('rss_start_mb', 0):>+7.0f}MB")
    lines.append(f"total {b['total_seconds']:.0f} s wall, {b.get('total_cpu_seconds', 0):.0f} s CPU")
    if b.get("lab"):
        lines.append(lab_table(b["lab"]))
    return "\n".join(lines)


def lab_table(lab: dict[str, Any]) -> str:
    """The whole-lab section (FULL=1): cold and warm seconds per notebook."""
    rows = [f"whole lab, profile {lab['profile']} ({lab.get('data_import_s', 0):.0f} s data import first):",
            f"{'notebook':36} {'cold':>9} {'warm':>9}  status"]
    for nb, r in lab["notebooks"].items():
        rows.append(f"{nb:36} {r['cold_s']:>8.0f}s {r.get('warm_s', float('nan')):>8.0f}s  {r['status']}")
    rows.append(f"{'all':36} {lab['cold_total_s']:>8.0f}s {lab.get('warm_total_s', float('nan')):>8.0f}s")
    return "\n".join(rows)


def compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """NEW vs OLD per figure: raw ratio, normalised ratio, and the speed-up (> 1 = better),
    computed from the normalised figures so two machines compare fairly."""
    rows, out = [f"{'figure':34} {'old':>10} {'new':>10} {'new/old':>8} {'norm new/old':>12} {'speed-up':>9}"], {}
    for name, f in new.get("figures", {}).items():
        o = old.get("figures", {}).get(name)
        if not o or not o["value"] or not o["per_ref"]:
            rows.append(f"{name:34} {'-':>10} {_fmt(f['value']):>10}   (new figure)")
            continue
        raw, norm = f["value"] / o["value"], f["per_ref"] / o["per_ref"]
        speed = norm if f["better"] == "higher" else (1 / norm if norm else float("inf"))
        out[name] = {"ratio": round(raw, 4), "normalised_ratio": round(norm, 4), "speedup": round(speed, 4)}
        flag = "  SLOWER" if speed < 0.9 else ("  faster" if speed > 1.1 else "")
        rows.append(f"{name:34} {_fmt(o['value']):>10} {_fmt(f['value']):>10} {raw:>8.2f} {norm:>12.2f} {speed:>9.2f}{flag}")
    for name, s in new.get("stages", {}).items():
        o = old.get("stages", {}).get(name)
        if o and o.get("peak_rss_mb"):
            ratio = s["peak_rss_mb"] / o["peak_rss_mb"]
            out[f"peak_rss_mb.{name}"] = {"ratio": round(ratio, 4)}
            rows.append(f"{'peak RSS ' + name:34} {o['peak_rss_mb']:>8.0f}MB {s['peak_rss_mb']:>8.0f}MB {ratio:>8.2f}")
    gone = sorted(set(old.get("figures", {})) - set(new.get("figures", {})))
    if gone:
        rows.append(f"only in OLD: {', '.join(gone)}")
    return "\n".join(rows), out
