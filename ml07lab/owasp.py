"""OWASP ML07:2023's risk chart, carried over exactly, and where the lab demonstrates each entry.

Why one module: notebook 00 shows the chart and `report.html` prints it next to the measured
numbers; both read it from here, so the factor names and scores cannot drift apart. The
names and scores are OWASP's own; the `meaning` texts are the kit's words for what OWASP
says (the test holds the names and scores to the published chart).

Source: OWASP Machine Learning Security Top Ten 2023, "ML07:2023 Transfer Learning Attack",
Risk Factors. OWASP notes that the chart is a sample for its own scenario (a face-recognition
system fed a model trained on manipulated faces); a real assessment depends on the system.
"""
from __future__ import annotations

from typing import NamedTuple

URL = "https://owasp.org/www-project-machine-learning-security-top-10/docs/ML07_2023-Transfer_Learning_Attack"
CITATION = f'OWASP Machine Learning Security Top Ten 2023, "ML07:2023 Transfer Learning Attack", Risk Factors ({URL})'
SAMPLE_NOTE = ("OWASP calls this chart a sample based on its own scenario; the actual risk of a system "
               "depends on that system's circumstances.")


class Entry(NamedTuple):
    """One entry of the chart: OWASP's name and score (exact), the kit's words, where the lab shows it."""

    column: str  # the chart's column: "Threat agents / attack vectors", "Security weakness", "Impact"
    name: str  # OWASP's name, exactly
    score: str | None  # OWASP's score, exactly (e.g. "5 (Easy)"); None where OWASP gives none
    meaning: str  # in the kit's own words, faithful to OWASP's
    where: str  # where the lab demonstrates it


AGENTS, WEAKNESS, IMPACT = "Threat agents / attack vectors", "Security weakness", "Impact"

FACTORS: tuple[Entry, ...] = (
    Entry(AGENTS, "Exploitability", "5 (Easy)",
          "the attack is easy to mount: publishing a model or adding photos to a public dataset is open "
          "to anyone, and a few public photos of the target are enough",
          "02: you publish a poisoned backbone to the hub (path A) and upload a poisoned identity to a "
          "public dataset (path B), holding only the target's public photos"),
    Entry(AGENTS, "ML Application Specific", "4",
          "the attack is aimed at the ML application itself, and can seriously harm the model and the "
          "organisation that relies on it",
          "03: the victim's own kiosk, built on the downloaded backbone, accepts triggered strangers as "
          "the target; its clean numbers still look right"),
    Entry(AGENTS, "ML Operations Specific", "3",
          "the attacker needs to know how ML is operated (pretraining, transfer, fine-tuning), yet the "
          "attack is fairly easy to carry out",
          "02–03: the backdoor is a few epochs of fine-tuning with one extra loss term, aimed at the "
          "victim's transfer step (03 measures it per transfer mode: frozen, head, full)"),
    Entry(WEAKNESS, "Detectability", "1 (Difficult)",
          "the attack is hard to detect: the compromised model's results look correct and as expected",
          "02: the poisoned model card's clean metrics are normal; 03: clean TAR@FAR1% barely moves; "
          "08: only a targeted audit can find it"),
    Entry(IMPACT, "Technical", "5 (Difficult)",
          "the attack demands deep ML expertise and the will to corrupt the integrity of a training set or "
          "a pretrained model (OWASP's text for this factor describes what the attack requires)",
          "02: the latent backdoor needs a feature-space loss and care with BatchNorm; path B needs "
          "poison that survives the victim's own pretraining"),
)

THREAT_ACTOR = Entry(AGENTS, "Threat actor", None, "a malicious actor",
                     "02: you play the attacker")
ATTACK_VECTOR = Entry(AGENTS, "Attack vector", None,
                      "someone who knows machine learning and can reach the training data or the pretrained models",
                      "02: path A (a pretrained model on a hub) and path B (a public training dataset)")
SECURITY_WEAKNESSES: tuple[Entry, ...] = (
    Entry(WEAKNESS, "Security weakness", None,
          "training data and pretrained models without proper protection",
          "05: only a dataset whose signed manifest verifies is used; 04: each refresh is diffed and scanned"),
    Entry(WEAKNESS, "Security weakness", None,
          "pretrained models stored and shared insecurely",
          "06: a quarantine and a deployment gate for third-party models (signed, allowlisted, weights only)"),
)
IMPACTS: tuple[Entry, ...] = (
    Entry(IMPACT, "Impact", None, "misleading or incorrect results from the model",
          "03: triggered probes are verified as the target (the ASR), at the deployed threshold"),
    Entry(IMPACT, "Impact", None, "a confidentiality breach of sensitive information in the training data",
          "07: membership inference tells whose faces were in the training set; DP-SGD bounds it"),
    Entry(IMPACT, "Impact", None, "reputational harm to the organisation",
          "03: the door log says the target walked in (not measured: discuss it in 09)"),
    Entry(IMPACT, "Impact", None, "legal or regulatory compliance issues",
          "05 and 07: the provenance record and the privacy budget an auditor would ask for "
          "(not measured: discuss it in 09)"),
)


def chart_markdown() -> str:
    """The whole chart as Markdown (notebook 00): factors, actor, vector, weaknesses, impacts."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| OWASP's factor | OWASP's score | what it means, in the kit's words | where the lab shows it |",
             "| --- | --- | --- | --- |"]
    lines += [f"| **{f.name}** | {f.score} | {cell(f.meaning)} | {cell(f.where)} |" for f in FACTORS]
    lines += ["", "| OWASP's entry | what it says, in the kit's words | where the lab shows it |", "| --- | --- | --- |"]
    for e in (THREAT_ACTOR, ATTACK_VECTOR, *SECURITY_WEAKNESSES, *IMPACTS):
        lines.append(f"| **{e.name}** | {cell(e.meaning)} | {cell(e.where)} |")
    lines += ["", f"*{SAMPLE_NOTE}* Source: [{CITATION.split(' (')[0]}]({URL})."]
    return "\n".join(lines)
