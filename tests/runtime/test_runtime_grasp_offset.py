"""Grasp-offset compensation: the held scene's place moves by the object's offset from the hand at the
grasp, only for a grasp near the estimated object, and the held estimate itself never changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla.models.config import PolicyConfig
from vla.runtime.chunking import ChunkBroker, ObservationHistory
from vla.runtime.engine import Engine
from vla.runtime.grasp_offset import GraspOffset, grasp_offset_for
from vla.types import Observation

EE, GRIP = slice(0, 3), slice(3, 4)
# target at (0.50, 0.10), place (the base) at (0.60, -0.05)
SCENE = np.array([0.50, 0.10, 0.02, 0.60, -0.05, 0.02, 1.0, 0.0], np.float32)


def _state(hand_xy: tuple[float, float], width: float) -> np.ndarray:
    return np.array([hand_xy[0], hand_xy[1], 0.02, width], np.float32)


def test_a_grasp_beside_the_estimate_moves_the_place_by_minus_the_offset() -> None:
    g = GraspOffset(ee=EE, gripper=GRIP)
    g.update(_state((0.30, 0.00), 0.08), SCENE)  # approaching, open
    g.update(_state((0.49, 0.115), 0.08), SCENE)  # over the object, 1 cm / -1.5 cm off
    np.testing.assert_array_equal(g.apply(SCENE[None]), SCENE[None])  # nothing grasped yet
    g.update(_state((0.49, 0.115), 0.05), SCENE)  # the fingers start closing
    np.testing.assert_allclose(g.offset, [0.01, -0.015], atol=1e-6)
    moved = g.apply(SCENE[None])
    # The object sits 1 cm ahead of the hand: the hand must stop 1 cm short of the base.
    np.testing.assert_allclose(moved[0, 3:5], [0.59, -0.035], atol=1e-6)
    np.testing.assert_array_equal(np.delete(moved[0], [3, 4]), np.delete(SCENE, [3, 4]))
    g.update(_state((0.55, 0.0), 0.03), SCENE)  # carrying: the offset stays
    np.testing.assert_allclose(g.apply(SCENE[None])[0, 3:5], [0.59, -0.035], atol=1e-6)
    g.reset()
    np.testing.assert_array_equal(g.apply(SCENE[None]), SCENE[None])


def test_a_closing_far_from_the_object_is_not_a_grasp_and_a_regrasp_replaces_the_offset() -> None:
    g = GraspOffset(ee=EE, gripper=GRIP, radius=0.04)
    g.update(_state((0.30, 0.00), 0.08), SCENE)
    g.update(_state((0.30, 0.00), 0.0), SCENE)  # `touch` / `push` close at the start, far away
    assert g.offset is None
    g.update(_state((0.30, 0.00), 0.08), SCENE)  # open again
    g.update(_state((0.52, 0.10), 0.08), SCENE)
    g.update(_state((0.52, 0.10), 0.06), SCENE)  # a grasp 2 cm behind the object
    np.testing.assert_allclose(g.offset, [-0.02, 0.0], atol=1e-6)
    g.update(_state((0.52, 0.10), 0.08), SCENE)  # missed: it re-opens (the offset is kept) ...
    g.update(_state((0.50, 0.105), 0.08), SCENE)
    g.update(_state((0.50, 0.105), 0.06), SCENE)  # ... and grasps again, better
    np.testing.assert_allclose(g.offset, [0.0, -0.005], atol=1e-6)
    with pytest.raises(ValueError, match="radius must be > 0"):
        GraspOffset(ee=EE, gripper=GRIP, radius=0.0)
    with pytest.raises(ValueError, match="closing must be a fraction"):
        GraspOffset(ee=EE, gripper=GRIP, closing=1.0)


def test_the_config_needs_a_grounding_head() -> None:
    with pytest.raises(ValueError, match=r"grasp_offset .* needs grounding_loss > 0"):
        PolicyConfig(grasp_offset=True)


def test_a_controller_hands_the_policy_the_moved_scene_and_keeps_the_estimate(rt) -> None:
    torch.set_num_threads(1)
    policy = rt.build_tiny_policy(grounding_loss=1.0, grasp_offset=True).eval()
    assert grasp_offset_for(rt.build_tiny_policy(grounding_loss=1.0)) is None  # off by default
    engine = Engine(policy)
    ee, grip = policy.embodiment.state_slice("ee_pos"), policy.embodiment.state_slice("gripper")
    req = rt.make_obs(np.random.default_rng(0))
    obs = Observation(
        images={c: req[f"images/{c}"] for c in ("scene", "wrist")},
        state=req["state"],
        instruction=req["prompt"],
    )
    ctrl = ChunkBroker(engine, execute_steps=1)
    assert isinstance(ctrl.history.grasp, GraspOffset)
    ctrl.reset()
    first = obs.state.copy()
    first[grip] = 0.08
    ctrl.act(dataclasses.replace(obs, state=first))
    held = ctrl.history.scene.copy()
    closing = first.copy()
    closing[ee][:2] = held[0, :2] - np.array([0.01, -0.02], np.float32)  # the hand 1 / -2 cm off
    closing[grip] = 0.08
    ctrl.act(dataclasses.replace(obs, state=closing))
    closed = closing.copy()
    closed[grip] = 0.04
    batch = ctrl.history.push(dataclasses.replace(obs, state=closed))
    np.testing.assert_allclose(batch.scene[0, 3:5], held[0, 3:5] - [0.01, -0.02], atol=1e-5)
    np.testing.assert_array_equal(ctrl.history.scene, held)  # the estimate itself is untouched
    # The policy acts on the moved scene: the same chunk as a call given that scene directly.
    direct = policy.predict(dataclasses.replace(obs, state=closed, scene=batch.scene[0])).actions[0, 0]
    np.testing.assert_allclose(ctrl.act(dataclasses.replace(obs, state=closed)), direct, atol=1e-5)
    assert isinstance(ObservationHistory.for_policy(engine).grasp, GraspOffset)
