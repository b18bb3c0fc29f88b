"""The whole loop over loopback DDS: `SimRobot` (the MuJoCo tabletop on the ROS 2 graph) driven by the
node, through the ExecuteInstruction action and through the instruction topic.

The controller is the suite's scripted expert behind the same safety filter and chunking as a learned
policy (`ExpertPolicy`): a tiny policy trained inside a test would not succeed, and the loop's
mechanics are what is tested. Lockstep makes the ROS 2 loop take exactly the actions an in-process
loop takes on the same seeds, which is also what makes `vla ros2 sim` comparable with `vla eval`.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vla.envs import get_suite
from vla.runtime import SafetyConfig, make_safe_controller
from vla.runtime.ros2.config import NodeConfig
from vla.runtime.ros2.node import PolicyNode
from vla.runtime.ros2.sim import ExpertPolicy, SimConfig, SimRobot
from vla.runtime.ros2.transport import STATUS_SUCCEEDED

SIZE = (32, 32)


def _controller(suite, env, mode: str):
    return make_safe_controller(
        ExpertPolicy(suite, env), embodiment=env.embodiment, safety=SafetyConfig(action_space=mode)
    )


def _direct(suite, family: str, seed: int, mode: str) -> tuple[bool, np.ndarray]:
    """The same controller stack driving the env in-process (what `vla eval` does)."""
    env = suite.make(family, image_size=SIZE, action_mode=mode)
    try:
        ctl = _controller(suite, env, mode)
        obs, _ = env.reset(seed=seed)
        ctl.reset()
        actions, success = [], False
        for _ in range(env.max_steps):
            a = ctl.act(obs)
            actions.append(a)
            obs, _, term, trunc, info = env.step(a)
            success = bool(info["success"])
            if term or trunc:
                break
        return success, np.asarray(actions, np.float32)
    finally:
        env.close()


@pytest.mark.parametrize(
    ("family", "seeds", "mode", "drive"),
    [("touch", (0, 1), "ee_delta", "action"), ("push", (0,), "joint_pos", "topic")],
)
def test_node_drives_sim_to_success_like_in_process(dds, ids, family, seeds, mode, drive) -> None:
    suite = get_suite("tabletop")
    env = suite.make(family, image_size=SIZE, action_mode=mode)
    cfg = NodeConfig(namespace=ids.namespace, rate_hz=100.0, action_space=mode)
    node = PolicyNode(_controller(suite, env, mode), env.embodiment, dds(), cfg, name="expert")
    robot = SimRobot(env, dds(), SimConfig(drive=drive, node=cfg))
    stop = threading.Event()
    thread = threading.Thread(target=node.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert robot.wait_for_node(10.0)
        for seed in seeds:
            out = robot.run_episode(seed)
            success, actions = _direct(suite, family, seed, mode)
            assert out.success and success, (seed, out)
            assert out.failure == ""
            np.testing.assert_array_equal(out.actions, actions)  # bit-identical through ROS 2
            if drive == "action":
                assert out.goal_status == STATUS_SUCCEEDED and out.goal_reason == "succeeded"
        assert robot.bad_commands == 0
        kind = (
            "trajectory_msgs/msg/JointTrajectory" if mode == "joint_pos" else "std_msgs/msg/Float32MultiArray"
        )
        assert node.codec.msgtype == kind
    finally:
        stop.set()
        thread.join(10)
        env.close()
