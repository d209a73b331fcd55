"""Thread count from the CPUs a process may use: cgroup quota parsing on fake files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml07lab import runtime
from ml07lab.config import get_config


def _write(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")


def test_parse_cpu_max_and_cfs():
    assert runtime.parse_cpu_max("max 100000") is None
    assert runtime.parse_cpu_max("150000 100000") == 1.5
    assert runtime.parse_cpu_max("50000") == 0.5  # period defaults to 100 ms
    assert runtime.parse_cpu_max("") is None and runtime.parse_cpu_max("junk 1") is None
    assert runtime.parse_cfs("-1", "100000") is None
    assert runtime.parse_cfs("200000", "100000") == 2.0
    assert runtime.parse_cfs("abc", "100000") is None


def test_cgroup_v2_quota_on_an_ancestor(tmp_path: Path):
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/kubepods/pod1/kernel")
    root = tmp_path / "cg"
    _write(root / "kubepods/pod1/kernel/cpu.max", "max 100000")
    _write(root / "kubepods/pod1/cpu.max", "150000 100000")  # the pod's limit: 1.5 CPUs
    _write(root / "kubepods/cpu.max", "400000 100000")
    assert runtime.cgroup_cpu_limit(root, proc) == 1.5
    n = runtime.usable_cpus(root, proc)
    assert n == min(runtime.affinity_cpus(), 2)  # 1.5 CPUs -> 2 threads, never more than affinity


def test_cgroup_v1_quota(tmp_path: Path):
    proc = tmp_path / "proc_cgroup"
    _write(proc, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc")
    root = tmp_path / "cg"
    _write(root / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "100000")
    _write(root / "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000")
    assert runtime.cgroup_cpu_limit(root, proc) == 1.0
    assert runtime.usable_cpus(root, proc) == 1


def test_no_cgroup_means_affinity(tmp_path: Path):
    assert runtime.cgroup_cpu_limit(tmp_path / "none", tmp_path / "nofile") is None
    assert runtime.usable_cpus(tmp_path / "none", tmp_path / "nofile") == runtime.affinity_cpus()


def test_override_order():
    assert runtime.resolve_threads(3, env={"ML07LAB_NUM_THREADS": "1"}) == (1, "ML07LAB_NUM_THREADS")
    assert runtime.resolve_threads(3, env={}) == (3, "cfg.num_threads")
    n, src = runtime.resolve_threads(0, env={})
    assert n >= 1 and src.startswith("auto")
    with pytest.raises(ValueError, match="ML07LAB_NUM_THREADS"):
        runtime.resolve_threads(0, env={"ML07LAB_NUM_THREADS": "two"})
    with pytest.raises(ValueError, match="at least 1"):
        runtime.resolve_threads(0, env={"ML07LAB_NUM_THREADS": "0"})


def test_apply_threads_sets_torch(monkeypatch: pytest.MonkeyPatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("ML07LAB_NUM_THREADS", raising=False)
    try:
        assert runtime.apply_threads(get_config("ci", num_threads=1)) == 1
        assert torch.get_num_threads() == 1
        with runtime.torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_build_announcement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """A cold build says what, why and roughly how long, once, from earlier builds when known."""
    from ml07lab import progress
    from ml07lab.artifacts import artifact_dir, load_or_build

    monkeypatch.setenv("ML07LAB_DATA", str(tmp_path))
    cfg = get_config("ci")
    msg = progress.build_message("clean-backbone", cfg, artifact_dir("clean-backbone", cfg))
    assert "not cached yet" in msg and "about 47 s" in msg and "kit's timing" in msg
    build = lambda: ({"w": torch.zeros(2)}, {"build_seconds": 125.0})  # noqa: E731
    load_or_build("toy-thing", cfg, build, inputs={"toy": "a"})
    out = capsys.readouterr().err  # stderr outside a notebook: stdout may be a command's JSON
    assert out.count("\n") == 1 and "toy-thing" in out and "time not measured yet" in out
    load_or_build("toy-thing", cfg, build, inputs={"toy": "a"})  # cached: silent
    assert capsys.readouterr().err == ""
    msg = progress.build_message("toy-thing", cfg, artifact_dir("toy-thing", cfg, key="b"))
    assert "about 2 min (1 earlier build here)" in msg


def test_passive_wait_only_before_torch(monkeypatch: pytest.MonkeyPatch):
    """Set at call time (never at import), only while torch is not loaded, never over the user's."""
    import subprocess
    import sys

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert runtime.prefer_passive_wait() is False  # torch is loaded in this process
    assert "OMP_WAIT_POLICY" not in __import__("os").environ
    code = ("import os, sys; from ml07lab import runtime; assert 'OMP_WAIT_POLICY' not in os.environ; "
            "print(runtime.prefer_passive_wait(), os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "PASSIVE", "False"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code.replace("assert 'OMP_WAIT_POLICY' not in os.environ; ", "")],
                         capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[1] == "ACTIVE"  # the user's choice wins
