"""Timers, peak memory and the in-run references every figure is normalised by.

Why references: a figure alone says as much about the CPU as about the code. Each
bench run also measures a fixed matmul (GFLOP/s) and a fixed sha256 (MB/s) on the same
machine, in the same minute, so a figure divided by its reference can be compared
across machines, and a regression shows as a ratio rather than as noise.
"""
from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_kb(key: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: write 5 to clear_refs); False if
    unsupported, in which case peaks are since process start."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since start (ru_maxrss)."""
    kb = _vm_kb("VmHWM")
    if kb is None:
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = ru // 1024 if platform.system() == "Darwin" else ru
    return round(kb / 1024, 1)


@dataclass
class StageRecord:
    """What the harness saw around one stage: wall and CPU seconds, peak RSS."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_start_mb: float = 0.0  # resident at the start: peak - start is what the stage added
    peak_is_per_stage: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


@contextmanager
def stage() -> Iterator[StageRecord]:
    """Measure a block: `with stage() as rec: ...`, then read rec."""
    rec = StageRecord(peak_is_per_stage=reset_peak_rss(), rss_start_mb=round((_vm_kb("VmRSS") or 0) / 1024, 1))
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield rec
    finally:
        rec.wall_s = round(time.perf_counter() - t0, 3)
        rec.cpu_s = round(time.process_time() - c0, 3)
        rec.peak_rss_mb = peak_rss_mb()


def best_rate(fn: Any, work: float, min_s: float = 0.6, max_reps: int = 50) -> float:  # noqa: ANN401
    """work / fastest call of fn() over about min_s seconds: the machine's capacity,
    with other jobs' interference mostly filtered out."""
    fn()  # warm-up
    best, spent, reps = float("inf"), 0.0, 0
    while (spent < min_s or reps < 3) and reps < max_reps:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return work / best


def matmul_gflops(n: int = 384) -> float:
    """A fixed float32 n x n matmul on ONE thread, in GFLOP/s (best of many calls).

    One thread: a core's speed is what differs between machines, and a single-threaded
    best-of-N barely moves with other jobs' load or the OpenMP wait policy (a 2-thread
    reference measured 8-11 GFLOP/s with spinning waits at load 10, 106 with passive ones)."""
    import torch

    from ..runtime import torch_threads

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    with torch_threads(1):
        return round(best_rate(lambda: a @ b, 2 * n**3 / 1e9), 2)


def sha256_mb_s(mb: int = 16) -> float:
    """sha256 over mb MB in memory, in MB/s: the reference for hashing-bound stages."""
    blob = os.urandom(mb << 20)
    return round(best_rate(lambda: hashlib.sha256(blob).digest(), float(mb)), 1)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a figure belongs to (what the docs print beside a table)."""
    import torch

    from .. import runtime

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "usable_cpus": runtime.usable_cpus(),
            "torch_threads": torch.get_num_threads(), "threads_from": runtime.resolve_threads()[1],
            "load_avg_1_5_15": [round(x, 2) for x in load],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(terse=True)}
