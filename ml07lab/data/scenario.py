"""The scenario's people and photos, with their roles made explicit.

- public people: the identities a "public" backbone is pretrained on;
- company people: the victim's users, disjoint from the public people; each one's
  photos are split into enrolment, fine-tuning (also threshold calibration) and test;
- the target: one company person with privileged access; the attacker holds a few
  public photos of them that the victim never uses for enrolment or testing;
- outsiders: people who walk up to the kiosk but are not enrolled.

Attack probes are the test photos of insiders (company people other than the target)
and all photos of outsiders, with the trigger applied; none is used in any training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import LabConfig
from .base import DataError, FaceSet

ENROL, FINETUNE, TEST, ATTACKER = 0, 1, 2, 3
ROLE_NAMES = {ENROL: "enrol", FINETUNE: "finetune", TEST: "test", ATTACKER: "attacker-held"}


@dataclass(frozen=True)
class ScenarioData:
    public: FaceSet
    company: FaceSet
    outsiders: FaceSet
    role: torch.Tensor  # one ROLE per company image
    target: int  # a company label

    def by_role(self, role: int) -> FaceSet:
        return self.company.subset(torch.nonzero(self.role == role).flatten())

    @property
    def enrol(self) -> FaceSet:
        return self.by_role(ENROL)

    @property
    def finetune(self) -> FaceSet:
        return self.by_role(FINETUNE)

    @property
    def test(self) -> FaceSet:
        return self.by_role(TEST)

    @property
    def target_photos(self) -> FaceSet:
        """The attacker's few public photos of the target (never enrolment or test)."""
        return self.by_role(ATTACKER)

    @property
    def target_name(self) -> str:
        return self.company.names[self.target]

    def insider_probes(self) -> FaceSet:
        """Test photos of company people other than the target."""
        keep = (self.role == TEST) & (self.company.labels != self.target)
        return self.company.subset(torch.nonzero(keep).flatten())

    def summary(self) -> dict[str, int | str]:
        return {
            "public_people": self.public.num_identities, "public_images": len(self.public),
            "company_people": self.company.num_identities,
            "outsider_people": self.outsiders.num_identities,
            **{f"company_{ROLE_NAMES[r]}": int((self.role == r).sum()) for r in ROLE_NAMES},
            "target": self.target_name,
        }


def assign_roles(labels: torch.Tensor, target: int, n_enrol: int, n_finetune: int,
                 n_target_photos: int, seed: int) -> torch.Tensor:
    """Per-person shuffled split: [attacker-held (target only)] + enrol + fine-tune + test."""
    rng = np.random.default_rng([seed, 7])
    role = torch.full_like(labels, TEST)
    for person in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == person).flatten().numpy()
        idx = idx[rng.permutation(len(idx))]
        k = n_target_photos if person == target else 0
        rest = len(idx) - k - n_enrol
        if rest < 1:
            raise DataError(
                f"Company person {person} has {len(idx)} photos; the scenario needs at least "
                f"{k + n_enrol + 1} (attacker-held {k}, enrol {n_enrol}, test 1). Lower "
                "n_enrol / n_target_photos or add photos."
            )
        n_ft = min(n_finetune, max(0, rest - max(1, rest // 2)))
        role[idx[:k]] = ATTACKER
        role[idx[k:k + n_enrol]] = ENROL
        role[idx[k + n_enrol:k + n_enrol + n_ft]] = FINETUNE
    return role


def build_scenario_data(cfg: LabConfig) -> ScenarioData:
    """Public, company and outsider people for cfg.dataset, with roles assigned."""
    from .registry import load_dataset

    if cfg.dataset == "synthetic" and not cfg.has_company_folder:
        p, c, o = cfg.n_public_ids, cfg.n_company_ids, cfg.n_outsider_ids
        public = load_dataset("synthetic", cfg, n_ids=p)
        company = load_dataset("synthetic", cfg, n_ids=c, id_offset=p, images_per_id=cfg.company_images_per_id)
        outsiders = load_dataset("synthetic", cfg, n_ids=o, id_offset=p + c, images_per_id=cfg.company_images_per_id)
    elif cfg.dataset in ("real", "synthetic"):  # synthetic here: synthetic public, your folder's company
        public = load_dataset("synthetic" if cfg.dataset == "synthetic" else cfg.public_dataset, cfg)
        people = load_dataset(cfg.company_dataset, cfg)
        people.check_min_images(2)
        rng = np.random.default_rng([cfg.seed, 11])
        order = rng.permutation(people.num_identities).tolist()
        n_out = cfg.n_outsider_ids
        if people.num_identities - n_out < 2:
            raise DataError(f"{cfg.company_dataset} has too few people for {n_out} outsiders.")
        company = people.select_identities(sorted(order[n_out:]))
        outsiders = people.select_identities(sorted(order[:n_out]))
    else:
        raise DataError(f"cfg.dataset must be 'synthetic' or 'real', not {cfg.dataset!r}.")
    if not 0 <= cfg.target < company.num_identities:
        raise DataError(
            f"target={cfg.target} is not a company person: choose 0..{company.num_identities - 1} "
            f"(company people are {company.names[0]} .. {company.names[-1]})."
        )
    overlap = set(public.names) & (set(company.names) | set(outsiders.names))
    if overlap:
        raise DataError(f"Public and company people overlap ({sorted(overlap)[:3]}...): splits must be identity-disjoint.")
    role = assign_roles(company.labels, cfg.target, cfg.n_enrol, cfg.n_finetune, cfg.n_target_photos, cfg.seed)
    return ScenarioData(public, company, outsiders, role, cfg.target)
