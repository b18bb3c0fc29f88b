"""Instruction templates of the humanoid tabletop families, and paraphrasing for language augmentation.

The pattern of `vla.envs.tabletop.language`: per family, train templates and held-out templates that
only the `paraphrase` split uses. `pick_up` and `touch` have templates that name the hand and
templates that leave it to the robot; a paraphrase keeps that choice. Slots:
    {obj}      an object: "<colour> <shape>", e.g. "red block"
    {hand}     "left" | "right" (the robot's own left and right)
    {colour}   the box's colour in `lift_box`
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from vla.envs.tabletop.humanoid.objects import COLOURS, SHAPES

TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_up": (
        "pick up the {obj}",
        "lift the {obj}",
        "grab the {obj} and lift it",
        "raise the {obj} off the table",
        "take the {obj} and hold it up",
        "pick up the {obj} with your {hand} hand",
        "use your {hand} hand to lift the {obj}",
        "with your {hand} hand, pick up the {obj}",
        "grab the {obj} in your {hand} hand and lift it",
        "lift the {obj} using the {hand} hand",
    ),
    "touch": (
        "touch the {obj}",
        "tap the {obj} with your hand",
        "poke the {obj}",
        "reach out and touch the {obj}",
        "put your hand on the {obj}",
        "touch the {obj} with your {hand} hand",
        "use your {hand} hand to touch the {obj}",
        "with your {hand} hand, tap the {obj}",
        "reach out with the {hand} hand and touch the {obj}",
        "poke the {obj} with your {hand} hand",
    ),
    "lift_box": (
        "lift the {colour} box with both hands",
        "pick up the {colour} box using both hands",
        "raise the {colour} box with two hands",
        "hold the {colour} box between your hands and lift it",
        "lift up the {colour} box",
    ),
}

HELD_OUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_up": (
        "hoist the {obj}",
        "get the {obj} up in the air",
        "hoist the {obj} with the {hand} hand",
        "your {hand} hand should pick the {obj} up",
    ),
    "touch": (
        "make contact with the {obj}",
        "go and touch the {obj}",
        "make contact with the {obj} using your {hand} hand",
        "your {hand} hand should touch the {obj}",
    ),
    "lift_box": (
        "use both arms to lift the {colour} box",
        "get the {colour} box off the table with both hands",
        "hoist the {colour} box two-handed",
    ),
}

HANDS = ("left", "right")
_SLOT_PATTERNS = {
    "obj": rf"(?:{'|'.join(COLOURS)}) (?:{'|'.join(SHAPES)})",
    "hand": "|".join(HANDS),
    "colour": "|".join(COLOURS),
}


def names_hand(template: str) -> bool:
    """Whether `template` names the hand to use."""
    return "{hand}" in template


def templates(family: str, *, held_out: bool, hand: bool) -> tuple[str, ...]:
    """Returns the train (or held-out) templates of `family` that name the hand (`hand`) or do not.

    `lift_box` has only templates without a hand (both hands lift); `hand=True` is an error there.
    """
    table = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    if family not in table:
        raise KeyError(f"unknown humanoid tabletop family '{family}'; known: {sorted(table)}")
    chosen = tuple(t for t in table[family] if names_hand(t) == hand)
    if not chosen:
        raise ValueError(f"humanoid family '{family}' has no templates with hand={hand}")
    return chosen


def fill(template: str, slots: dict[str, str]) -> str:
    """Returns `template` with its slots ({obj}, {hand}, {colour}) filled from `slots`."""
    return template.format(**slots)


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
    """Recovers (family, slots) from an instruction any humanoid template produced.

    Raises:
        ValueError: if no template matches.
    """
    text = " ".join(instruction.strip().lower().split())
    for family, pattern in _compiled():
        match = pattern.match(text)
        if match is not None:
            return family, {k: v for k, v in match.groupdict().items() if v is not None}
    raise ValueError(
        f"'{instruction}' is not a humanoid tabletop instruction; expected one such as "
        f"'{TRAIN_TEMPLATES['pick_up'][0].format(obj='red block')}'"
    )


def paraphrase(instruction: str, rng: np.random.Generator) -> str:
    """Returns a random train-template paraphrase of `instruction` (same family, objects and hand).

    Never a held-out template, so language augmentation does not leak the `paraphrase` split.

    Raises:
        ValueError: if the instruction is not a humanoid tabletop instruction.
    """
    family, slots = parse(instruction)
    choices = templates(family, held_out=False, hand="hand" in slots)
    return fill(choices[int(rng.integers(len(choices)))], slots)
