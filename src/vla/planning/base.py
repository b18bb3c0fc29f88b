"""The planner interface and what every backend shares: re-planning from what is done already.

`Planner.plan(instruction, scene, done=...)` returns the steps still to run. On the first call `done` is
empty; when the executor re-plans after a failed step it passes the steps that succeeded, and the
planner plans the rest from the scene as it is now.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol, runtime_checkable

from vla.planning.plan import Plan, PlanError, SceneDescription, SkillVocabulary, Step, validate_plan


@runtime_checkable
class Planner(Protocol):
    """Turns a request into a valid plan of the policy's skills (or raises PlanError)."""

    name: str
    vocab: SkillVocabulary

    def plan(self, instruction: str, scene: SceneDescription, *, done: Plan = ()) -> Plan: ...


def satisfied(step: Step, vocab: SkillVocabulary, scene: SceneDescription) -> bool:
    """Whether the scene description shows the step done already: its object is in its container."""
    spec = vocab.skill(step.skill)
    slots = step.slots
    containers = [slots[s] for s, k in spec.slots.items() if k == "container"]
    first = next(iter(spec.slots))
    return bool(containers) and slots[first] in scene.contents.get(containers[0], ())


def remaining(full: Plan, done: Plan, vocab: SkillVocabulary, scene: SceneDescription) -> Plan:
    """`full` less the steps in `done` (as a multiset) and those the scene shows done already.

    Raises:
        PlanError: if nothing remains (the request is done, or cannot be continued).
    """
    left = Counter(done)
    out = []
    for step in full:
        if left[step] > 0:
            left[step] -= 1
            continue
        if done and satisfied(step, vocab, scene):
            continue
        out.append(step)
    if not out:
        raise PlanError("nothing is left to do: every step of the request is done")
    return validate_plan(tuple(out), vocab, scene)
