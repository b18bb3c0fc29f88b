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


def _words(family: str, tables: tuple[dict[str, tuple[str, ...]], ...]) -> set[str]:
    words: set[str] = set()
    for table in tables:
        for t in table[family]:
            words.update(w for w in re.sub(r"\{\w+\}", " ", t).replace(",", " ").split() if w not in _STOP)
    return words


def _verbs(family: str) -> tuple[str, ...]:
    return tuple(sorted(_words(family, (language.TRAIN_TEMPLATES, language.HELD_OUT_TEMPLATES))))


def _cues(family: str) -> tuple[str, ...]:
    """Words of the family's train templates found in no other family's (held-out ones are not used)."""
    train = (language.TRAIN_TEMPLATES,)
    others = set().union(*(_words(f, train) for f in language.TRAIN_TEMPLATES if f != family))
    return tuple(sorted(_words(family, train) - others))


def render(step: Step) -> str:
    """The instruction the policy executes for `step`, e.g. "put the red block in the bowl"."""
    return language.fill(language.TRAIN_TEMPLATES[step.skill][0], step.slots)


# Few-shot examples for planners: train templates of each family with fixed objects (none of the
# long-horizon templates, none of the held-out paraphrases).
_EXAMPLE_SLOTS = {
    "obj": "green cylinder",
    "base": "yellow block",
    "ref": "purple ball",
    "container": "tray",
    "direction": "backward",
}
_EXAMPLE_TEMPLATES = {
    "pick_up": (1, 3),
    "touch": (1, 2),
    "stack": (1, 3),
    "move_next_to": (2, 3),
    "push": (1,),
    "put_in": (1,),
}


def _examples() -> tuple[tuple[str, Step], ...]:
    out = []
    for family, picks in _EXAMPLE_TEMPLATES.items():
        slots = {k: _EXAMPLE_SLOTS[k] for k in _SLOTS[family]}
        for i in picks:
            out.append((language.fill(language.TRAIN_TEMPLATES[family][i], slots), Step.of(family, **slots)))
    return tuple(out)


VOCABULARY = SkillVocabulary(
    skills=tuple(SkillSpec(f, _SLOTS[f], _verbs(f), _cues(f)) for f in language.TRAIN_TEMPLATES),
    objects={describe(c, s): (c, s) for c, s in ALL_PAIRS},
    containers=tuple(CONTAINERS),
    directions={k: (v,) for k, v in language.DIRECTIONS.items()},
    render=render,
    left=(0.0, 1.0),  # +y is the robot's left (tasks.DIRECTION_VECTORS)
    examples=_examples(),
)
