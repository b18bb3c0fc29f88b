"""Physics of the tabletop: real grasps (contact + friction only), IK accuracy, no sag, predicates."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import tasks
from vla.envs.tabletop.expert import TabletopExpert
from vla.envs.tabletop.ik import rotation_error
from vla.envs.tabletop.panda import JOINT_HIGH, JOINT_LOW
from vla.envs.tabletop.scene import SceneModel

from .conftest import hold_action


def test_env_model_has_no_welds_or_equality_constraints() -> None:
    m = SceneModel().model
    assert m.neq == 0
    assert m.nmocap == 0
    # The Panda's real joint limits.
    lo = [m.jnt_range[m.joint(f"joint{i}").id][0] for i in range(1, 8)]
    hi = [m.jnt_range[m.joint(f"joint{i}").id][1] for i in range(1, 8)]
    np.testing.assert_allclose(lo, JOINT_LOW)
    np.testing.assert_allclose(hi, JOINT_HIGH)
    assert m.jnt_range[m.joint("finger_joint1").id].tolist() == pytest.approx([0.0, 0.04])


def test_env_grasp_is_physical_object_follows_then_falls(make_env) -> None:
    env = make_env("pick_up")
    expert = TabletopExpert(env)
    obs, _ = env.reset(seed=2)
    expert.reset()
    target = env.task.target
    rest_z = env.object_position(target)[2]
    while expert.phase != "lift":
        obs, *_ = env.step(expert.act(obs))
    for _ in range(6):  # lift by hand so the episode does not end on success first
        a = hold_action(env, gripper=1.0)
        a[2] = 0.03
        obs, *_ = env.step(a)
    held = env.object_position(target)
    tcp = env.tcp_pose()[0]
    assert held[2] > rest_z + 0.1, "object did not come up with the hand"
    assert np.linalg.norm(held - tcp) < 0.03
    assert target in env.sim_state().gripper_contacts
    # Carry sideways: the object moves with the hand.
    for _ in range(3):
        a = hold_action(env, gripper=1.0)
        a[1] = 0.04
        obs, *_ = env.step(a)
    moved = env.object_position(target)
    assert moved[1] - held[1] > 0.08
    # Open the gripper: nothing holds the object any more, so it falls back to the table.
    for _ in range(8):
        obs, *_ = env.step(hold_action(env, gripper=0.0))
    fallen = env.object_position(target)
    assert fallen[2] < rest_z + 0.01
    assert target not in env.sim_state().gripper_contacts


def test_env_ik_reaches_targets_within_millimetres(make_env) -> None:
    env = make_env("touch")
    env.reset(seed=0)
    down = np.diag([1.0, -1.0, -1.0])
    for goal in (np.array([0.45, 0.15, 0.08]), np.array([0.6, -0.2, 0.2]), np.array([0.38, 0.0, 0.03])):
        for _ in range(15):
            pos, mat = env.tcp_pose()
            a = hold_action(env)
            a[:3] = np.clip(goal - pos, -0.05, 0.05)
            a[3:6] = np.clip(rotation_error(down, mat), -0.25, 0.25)
            env.step(a)
        pos, mat = env.tcp_pose()
        assert np.linalg.norm(pos - goal) < 0.003
        assert np.linalg.norm(rotation_error(down, mat)) < 0.02
    # The solver itself, without dynamics: one solve lands within a millimetre.
    d = env.data
    target = np.array([0.5, 0.1, 0.1])
    q = env.ik.solve(d.qpos.copy(), target, down, d.qpos[env.scene.arm_qpos])
    qpos = d.qpos.copy()
    qpos[env.scene.arm_qpos] = q
    pos, _ = env.ik.tcp_pose(qpos)
    assert np.linalg.norm(pos - target) < 0.001


def test_env_arm_does_not_sag_and_no_action_means_no_success(make_env) -> None:
    for family in tasks.FAMILIES:
        env = make_env(family)
        obs, _ = env.reset(seed=4)
        start = obs["state"][17:20].copy()
        for _ in range(10):
            obs, _, terminated, truncated, info = env.step(hold_action(env))
            assert not truncated
            assert not info["success"], family
            assert not terminated
        assert np.linalg.norm(obs["state"][17:20] - start) < 0.003, family


def test_env_truncates_at_max_steps(make_env) -> None:
    env = make_env("touch")
    env.reset(seed=0)
    truncated = False
    for step in range(env.max_steps):
        _, _, terminated, truncated, _ = env.step(hold_action(env))
        assert not terminated
        assert truncated == (step == env.max_steps - 1)
    assert truncated


def _state(spec, pos, *, start=None, contacts=(), speed=0.0):
    start = start or pos
    return tasks.SimState(
        start={k: np.asarray(v, dtype=float) for k, v in start.items()},
        pos={k: np.asarray(v, dtype=float) for k, v in pos.items()},
        speed=dict.fromkeys(pos, speed),
        gripper_contacts=frozenset(contacts),
    )


def test_env_success_predicates_reject_near_misses() -> None:
    rng = np.random.default_rng(0)
    stack = tasks.sample_episode("stack", "train", rng)
    t, b = stack.target, stack.other
    on_top = {t: (0.5, 0.0, 0.04 + 0.02 if t[1] == "block" else 0.04 + 0.025), b: (0.5, 0.0, 0.02)}
    assert tasks.is_success(stack, _state(stack, on_top))
    assert not tasks.is_success(stack, _state(stack, on_top, contacts=[t])), "still held"
    off = {t: (0.54, 0.0, on_top[t][2]), b: on_top[b]}
    assert not tasks.is_success(stack, _state(stack, off)), "misaligned"
    push = tasks.sample_episode("push", "train", rng)
    d = np.array(tasks.DIRECTION_VECTORS[push.direction])
    z = 0.02 if push.target[1] == "block" else 0.025
    start = {push.target: (0.5, 0.0, z)}
    far = {push.target: (0.5 + 0.09 * d[0], 0.09 * d[1], z)}
    short = {push.target: (0.5 + 0.05 * d[0], 0.05 * d[1], z)}
    wrong = {push.target: (0.5 - 0.09 * d[0], -0.09 * d[1], z)}
    lifted = {push.target: (0.5 + 0.09 * d[0], 0.09 * d[1], z + 0.05)}
    assert tasks.is_success(push, _state(push, far, start=start))
    for bad in (short, wrong, lifted):
        assert not tasks.is_success(push, _state(push, bad, start=start))


def test_env_configs_validate() -> None:
    from vla.envs.tabletop.ik import IKConfig
    from vla.envs.tabletop.randomize import RandomizationConfig

    with pytest.raises(ValueError, match="iterations"):
        IKConfig(iterations=0)
    with pytest.raises(ValueError, match="positive"):
        IKConfig(damping=0.0)
    with pytest.raises(ValueError, match="light_scale"):
        RandomizationConfig(light_scale=(1.5, 1.0))
    with pytest.raises(ValueError, match="noise_std"):
        RandomizationConfig(noise_std=(-1.0, 2.0))
    with pytest.raises(ValueError, match=">= 0"):
        RandomizationConfig(object_tint=-0.1)
