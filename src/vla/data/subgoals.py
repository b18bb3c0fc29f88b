"""Hindsight sub-goals: where the end effector will be at the next gripper event of its demonstration.

A demonstration's gripper command splits it into phases (reach, grasp, carry, release...). The sub-goal of
step t is the end-effector position at the first step after t where the gripper command flips (the
grasp or release pose), or at the episode's last step when it never flips again (a touch, the end of a
push). It is read from the recorded states and actions alone, so it exists for any dataset whose
embodiment has end effectors (`Embodiment.effector_layout`: an `ee_pos` state field and a `gripper`
action group, or declared `effectors` such as a humanoid's two palms and hand closures), imported
ones included. With several effectors the sub-goal is each one's position at its own next closure
flip, concatenated in declared order (a hand that never closes contributes its final position).

Why: predicting the sub-goal from the images is an auxiliary target (`PolicyConfig.goal_loss`) that
teaches the vision encoder *where* the instructed object is, the part behaviour cloning on a few
hundred demonstrations learns slowest (distractors share the target's colour or shape). It needs no
privileged simulator state and costs nothing at inference.
"""

from __future__ import annotations

import numpy as np

from vla.features import SUBGOAL
from vla.spaces import Embodiment

__all__ = ["SUBGOAL", "dataset_subgoals", "subgoal_layout"]

GRIPPER_THRESHOLD = 0.5  # a gripper command in [0, 1]: above means closed


def subgoal_layout(embodiment: Embodiment | None, action_dim: int) -> list[tuple[slice, int]] | None:
    """(position slice of the state, closure dimension of the action) per end effector, for actions
    of `action_dim` dims, or None when the robot has no end effector in that action space."""
    if embodiment is None:
        return None
    if embodiment.action_spaces[0].dim == action_dim:
        return embodiment.effector_layout() or None
    spaces = [s for s in embodiment.action_spaces if s.dim == action_dim]
    try:
        return [(embodiment.state_slice("ee_pos"), spaces[0].slice("gripper").start)]
    except (KeyError, IndexError):
        return None


def episode_subgoals(state: np.ndarray, actions: np.ndarray, *, ee: slice, gripper: slice) -> np.ndarray:
    """Sub-goal of every step of one episode.

    Args:
        state: float32 [N, S] robot state per step.
        actions: float32 [N, A] actions per step.
        ee: the end-effector position's slice of the state.
        gripper: the gripper command's slice of the action (its first dimension is used).

    Returns:
        float32 [N, E]: the end-effector position (E = the ee_pos field's size) at the next gripper flip after each step (or the last).
    """
    n = state.shape[0]
    if n == 0:
        return np.zeros((0, ee.stop - ee.start), dtype=np.float32)
    closed = actions[:, gripper][:, 0] > GRIPPER_THRESHOLD  # (N,)
    flips = np.flatnonzero(closed[1:] != closed[:-1]) + 1  # steps where the command changes
    keys = np.concatenate([flips, [n - 1]])  # (K,) ascending
    nxt = keys[np.searchsorted(keys, np.arange(n), side="right").clip(max=len(keys) - 1)]  # (N,)
    return state[nxt][:, ee].astype(np.float32)


def dataset_subgoals(
    state: np.ndarray, actions: np.ndarray, ep_start: np.ndarray, ep_end: np.ndarray, embodiment: Embodiment | None
) -> np.ndarray | None:
    """Sub-goals of every step of concatenated episodes (float32 [N, E]), or None if the layout lacks them."""
    layout = subgoal_layout(embodiment, actions.shape[1])
    if layout is None:
        return None
    parts = []
    for ee, grip in layout:
        out = np.empty((state.shape[0], ee.stop - ee.start), dtype=np.float32)
        for a, b in zip(ep_start, ep_end, strict=True):
            out[a:b] = episode_subgoals(state[a:b], actions[a:b], ee=ee, gripper=slice(grip, grip + 1))
        parts.append(out)
    return np.concatenate(parts, axis=1)
