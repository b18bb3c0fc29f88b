"""The ExecuteInstruction action server over loopback DDS: goal, feedback, result, cancel, budget,
preemption, rejection and the e-stop."""

from __future__ import annotations

import math

import pytest

from vla.runtime.ros2.action import CANCEL_NONE, CANCEL_TERMINATED, CANCEL_UNKNOWN_GOAL, DdsActionClient
from vla.runtime.ros2.transport import (
    STATUS_ABORTED,
    STATUS_CANCELED,
    STATUS_EXECUTING,
    STATUS_SUCCEEDED,
    STATUS_UNKNOWN,
)


@pytest.fixture
def client(harness) -> DdsActionClient:
    c = DdsActionClient(harness.robot.t, harness.node.action_name)
    assert c.wait_for_server(10.0)
    return c


def test_goal_feedback_and_success(harness, client, ros) -> None:
    r = harness.robot
    gid = client.send_goal("touch the red block")
    for _ in range(3):
        r.frame()
        r.wait_commands(len(r.commands) + 1)
    fb = ros.wait_for(lambda: (client.poll(), [f for f in client.feedback[gid] if f.step == 3])[1])
    assert fb[-1].state == "acting" and math.isclose(fb[-1].confidence, 0.8, rel_tol=1e-6)
    assert fb[-1].safety == "ok"
    assert ros.wait_for(lambda: (client.poll(), client.statuses.get(gid) == STATUS_EXECUTING)[1])
    r.publish_bool(r.success, True)
    status, result = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_SUCCEEDED
    assert result.success and result.reason == "succeeded" and result.steps == 3 and result.duration_s > 0
    assert ros.wait_for(lambda: (client.poll(), client.statuses.get(gid) == STATUS_SUCCEEDED)[1])
    # The result can be fetched again after the goal ended (the server keeps finished goals).
    again = DdsActionClient(r.t, harness.node.action_name)
    assert again.wait_for_server(10.0)
    again.request_result(gid)
    assert again.wait_result(gid, timeout_s=10)[0] == STATUS_SUCCEEDED


def test_cancel(harness, client) -> None:
    r = harness.robot
    gid = client.send_goal("push the cube left")
    r.frame()
    r.wait_commands(1)
    assert client.cancel(os_urandom()) == (CANCEL_UNKNOWN_GOAL, [])
    code, ids = client.cancel(gid)
    assert code == CANCEL_NONE and ids == [gid]
    status, result = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_CANCELED and not result.success and result.reason == "canceled"
    assert client.cancel(gid)[0] == CANCEL_TERMINATED
    # No more commands for a canceled goal.
    r.frame()
    r.wait_status(lambda lvl, msg, v: v["state"] == "idle")
    assert len(r.commands) == 1


def test_step_budget_preemption_rejection(harness, client) -> None:
    r = harness.robot
    gid = client.send_goal("pick up the cube", max_steps=2)
    for n in (1, 2):
        r.frame()
        r.wait_commands(n)
    r.frame()  # the budget is spent: no third command
    status, result = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_ABORTED and result.reason == "max_steps" and result.steps == 2
    r.poll()
    assert len(r.commands) == 2
    first = client.send_goal("touch the ball")
    second = client.send_goal("touch the cube")
    status, result = client.wait_result(first, timeout_s=10)
    assert status == STATUS_ABORTED and result.reason == "preempted"
    r.wait_status(lambda lvl, msg, v: v["instruction"] == "touch the cube")
    with pytest.raises(RuntimeError, match="rejected"):
        client.send_goal("   ")
    client.cancel(second)
    assert client.wait_result(second, timeout_s=10)[0] == STATUS_CANCELED


def test_estop_aborts_the_goal_and_refuses_new_ones(harness, client) -> None:
    r = harness.robot
    gid = client.send_goal("touch the red block")
    r.frame()
    r.wait_commands(1)
    r.publish_bool(r.estop, True)
    status, result = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_ABORTED and result.reason.startswith("estop")
    later = client.send_goal("touch the blue block")
    status, result = client.wait_result(later, timeout_s=10)
    assert status == STATUS_ABORTED and result.reason.startswith("estop") and result.steps == 0
    assert len(r.commands) == 1


def test_unknown_goal_result(harness, client) -> None:
    gid = os_urandom()
    client.request_result(gid)
    status, _ = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_UNKNOWN


def os_urandom() -> bytes:
    import os

    return os.urandom(16)
