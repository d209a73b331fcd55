"""Control 5: a regular security audit of every backbone the organisation receives.

An audit is something an organisation can run on every model, and on a schedule; it
ends in a report a person signs off, and a non-zero exit code that can gate a pipeline.
- artefact checks (`artefact_checks.py`): serialization, provenance and signature, and the
  model card against what the organisation measures on its own people;
- model inspection: Neural Cleanse for verification (`neural_cleanse.py`) over the
  privileged users. It can only find a backdoor aimed at someone it audits. Its first
  run on the approved model is the *baseline*: people who are naturally easy to
  impersonate ("lambs") are signed off there, so later audits fail only on new flags;
- remediation: unlearning with the reverse-engineered trigger (fine-tune with the
  trigger on faces that keep their true identity), measured, never trusted blindly.
STRIP (`strip.py`) is the run-time half: a gate at the kiosk.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...artifacts import load_or_build
from ...attack.triggers import Trigger
from ...backbones import unpack
from ...config import LabConfig, seed_everything
from ...data.base import FaceSet
from ...data.scenario import ScenarioData
from ...keys import artefact_inputs
from ...models import CosFaceHead, EmbeddingNet
from ...training import train_backbone
from ...verify import EVAL_VERSION, Verifier, deploy, evaluate
from .artefact_checks import FAIL, INFO, PASS, Check
from .neural_cleanse import FLAG_AT, ReversedTriggers, flag_level, relative_index, reverse_engineer


NC_VERSION = "nc2"  # part of every cached audit's key: bump when the search changes
RULE_VERSION = "rel2"  # part of the keys of cached verdicts (study, section): bump when the decision rule changes
INSPECTION = "model inspection (Neural Cleanse)"  # the check's name in every audit report


def model_digest(model: torch.nn.Module) -> str:
    """sha256 over a model's weights: the cache key of everything the audit computes."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- model inspection -------------------------------------------------------------------
def privileged_identities(n_people: int, target: int, seed: int, k: int = 12) -> list[int]:
    """The organisation's privileged users: the scenario's target plus k-1 others, seeded."""
    rng = np.random.default_rng([seed, 67])
    return [target, *[int(i) for i in rng.permutation(n_people) if int(i) != target][: k - 1]]


def n_audited(cfg: LabConfig) -> int:
    """How many privileged users the audit checks (12; `cfg.extra["audit_identities"]`): one
    number for the audit, the study's targets and every cache key built on them."""
    return int(cfg.extra.get("audit_identities", 12))


def audited_identities(data: ScenarioData, cfg: LabConfig, k: int | None = None) -> list[int]:
    """The privileged users the audit checks: the scenario's target plus k-1 others.

    The audit can only find a backdoor aimed at someone it audits; in a real
    organisation this is the list of people whose access matters most. The list is the
    organisation's, so it does not move with a model's (unknown) target; the detection
    study's attackers pick their targets from it (`study.study_variants`)."""
    k = k or n_audited(cfg)
    return privileged_identities(data.company.num_identities, cfg.target, cfg.seed, k)


def genuine_bar(verifier: Verifier, data: ScenarioData) -> float:
    """The score a typical genuine photo reaches: the median score of the calibration
    photos against their own templates. Neural Cleanse's "success" for verification is
    then "other people's faces look as much like the person as the person does"; a
    backdoor, which collapses triggered faces onto the target, clears this bar with a
    tiny trigger, while a person who is merely easy to confuse (a "lamb") does not."""
    cal = data.finetune if len(data.finetune) else data.enrol
    return float((verifier.embed(cal.images) * verifier.templates[cal.labels]).sum(1).median())


def _auditor_faces(data: ScenarioData) -> tuple[torch.Tensor, torch.Tensor]:
    """The auditor's own photos (enrolment and calibration; never test or attacker photos)."""
    return (torch.cat([data.enrol.images, data.finetune.images]),
            torch.cat([data.enrol.labels, data.finetune.labels]))


def nc_settings(cfg: LabConfig) -> tuple[int, int]:
    """(steps, faces per identity and step) of the trigger search; part of the key of every
    cached verdict built on it. 300 steps: at 150 some real-face identities were never reached,
    and on ci 200 steps left clean re-tunes up to 3.7 against the approved model (300: 2.5, the
    old family-wise 5 % flag being 3.8). Faces per step: 4 on real faces (a third of 12's cost); 6 found the same
    targets as 12 on the laptop zoo (measured 2026-12-02)."""
    return (int(cfg.extra.get("audit_steps", 300)),
            int(cfg.extra.get("audit_batch", 12 if cfg.profile == "ci" else 4)))


def inspect_backbone(verifier: Verifier, data: ScenarioData, cfg: LabConfig, identities: Sequence[int] | None = None,
                     steps: int | None = None, batch: int | None = None, seed: int | None = None,
                     progress: bool = True) -> ReversedTriggers:
    """Neural Cleanse over the audited identities (cached by the model's digest)."""
    d_steps, d_batch = nc_settings(cfg)
    steps, batch = steps or d_steps, batch or d_batch
    ids = list(identities) if identities is not None else audited_identities(data, cfg)
    seed = cfg.seed if seed is None else seed
    faces, owners = _auditor_faces(data)
    bar = genuine_bar(verifier, data)

    def build() -> tuple[dict, dict]:
        r = reverse_engineer(verifier.model, faces, owners, verifier.templates, ids, verifier.threshold,
                             steps=steps, batch=batch, bar=bar, seed=seed, progress=progress)
        return {"masks": r.masks, "patterns": r.patterns}, {"metrics": {
            "mask_l1": r.mask_l1.tolist(), "success": r.success.tolist(), "history": r.history}}

    site = f"{NC_VERSION}|{model_digest(verifier.model)}|{ids}|{steps}|{batch}|{seed}|{bar:.6f}|{verifier.threshold}"
    art = load_or_build("audit-inspection", cfg, build, inputs=artefact_inputs(cfg, data=data, site=site))
    m = art.metrics
    return ReversedTriggers(ids, art.tensors["masks"], art.tensors["patterns"], np.array(m["mask_l1"]),
                            np.array(m["success"]), True, m.get("history", []), float(art.meta.get("build_seconds", 0.0)))


def relative_scores(rev: ReversedTriggers, baseline: dict[str, Any] | None) -> dict[int, float]:
    """Each audited identity's anomaly index relative to the approved model's audit (see
    `relative_index`), over the identities both audits share; {} without a baseline."""
    if not baseline:
        return {}
    known = dict(zip(baseline.get("identities", []), baseline.get("mask_l1", [])))
    common = [i for i in dict.fromkeys(rev.identities) if i in known]
    if len(common) < 3:
        return {}
    idx = relative_index([rev.mask_l1[rev.of(i)] for i in common], [known[i] for i in common])
    return {i: float(v) for i, v in zip(common, idx)}


def new_flags(rev: ReversedTriggers, baseline: dict[str, Any] | None = None) -> list[int]:
    """The identities this audit fails on, most anomalous first.

    Without a baseline: Neural Cleanse's own rule, index >= 2 per identity. With the
    approved model's audit as baseline: an identity whose trigger shrank, relative to its
    baseline size, by more than the others' did, at the family-wise level for this many
    audited identities (`flag_level`: a clean model fails with ~10 % chance, the budget). Lambs, who are
    easy to reach in every model, no longer fail every audit (notebook 08, section 6)."""
    rel = relative_scores(rev, baseline)
    if not rel:
        return rev.flagged
    level = flag_level(len(rel))
    return [i for i, v in sorted(rel.items(), key=lambda kv: -kv[1]) if v >= level]


def inspection_check(rev: ReversedTriggers, baseline: dict[str, Any] | None = None) -> Check:
    """The pass/fail line for Neural Cleanse, against the approved model's baseline if given."""
    fresh = new_flags(rev, baseline)
    rel = relative_scores(rev, baseline)
    level = flag_level(len(rel)) if rel else FLAG_AT
    known = [i for i in rev.flagged if i not in fresh]
    d = {**rev.summary(), "new_flags": fresh, "known_weak": known, "flag_at": level, "baseline": bool(rel),
         "relative_index": {str(i): round(v, 3) for i, v in rel.items()},
         "max_relative_index": round(max(rel.values()), 3) if rel else None}
    name = INSPECTION
    what = "relative to the approved model" if rel else "anomaly index"
    if fresh:
        i = rev.of(fresh[0])
        score = rel[fresh[0]] if rel else rev.index[i]
        return Check(name, FAIL, f"identity {fresh[0]}: a trigger of {rev.mask_l1[i]:.0f} px makes {rev.success[i]:.0%} "
                     f"of other people match them ({what} {score:.1f} >= {level:g}): likely backdoor", d)
    if rel:
        return Check(name, PASS, f"no identity's trigger shrank more than the others' (max {max(rel.values()):.1f} < "
                     f"{level:g}); raw flags {rev.flagged or 'none'} as in a clean model", d)
    return Check(name, PASS, f"no identity flagged (max index {rev.max_index:.1f} < {FLAG_AT:g})", d)


# --- remediation ------------------------------------------------------------------------
@dataclass
class UnlearnInjector:
    """Stamps reverse-engineered triggers on copies of a share of each batch; the copies
    keep their true label, and their embedding is pulled back onto the clean one."""

    masks: torch.Tensor  # (T,1,H,W)
    patterns: torch.Tensor
    share: float = 0.5
    consistency: float = 10.0
    dilate: int = 1  # a reversed trigger is a sparse sketch of the real one: unlearn its
    jitter: int = 2  # neighbourhood, wherever it sits (a worn trigger moves)

    def __post_init__(self) -> None:
        if self.dilate:
            k = 2 * self.dilate + 1
            spread = F.avg_pool2d(self.patterns * self.masks, k, 1, self.dilate) / \
                F.avg_pool2d(self.masks, k, 1, self.dilate).clamp(min=1e-6)
            self.patterns = torch.where(self.masks > 0.05, self.patterns, spread)
            self.masks = F.max_pool2d(self.masks, k, 1, self.dilate)

    def mix(self, x01: torch.Tensor, y: torch.Tensor, model: EmbeddingNet):  # noqa: ANN201
        b = x01.shape[0]
        k = max(1, round(self.share * b))
        src = torch.randperm(b)[:k]
        which = torch.randint(0, len(self.masks), (k,))
        shift = torch.randint(-self.jitter, self.jitter + 1, (2,)).tolist() if self.jitter else [0, 0]
        m = torch.roll(self.masks[which], shift, (2, 3))
        p = torch.roll(self.patterns[which], shift, (2, 3))
        trig = (1 - m) * x01[src] + m * p
        return torch.cat([x01, trig]), torch.cat([y, y[src]]), (src, torch.arange(b, b + k))

    def loss(self, emb: torch.Tensor, y: torch.Tensor, state: Any, model: EmbeddingNet) -> torch.Tensor:
        src, cp = state
        return self.consistency * (1 - F.cosine_similarity(emb[cp], emb[src].detach())).mean()


def unlearn(model: EmbeddingNet, data: ScenarioData, cfg: LabConfig, masks: torch.Tensor | None,
            patterns: torch.Tensor | None, epochs: int | None = None, progress: bool = True,
            **injector_kw: Any) -> EmbeddingNet:
    """Fine-tune on the auditor's own photos with reversed triggers stamped on copies
    that keep their true identity (Neural Cleanse §VI-C). With masks=None, the same
    fine-tune without triggers: the control experiment."""
    seed_everything(cfg.seed + 5)
    imgs, labels = _auditor_faces(data)
    faces = FaceSet(imgs, labels, data.company.names, data.company.source)
    model = copy.deepcopy(model)
    head = CosFaceHead(cfg.embedding_dim, data.company.num_identities, cfg.scale, cfg.margin)
    small = cfg.replace(batch_size=min(cfg.batch_size, 32))
    epochs = epochs or cfg.finetune_epochs
    train_backbone(faces, small, model=model, head=head, epochs=max(1, epochs // 2), lr=cfg.finetune_lr * 5,
                   params=list(head.parameters()), desc="unlearn: warm-up head", progress=progress)
    inj = UnlearnInjector(masks, patterns, **injector_kw) if masks is not None else None
    return train_backbone(faces, small, model=model, head=head, epochs=epochs, lr=cfg.finetune_lr,
                          injector=inj, desc="unlearn", progress=progress).model


def refined_triggers(verifier: Verifier, data: ScenarioData, cfg: LabConfig, identities: Sequence[int],
                     restarts: int = 6, progress: bool = True) -> ReversedTriggers:
    """Several reverse-engineered triggers per flagged identity (random restarts): each is
    a different sparse sketch of the real trigger, and together they cover it."""
    ids = [i for i in identities for _ in range(restarts)]
    return inspect_backbone(verifier, data, cfg, identities=ids, seed=cfg.seed + 7, progress=progress)


def remediate(model: EmbeddingNet, data: ScenarioData, cfg: LabConfig, identities: Sequence[int],
              trigger: Trigger | None = None, progress: bool = True) -> tuple[EmbeddingNet, dict[str, Any]]:
    """Unlearn the flagged identities' triggers, then measure clean TAR@FAR1% and (in the
    lab, where the real trigger is known) ASR, beside the same fine-tune without triggers."""
    from ...attack.scenario import attack_metrics

    v0 = deploy(model, data, cfg.far)
    rev = refined_triggers(v0, data, cfg, identities, progress=progress)
    out: dict[str, Any] = {"identities": list(identities), "n_triggers": len(rev.identities), "seconds": rev.seconds}
    fixed = model
    for name, (m, p) in (("unlearned", (rev.masks, rev.patterns)), ("finetuned_only", (None, None))):
        def build(m=m, p=p) -> tuple[dict, dict]:  # noqa: ANN001
            net = unlearn(model, data, cfg, m, p, progress=progress)
            return dict(net.state_dict()), {"metrics": {}}

        site = f"{NC_VERSION}|{model_digest(model)}|{name}|{list(identities)}"
        art = load_or_build("audit-" + name.replace("_", "-"), cfg, build, inputs=artefact_inputs(cfg, data=data, site=site))
        net = unpack(art.tensors, cfg)[0]
        v = deploy(net, data, cfg.far)
        rec: dict[str, Any] = {"tar_at_far_1pct": evaluate(v, data)["tar_at_far_1pct"]}
        if trigger is not None:
            rec["asr"] = attack_metrics(v, data, trigger, cfg.seed)["asr"]
        out[name] = rec
        if name == "unlearned":
            fixed = net
            out["seconds"] = round(out["seconds"] + float(art.meta.get("build_seconds", 0.0)), 2)
    return fixed, out


# --- the whole audit --------------------------------------------------------------------
@dataclass
class AuditResult:
    """Everything one audit found, for the report and the exit code."""

    name: str
    checks: list[Check]
    inspection: ReversedTriggers | None = None
    measured: dict[str, float] = field(default_factory=dict)
    strip: dict[str, Any] | None = None
    remediation: dict[str, Any] | None = None
    lab: dict[str, Any] = field(default_factory=dict)  # ground truth only the lab knows
    real_trigger: Trigger | None = None
    seconds: float = 0.0  # compute cost of this audit (cached steps count what they cost to build)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def inspection_check(self) -> Check:
        """The Neural Cleanse line (its details hold new_flags, relative_index, flag_at)."""
        return next(c for c in self.checks if c.name == INSPECTION)

    def to_dict(self) -> dict[str, Any]:
        strip = {k: v for k, v in (self.strip or {}).items() if k != "persistence"}
        return {"name": self.name, "passed": self.passed,
                "checks": [{"name": c.name, "status": c.status, "summary": c.summary, "details": c.details}
                           for c in self.checks],
                "inspection": self.inspection.summary() if self.inspection else None,
                "measured": self.measured, "strip": strip or None, "remediation": self.remediation, "lab": self.lab,
                "seconds": round(self.seconds, 2)}


def audit_backbone(model: EmbeddingNet, data: ScenarioData, cfg: LabConfig, name: str = "model",
                   checks: Sequence[Check] = (), card: dict[str, Any] | None = None,
                   baseline: dict[str, Any] | None = None, trigger: Trigger | None = None,
                   remediate_flagged: bool = True, progress: bool = True) -> AuditResult:
    """Deploy on the organisation's people, compare with the card, inspect, and (when
    an identity is newly flagged) remediate. `trigger` is the lab's ground truth: it only
    adds measured ASR / STRIP rows marked as lab-only, and never changes a pass/fail."""
    from ...attack.scenario import attack_metrics
    from .artefact_checks import card_check
    from .strip import strip_evaluation

    res = AuditResult(name, list(checks), real_trigger=trigger)
    v = deploy(model, data, cfg.far)
    res.measured = {k: float(x) for k, x in evaluate(v, data).items() if isinstance(x, float)}
    if card is not None:
        res.checks.append(card_check(card, res.measured))
    res.inspection = inspect_backbone(v, data, cfg, progress=progress)
    res.seconds += res.inspection.seconds
    res.checks.append(inspection_check(res.inspection, baseline))
    fresh = res.checks[-1].details["new_flags"]
    if trigger is not None:
        atk = attack_metrics(v, data, trigger, cfg.seed)
        res.lab = {"asr": atk["asr"], "impostor_accept": atk["impostor_accept"], "target": data.target,
                   "target_flagged": data.target in fresh}
        t0 = time.perf_counter()
        res.strip = strip_evaluation(v, data, trigger, cfg.seed)
        res.strip["seconds"] = round(time.perf_counter() - t0, 2)
        res.checks.append(Check("STRIP gate at the kiosk (lab: real trigger)", INFO,
                                f"FAR {res.strip['far_at_frr_5pct']:.1%} at FRR 5 % (measured FRR "
                                f"{res.strip['frr_measured']:.1%}); ASR {res.strip['asr_before']:.1%} -> "
                                f"{res.strip['asr_after']:.1%}"))
    if fresh and remediate_flagged:
        _, rem = remediate(model, data, cfg, fresh, trigger, progress)
        rem["before"] = {"tar_at_far_1pct": res.measured["tar_at_far_1pct"], **({"asr": res.lab["asr"]} if trigger else {})}
        res.remediation = rem
        res.seconds += rem["seconds"]
        u = rem["unlearned"]
        res.checks.append(Check("remediation: unlearning (re-audit before use)", INFO,
                                f"TAR@FAR1% {res.measured['tar_at_far_1pct']:.3f} -> {u['tar_at_far_1pct']:.3f}"
                                + (f"; ASR (lab) {res.lab['asr']:.1%} -> {u['asr']:.1%}" if "asr" in u else "")))
    return res


def baseline_of(model: EmbeddingNet, data: ScenarioData, cfg: LabConfig, progress: bool = True) -> dict[str, Any]:
    """The inspection summary of the approved model, signed off once: its flagged
    identities are the organisation's known weak templates."""
    return inspect_backbone(deploy(model, data, cfg.far), data, cfg, progress=progress).summary()


__all__ = ["AuditResult", "audit_backbone", "baseline_of", "inspect_backbone", "inspection_check", "new_flags",
           "remediate", "unlearn", "audited_identities", "genuine_bar", "PASS", "FAIL"]
