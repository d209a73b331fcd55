"""`make bench FULL=1 PROFILE=P`: every notebook timed from a cold cache, then warm.

Why: the README's and the instructor guide's per-notebook times are what a workshop is
planned on; they come from this run (docs.py rewrites the tables), not from a hand-typed
measurement that drifts. Cold means an empty artefact cache (`ML07LAB_DATA` pointing at
a fresh folder; for real faces the mirror is imported first, timed separately). The
notebooks run in order, on a fresh kernel each, as a learner's "Run All" would.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _run_notebook(path: Path, env: dict[str, str], timeout: int) -> tuple[float, str]:
    """(seconds, status) of one notebook executed on a fresh kernel in `env`."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        status = "ok"
    except Exception as e:  # noqa: BLE001 - a failing notebook is a result, not a crash
        status = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return round(time.perf_counter() - t0, 1), status


def _import_data(cache: Path, mirror: Path | None) -> float:
    """Import the real-face mirror (else fetch online) into the cold cache; seconds, not
    counted in the notebooks' times."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "ml07lab", "data"] + (["import", "all", "--from", str(mirror)] if mirror else ["fetch", "all"])
    subprocess.run(cmd, check=True, env={**os.environ, "ML07LAB_DATA": str(cache)})
    return round(time.perf_counter() - t0, 1)


def run_lab(profile: str, labs: Path, cache: Path | None = None, warm: bool = True, timeout: int = 1800,
            keep_cache: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    """Time every notebook in `labs` cold (empty cache) and then warm; the lab section of bench.json."""
    from ..config import get_config, mirror_dir

    cfg = get_config(profile)
    made = cache is None
    cache = Path(tempfile.mkdtemp(prefix=f"ml07lab-cold-{profile}-")) if cache is None else cache
    if cache.exists() and any(cache.iterdir()) and not made:
        raise ValueError(f"{cache} is not empty: a cold run needs an empty cache folder.")
    cache.mkdir(parents=True, exist_ok=True)
    root = str(labs.resolve().parent)
    env = {"ML07LAB_PROFILE": profile, "ML07LAB_DATA": str(cache),
           "PYTHONPATH": root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
    paths = sorted(p for p in labs.glob("*.ipynb") if not only or any(p.name.startswith(o) for o in only))
    if not paths:
        raise ValueError(f"No notebooks in {labs}.")
    result: dict[str, Any] = {"profile": profile, "dataset": cfg.data_tag, "notebooks": {}}
    try:
        if cfg.dataset == "real":
            m = mirror_dir()
            result["data_import_s"] = _import_data(cache, m if m.is_dir() else None)
        for p in paths:
            print(f"bench lab: {p.name} (cold) ...", flush=True)
            secs, status = _run_notebook(p, env, timeout)
            result["notebooks"][p.stem] = {"cold_s": secs, "status": status}
        if warm:
            for p in paths:
                print(f"bench lab: {p.name} (warm) ...", flush=True)
                secs, status = _run_notebook(p, env, timeout)
                r = result["notebooks"][p.stem]
                r["warm_s"] = secs
                if status != "ok" and r["status"] == "ok":
                    r["status"] = f"warm {status}"
    finally:
        if made and not keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
    nbs = result["notebooks"].values()
    result["cold_total_s"] = round(sum(r["cold_s"] for r in nbs), 1)
    if warm:
        result["warm_total_s"] = round(sum(r.get("warm_s", 0.0) for r in nbs), 1)
    return result
