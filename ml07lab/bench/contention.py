"""Oversubscription check: K `ci` pretrainings started together vs one alone.

Why: torch sizes its thread pool from the cores it sees. When several torch processes
share the cores (a classroom JupyterHub node, a CI runner, other kernels), spinning
intra-op threads can make each job far slower than a fair share. Each of K jobs should
take about K times as long as one alone; the kit's bar is <= 2.5x for K = 2 on 2 cores.

    python -m ml07lab.bench.contention --jobs 2 --epochs 4 [--threads 1] [--wait-policy PASSIVE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

WORKER = """
import json, sys
from ml07lab.bench.stages import _faces
from ml07lab.config import get_config
from ml07lab.training import train_backbone
import torch
cfg = get_config("ci")
faces = _faces(cfg.n_public_ids, cfg.n_public_ids * cfg.images_per_id, cfg.image_size)
res = train_backbone(faces, cfg, epochs=int(sys.argv[1]), progress=False)
print(json.dumps({"seconds": res.seconds, "threads": torch.get_num_threads()}))
"""


def run_jobs(k: int, epochs: int, env_extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Start k pretraining processes at once; their training seconds (imports excluded)."""
    env = {**os.environ, **(env_extra or {})}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(epochs)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(k)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"contention worker failed (exit {p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def measure(jobs: int = 2, epochs: int = 4, env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """One alone, then `jobs` together; the slowdown of each vs alone."""
    load0 = os.getloadavg()
    alone = run_jobs(1, epochs, env_extra)[0]
    together = run_jobs(jobs, epochs, env_extra)
    return {"epochs": epochs, "jobs": jobs, "env": env_extra or {}, "threads": alone["threads"],
            "alone_s": round(alone["seconds"], 2), "together_s": [round(t["seconds"], 2) for t in together],
            "slowdown": [round(t["seconds"] / alone["seconds"], 2) for t in together],
            "load_avg_before": [round(x, 2) for x in load0], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", default=None, help="ML07LAB_NUM_THREADS for the jobs (default: auto)")
    ap.add_argument("--wait-policy", default=None, help="OMP_WAIT_POLICY for the jobs (e.g. PASSIVE)")
    a = ap.parse_args(argv)
    extra = {k: v for k, v in (("ML07LAB_NUM_THREADS", a.threads), ("OMP_WAIT_POLICY", a.wait_policy)) if v}
    print(json.dumps(measure(a.jobs, a.epochs, extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
