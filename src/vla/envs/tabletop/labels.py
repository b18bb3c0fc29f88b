"""Where the instructed objects are in an episode, read from simulator state (grounding labels).

Labels, robot frame, metres (`LABELS`):
- target_x/y/z: the centre of the object the instruction acts on;
- place_x/y/z: where the instruction sends it: the container (put_in), the base (stack), the reference
  object (move_next_to: the spot beside it, `vla.envs.tabletop.spots`, follows from the two positions),
  the pushed-to point (push), the lifted point (pick_up), itself (touch);
- yaw_cos4/yaw_sin4: the block's yaw as (cos 4θ, sin 4θ), the part a grasp needs (a block looks the
  same every 90°); masked out for round objects.

The suite declares them as the episode feature `SCENE` ("scene", `vla.features`). The env writes the
labels of every episode's settled start into `episode_meta["scene"]` and `["scene_mask"]`, so recorded
demonstrations carry them (training uses them, `vla.models.grounding`); `vla collect-grounding`
renders extra labelled views (`vla.envs.tabletop.grounding`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vla.envs.tabletop import tasks
from vla.features import Feature, FeaturePart

if TYPE_CHECKING:
    from vla.envs.tabletop.env import TabletopEnv

LABELS = ("target_x", "target_y", "target_z", "place_x", "place_y", "place_z", "yaw_cos4", "yaw_sin4")

SCENE = Feature(
    name="scene",
    scope="episode",
    parts=(
        FeaturePart("target", "position", 3, "m"),
        FeaturePart("place", "position", 3, "m"),
        FeaturePart("yaw", "angle", 2, "(cos 4θ, sin 4θ) of the target block"),
    ),
    meaning="where the instructed object starts, where the instruction sends it, and a block's yaw "
    "(robot base frame, at the episode's settled start; yaw masked for round objects)",
    masked=True,
)


def scene_labels(env: TabletopEnv) -> tuple[np.ndarray, np.ndarray]:
    """(labels float32 [8], mask float32 [8]) of the env's current episode, from simulator state."""
    spec = env.task
    if spec is None:
        raise RuntimeError("scene_labels needs an env after reset()")
    target = env.object_position(spec.target)
    if spec.family == "put_in":
        assert spec.container is not None
        cx, cy = spec.containers[spec.container]
        place = np.array([cx, cy, target[2]])
    elif spec.family in ("stack", "move_next_to"):
        assert spec.other is not None
        place = env.object_position(spec.other)
    elif spec.family == "push":
        assert spec.direction is not None
        d = np.asarray(tasks.DIRECTION_VECTORS[spec.direction])
        place = target + np.array([*(d * tasks.PUSH_DISTANCE), 0.0])
    elif spec.family == "pick_up":
        place = target + np.array([0.0, 0.0, tasks.LIFT_HEIGHT])
    else:  # touch
        place = target.copy()
    yaw = env.object_yaw(spec.target)
    labels = np.concatenate([target, place, [np.cos(4 * yaw), np.sin(4 * yaw)]]).astype(np.float32)
    mask = np.ones(len(LABELS), dtype=np.float32)
    if spec.target[1] != "block":
        mask[6:] = 0.0
    return labels, mask
