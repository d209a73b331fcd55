"""How many CPU threads torch may use: the CPUs this process can really run on.

Why: torch sizes its thread pool from the host's core count. In a container, a cgroup
CPU quota, a `taskset` mask or a JupyterHub node shared by thirty kernels, that is far
more threads than CPUs, and intra-op workers that spin while they wait for a core
collapse throughput (one `ci` epoch measured 37x slower with four other torch jobs on
2 cores). So the count comes from the affinity mask and the cgroup quota, and the user
can override it: $ML07LAB_NUM_THREADS, then `cfg.num_threads`, then automatic.

Nothing here runs at import; `apply_threads()` is called by `lab.start()` and training.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ENV_THREADS = "ML07LAB_NUM_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def parse_cpu_max(text: str | None) -> float | None:
    """cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD") -> CPUs, None if unlimited."""
    if not text:
        return None
    parts = text.split()
    if parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota: str | None, period: str | None) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` -> CPUs, None if unlimited (-1)."""
    try:
        q, p = int(quota or "-1"), int(period or "100000")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _own_cgroups(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(v2 path, v1 cpu-controller path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (_read(proc_cgroup) or "").splitlines():
        hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if hid == "0" and ctrls == "":
            v2 = path
        elif "cpu" in ctrls.split(","):
            v1 = path
    return v2, v1


def _ancestors(root: Path, rel: str) -> list[Path]:
    """root/rel, its parents up to root: a quota set on any ancestor applies too."""
    parts = [p for p in rel.split("/") if p]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota (in CPUs) over this process's cgroup and its ancestors, v2 or
    v1; None when there is none (or no cgroup filesystem, e.g. macOS)."""
    v2, v1 = _own_cgroups(proc_cgroup)
    limits: list[float] = []
    if v2 is not None:
        for d in _ancestors(root, v2):
            lim = parse_cpu_max(_read(d / "cpu.max"))
            if lim:
                limits.append(lim)
    if v1 is not None:
        for ctrl in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
            base = root / ctrl
            if not base.is_dir():
                continue
            for d in _ancestors(base, v1):
                lim = parse_cfs(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us"))
                if lim:
                    limits.append(lim)
            break
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (taskset, cpusets); os.cpu_count() elsewhere."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """min(affinity, ceil(cgroup quota)), at least 1."""
    n = affinity_cpus()
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota - 1e-9)))
    return max(1, n)


def resolve_threads(cfg_threads: int = 0, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(threads, where the number came from): $ML07LAB_NUM_THREADS > cfg.num_threads > auto."""
    env = os.environ if env is None else env
    raw = env.get(ENV_THREADS, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_THREADS} must be a whole number of threads, not {raw!r}.") from None
        if n < 1:
            raise ValueError(f"{ENV_THREADS} must be at least 1, not {n}.")
        return n, ENV_THREADS
    if cfg_threads and cfg_threads > 0:
        return int(cfg_threads), "cfg.num_threads"
    return usable_cpus(), "auto (affinity and cgroup quota)"


def apply_threads(cfg: Any = None) -> int:  # noqa: ANN401 - a LabConfig, or None for auto
    """Set torch's intra-op thread count from `resolve_threads`; returns it."""
    import torch

    n, _ = resolve_threads(int(getattr(cfg, "num_threads", 0) or 0))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def prefer_passive_wait() -> bool:
    """Ask OpenMP to sleep, not spin, while its threads wait (OMP_WAIT_POLICY=PASSIVE),
    unless the user set a policy. Only works before torch is imported (the OpenMP runtime
    reads it once), so it is called by the CLI entry point and lab.start(), never at
    import. Returns True when the setting will take effect.

    Why: spinning threads that share cores with other jobs burn the CPU the other jobs
    need. Measured on 2 cores at load average ~10: a ci training step ran at 28-32
    images/s with 2 spinning threads, 180-300 with PASSIVE, 400-470 with 1 thread.
    """
    import sys

    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with `n` torch threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def describe() -> dict[str, Any]:
    """What the thread decision saw (for bench reports and bug reports)."""
    n, source = resolve_threads()
    return {"affinity_cpus": affinity_cpus(), "cgroup_cpu_quota": cgroup_cpu_limit(),
            "os_cpu_count": os.cpu_count(), "threads": n, "threads_from": source}
