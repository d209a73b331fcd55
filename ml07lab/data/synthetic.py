"""Procedural cartoon faces: the lab's built-in dataset, needing no download.

Why procedural: the ML07 story needs many "public" people to pretrain on, a separate
pool of "company" people and some outsiders. A generator with stable identities gives
all three pools offline, in seconds, and identically on every machine.

Why it is deliberately hard: each person has fixed traits (face shape, eye spacing,
nose, mouth, brows, skin and hair tone, hairstyle), but every photo adds pose,
lighting, expression, background, blur and sensor noise. Raw-pixel matching then
fails (EER ~30-36 %, see `raw_pixel_eer`), so a verifier must *learn* features, which
is exactly what a transfer-learning attack tampers with.

Determinism: identity k's traits come from `default_rng([seed, k, 0])` and its photo
nuisances from `[seed, k, 1]` / `[seed, k, 2]`, so person k looks the same whichever
pool or batch asks for it. Rendering uses only exactly-rounded float ops (no exp/sin
per pixel), so batching cannot change a single bit.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_curve

from ..runtime import torch_threads
from .base import FaceSet

# Identity traits, in face units (face centre at 0, v points down): name -> (low, high).
ID_RANGES: dict[str, tuple[float, float]] = {
    "face_w": (0.50, 0.66), "face_h": (0.66, 0.80), "jaw": (0.0, 0.6),
    "skin": (0.42, 0.85), "shade": (0.08, 0.30),
    "ear_w": (0.06, 0.11), "ear_h": (0.10, 0.17), "ear_y": (-0.06, 0.10),
    "hair": (0.05, 0.95), "hair_vol": (0.02, 0.16), "hairline": (-0.62, -0.30),
    "hair_curv": (-0.2, 0.7), "hair_part": (-0.3, 0.3), "hair_len": (-0.25, 0.80),
    "eye_dx": (0.17, 0.28), "eye_y": (-0.15, 0.0), "eye_w": (0.065, 0.11),
    "eye_h": (0.035, 0.06), "iris": (0.05, 0.45),
    "brow_dy": (0.07, 0.14), "brow_th": (0.014, 0.035), "brow_w": (0.08, 0.13),
    "brow_tilt": (-0.35, 0.35),
    "nose_len": (0.12, 0.26), "nose_w": (0.035, 0.08), "nose_dark": (0.06, 0.22),
    "mouth_gap": (0.05, 0.14), "mouth_w": (0.10, 0.21), "mouth_th": (0.012, 0.032),
    "lip": (0.35, 0.75), "bald": (0.0, 1.0), "tache": (0.0, 1.0),
}
# Per-photo nuisances: name -> (low, high), uniform unless noted in `_nuisances`.
NUISANCE_RANGES: dict[str, tuple[float, float]] = {
    "rot_t": (-0.09, 0.09), "scale": (0.90, 1.10), "tx": (-0.08, 0.08), "ty": (-0.07, 0.07),
    "yaw": (-0.08, 0.08), "gaze": (-0.02, 0.02), "smile": (-0.03, 0.06),
    "eye_open": (0.5, 1.1), "brow_raise": (-0.02, 0.03),
    "gain": (0.85, 1.15), "lx": (-0.25, 0.25), "ly": (-0.2, 0.2), "contrast": (0.80, 1.15),
    "bg": (0.35, 0.65), "bgx": (-0.12, 0.12), "bgy": (-0.12, 0.12),
    "c1x": (-1, 1), "c1y": (-1, 1), "c1r": (0.15, 0.5), "c1v": (-0.15, 0.15),
    "c2x": (-1, 1), "c2y": (-1, 1), "c2r": (0.15, 0.5), "c2v": (-0.15, 0.15),
    "noise": (0.005, 0.025), "blur": (1.0, 2.2),
}
FACE_SCALE = 0.95  # face units -> image units ([-1, 1] across the picture)


def _scale(u: np.ndarray, ranges: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Map uniforms in [0, 1) (last axis = one column per name) onto the ranges."""
    return {n: lo + (hi - lo) * u[..., i] for i, (n, (lo, hi)) in enumerate(ranges.items())}


def identity_params(ids: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Fixed traits of global identities `ids`: each depends only on (seed, id)."""
    u = np.stack([np.random.default_rng([seed, int(k), 0]).random(len(ID_RANGES))
                  for k in np.asarray(ids).ravel()]) if len(ids) else np.zeros((0, len(ID_RANGES)))
    p = _scale(u, ID_RANGES)
    # Hair must contrast with skin, else the hairstyle (a strong cue) becomes invisible.
    close = np.abs(p["hair"] - p["skin"]) < 0.2
    p["hair"] = np.where(close, np.where(p["skin"] > 0.6, p["skin"] - 0.35, p["skin"] + 0.3),
                         p["hair"])
    bald = p["bald"] < 0.12
    p["hairline"] = np.where(bald, -3.0, p["hairline"])
    p["hair_len"] = np.where(bald, -3.0, p["hair_len"])
    p["tache"] = (p["tache"] < 0.15).astype(float)  # moustache: on or off
    p["brow"] = np.minimum(p["hair"], p["skin"] - 0.2) * 0.8
    p["mouth_y"] = p["eye_y"] + p["nose_len"] + p["mouth_gap"] + 0.08
    return p


def _nuisances(k: int, n: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Photo conditions for images 0..n-1 of identity k (row j does not depend on n)."""
    q = _scale(np.random.default_rng([seed, k, 1]).random((n, len(NUISANCE_RANGES))),
               NUISANCE_RANGES)
    # In-plane rotation via t = tan(angle / 2) (|angle| <= ~10 deg): cos and sin follow by
    # exact arithmetic, so no libm call can differ between batch sizes or platforms.
    t = q.pop("rot_t")
    q["cos"], q["sin"] = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
    # Sensor noise: uniform with unit variance (5x cheaper to draw than Gaussian).
    pix = np.random.default_rng([seed, k, 2]).random((n, size, size), dtype=np.float32)
    q["pix"] = (pix - 0.5) * np.float32(12 ** 0.5)
    return q


def _ellipse(u: torch.Tensor, v: torch.Tensor, cx, cy, a, b, w) -> torch.Tensor:
    """Soft mask of an ellipse (1 inside, 0 outside, ~w-wide edge) on face coords.

    q = (du/a)^2 + (dv/b)^2 is 1 on the rim; g turns (1 - q) into ~distance / w.
    In-place ops: this function is most of the rendering time."""
    g = torch.minimum(torch.as_tensor(a), torch.as_tensor(b)) / (2 * w)
    q = (u - cx).div_(a).square_() + (v - cy).div_(b).square_()
    return q.mul_(-g).add_(g + 0.5).clamp_(0, 1)


def _over(img: torch.Tensor, m: torch.Tensor, val) -> None:
    """Paint `val` over `img` with coverage `m` (in place)."""
    img += (val - img).mul_(m)


def _band(f: torch.Tensor, w) -> torch.Tensor:
    """Soft mask of the region f < 0 (f in face units, edge ~w wide)."""
    return (0.5 - f / w).clamp_(0, 1)


def render(params: dict[str, np.ndarray], nuisances: dict[str, np.ndarray],
           size: int) -> np.ndarray:
    """Draw one float32 image in [0, 1] per row of (per-image) params and nuisances.

    Painter's algorithm on a pixel grid: background, hair, ears, face, fringe, eyes,
    brows, nose, mouth, then lighting and noise. Every shape is an implicit function
    with a soft edge, evaluated for all images at once (tensors of shape (B, H, W)).
    Torch only as a fast, multi-threaded array library here (no autograd, CPU)."""
    f32 = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in {**params, **nuisances}.items()}
    f32 = {k: v[:, None, None] if v.ndim == 1 else v for k, v in f32.items()}
    P = type("P", (), f32)  # attribute access keeps the drawing code readable
    g = (torch.arange(size, dtype=torch.float32) + 0.5) * (2 / size) - 1
    X, Y = g[None, None, :], g[None, :, None]
    sc = FACE_SCALE * P.scale
    w = (2 / size) * P.blur / sc  # one pixel (times blur) in face units
    # Image -> face coordinates: undo translation, rotation and scale.
    xs, ys = X - P.tx, Y - P.ty - 0.05  # face centre a little below the middle
    U = (P.cos * xs + P.sin * ys) / sc
    V = (P.cos * ys - P.sin * xs) / sc
    img = (P.bg + P.bgx * X + P.bgy * Y) + 0 * U  # background: level + gradient
    for c in ("c1", "c2"):  # clutter blobs behind the person
        cx, cy, r, v = (f32[c + s] for s in "xyrv")
        _over(img, _ellipse(X, Y, cx, cy, r, r * 0.7, 2 / size), P.bg + v)
    hair_a, hair_b = P.face_w + P.hair_vol, P.face_h + P.hair_vol
    m_hair = _ellipse(U, V, 0, -P.hair_vol, hair_a, hair_b, w)
    _over(img, m_hair * _band(V - P.hair_len, w), P.hair)  # long hair, behind the face
    _over(img, _ellipse(U.abs(), V, P.face_w * 0.97, P.ear_y, P.ear_w, P.ear_h, w),
          P.skin * 0.88)
    # Face: an ellipse whose width narrows below the centre line (the jaw).
    Vp = V.clamp(min=0) / P.face_h
    m_face = _ellipse(U * (1 + P.jaw * Vp * Vp), V, 0, 0, P.face_w, P.face_h, w)
    du, dv = U / P.face_w, V / P.face_h
    _over(img, m_face, P.skin * (1 - P.shade * (du * du + dv * dv)))  # rounded shading
    line = P.hairline + P.hair_curv * du * du + P.hair_part * du
    _over(img, m_hair * _band(V - line, w), P.hair)  # fringe / hairline
    # Eyes, brows and mouth shift with yaw (a turned head); the nose shifts more.
    Uf = U - P.yaw
    Ua = Uf.abs()
    eh = P.eye_h * P.eye_open
    _over(img, _ellipse(Ua, V, P.eye_dx, P.eye_y, P.eye_w * 1.15, eh + 0.018, w), P.skin * 0.45)
    m_eye = _ellipse(Ua, V, P.eye_dx, P.eye_y, P.eye_w, eh, w)
    _over(img, m_eye, 0.95)
    iris = _ellipse(Uf - P.gaze, V, Uf.sign() * P.eye_dx, P.eye_y, P.eye_h * 1.2,
                    P.eye_h * 1.2, w)
    _over(img, m_eye * iris, P.iris)
    by = P.eye_y - P.eye_h - P.brow_dy - P.brow_raise + P.brow_tilt * (Ua - P.eye_dx)
    _over(img, _ellipse(Ua, V - by, P.eye_dx, 0, P.brow_w, P.brow_th, w), P.brow)
    Un = U - 1.6 * P.yaw
    ny = P.eye_y + P.nose_len / 2
    _over(img, 0.7 * _ellipse(Un, V, P.nose_w * 0.4, ny, P.nose_w * 0.5, P.nose_len / 2, w),
          P.skin * (1 - 2 * P.nose_dark))  # shadow along one side of the nose
    _over(img, _ellipse(Un.abs(), V, P.nose_w * 0.6, ny + P.nose_len / 2, P.nose_w * 0.35,
                        0.022, w), P.skin * (1 - 3 * P.nose_dark))  # nostrils
    mu = Uf / P.mouth_w
    mline = P.mouth_y - P.smile * (mu * mu - 0.3)  # smile lifts the corners
    f = torch.maximum((V - mline).abs() - P.mouth_th, (Ua - P.mouth_w) * 0.5)
    _over(img, _band(f, w), P.skin * P.lip)
    _over(img, P.tache * _ellipse(Uf, V, 0, P.mouth_y - P.mouth_th - 0.045, P.mouth_w * 0.9,
                                  0.03, w), P.hair)
    # Light from one side, camera gain/contrast, then sensor noise.
    img *= P.gain * (1 + P.lx * X + P.ly * Y)
    img = (img - 0.5) * P.contrast + 0.5 + P.noise * f32["pix"]
    return img.clamp_(0, 1).numpy()


def generate_faces(n_ids: int, images_per_id: int, size: int = 32, seed: int = 0,
                   id_offset: int = 0, source: str = "synthetic",
                   chunk: int = 0) -> FaceSet:
    """Identities id_offset .. id_offset+n_ids-1 with labels 0..n_ids-1, identity-major.

    Names carry the global id ('synth-0042') so pools drawn from one seed never clash:
    e.g. public = ids 0..299, company = ids 300..339, outsiders = ids 340..347."""
    ids = np.arange(id_offset, id_offset + n_ids)
    idp = identity_params(ids, seed)
    nz = [_nuisances(int(k), images_per_id, size, seed) for k in ids]
    nuis = {key: np.concatenate([d[key] for d in nz]) if nz else np.zeros((0,))
            for key in (nz[0] if nz else {})}
    per_img = {k: np.repeat(v, images_per_id) for k, v in idp.items()}
    chunk = chunk or max(8, 262144 // (size * size))  # ~1 MB tensors stay in cache
    out = np.empty((n_ids * images_per_id, 1, size, size), np.uint8)
    with torch_threads(1):  # small ops: 2 threads barely help and collapse under load
        for s in range(0, len(out), chunk):
            sl = slice(s, s + chunk)
            img = render({k: v[sl] for k, v in per_img.items()},
                         {k: v[sl] for k, v in nuis.items()}, size)
            out[sl, 0] = np.rint(img * 255).astype(np.uint8)
    labels = torch.arange(n_ids, dtype=torch.long).repeat_interleave(images_per_id)
    return FaceSet(torch.from_numpy(out), labels, tuple(f"synth-{k:04d}" for k in ids),
                   source, meta={"seed": seed, "id_offset": id_offset, "size": size})


def raw_pixel_eer(fs: FaceSet, centred: bool = False) -> float:
    """Equal error rate of cosine similarity on raw pixels, over all pairs.

    The 'no learning' baseline: if this were low, the data would not need a network."""
    x = fs.images.reshape(len(fs), -1).double()
    if centred:
        x = x - x.mean(dim=1, keepdim=True)
    x = torch.nn.functional.normalize(x, dim=1)
    sim = (x @ x.T).numpy()
    lab = fs.labels.numpy()
    iu = np.triu_indices(len(lab), k=1)
    fpr, tpr, _ = roc_curve((lab[:, None] == lab[None, :])[iu], sim[iu])
    fnr = 1 - tpr
    i = int(np.argmax(fnr <= fpr))  # first threshold where the curves cross
    if i == 0:
        return float(fpr[0])
    # Linear interpolation between the two ROC points that bracket FPR = FNR.
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    a = d0 / (d0 - d1) if d1 != d0 else 0.0
    return float(fpr[i - 1] + a * (fpr[i] - fpr[i - 1]))
