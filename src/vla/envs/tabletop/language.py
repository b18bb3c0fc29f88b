"""Instruction templates of the tabletop families, and paraphrasing for language augmentation.

Each family has five `train` templates and three held-out templates used only by the `paraphrase`
split. Slots:
    {obj}, {base}, {ref}   an object: "<colour> <shape>", e.g. "red block"
    {container}            "bowl" | "plate" | "tray"
    {dest}                 the container with its natural preposition: "in the bowl", "on the plate"
    {dir}                  "to the left" | "to the right" | "forward" | "backward" (robot's point of view)
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from vla.envs.tabletop.objects import COLOURS, CONTAINERS, SHAPES

TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_up": (
        "pick up the {obj}",
        "lift the {obj}",
        "grab the {obj} and lift it",
        "raise the {obj} off the table",
        "take the {obj} and hold it up",
    ),
    "put_in": (
        "put the {obj} {dest}",
        "place the {obj} {dest}",
        "drop the {obj} {dest}",
        "move the {obj} over to the {container}",
        "set the {obj} down {dest}",
    ),
    "push": (
        "push the {obj} {dir}",
        "slide the {obj} {dir}",
        "nudge the {obj} {dir}",
        "shove the {obj} {dir}",
        "move the {obj} {dir} by pushing it",
    ),
    "stack": (
        "stack the {obj} on the {base}",
        "put the {obj} on top of the {base}",
        "place the {obj} on the {base}",
        "set the {obj} onto the {base}",
        "stack the {obj} on top of the {base}",
    ),
    "touch": (
        "touch the {obj}",
        "tap the {obj} with the gripper",
        "poke the {obj}",
        "reach out and touch the {obj}",
        "touch the {obj} with your fingers",
    ),
    "move_next_to": (
        "move the {obj} next to the {ref}",
        "put the {obj} next to the {ref}",
        "place the {obj} beside the {ref}",
        "bring the {obj} close to the {ref}",
        "set the {obj} down by the {ref}",
    ),
}

HELD_OUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_up": ("hoist the {obj}", "get the {obj} up in the air", "pick the {obj} up"),
    "put_in": (
        "transfer the {obj} to the {container}",
        "load the {obj} into the {container}",
        "the {obj} goes {dest}",
    ),
    "push": (
        "give the {obj} a push {dir}",
        "use the gripper to push the {obj} {dir}",
        "without lifting it, move the {obj} {dir}",
    ),
    "stack": (
        "build a tower with the {obj} on the {base}",
        "the {obj} goes on top of the {base}",
        "rest the {obj} on the {base}",
    ),
    "touch": ("make contact with the {obj}", "put the gripper on the {obj}", "go and touch the {obj}"),
    "move_next_to": (
        "put the {obj} near the {ref}",
        "the {obj} should end up beside the {ref}",
        "position the {obj} alongside the {ref}",
    ),
}

DIRECTIONS: dict[str, str] = {
    "left": "to the left",
    "right": "to the right",
    "forward": "forward",
    "backward": "backward",
}
_PREPOSITION = {"bowl": "in", "plate": "on", "tray": "in"}
_OBJ = rf"(?:{'|'.join(COLOURS)}) (?:{'|'.join(SHAPES)})"
_SLOT_PATTERNS = {
    "obj": _OBJ,
    "base": _OBJ,
    "ref": _OBJ,
    "container": "|".join(CONTAINERS),
    "dest": "|".join(f"{p} the {c}" for c, p in _PREPOSITION.items()),
    "dir": "|".join(DIRECTIONS.values()),
}


def fill(template: str, slots: dict[str, str]) -> str:
    """Returns `template` with its slots filled.

    Args:
        template: e.g. "put the {obj} {dest}".
        slots: semantic slot values: obj/base/ref ("red block"), container ("bowl"), direction ("left").
            `dest` and `dir` are derived from `container` and `direction`.
    """
    values = dict(slots)
    if "container" in values:
        values["dest"] = f"{_PREPOSITION[values['container']]} the {values['container']}"
    if "direction" in values:
        values["dir"] = DIRECTIONS[values["direction"]]
    return template.format(**values)


def templates(family: str, *, held_out: bool) -> tuple[str, ...]:
    """Returns the train (or held-out paraphrase) templates of a family."""
    table = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    if family not in table:
        raise KeyError(f"unknown tabletop family '{family}'; known: {sorted(table)}")
    return table[family]


@cache
def _compiled() -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for table in (TRAIN_TEMPLATES, HELD_OUT_TEMPLATES):
        for family, temps in table.items():
            for t in temps:
                pattern = re.escape(t)
                for slot, alt in _SLOT_PATTERNS.items():
                    pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{alt})")
                out.append((family, re.compile(f"^{pattern}$")))
    return out


def parse(instruction: str) -> tuple[str, dict[str, str]]:
    """Recovers (family, slots) from an instruction any tabletop template produced.

    Raises:
        ValueError: if no template matches.
    """
    text = " ".join(instruction.strip().lower().split())
    for family, pattern in _compiled():
        match = pattern.match(text)
        if match is None:
            continue
        slots = {k: v for k, v in match.groupdict().items() if v is not None}
        if "dest" in slots:
            slots["container"] = slots.pop("dest").split()[-1]
        if "dir" in slots:
            phrase = slots.pop("dir")
            slots["direction"] = next(k for k, v in DIRECTIONS.items() if v == phrase)
        return family, slots
    raise ValueError(
        f"'{instruction}' is not a tabletop instruction; expected one produced by a template such as "
        f"'{TRAIN_TEMPLATES['pick_up'][0].format(obj='red block')}'"
    )


def paraphrase(instruction: str, rng: np.random.Generator) -> str:
    """Returns a random train-split paraphrase with the same meaning as `instruction`.

    Used for language augmentation: it never returns a held-out (`paraphrase` split) template, so
    augmented training data does not leak the paraphrase test.

    Args:
        instruction: a tabletop instruction (any split's template).
        rng: the random generator to draw the template from.

    Raises:
        ValueError: if the instruction is not a tabletop instruction.
    """
    family, slots = parse(instruction)
    choices = TRAIN_TEMPLATES[family]
    return fill(choices[int(rng.integers(len(choices)))], slots)
