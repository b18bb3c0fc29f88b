"""Task families: what an episode asks for, how its scene is laid out, and when it has succeeded.

Every family samples an `EpisodeSpec` (pure data, from a seeded generator) and judges success from
simulator state only (object poses, velocities and gripper contacts), never from the actions taken.
Distractors always include, when the split allows it, an object of the target's colour but another
shape and one of its shape but another colour, so only colour AND shape together identify the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.envs.tabletop import language, ungroundable
from vla.envs.tabletop import objects as obj

FAMILIES = ("pick_up", "put_in", "push", "stack", "touch", "move_next_to")
SPLITS = ("train", "unseen", "paraphrase", "randomized", "ungroundable")
# The split of instructions no skill can ground (`vla.envs.tabletop.ungroundable`): the right answer is
# to hold still, judged over a fixed window instead of the family's time limit.
UNGROUNDABLE = "ungroundable"
# Control steps at 10 Hz; generous over the scripted experts (~30-70 steps) so policies have slack.
MAX_STEPS = {"pick_up": 60, "put_in": 100, "push": 80, "stack": 100, "touch": 60, "move_next_to": 100}

LIFT_HEIGHT = 0.06  # m above the rest height that counts as picked up
PUSH_DISTANCE = 0.08  # m along the asked direction
NEXT_TO_GAP = 0.06  # m, largest gap between footprints that counts as "next to"
DIRECTION_VECTORS = {"left": (0.0, 1.0), "right": (0.0, -1.0), "forward": (1.0, 0.0), "backward": (-1.0, 0.0)}
# Where objects may be placed (m, robot frame); the Panda reaches all of it pointing down.
REGION_LOW = (0.36, -0.24)
REGION_HIGH = (0.66, 0.24)
PUSHABLE_SHAPES = ("block", "cylinder")  # a pushed ball rolls away unpredictably


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode's task and scene layout.

    Attributes:
        family: task family.
        split: split it was drawn for.
        instruction: the command given to the policy.
        slots: the instruction's meaning (obj/base/ref/container/direction).
        target: (colour, shape) of the object to act on.
        other: (colour, shape) of the second object (stack base, move_next_to reference) or None.
        container: the container of put_in, else None.
        direction: the push direction, else None.
        objects: (colour, shape) -> (x, y, yaw) of every object on the table.
        containers: container name -> (x, y) of every container on the table.
        ungroundable: on the `ungroundable` split, which kind of instruction replaced the family's
            (`vla.envs.tabletop.ungroundable.KINDS`); None on every other split.
    """

    family: str
    split: str
    instruction: str
    slots: dict[str, str]
    target: tuple[str, str]
    other: tuple[str, str] | None
    container: str | None
    direction: str | None
    objects: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    containers: dict[str, tuple[float, float]] = field(default_factory=dict)
    ungroundable: str | None = None


def _pick(rng: np.random.Generator, items: list[tuple[str, str]]) -> tuple[str, str]:
    return items[int(rng.integers(len(items)))]


def _choose_objects(
    family: str, split: str, rng: np.random.Generator
) -> tuple[tuple[str, str], tuple[str, str] | None, list[tuple[str, str]]]:
    """Returns (target, other, distractors) for a family and split."""
    pool = list(obj.TRAIN_PAIRS)
    targets = list(obj.UNSEEN_PAIRS) if split == "unseen" else list(obj.TRAIN_PAIRS)
    if family == "push":
        targets = [p for p in targets if p[1] in PUSHABLE_SHAPES]
    if family == "stack":
        targets = [p for p in targets if p[1] in ("block", "cylinder")]
    target = _pick(rng, targets)
    other = None
    rest = [p for p in pool if p != target]
    if family == "stack":
        other = _pick(rng, [p for p in rest if p[1] == "block" and p[0] != target[0]])
    elif family == "move_next_to":
        other = _pick(rng, rest)
    chosen = [target] + ([other] if other else [])
    # Confusers first: same colour / other shape, then same shape / other colour.
    same_colour = [p for p in rest if p[0] == target[0] and p not in chosen]
    same_shape = [p for p in rest if p[1] == target[1] and p not in chosen]
    distractors: list[tuple[str, str]] = []
    for group in (same_colour, same_shape):
        if group:
            distractors.append(_pick(rng, group))
    n_objects = int(rng.integers(3, 6))  # 3-5 objects on the table, plus 0-2 containers
    others = [p for p in rest if p not in chosen and p not in distractors]
    order = rng.permutation(len(others))
    for i in order:
        if len(chosen) + len(distractors) >= n_objects:
            break
        distractors.append(others[int(i)])
    return target, other, distractors


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _try_layout(
    items: list[tuple[str, str] | str],
    family: str,
    target: tuple[str, str],
    other: tuple[str, str] | None,
    direction: str | None,
    rng: np.random.Generator,
) -> tuple[dict[tuple[str, str], tuple[float, float, float]], dict[str, tuple[float, float]]] | None:
    """Places `items` (containers first) by rejection sampling; None if one of them finds no room."""
    lo, hi = np.asarray(REGION_LOW), np.asarray(REGION_HIGH)
    placed: list[tuple[np.ndarray, float]] = []
    layout_c: dict[str, tuple[float, float]] = {}
    layout_o: dict[tuple[str, str], tuple[float, float, float]] = {}
    corridor: tuple[np.ndarray, np.ndarray] | None = None
    for item in items:
        radius = obj.CONTAINERS[item].radius if isinstance(item, str) else obj.SHAPE_SPECS[item[1]].radius
        margin = radius if isinstance(item, str) else 0.0
        for _ in range(60):
            xy = rng.uniform(lo + margin * 0.5, hi - margin * 0.5)
            clear = all(float(np.linalg.norm(xy - p)) > radius + r + 0.03 for p, r in placed)
            if item == target and direction is not None:
                d = np.asarray(DIRECTION_VECTORS[direction])
                start, end = xy - d * 0.08, xy + d * (PUSH_DISTANCE + 0.06)
                # The approach point behind the object must also lie in the region: right in front
                # of the robot's base the arm pushes with a folded, compliant posture. Nothing placed
                # earlier (the containers) may stand in the push path.
                ends = np.stack([start, end])
                clear = clear and not (np.any(ends < lo - 0.02) or np.any(ends > hi + 0.02))
                clear = clear and all(_segment_distance(p, start, end) > r + radius + 0.03 for p, r in placed)
                if clear:
                    corridor = (start, end)
            elif corridor is not None:
                clear = clear and _segment_distance(xy, *corridor) > radius + 0.06
            if clear and item == other and family == "move_next_to":
                clear = bool(np.linalg.norm(xy - placed[items.index(target)][0]) > 0.18)
            if clear:
                break
        else:
            return None
        placed.append((xy, radius))
        if isinstance(item, str):
            layout_c[item] = (float(xy[0]), float(xy[1]))
        else:
            layout_o[item] = (float(xy[0]), float(xy[1]), float(rng.uniform(-np.pi, np.pi)))
    return layout_o, layout_c


def sample_episode(family: str, split: str, rng: np.random.Generator) -> EpisodeSpec:
    """Draws one episode of `family` for `split` (layout, instruction, success parameters).

    Args:
        family: one of FAMILIES.
        split: one of SPLITS.
        rng: the episode's generator (same state -> same episode).
    """
    if split == UNGROUNDABLE:
        return ungroundable.ungroundable_episode(sample_episode(family, "train", rng), rng)
    target, other, distractors = _choose_objects(family, split, rng)
    containers: list[str] = []
    container = None
    if family == "put_in":
        container = str(rng.choice(list(obj.CONTAINERS)))
        containers.append(container)
        if rng.random() < 0.5:
            containers.append(str(rng.choice([c for c in obj.CONTAINERS if c != container])))
    elif rng.random() < 0.5:
        containers.append(str(rng.choice(list(obj.CONTAINERS))))
    direction = str(rng.choice(list(DIRECTION_VECTORS))) if family == "push" else None

    items: list[tuple[str, str] | str] = [*containers, target, *([other] if other else []), *distractors]
    for _attempt in range(500):
        layout = _try_layout(items, family, target, other, direction, rng)
        if layout is not None:
            layout_o, layout_c = layout
            break
    else:
        raise RuntimeError(f"could not lay out a {family} scene after 500 attempts")

    slots = {"obj": obj.describe(*target)}
    if family == "stack" and other:
        slots["base"] = obj.describe(*other)
    if family == "move_next_to" and other:
        slots["ref"] = obj.describe(*other)
    if container:
        slots["container"] = container
    if direction:
        slots["direction"] = direction
    temps = language.templates(family, held_out=split == "paraphrase")
    instruction = language.fill(temps[int(rng.integers(len(temps)))], slots)
    return EpisodeSpec(
        family=family,
        split=split,
        instruction=instruction,
        slots=slots,
        target=target,
        other=other,
        container=container,
        direction=direction,
        objects=layout_o,
        containers=layout_c,
    )


@dataclass(frozen=True)
class SimState:
    """What success predicates read: object poses/velocities and gripper contacts, all in metres.

    Attributes:
        start: (colour, shape) -> (x, y, z) at the start of the episode.
        pos: (colour, shape) -> (x, y, z) now.
        speed: (colour, shape) -> linear speed (m/s) now.
        gripper_contacts: objects the hand or fingers touch now.
    """

    start: dict[tuple[str, str], np.ndarray]
    pos: dict[tuple[str, str], np.ndarray]
    speed: dict[tuple[str, str], float]
    gripper_contacts: frozenset[tuple[str, str]]


def is_success(spec: EpisodeSpec, s: SimState) -> bool:
    """Returns whether the episode's command is fulfilled in simulator state `s`.

    On the `ungroundable` split this is "nothing has been disturbed so far"; the env judges it over
    the episode's whole window (`vla.envs.tabletop.ungroundable.HoldJudge`)."""
    if spec.ungroundable is not None:
        return ungroundable.undisturbed(s)
    t = spec.target
    p = s.pos[t]
    rest = obj.SHAPE_SPECS[t[1]].half_height
    released = t not in s.gripper_contacts and s.speed[t] < 0.05
    on_table = abs(p[2] - rest) < 0.012
    if spec.family == "pick_up":
        return bool(p[2] > rest + LIFT_HEIGHT)
    if spec.family == "touch":
        return t in s.gripper_contacts
    if spec.family == "push":
        assert spec.direction is not None
        moved = (p[:2] - s.start[t][:2]) @ np.asarray(DIRECTION_VECTORS[spec.direction])
        return bool(moved >= PUSH_DISTANCE and on_table)
    if spec.family == "put_in":
        assert spec.container is not None
        c = obj.CONTAINERS[spec.container]
        cx, cy = spec.containers[spec.container]
        inside = abs(p[0] - cx) < c.inner_half[0] and abs(p[1] - cy) < c.inner_half[1]
        low = p[2] < c.top + rest + 0.02
        return bool(inside and low and released)
    if spec.family == "stack":
        assert spec.other is not None
        b = s.pos[spec.other]
        aligned = np.linalg.norm(p[:2] - b[:2]) < 0.025
        height = abs((p[2] - b[2]) - (rest + obj.SHAPE_SPECS[spec.other[1]].half_height)) < 0.012
        return bool(aligned and height and released)
    if spec.family == "move_next_to":
        assert spec.other is not None
        r = s.pos[spec.other]
        gap = (
            np.linalg.norm(p[:2] - r[:2])
            - obj.SHAPE_SPECS[t[1]].radius
            - obj.SHAPE_SPECS[spec.other[1]].radius
        )
        return bool(gap < NEXT_TO_GAP and on_table and released)
    raise KeyError(f"unknown tabletop family '{spec.family}'; known: {FAMILIES}")
