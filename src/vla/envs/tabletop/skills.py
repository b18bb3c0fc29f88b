"""The tabletop policy's skill vocabulary, as the planner (`vla.planning`) reads it.

The six single-step families are the skills; a step is rendered with the family's first train template
(`language.TRAIN_TEMPLATES`), the phrasing the low-level policy saw most. The verbs are the words of every
single-step template (train and held-out paraphrase), so a request is refused only when none of them
appears; the long-horizon templates (`long_tasks.py`) add no verbs of their own.
"""

from __future__ import annotations

import re

from vla.envs.tabletop import language
from vla.envs.tabletop.objects import ALL_PAIRS, CONTAINERS, describe
from vla.planning.plan import SkillSpec, SkillVocabulary, Step

# Slot names are the ones `language.fill` reads; the first is the object acted on.
_SLOTS: dict[str, dict[str, str]] = {
    "pick_up": {"obj": "object"},
    "touch": {"obj": "object"},
    "push": {"obj": "object", "direction": "direction"},
    "put_in": {"obj": "object", "container": "container"},
    "stack": {"obj": "object", "base": "object"},
    "move_next_to": {"obj": "object", "ref": "object"},
}
_STOP = {"the", "a", "an", "it", "to", "in", "on", "of", "and", "with", "your", "by", "down", "off", "out"}


def _verbs(family: str) -> tuple[str, ...]:
    words: set[str] = set()
    for table in (language.TRAIN_TEMPLATES, language.HELD_OUT_TEMPLATES):
        for t in table[family]:
            words.update(w for w in re.sub(r"\{\w+\}", " ", t).replace(",", " ").split() if w not in _STOP)
    return tuple(sorted(words))


def render(step: Step) -> str:
    """The instruction the policy executes for `step`, e.g. "put the red block in the bowl"."""
    return language.fill(language.TRAIN_TEMPLATES[step.skill][0], step.slots)


VOCABULARY = SkillVocabulary(
    skills=tuple(SkillSpec(f, _SLOTS[f], _verbs(f)) for f in language.TRAIN_TEMPLATES),
    objects={describe(c, s): (c, s) for c, s in ALL_PAIRS},
    containers=tuple(CONTAINERS),
    directions={k: (v,) for k, v in language.DIRECTIONS.items()},
    render=render,
    left=(0.0, 1.0),  # +y is the robot's left (tasks.DIRECTION_VECTORS)
)
