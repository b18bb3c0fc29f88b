"""Grasp-offset compensation: the held scene's place position, moved by how far off-centre the hand grasped.

Why: a grounding policy (`grounded` preset) carries an object by bringing the end effector over the
scene token's place position. The scripted demonstrations grasp within ~2 mm of the object's centre
(the expert reads the true pose) and set the object, not the hand, over the spot. A policy grasps
where its held estimate says the object is, and measured in a traced stack rollout the block then sat
up to 2.4 cm off-centre in the hand, so the policy set it down that far from the base and it fell.

The controller knows two things the action path does not use: the estimate of the object's centre
and where the hand was when the fingers started to close. Their difference is how far the object
sits from the hand's centre; moving the held place position by minus that difference makes the
policy aim the hand so that the object arrives over the spot. Only the horizontal part is moved, and
only when the grasp happened within `radius` of the estimate (a closing far from the object is not
a grasp of it: the `touch` and `push` families close the gripper at the start).

Observations only (finger opening and end-effector position), no actions: it runs the same in a
local controller and behind the server. `PolicyConfig.grasp_offset` turns it on; it is off in every
preset because it did not help: 90.0% -> 90.2% on the full suite, stack 74 -> 75% (docs/measured.md,
"Retrained P and grasp-offset compensation"). Closing fingers centre a block along their closing
axis, so a correction along the pads only is the variant left to measure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Indices of the scene labels (vla.envs.tabletop.labels.LABELS): the target's and the place's x, y.
TARGET_XY = slice(0, 2)
PLACE_XY = slice(3, 5)


class GraspOffset:
    """Tracks one episode's grasps from the state stream and moves the held scene's place position.

    Args:
        ee: where the end-effector position (m) lies in the state vector.
        gripper: where the finger opening lies in the state vector (larger is more open).
        radius: largest horizontal distance (m) between the hand and the estimated object centre at
            which a closing counts as a grasp of that object.
        closing: the fingers are closing once their opening falls below this fraction of the widest
            opening seen in the episode (the gripper starts open).
    """

    def __init__(self, *, ee: slice, gripper: slice, radius: float = 0.04, closing: float = 0.9) -> None:
        if not radius > 0:
            raise ValueError(f"radius must be > 0 m, got {radius}")
        if not 0 < closing < 1:
            raise ValueError(f"closing must be a fraction in (0, 1), got {closing}")
        self.ee, self.gripper = ee, gripper
        self.radius, self.closing = radius, closing
        self.offset: np.ndarray | None = None  # object centre - hand at the last grasp, m [2]
        self._widest = 0.0
        self._prev: tuple[bool, np.ndarray] | None = None  # (open, hand xy) of the last state

    def reset(self) -> None:
        self.offset = None
        self._widest = 0.0
        self._prev = None

    def update(self, state: np.ndarray, scene: np.ndarray) -> None:
        """Reads one step's state float [S]; `scene` float [L] is the held estimate (label units)."""
        width = float(np.asarray(state)[self.gripper].reshape(-1)[0])
        hand = np.asarray(state, dtype=np.float64)[self.ee][:2].copy()
        self._widest = max(self._widest, width)
        is_open = width >= self.closing * self._widest
        if self._prev is not None and self._prev[0] and not is_open:
            # The fingers started closing: the hand was where the previous state saw it.
            offset = np.asarray(scene, dtype=np.float64)[TARGET_XY] - self._prev[1]
            self.offset = offset if float(np.linalg.norm(offset)) <= self.radius else None
        self._prev = (is_open, hand)

    def apply(self, scene: np.ndarray) -> np.ndarray:
        """The scene [B, L] with the place moved by minus the last grasp's offset (a copy)."""
        out = np.array(scene, dtype=np.float32, copy=True)
        if self.offset is not None:
            out[..., PLACE_XY] -= self.offset.astype(np.float32)
        return out


def grasp_offset_for(policy: Any) -> GraspOffset | None:
    """A `GraspOffset` for a grounding policy whose config turns it on (`grasp_offset`), else None."""
    cfg = getattr(policy, "config", None)
    emb = getattr(policy, "embodiment", None)
    if not getattr(cfg, "grasp_offset", False) or emb is None:
        return None
    try:
        return GraspOffset(ee=emb.state_slice("ee_pos"), gripper=emb.state_slice("gripper"))
    except KeyError as e:
        raise ValueError(
            f"grasp_offset needs 'ee_pos' and 'gripper' state fields; embodiment '{emb.name}' lacks one: {e}"
        ) from e
