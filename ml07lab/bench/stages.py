"""The bench's stages: fixed workloads, the same on every machine.

Why fixed workloads (random images of the profile's shape, not the cached data): a
figure must measure the code and the CPU, not which datasets or models happen to be
cached. Every workload is sized from the profile's config (image size, width, batch,
number of identities), so a config change that costs speed shows up here.

Each stage returns (figures, detail): figures are {name: (value, unit, better, ref)},
where ref names the in-run reference the figure is normalised by.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

from ..config import get_config

Figure = tuple[float, str, str, str]  # value, unit, "higher"|"lower" is better, reference
StageOut = tuple[dict[str, Figure], dict[str, Any]]

# The laptop profile pretrains on LFW people with >= 5 photos: 423 people, 5,985 photos.
PRETRAIN_SHAPE = {"ci": None, "laptop": (423, 5985), "full": (423, 5985)}


def _controls() -> SimpleNamespace:
    """Everything the bench uses from ml07lab.controls, imported in ONE place, so a move
    of the controls into sub-packages is fixed here and nowhere else."""
    from ..controls.isolation.gate import environments, gate, release, sign_model_dir
    from ..data.manifest import export_faceset
    from ..controls.audit.neural_cleanse import reverse_engineer
    from ..controls.trusted_data.provenance import Keyring, generate_key, sign_dataset, verify_dataset

    return SimpleNamespace(reverse_engineer=reverse_engineer, environments=environments, gate=gate,
                           release=release, sign_model_dir=sign_model_dir, export_faceset=export_faceset,
                           generate_key=generate_key, sign_dataset=sign_dataset, Keyring=Keyring,
                           verify_dataset=verify_dataset)


def _faces(n_ids: int, n: int, size: int, seed: int = 0):  # noqa: ANN202 - a FaceSet
    from ..data.base import FaceSet

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % n_ids
    return FaceSet(images, labels, tuple(f"id{i:04d}" for i in range(n_ids)), "bench")


def synthetic_faces(size: int) -> StageOut:
    """The synthetic renderer (single-threaded by design): faces per second, wall and CPU."""
    from ..data.synthetic import generate_faces

    generate_faces(10, 10, size=size)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    fs = generate_faces(200, 10, size=size, seed=3)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return ({f"synthetic_{size}px_faces_per_s": (len(fs) / wall, "faces/s", "higher", "matmul_gflops"),
             f"synthetic_{size}px_faces_per_cpu_s": (len(fs) / cpu, "faces/CPU-s", "higher", "matmul_gflops")},
            {"faces": len(fs)})


def train_throughput(profile: str, steps: int = 6) -> StageOut:
    """Forward + backward + SGD step on one batch of the profile's shape, images/s."""
    from ..models import CosFaceHead, build_backbone

    cfg = get_config(profile)
    torch.manual_seed(0)
    model, head = build_backbone(cfg).train(), CosFaceHead(cfg.embedding_dim, 200, cfg.scale, cfg.margin).train()
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
    x = torch.randn(cfg.batch_size, 1, cfg.image_size, cfg.image_size)
    y = torch.randint(0, 200, (cfg.batch_size,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(head(model(x), y), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocator, kernels)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best, med = min(times), sorted(times)[len(times) // 2]
    return ({f"train_{profile}_images_per_s": (cfg.batch_size / med, "images/s", "higher", "matmul_gflops")},
            {"batch": cfg.batch_size, "steps": steps, "best_images_per_s": round(cfg.batch_size / best, 1),
             "image_size": cfg.image_size, "width": cfg.width})


def pretrain_epoch(profile: str) -> StageOut:
    """One epoch of the real pretraining loop (augmentation included) on the profile's
    number of public photos and people."""
    from ..training import train_backbone

    cfg = get_config(profile)
    n_ids, n = PRETRAIN_SHAPE.get(profile) or (cfg.n_public_ids, cfg.n_public_ids * cfg.images_per_id)
    faces = _faces(n_ids, n, cfg.image_size)
    res = train_backbone(faces, cfg, epochs=1, progress=False)
    return ({f"pretrain_epoch_{profile}_s": (res.seconds, "s", "lower", "matmul_gflops")},
            {"images": n, "identities": n_ids, "steps": max(1, n // cfg.batch_size)})


def embedding(profile: str, n: int = 2048) -> StageOut:
    """Embedding throughput in eval mode (what enrolment, scans and the kiosk do)."""
    from ..models import build_backbone
    from ..training import embed

    cfg = get_config(profile)
    model = build_backbone(cfg).eval()
    x = _faces(10, n, cfg.image_size).images
    embed(model, x[:256])  # warm-up
    t0 = time.perf_counter()
    embed(model, x)
    return ({f"embed_{profile}_images_per_s": (n / (time.perf_counter() - t0), "images/s", "higher", "matmul_gflops")},
            {"images": n})


def neural_cleanse(profile: str, steps: int = 30) -> StageOut:
    """One Neural Cleanse reverse-engineering for one backbone, at the audit's sizes
    (identities, batch, image size). Every step costs the same (no early exit), so
    `steps` steps are timed and scaled to the audit's full step count."""
    cfg = get_config(profile)
    full_steps = int(cfg.extra.get("audit_steps", 200 if profile == "ci" else 300))
    k, batch = int(cfg.extra.get("audit_identities", 12)), 12
    torch.manual_seed(0)
    from ..models import build_backbone

    model = build_backbone(cfg).eval()
    faces = _faces(40, 240, cfg.image_size)
    tmpl = torch.nn.functional.normalize(torch.randn(40, cfg.embedding_dim), dim=1)
    rev = _controls().reverse_engineer
    t0 = time.perf_counter()
    rev(model, faces.images, faces.labels, tmpl, list(range(k)), 0.5, steps=steps, batch=batch, progress=False)
    per_step = (time.perf_counter() - t0) / steps
    return ({f"neural_cleanse_{profile}_s": (per_step * full_steps, "s", "lower", "matmul_gflops")},
            {"identities": k, "batch": batch, "steps_timed": steps, "steps_full": full_steps,
             "seconds_per_step": round(per_step, 4), "extrapolated": True})


def gate_scan(mb: int = 32) -> StageOut:
    """The deployment gate on a signed, released safetensors model of `mb` MB: format
    check, signature verification and allowlist digest, in seconds per MB."""
    from safetensors.torch import save_file

    c = _controls()
    with tempfile.TemporaryDirectory(prefix="ml07lab-bench-") as tmp:
        env = c.environments(Path(tmp) / "envs")
        d = env.models / "bench-model"
        d.mkdir(parents=True)
        g = torch.Generator().manual_seed(0)
        save_file({f"w{i}": torch.randn(1 << 18, generator=g) for i in range(mb)},  # 1 MB each
                  str(d / "model.safetensors"))
        size_mb = (d / "model.safetensors").stat().st_size / (1 << 20)
        c.sign_model_dir(d, env.private_key)
        dst = c.release(d, env, "bench-model")
        t0 = time.perf_counter()
        res = c.gate(dst, env)
        dt = time.perf_counter() - t0
    if not res.accepted:
        raise RuntimeError(f"bench: the gate refused its own signed model: {res.reason}")
    return ({"gate_scan_s_per_mb": (dt / size_mb, "s/MB", "lower", "sha256_mb_s")},
            {"model_mb": round(size_mb, 1), "seconds": round(dt, 3)})


def dataset_verification(n_ids: int = 100, per_id: int = 20, size: int = 32) -> StageOut:
    """Signature + every file's sha256 + PNG decode of a signed dataset folder (what the
    trusted pipeline does before training), in files per second."""
    from ..data.synthetic import generate_faces

    c = _controls()
    faces = generate_faces(n_ids, per_id, size=size, seed=5)
    with tempfile.TemporaryDirectory(prefix="ml07lab-bench-") as tmp:
        root = Path(tmp) / "faces"
        c.export_faceset(faces, root)
        priv, pub = c.generate_key(Path(tmp) / "keys", "bench")
        c.sign_dataset(root, priv)
        trusted = c.Keyring.from_paths(pub)
        t0 = time.perf_counter()
        v = c.verify_dataset(root, trusted, decode=True)
        dt = time.perf_counter() - t0
    return ({"dataset_verify_files_per_s": (len(v.manifest) / dt, "files/s", "higher", "sha256_mb_s")},
            {"files": len(v.manifest), "seconds": round(dt, 3), "decode": True})


def default_stages() -> list[tuple[str, Callable[[], StageOut]]]:
    """The stages `make bench` runs, in order (name, callable)."""
    return [
        ("synthetic_32px", lambda: synthetic_faces(32)),
        ("synthetic_64px", lambda: synthetic_faces(64)),
        ("train_ci", lambda: train_throughput("ci")),
        ("train_laptop", lambda: train_throughput("laptop")),
        ("pretrain_epoch_ci", lambda: pretrain_epoch("ci")),
        ("pretrain_epoch_laptop", lambda: pretrain_epoch("laptop")),
        ("embed_ci", lambda: embedding("ci")),
        ("embed_laptop", lambda: embedding("laptop")),
        ("neural_cleanse_ci", lambda: neural_cleanse("ci")),
        ("neural_cleanse_laptop", lambda: neural_cleanse("laptop")),
        ("gate_scan", gate_scan),
        ("dataset_verification", dataset_verification),
    ]


__all__ = ["default_stages"]
