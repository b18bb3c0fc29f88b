"""Where "next to" is: the spot beside a reference object that move_next_to's expert carries its object to.

The side facing the target, unless blocked: a function of the two named objects' positions, which
the policy's grounding token holds, so the action path can learn where the spot is from them while
the place label stays the reference's centre, which the head estimates well. With the spot itself as
the label the head's estimate of it was centimetres off, since its place pass reads only the
reference's phrase (the figures: docs/measured.md, "move_next_to").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks

if TYPE_CHECKING:
    from vla.envs.tabletop.env import TabletopEnv

SIDE_GAP = 0.025  # m between the two footprints at the spot (tasks.NEXT_TO_GAP allows up to 6 cm)
MIN_CLEARANCE = 0.015  # m from the placed object's footprint to any other object or container
STEP_DEG = 22.5  # the search turns away from the near side in steps of this many degrees


def free_spot_next_to(env: TabletopEnv, spec: tasks.EpisodeSpec) -> np.ndarray:
    """xy (m) beside `spec.other`, SIDE_GAP from its footprint: on the side facing the target (the near
    side, exactly towards it) unless that is blocked (closer than MIN_CLEARANCE to another object or a
    container, or outside the work region); then the nearest clear direction turning away from it
    in STEP_DEG steps, alternating sides; if none is clear, the clearest.

    Why the near side first: it is a function of the two named objects alone, so the grounding head
    can estimate it from where they are. Scoring every direction by clearance (the first version)
    chose a side set by the other objects' layout; the head's estimate of that spot was 4.7 cm off on
    average, a blur between sides (docs/measured.md).
    """
    if spec.other is None:
        raise ValueError(f"a spot next to something needs a reference object; {spec.family} has none")
    ref = env.object_position(spec.other)[:2]
    me = env.object_position(spec.target)[:2]
    my_radius = obj.SHAPE_SPECS[spec.target[1]].radius
    dist = my_radius + obj.SHAPE_SPECS[spec.other[1]].radius + SIDE_GAP
    obstacles = [
        (env.object_position(k)[:2], obj.SHAPE_SPECS[k[1]].radius)
        for k in spec.objects
        if k not in (spec.target, spec.other)
    ] + [(np.asarray(xy), obj.CONTAINERS[n].radius) for n, xy in spec.containers.items()]
    low, high = np.asarray(tasks.REGION_LOW) - 0.03, np.asarray(tasks.REGION_HIGH) + 0.03
    near = float(np.arctan2(me[1] - ref[1], me[0] - ref[0]))
    turns = [0.0] + [sign * k * STEP_DEG for k in range(1, int(180 / STEP_DEG) + 1) for sign in (1, -1)]
    best, best_clearance = ref, -np.inf
    for turn in turns[: int(360 / STEP_DEG)]:
        ang = near + np.radians(turn)
        cand = ref + dist * np.array([np.cos(ang), np.sin(ang)])
        clearance = min([np.linalg.norm(cand - p) - r for p, r in obstacles] + [1.0]) - my_radius
        if not (np.all(cand > low) and np.all(cand < high)):
            continue
        if clearance >= MIN_CLEARANCE:
            return np.asarray(cand, dtype=np.float64)
        if clearance > best_clearance:
            best, best_clearance = cand, clearance
    return np.asarray(best, dtype=np.float64)
