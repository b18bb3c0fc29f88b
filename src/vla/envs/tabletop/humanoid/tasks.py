"""Humanoid task families: what an episode asks for, where its objects stand, and when it has succeeded.

As in the Panda suite (`vla.envs.tabletop.tasks`): an episode is an `EpisodeSpec` drawn from a seeded
generator, success is judged from simulator state only (object poses and hand contacts). Distractors
include, when the split allows, an object of the target's colour and one of its shape, so only colour
and shape together identify the target.

Where things stand (m, world frame = the G1's heading frame: x forward, y to its left; the table's near
edge is at x 0.20): the target of `pick_up` / `touch` in front of the hand that acts, x 0.26-0.32,
0.10-0.24 to that side. Closer to the middle the other hand's fingers are in the way; further out or
forward the palm cannot get down to an 8 cm object without leaning (measured: at y 0.28, x 0.34 the
IK leaned the robot over, at y 0 the left hand knocked the object away with its thumb).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.envs.tabletop.humanoid import language
from vla.envs.tabletop.humanoid import objects as obj

FAMILIES = ("pick_up", "touch", "lift_box")
# The families the tabletop suite offers for the humanoid: those whose scripted expert succeeds in
# >= 95% of episodes (`lift_box` since its squeeze stops at contact and the fingers curl over the
# box's ends: docs/robots.md, "Tabletop tasks").
SUITE_FAMILIES = ("pick_up", "touch", "lift_box")
SPLITS = ("train", "unseen", "paraphrase")
# Control steps at 10 Hz, generous over the scripted experts (pick ~35, touch ~20, lift_box ~45).
MAX_STEPS = {"pick_up": 70, "touch": 50, "lift_box": 80}
TABLE_TOP = 0.74  # m; `G1SceneConfig.table_height`, the default the env builds
LIFT_HEIGHT = 0.06  # m above the start height that counts as picked up (the Panda suite's)
BOX_LIFT_HEIGHT = 0.05  # m, for `lift_box`
# Target region per hand: x range, and |y| range on the hand's side.
TARGET_X = (0.26, 0.32)
TARGET_SIDE_Y = (0.10, 0.24)
# Distractors anywhere on the front of the table, at least `CLEARANCE` from the target (the hand
# descends over it: fingers ~6 cm ahead of the grasp centre, wrist 12 cm behind, knuckles 7 cm to the
# outer side) and `SPACING` from each other.
DISTRACTOR_LOW = (0.25, -0.28)
DISTRACTOR_HIGH = (0.40, 0.28)
CLEARANCE = 0.14
SPACING = 0.09
BOX_X = (0.28, 0.31)
BOX_Y = (-0.02, 0.02)
BOX_YAW = 0.05  # rad, largest yaw of the box
# Share of `pick_up` / `touch` episodes whose instruction names the hand.
NAMED_HAND_SHARE = 0.5


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode's task and scene layout.

    Attributes:
        family: task family.
        split: split it was drawn for.
        instruction: the command given to the policy.
        slots: the instruction's meaning (obj / colour / hand).
        target: pool key of the object to act on: (colour, shape), or ("box", colour).
        hand: the hand that acts ("left", "right"; "both" for `lift_box`).
        hand_named: whether the instruction names the hand (then success requires that hand).
        objects: pool key -> (x, y, yaw) of every object on the table.
    """

    family: str
    split: str
    instruction: str
    slots: dict[str, str]
    target: tuple[str, str]
    hand: str
    hand_named: bool
    objects: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)


def rest_height(key: tuple[str, str]) -> float:
    """Centre height (m, world) of pool object `key` resting on the table."""
    half = obj.BOX.half[2] if key[0] == "box" else obj.SHAPE_SPECS[key[1]].half_height
    return TABLE_TOP + half


def _distractors(target: tuple[str, str], split: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    pool = [p for p in obj.TRAIN_PAIRS if p != target]
    picks: list[tuple[str, str]] = []
    for group in ([p for p in pool if p[0] == target[0]], [p for p in pool if p[1] == target[1]]):
        if group:
            picks.append(group[int(rng.integers(len(group)))])
    n = int(rng.integers(1, 3))  # 1-2 distractors: the front of the table holds few 5 cm objects
    return picks[:n]


def _place(
    target_xy: np.ndarray, distractors: list[tuple[str, str]], rng: np.random.Generator
) -> list[tuple[float, float]] | None:
    placed: list[np.ndarray] = []
    lo, hi = np.asarray(DISTRACTOR_LOW), np.asarray(DISTRACTOR_HIGH)
    for _ in distractors:
        for _try in range(100):
            xy = rng.uniform(lo, hi)
            if np.linalg.norm(xy - target_xy) > CLEARANCE and all(
                np.linalg.norm(xy - p) > SPACING for p in placed
            ):
                placed.append(xy)
                break
        else:
            return None
    return [(float(p[0]), float(p[1])) for p in placed]


def sample_episode(family: str, split: str, rng: np.random.Generator) -> EpisodeSpec:
    """Draws one episode of `family` (one of FAMILIES) for `split` (one of SPLITS) from `rng`."""
    if family not in FAMILIES:
        raise KeyError(f"unknown humanoid tabletop family '{family}'; known: {FAMILIES}")
    if split not in SPLITS:
        raise KeyError(f"unknown humanoid tabletop split '{split}'; known: {SPLITS}")
    held_out = split == "paraphrase"
    if family == "lift_box":
        colour = obj.BOX_COLOURS[int(rng.integers(len(obj.BOX_COLOURS)))]
        xy = rng.uniform((BOX_X[0], BOX_Y[0]), (BOX_X[1], BOX_Y[1]))
        yaw = float(rng.uniform(-BOX_YAW, BOX_YAW))
        temps = language.templates(family, held_out=held_out, hand=False)
        slots = {"colour": colour}
        return EpisodeSpec(
            family=family,
            split=split,
            instruction=language.fill(temps[int(rng.integers(len(temps)))], slots),
            slots=slots,
            target=("box", colour),
            hand="both",
            hand_named=False,
            objects={("box", colour): (float(xy[0]), float(xy[1]), yaw)},
        )
    targets = obj.UNSEEN_PAIRS if split == "unseen" else obj.TRAIN_PAIRS
    target = targets[int(rng.integers(len(targets)))]
    hand = language.HANDS[int(rng.integers(2))]
    named = bool(rng.random() < NAMED_HAND_SHARE)
    side = 1.0 if hand == "left" else -1.0
    distractors = _distractors(target, split, rng)
    for _attempt in range(100):
        xy = np.array([rng.uniform(*TARGET_X), side * rng.uniform(*TARGET_SIDE_Y)])
        spots = _place(xy, distractors, rng)
        if spots is not None:
            break
    else:
        raise RuntimeError(f"could not lay out a humanoid {family} scene after 100 attempts")
    layout = {target: (float(xy[0]), float(xy[1]), float(rng.uniform(-np.pi, np.pi)))}
    for key, (x, y) in zip(distractors, spots, strict=True):
        layout[key] = (x, y, float(rng.uniform(-np.pi, np.pi)))
    slots = {"obj": obj.describe(*target), **({"hand": hand} if named else {})}
    temps = language.templates(family, held_out=held_out, hand=named)
    return EpisodeSpec(
        family=family,
        split=split,
        instruction=language.fill(temps[int(rng.integers(len(temps)))], slots),
        slots=slots,
        target=target,
        hand=hand,
        hand_named=named,
        objects=layout,
    )


@dataclass(frozen=True)
class SimState:
    """What success predicates read (m, world frame).

    Attributes:
        start: pool key -> (x, y, z) at the start of the episode.
        pos: pool key -> (x, y, z) now.
        contacts: "left" / "right" -> the objects that hand (wrist and fingers) touches now.
    """

    start: dict[tuple[str, str], np.ndarray]
    pos: dict[tuple[str, str], np.ndarray]
    contacts: dict[str, frozenset[tuple[str, str]]]


def is_success(spec: EpisodeSpec, s: SimState) -> bool:
    """Returns whether the episode's command is fulfilled in simulator state `s`.

    `pick_up`: the target is `LIFT_HEIGHT` above where it started and in a hand (the named one if the
    instruction names it). `touch`: a hand (the named one) touches it. `lift_box`: the box is
    `BOX_LIFT_HEIGHT` up and both hands touch it.
    """
    t = spec.target
    hands = (spec.hand,) if spec.hand_named else ("left", "right")
    held = any(t in s.contacts[h] for h in hands)
    rise = float(s.pos[t][2] - s.start[t][2])
    if spec.family == "pick_up":
        return bool(rise > LIFT_HEIGHT and held)
    if spec.family == "touch":
        return held
    if spec.family == "lift_box":
        return bool(rise > BOX_LIFT_HEIGHT and all(t in s.contacts[h] for h in ("left", "right")))
    raise KeyError(f"unknown humanoid tabletop family '{spec.family}'; known: {FAMILIES}")
