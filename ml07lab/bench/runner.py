"""Run the stages, measure references before and after, assemble bench.json.

Why references twice: on a shared machine, load changes during a run. The reference is
measured before and after the stages and the mean is used; both are kept, so a run whose
references disagree a lot (load changed) is visible as such.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from .measure import machine, matmul_gflops, sha256_mb_s, stage
from .report import SCHEMA, normalise
from .stages import StageOut, default_stages


def references() -> dict[str, float]:
    return {"matmul_gflops": matmul_gflops(), "sha256_mb_s": sha256_mb_s()}


def run_bench(stages: list[tuple[str, Callable[[], StageOut]]] | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Every stage once; returns the bench.json dict (see report.validate_shape)."""
    from .. import runtime

    runtime.apply_threads()
    t0, c0 = time.perf_counter(), time.process_time()
    info = machine()
    before = references()
    figures: dict[str, Any] = {}
    recs: dict[str, Any] = {}
    for name, fn in stages if stages is not None else default_stages():
        if progress:
            print(f"bench: {name} ...", flush=True)
        with stage() as rec:
            out, detail = fn()
        recs[name] = {"wall_s": rec.wall_s, "cpu_s": rec.cpu_s, "peak_rss_mb": rec.peak_rss_mb,
                      "rss_start_mb": rec.rss_start_mb,
                      "peak_is_per_stage": rec.peak_is_per_stage, "detail": detail}
        for fig, (value, unit, better, ref) in out.items():
            figures[fig] = {"value": round(float(value), 4), "unit": unit, "better": better, "ref": ref,
                            "stage": name}
    after = references()
    ref = {k: round((before[k] + after[k]) / 2, 2) for k in before}
    for f in figures.values():
        f["per_ref"] = round(normalise(f["value"], f["better"], ref[f["ref"]]), 6)
    info["load_avg_after"] = machine()["load_avg_1_5_15"]
    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": info,
            "reference": {**ref, "before": before, "after": after}, "figures": figures,
            "stages": recs, "stage_order": list(recs),
            "total_seconds": round(time.perf_counter() - t0, 1),
            # CPU time does not grow with other jobs' load: wall on a quiet machine is about
            # this divided by the threads used (less the single-threaded stages' share).
            "total_cpu_seconds": round(time.process_time() - c0, 1)}
