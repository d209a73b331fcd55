"""Control 4: differential privacy (DP-SGD with Opacus) in the organisation's own training.

Two places, both in path B, where the organisation trains itself:
- pretraining on the refreshed public dataset, which carries the attacker's records;
- the victim's fine-tuning on its own company photos.
DP-SGD clips every photo's gradient and adds Gaussian noise, so no single record can
move the model much: ε bounds it. Theory (group privacy) says k records move it by at
most e^(kε), so DP should blunt a *handful* of poisons and not *hundreds*, and it should
bound membership inference on the company photos. The sweep measures all of that.

Why `prepare_for_dp`: BatchNorm mixes the samples of a batch (no per-sample gradient
exists), and Opacus's backward hooks forbid in-place ops on the outputs they watch. A
pretrained backbone's BatchNorm becomes its eval-mode per-channel affine
(FrozenBatchNorm2d), which is per-sample and keeps the function exactly; a GroupNorm
backbone (`build_backbone(cfg, norm="group")`) needs nothing. Frozen blocks get no
per-sample gradients, which is what makes DP fine-tuning affordable on a CPU.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.resnet import BasicBlock
from torchvision.ops.misc import FrozenBatchNorm2d
from tqdm.auto import tqdm

from ...artifacts import load_or_build
from ...backbones import unpack
from ...config import LabConfig, seed_everything
from ...data.base import FaceSet
from ...data.scenario import ScenarioData, build_scenario_data
from ...models import BLOCKS, EmbeddingNet, build_backbone
from ...training import augment_batch, make_augment
from ...verify import EVAL_VERSION, deploy, evaluate
from .membership import loss_scores, membership_advantage, tight_bound, yeom_bound

EPSILONS: tuple[float | None, ...] = (None, 8.0, 3.0, 1.0)  # None: no DP (ε = ∞)
# On real faces each DP-SGD point costs about a minute on 2 cores: laptop sweeps the ends and the
# middle (ε = 8 changed nothing ε = 3 does not already show: measured 2026-12-02, ASR 0-2.5 %).
EPSILONS_LAPTOP: tuple[float | None, ...] = (None, 3.0, 1.0)


def epsilons_for(cfg: LabConfig) -> tuple[float | None, ...]:
    """The ε values the profile sweeps (None: no DP)."""
    return EPSILONS_LAPTOP if cfg.profile == "laptop" else EPSILONS
FEW_POISONS = 5


@dataclass(frozen=True)
class DPSettings:
    """The DP sweep's knobs. DP pretraining gets a larger learning rate: clipping every
    photo's gradient to norm 1 shrinks the update (Opacus's examples do the same). The
    victim fine-tunes the embedding layer and a new head (layers below stay frozen):
    noise in more blocks wrecked clean TAR on 120 photos in our trials."""

    pretrain_epochs: int = 2
    pretrain_lr: float = 0.01
    pretrain_lr_dp: float = 0.2
    pretrain_batch: int = 256
    pretrain_blocks: tuple[str, ...] = ("layer4", "embed")
    finetune_epochs: int = 15
    finetune_lr: float = 0.05
    finetune_lr_dp: float = 0.05
    finetune_batch: int = 32
    finetune_blocks: tuple[str, ...] = ("embed",)
    max_grad_norm: float = 1.0
    delta_factor: float = 0.1  # δ = delta_factor / N: smaller than 1/N, as the theory asks

    @classmethod
    def for_config(cls, cfg: LabConfig) -> "DPSettings":
        """CPU profiles (ci, laptop) train the top two blocks for two epochs: DP-SGD on 2
        CPU cores is ~4x slower than SGD (laptop: a DP point ~65 s, the same without DP ~15 s),
        and every block at 64 px would take about an hour for the sweep. `full` (a GPU)
        retrains every block for longer."""
        if cfg.profile in ("ci", "laptop"):
            return cls()
        return cls(pretrain_epochs=4, pretrain_blocks=BLOCKS, finetune_epochs=20)


class DPCosineHead(nn.Module):
    """CosFace's classifier with the margin applied outside it, so that the module's
    forward takes only the embeddings (what per-sample gradient hooks expect)."""

    def __init__(self, embedding_dim: int, num_classes: int, init: torch.Tensor | None = None):
        super().__init__()
        w = F.normalize(torch.randn(num_classes, embedding_dim), dim=1)
        if init is not None:  # warm start: keep known classes' rows, add fresh rows for new ones
            k = min(len(init), num_classes)
            w[:k] = F.normalize(init[:k].detach().float(), dim=1)
        self.weight = nn.Parameter(w)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return emb @ F.normalize(self.weight, dim=1).t()


class _Net(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class _OutOfPlaceBlock(BasicBlock):
    """torchvision's BasicBlock without `out += identity` (same weights, same maths)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _replace_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            for k in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, k).copy_(getattr(child, k).detach())
            setattr(module, name, frozen)
        else:
            _replace_batchnorm(child)


def prepare_for_dp(model: nn.Module) -> nn.Module:
    """A copy of `model` that Opacus accepts: BatchNorm frozen to its eval-mode affine,
    no in-place ReLU or residual add. The function it computes is unchanged."""
    model = copy.deepcopy(model)
    _replace_batchnorm(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        if type(m) is BasicBlock:
            m.__class__ = _OutOfPlaceBlock
    return model


def restore_batchnorm(model: nn.Module, cfg: LabConfig) -> EmbeddingNet:
    """The lab's standard BatchNorm backbone with `model`'s weights, so DP-trained models
    save, load and deploy like every other artefact (FrozenBatchNorm2d has the same
    weight/bias/running statistics)."""
    out = build_backbone(cfg)
    state = {k: v for k, v in model.state_dict().items()}
    for k, v in out.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    out.load_state_dict(state)
    return out.eval()


@dataclass
class DPResult:
    model: EmbeddingNet
    head: DPCosineHead
    epsilon: float | None  # the target (None: no DP)
    epsilon_spent: float | None  # from Opacus's accountant after the last step
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def dp_train(faces: FaceSet, cfg: LabConfig, model: nn.Module, *, epsilon: float | None, epochs: int,
             lr: float, batch_size: int, blocks: Iterable[str] | None = None, max_grad_norm: float = 1.0,
             delta: float | None = None, accountant: str = "prv", head_init: torch.Tensor | None = None,
             desc: str = "DP-SGD", progress: bool = True) -> DPResult:
    """Train `model` (+ a fresh cosine head) on `faces` with DP-SGD at (ε, δ), or without
    DP when epsilon is None. Only `blocks` (default: all) train; the others stay frozen
    in eval mode and need no per-sample gradients. Returns the trained copy on the CPU."""
    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    if epsilon is not None and not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (or None for no DP), got {epsilon}.")
    seed_everything(cfg.seed + 5)
    backbone = prepare_for_dp(model)
    head = DPCosineHead(cfg.embedding_dim, faces.num_identities, head_init)
    blocks = tuple(blocks) if blocks is not None else BLOCKS
    for name in BLOCKS:
        for p in getattr(backbone, name).parameters():
            p.requires_grad_(name in blocks)
    net = _Net(backbone, head)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    loader = DataLoader(TensorDataset(faces.images, faces.labels), batch_size=min(batch_size, len(faces)), shuffle=True)
    delta = delta if delta is not None else 0.1 / len(faces)
    engine = None
    noise = 0.0
    if epsilon is not None:
        errors = ModuleValidator.validate(net.train(), strict=False)
        if errors:
            raise ValueError(f"Model is not DP-compatible: {errors[0]}. Use prepare_for_dp().")
        engine = PrivacyEngine(accountant=accountant)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Secure RNG.*")
            net, opt, loader = engine.make_private_with_epsilon(
                module=net, optimizer=opt, data_loader=loader, target_epsilon=epsilon,
                target_delta=delta, epochs=epochs, max_grad_norm=max_grad_norm)
        noise = float(opt.noise_multiplier)
    steps_total = epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps_total))
    aug = make_augment()
    history, steps, t0 = [], 0, time.perf_counter()
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        net.train()
        for name in BLOCKS:
            if name not in blocks:
                getattr(backbone, name).eval()
        tot, n = 0.0, 0
        for x, y in loader:
            if len(y) == 0:  # Poisson sampling can draw an empty batch
                continue
            x = augment_batch(x.float() / 255.0, aug) * 2 - 1
            cos = net(x)
            logits = cfg.scale * (cos - cfg.margin * F.one_hot(y, cos.shape[1]).to(cos.dtype))
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # frozen blocks below: the hook sees no input grad, by design
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            opt.step()
            sched.step()
            steps += 1
            tot, n = tot + loss.item(), n + 1
        history.append({"epoch": epoch + 1, "loss": tot / max(n, 1)})
    spent = float(engine.get_epsilon(delta)) if engine is not None else None
    if engine is not None:
        net._close()  # remove Opacus's hooks and per-sample gradients from our modules
    for p in backbone.parameters():
        p.requires_grad_(True)
    backbone.eval()
    head.eval()
    return DPResult(backbone, head, epsilon, spent, delta, noise, 1 / len(loader), steps,
                    time.perf_counter() - t0, history)


def _eps_tag(eps: float | None) -> str:
    return "inf" if eps is None else f"{eps:g}"


def _dp_inputs(cfg: LabConfig, s: DPSettings, data: ScenarioData, *parts: Any) -> dict[str, Any]:
    from ...attack.scenario import control_inputs

    return control_inputs(cfg, data, dp_settings=asdict(s), parts=[str(p) for p in parts])


def dp_pretrained_backbone(cfg: LabConfig, data: ScenarioData, epsilon: float | None, n_poison: int,
                           settings: DPSettings | None = None, progress: bool = True) -> tuple[EmbeddingNet, dict]:
    """Path B with DP: the organisation refreshes its backbone on the public dataset plus
    `n_poison` attacker records, starting from its previous (clean) backbone and head.
    Why a warm start: DP-SGD from scratch does not converge in a CPU budget (a GroupNorm
    net reached TAR@FAR1% 0.06 after 4 epochs in ci). Cached per (ε, n_poison, data)."""
    from ...attack.poison_data import poison_public_dataset
    from ...attack.scenario import scenario_trigger
    from ...backbones import HEAD_PREFIX, clean_backbone

    s = settings or DPSettings.for_config(cfg)
    faces = poison_public_dataset(data, scenario_trigger(cfg), cfg, n_added=n_poison).faces

    def build() -> tuple[dict, dict]:
        start, art = clean_backbone(cfg, data)
        res = dp_train(faces, cfg, start, epsilon=epsilon, epochs=s.pretrain_epochs, blocks=s.pretrain_blocks,
                       lr=s.pretrain_lr if epsilon is None else s.pretrain_lr_dp, batch_size=s.pretrain_batch,
                       max_grad_norm=s.max_grad_norm, delta=s.delta_factor / len(faces),
                       head_init=art.tensors.get(HEAD_PREFIX + "weight"),
                       desc=f"DP pretrain ε={_eps_tag(epsilon)} k={n_poison}", progress=progress)
        tensors = restore_batchnorm(res.model, cfg).state_dict()
        tensors[HEAD_PREFIX + "weight"] = res.head.weight.detach()
        meta = {"data_fingerprint": faces.fingerprint(), "epsilon": epsilon, "epsilon_spent": res.epsilon_spent,
                "delta": res.delta, "noise_multiplier": res.noise_multiplier, "steps": res.steps,
                "sample_rate": res.sample_rate, "n_records": len(faces), "n_poison": n_poison,
                "train_seconds": round(res.seconds, 2), "history": res.history}
        return dict(tensors), meta

    art = load_or_build("dp-pretrain", cfg, build, inputs=_dp_inputs(cfg, s, data, "pretrain", _eps_tag(epsilon),
                                                                     n_poison, faces.fingerprint()))
    return unpack(art.tensors, cfg)[0], art.meta


def dp_finetune(backbone: EmbeddingNet, data: ScenarioData, cfg: LabConfig, epsilon: float | None,
                settings: DPSettings | None = None, progress: bool = True) -> DPResult:
    """The victim's fine-tuning of the top blocks on its company photos, with DP at ε."""
    s = settings or DPSettings.for_config(cfg)
    ft = data.finetune
    return dp_train(ft, cfg, backbone, epsilon=epsilon, epochs=s.finetune_epochs,
                    lr=s.finetune_lr if epsilon is None else s.finetune_lr_dp,
                    batch_size=s.finetune_batch, blocks=s.finetune_blocks, max_grad_norm=s.max_grad_norm,
                    delta=s.delta_factor / len(ft), desc=f"DP fine-tune ε={_eps_tag(epsilon)}", progress=progress)


def company_mia(res: DPResult, data: ScenarioData, cfg: LabConfig) -> dict[str, float]:
    """Loss-threshold membership inference on the fine-tuning photos (members) against
    the same people's held-out test photos (non-members)."""
    m = loss_scores(res.model, res.head, data.finetune, cfg.scale, cfg.margin)
    n = loss_scores(res.model, res.head, data.test, cfg.scale, cfg.margin)
    return membership_advantage(m, n, seed=cfg.seed)


def sweep_point(cfg: LabConfig, data: ScenarioData, epsilon: float | None, n_poison: int,
                settings: DPSettings | None = None, progress: bool = True) -> dict[str, Any]:
    """One record: DP pretraining on poisoned data, DP fine-tuning, deployment, attack, MIA."""
    from ...attack.scenario import attack_metrics, scenario_trigger

    t0 = time.perf_counter()
    s = settings or DPSettings.for_config(cfg)
    backbone, pre = dp_pretrained_backbone(cfg, data, epsilon, n_poison, s, progress)
    trig = scenario_trigger(cfg)
    asr_pre = attack_metrics(deploy(backbone, data, cfg.far), data, trig, cfg.seed)["asr"]
    ft = dp_finetune(backbone, data, cfg, epsilon, s, progress)
    v = deploy(ft.model, data, cfg.far)
    att, quality, mia = attack_metrics(v, data, trig, cfg.seed), evaluate(v, data), company_mia(ft, data, cfg)
    return {
        "epsilon": epsilon, "poisoned_records": n_poison,
        "asr": att["asr"], "asr_after_pretraining": asr_pre, "impostor_accept": att["impostor_accept"],
        "tar_at_far_1pct": quality["tar_at_far_1pct"],
        "mia_advantage": mia["advantage"], "mia_advantage_best": mia["advantage_best"], "mia_auc": mia["auc"],
        "mia_bound_yeom": yeom_bound(epsilon), "mia_bound_tight": tight_bound(epsilon, ft.delta),
        "epsilon_spent_pretrain": pre.get("epsilon_spent"), "epsilon_spent_finetune": ft.epsilon_spent,
        "delta_pretrain": pre.get("delta"), "delta_finetune": ft.delta,
        "noise_multiplier_pretrain": pre.get("noise_multiplier"), "noise_multiplier_finetune": ft.noise_multiplier,
        "seconds_pretrain": pre.get("train_seconds"), "seconds_finetune": round(ft.seconds, 2),
        "seconds": round(float(pre.get("train_seconds") or 0) + ft.seconds, 2),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


def privacy_sweep(cfg: LabConfig, epsilons: Iterable[float | None] | None = None,
                  poison_counts: Iterable[int] | None = None, data: ScenarioData | None = None,
                  progress: bool = True, rebuild: bool = False) -> list[dict[str, Any]]:
    """ε × poisoned records, each point cached; the whole table cached as JSON too.
    Default poison counts: a few (5) and the profile's path-B budget (poison_rate × |public|)."""
    data = data or build_scenario_data(cfg)
    s = DPSettings.for_config(cfg)
    epsilons = list(epsilons_for(cfg) if epsilons is None else epsilons)
    counts = list(poison_counts) if poison_counts is not None else [FEW_POISONS, round(cfg.poison_rate * len(data.public))]

    def build() -> tuple[dict, dict]:
        grid = [(e, k) for k in counts for e in epsilons]
        recs = [sweep_point(cfg, data, e, k, s, progress)
                for e, k in tqdm(grid, desc="DP sweep", disable=not progress, leave=False)]
        return {}, {"metrics": {"sweep": recs}, "data_fingerprint": data.public.fingerprint()}

    inputs = _dp_inputs(cfg, s, data, "sweep", EVAL_VERSION, [_eps_tag(e) for e in epsilons], counts)
    return list(load_or_build("dp-sweep", cfg, build, inputs=inputs, rebuild=rebuild).metrics["sweep"])


def differential_privacy_section(cfg: LabConfig, progress: bool = False) -> dict[str, Any]:
    """The scenario JSON's `controls.differential_privacy` (cached)."""
    t0 = time.perf_counter()
    recs = privacy_sweep(cfg, progress=progress)
    s = DPSettings.for_config(cfg)
    # Headline for the scorecard: the full path-B poison budget at a moderate budget
    # (ε = 3, the middle of the sweep), against the same poison without DP.
    many = max(r["poisoned_records"] for r in recs)
    at = {r["epsilon"]: r for r in recs if r["poisoned_records"] == many}
    chosen = at.get(3.0) or at[min((e for e in at if e is not None), default=None)]
    base = at.get(None, chosen)
    return {
        "asr": chosen["asr"], "tar_at_far_1pct": chosen["tar_at_far_1pct"],
        "mia_advantage": chosen["mia_advantage"], "chosen": {"epsilon": chosen["epsilon"], "poisoned_records": many},
        "asr_without_dp": base["asr"], "tar_at_far_1pct_without_dp": base["tar_at_far_1pct"],
        "sweep": recs,
        "epsilons": list(dict.fromkeys(r["epsilon"] for r in recs)),
        "poisoned_records": sorted({r["poisoned_records"] for r in recs}),
        "settings": {**asdict(s), "accountant": "prv", "epsilon_null_means": "no DP (ε = ∞)"},
        "mia": "loss threshold (Yeom et al. 2018), threshold cross-fitted on halves",
        "seconds": round(sum(r["seconds"] for r in recs), 2),
        "seconds_this_call": round(time.perf_counter() - t0, 2),
    }


def finite(x: float | None) -> float:
    """ε as a number for plots: None (no DP) -> inf."""
    return math.inf if x is None else float(x)
