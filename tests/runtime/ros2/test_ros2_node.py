"""The node over loopback DDS: acting once per new frame, and the documented behaviour for bad inputs,
stale cameras and the e-stop (hold, log, status; never a crash)."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from vla.runtime.ros2.codecs import ERROR, OK, STALE, WARN


def _start(h) -> None:
    h.robot.instruction.publish(h.robot.t.make("std_msgs/msg/String", {"data": "touch the red block"}))
    h.robot.wait_status(lambda lvl, msg, v: v.get("instruction") == "touch the red block")


def test_one_command_per_new_frame_never_twice(harness, ros) -> None:
    h = harness
    _start(h)
    h.robot.frame()
    cmds = h.robot.wait_commands(1)
    np.testing.assert_allclose(cmds[0], [0.001, 0, 0, 0, 0, 0, 0.5], atol=1e-7)
    # The same frame again (same stamp) is not news: no second command, status says it waits.
    h.robot.frame(same_stamp=True)
    h.robot.wait_status(lambda lvl, msg, v: msg == "waiting for new inputs" and v["commands"] == "1")
    assert len(h.robot.commands) == 1
    for _ in range(3):
        h.robot.frame()
        h.robot.wait_commands(len(h.robot.commands) + 1)
    # The chunk advances one action per frame (4 actions per chunk: one model call).
    np.testing.assert_allclose([c[0] for c in h.robot.commands], [0.001, 0.002, 0.003, 0.004], atol=1e-7)
    assert h.policy.calls == 1


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("size", "the policy expects 16x16"),
        ("encoding", "encoding 'mono8' is not supported"),
        ("short_data", "image data has"),
        ("missing_joint", "joint_states lacks joints ['joint3']"),
        ("nan_joint", "non-finite values"),
    ],
)
def test_bad_input_holds_logs_and_reports(harness, ros, caplog, kind: str, expect: str) -> None:
    h, r = harness, harness.robot
    _start(h)
    images, joints = None, None
    if kind == "size":
        images = {"wrist": r.image_msg("wrist", r.stamp + 10_000_000, size=(12, 16))}
    elif kind == "encoding":
        images = {"scene": r.image_msg("scene", r.stamp + 10_000_000, encoding="mono8")}
    elif kind == "short_data":
        msg = r.image_msg("scene", r.stamp + 10_000_000)
        msg.data = msg.data[:-5]
        images = {"scene": msg}
    else:
        fields = r.layout.joint_state_fields(r.state, stamp_ns=r.stamp + 10_000_000)
        if kind == "missing_joint":
            keep = [i for i, n in enumerate(fields["name"]) if n != "joint3"]
            fields["name"] = [fields["name"][i] for i in keep]
            fields["position"] = fields["position"][keep]
            fields["velocity"] = fields["velocity"][keep]
        else:
            fields["velocity"][2] = np.nan
        joints = r.t.make("sensor_msgs/msg/JointState", fields)
    with caplog.at_level(logging.WARNING, logger="vla.runtime.ros2.node"):
        r.frame(images=images, joints=joints)
        level, message, values = r.wait_status(lambda lvl, msg, v: v["state"] == "bad_input")
    assert level == WARN and expect in message, message
    assert int(values["holds.bad_input"]) >= 1
    assert any(expect in rec.getMessage() for rec in caplog.records)
    assert r.commands == [] and h.policy.calls == 0
    # The node is still alive: the next good frame is acted on.
    r.frame()
    r.wait_commands(1)


def test_stale_camera_holds_then_recovers(harness, ros) -> None:
    h, r = harness, harness.robot
    _start(h)
    r.frame()
    r.wait_commands(1)

    # The wrist camera stops: the other inputs keep coming, the node holds and names the stale camera.
    def wrist_stale() -> tuple | None:
        r.frame(skip=("wrist",))
        time.sleep(0.02)
        r.poll()
        return next((s for s in reversed(r.statuses) if s[2]["state"] == "stale"), None)

    level, message, _values = ros.wait_for(wrist_stale)
    assert level == STALE and "camera:wrist" in message and "camera:scene" not in message
    assert len(r.commands) == 1
    r.frame()
    r.wait_commands(2)
    assert (
        r.wait_status(lambda lvl, msg, v: v["state"] == "acting" and v["commands"] == "2", old=True)[0] == OK
    )


@pytest.mark.parametrize("harness", [{"hold_command": True}], indirect=True)
def test_estop_holds_with_hold_command_and_releases(harness, ros) -> None:
    h, r = harness, harness.robot
    _start(h)
    r.frame()
    r.wait_commands(1)
    r.publish_bool(r.estop, True)
    level, message, _ = r.wait_status(lambda lvl, msg, v: v["state"] == "estop")
    assert level == ERROR and "estop" in message
    assert h.node.controller.safety.estopped
    n = len(r.commands)
    r.frame()
    cmds = r.wait_commands(n + 1)  # hold_command: the hold is published (zero deltas, gripper kept)
    np.testing.assert_allclose(cmds[-1], [0, 0, 0, 0, 0, 0, 0.5], atol=1e-7)
    assert h.policy.calls == 1
    r.publish_bool(r.estop, False)
    r.wait_status(lambda lvl, msg, v: v["estop"] == "False")
    assert not h.node.controller.safety.estopped
    r.frame()
    r.wait_commands(len(r.commands) + 1)
    assert r.commands[-1][0] > 0  # moving again


def test_estop_without_hold_command_sends_nothing(harness, ros) -> None:
    h, r = harness, harness.robot
    _start(h)
    r.publish_bool(r.estop, True)
    r.wait_status(lambda lvl, msg, v: v["state"] == "estop")
    for _ in range(3):
        r.frame()
    r.wait_status(lambda lvl, msg, v: int(v.get("holds.estop", 0)) > 5)
    assert r.commands == []


def test_instruction_topic_empty_stops(harness, ros) -> None:
    h, r = harness, harness.robot
    _start(h)
    r.instruction.publish(r.t.make("std_msgs/msg/String", {"data": ""}))
    r.wait_status(lambda lvl, msg, v: v["state"] == "idle")
    r.frame()
    r.wait_status(lambda lvl, msg, v: v["state"] == "idle" and msg == "idle")
    assert r.commands == []


class _Raising:
    """A policy that always fails (a broken model)."""

    def __init__(self, embodiment) -> None:
        self.embodiment = embodiment

    def predict(self, obs):
        raise RuntimeError("model exploded")


def test_failing_controller_holds_and_the_node_survives(harness, ros, caplog) -> None:
    from vla.runtime import make_safe_controller

    h, r = harness, harness.robot
    # Without the safety filter (unsafe mode) SafeController raises after its retries; the node holds.
    h.node.controller = make_safe_controller(_Raising(h.node.embodiment), unsafe_no_filter=True)
    _start(h)
    r.frame()
    level, message, _ = r.wait_status(lambda lvl, msg, v: v["state"] == "controller_error")
    assert level == ERROR and "model exploded" in message
    assert r.commands == []
    h.node.controller = make_safe_controller(h.policy, embodiment=h.node.embodiment)
    r.frame()
    r.wait_commands(1)
