"""The `ungroundable` split: instructions no skill can carry out in the scene, where holding still is right.

Each episode lays out a `train` scene of its family, then replaces the instruction by one of four kinds
(drawn from the episode seed):

| kind | example | what is wrong |
|---|---|---|
| `absent_object` | "pick up the green ball" (no green ball on the table) | names a known object that is not there |
| `unknown_verb` | "juggle the red block" | asks for a skill the suite has none of |
| `unknown_object` | "touch the banana" | names a thing the suite has never had |
| `garbled` | "xqv blorp zut", "1234", "the the the" | not an instruction at all |

The verbs and nouns here are an evaluation list: nothing in vla trains on them.

Success ("correctly held") is judged over a fixed window of `HOLD_STEPS` instead of the family's time
limit, and latched: for the whole window no object may move more than `MOVED` or be touched by the hand,
and the TCP must stay within `HOLD_RADIUS` of where it started. A policy that reaches for any object
therefore fails even if it stops short of touching it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from vla.envs.tabletop import language
from vla.envs.tabletop import objects as obj

if TYPE_CHECKING:  # tasks imports this module lazily; the types only
    from vla.envs.tabletop.tasks import EpisodeSpec, SimState

KINDS = ("absent_object", "unknown_verb", "unknown_object", "garbled")
HOLD_STEPS = 30  # 3 s at 10 Hz: a policy that acts on the instruction has left its start well before
HOLD_RADIUS = 0.03  # m: the TCP's largest distance from its start that still counts as holding
MOVED = 0.01  # m: an object displaced further than this has been disturbed

UNKNOWN_VERBS = (
    "juggle",
    "paint",
    "eat",
    "throw",
    "fold",
    "wash",
    "break",
    "cut",
    "kick",
    "hide",
    "smell",
    "count",
    "melt",
    "sell",
)
_VERB_TEMPLATES = ("{verb} the {obj}", "please {verb} the {obj}", "{verb} the {obj} now")
UNKNOWN_OBJECTS = (
    "banana",
    "laptop",
    "coffee mug",
    "umbrella",
    "toy car",
    "phone",
    "apple",
    "spoon",
    "shoe",
    "water bottle",
    "red car",
    "blue elephant",
)
GARBLED = (
    " ",
    "the the the",
    "1234 5678",
    "asdf qwer",
    "xqv blorp zut",
    "lorem ipsum dolor",
    "- - -",
    "block block",
)


def ungroundable_episode(spec: EpisodeSpec, rng: np.random.Generator) -> EpisodeSpec:
    """`spec` (a train-split `EpisodeSpec` of the scene) with an ungroundable instruction of a drawn kind."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    temps = language.templates(spec.family, held_out=False)
    template = temps[int(rng.integers(len(temps)))]
    slots = dict(spec.slots)
    if kind == "absent_object":
        absent = [p for p in obj.TRAIN_PAIRS if p not in spec.objects]
        slots["obj"] = obj.describe(*absent[int(rng.integers(len(absent)))])
        instruction = language.fill(template, slots)
    elif kind == "unknown_verb":
        verb = UNKNOWN_VERBS[int(rng.integers(len(UNKNOWN_VERBS)))]
        pattern = _VERB_TEMPLATES[int(rng.integers(len(_VERB_TEMPLATES)))]
        instruction = pattern.format(verb=verb, obj=slots["obj"])
    elif kind == "unknown_object":
        slots["obj"] = UNKNOWN_OBJECTS[int(rng.integers(len(UNKNOWN_OBJECTS)))]
        instruction = language.fill(template, slots)
    else:
        instruction = GARBLED[int(rng.integers(len(GARBLED)))]
    return dataclasses.replace(spec, split="ungroundable", instruction=instruction, ungroundable=kind)


def undisturbed(s: SimState) -> bool:
    """No object touched by the hand or moved more than `MOVED` from its start (a `tasks.SimState`)."""
    if s.gripper_contacts:
        return False
    return all(float(np.linalg.norm(s.pos[k] - s.start[k])) <= MOVED for k in s.pos)


class HoldJudge:
    """Latched judgement of one ungroundable episode: held so far, and done after `HOLD_STEPS`."""

    def __init__(self, tcp_start: np.ndarray) -> None:
        self.tcp_start = np.asarray(tcp_start, dtype=np.float64).copy()
        self.held = True

    def update(self, s: SimState, tcp: np.ndarray) -> None:
        """Takes the state after one step; once the scene is disturbed or the hand left, it stays failed."""
        near = float(np.linalg.norm(np.asarray(tcp) - self.tcp_start)) <= HOLD_RADIUS
        self.held = self.held and near and undisturbed(s)

    def success(self, steps: int) -> bool:
        """Held for the whole window (only true once `steps` reaches `HOLD_STEPS`)."""
        return self.held and steps >= HOLD_STEPS
