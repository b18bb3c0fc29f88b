"""Where "next to" is: the free spot beside a reference object that move_next_to sends its object to.

One function for the expert (which carries the object there) and the grounding labels (which name it
as the episode's place), so that the place the policy is told about is the place demonstrations went.
Labelled as the reference object's centre instead, the action path had to infer which side of the
reference was free from two positions alone (it does not see the other objects); it released on top
of the reference or on a blocked side in 4 of 6 traced failures (docs/measured.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks

if TYPE_CHECKING:
    from vla.envs.tabletop.env import TabletopEnv

SIDE_GAP = 0.025  # m between the two footprints at the spot (tasks.NEXT_TO_GAP allows up to 6 cm)
CANDIDATES = 16  # directions around the reference that are scored


def free_spot_next_to(env: TabletopEnv, spec: tasks.EpisodeSpec) -> np.ndarray:
    """xy (m) beside `spec.other`, SIDE_GAP from its footprint, as clear of the other objects and the
    containers as possible, inside the work region, and preferring the side nearest the target."""
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
    best, best_score = ref, -np.inf
    for ang in np.linspace(0, 2 * np.pi, CANDIDATES, endpoint=False):
        cand = ref + dist * np.array([np.cos(ang), np.sin(ang)])
        clearance = min([np.linalg.norm(cand - p) - r for p, r in obstacles] + [0.2]) - my_radius
        inside = bool(np.all(cand > low) and np.all(cand < high))
        score = min(clearance, 0.05) * 10 - 0.2 * np.linalg.norm(cand - me) - (0 if inside else 1)
        if score > best_score:
            best, best_score = cand, score
    return np.asarray(best, dtype=np.float64)
