"""The ExecutePlan action over loopback DDS: a long-horizon request planned by the node, executed step by
step through the ROS 2 loop on the MuJoCo tabletop (`SimRobot`, drive "plan"), refused, and canceled.

The planner is `rules` (the request parser alone: deterministic, no model) and the skills run with the
suite's scripted expert behind the safety filter (`ExpertPolicy`), as in `test_ros2_loop.py`: what is
tested is the route (goal, per-step feedback, the step monitor's verdict, stops), not a policy.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from vla.envs import get_suite
from vla.planning.executor import Executor
from vla.planning.offline import rules_planner
from vla.planning.plan import Step
from vla.planning.run import find_scene
from vla.runtime import SafetyConfig, make_safe_controller
from vla.runtime.ros2.action import DdsActionClient
from vla.runtime.ros2.config import NodeConfig
from vla.runtime.ros2.messages import PLAN_ACTION_TYPE
from vla.runtime.ros2.node import PolicyNode
from vla.runtime.ros2.plan_goal import PlanRoute
from vla.runtime.ros2.sim import ExpertPolicy, SimConfig, SimRobot
from vla.runtime.ros2.transport import STATUS_ABORTED, STATUS_CANCELED, STATUS_SUCCEEDED, STATUS_UNKNOWN

SUITE = get_suite("tabletop")
SIZE = (32, 32)
REQUEST = "put the red block in the bowl and then push the blue ball to the left"
STEPS = ["put the red block in the bowl", "push the blue ball to the left"]


def _controller(env: Any) -> Any:
    return make_safe_controller(
        ExpertPolicy(SUITE, env), embodiment=env.embodiment, safety=SafetyConfig(action_space="ee_delta")
    )


class Plan:
    """A node serving ExecutePlan (rules planner, expert skills) and the simulated robot it drives."""

    def __init__(self, dds: Any, ids: Any) -> None:
        self.kind, self.seed = find_scene(SUITE, REQUEST, split="long_horizon")
        self.env = SUITE.make_long_horizon(self.kind, image_size=SIZE)
        self.cfg = NodeConfig(namespace=ids.namespace, rate_hz=100.0)
        route = PlanRoute.for_suite(SUITE, rules_planner(SUITE.skills))
        self.node = PolicyNode(
            _controller(self.env), self.env.embodiment, dds(), self.cfg, name="expert", plans=route
        )
        self.robot = SimRobot(self.env, dds(), SimConfig(drive="plan", node=self.cfg))
        self.other = DdsActionClient(dds(), self.cfg.topic("~/execute_plan"), PLAN_ACTION_TYPE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.node.run, args=(self.stop,), daemon=True)

    def scene_json(self) -> str:
        _, scene, _ = SUITE.long_horizon_request(self.kind, split="long_horizon", seed=self.seed)
        return json.dumps(scene.to_json())


@pytest.fixture
def plan(dds, ids):
    p = Plan(dds, ids)
    p.thread.start()
    try:
        assert p.robot.wait_for_node(10.0) and p.other.wait_for_server(10.0)
        yield p
    finally:
        p.stop.set()
        p.thread.join(10)
        p.env.close()
        assert not p.thread.is_alive(), "the node's loop did not stop"


def _in_process(kind: str, seed: int) -> tuple[Any, np.ndarray]:
    """The same planner, monitor and controller stack on the env in-process (what `vla run` does)."""
    env = SUITE.make_long_horizon(kind, image_size=SIZE)
    try:
        env.reset(seed=seed, options={"instruction": REQUEST})
        ctl, actions = _controller(env), []

        class Recording:
            def reset(self) -> None:
                ctl.reset()

            def act(self, obs: dict[str, Any]) -> np.ndarray:
                actions.append(ctl.act(obs))
                return actions[-1]

        run = Executor(
            rules_planner(SUITE.skills), Recording(), SUITE.step_monitor(), rephrase=SUITE.paraphrase
        )
        return run.run(env, REQUEST), np.asarray(actions, np.float32)
    finally:
        env.close()


def test_a_request_is_planned_and_executed_step_by_step(plan) -> None:
    out = plan.robot.run_episode(plan.seed, instruction=REQUEST)
    assert out.goal_status == STATUS_SUCCEEDED and out.failure == "", out
    r = out.result
    assert r.success and r.reason == "succeeded" and list(r.plan) == STEPS
    assert json.loads(r.plan_json)[0] == {"skill": "put_in", "obj": "red block", "container": "bowl"}
    assert r.steps_completed == 2 and r.replans == 0 and r.steps == out.steps > 0 and r.duration_s > 0
    # Feedback per step: planned first, then each step's start and the monitor's verdict.
    steps = [f for f in out.feedback if f.status != "hold"]  # the node may hold before the first frame
    events = [(f.status, f.step, f.skill) for f in steps]
    assert events[:2] == [("planning", 0, ""), ("planned", 0, "")]
    assert events[2:] == [
        ("running", 1, STEPS[0]),
        ("succeeded", 1, STEPS[0]),
        ("running", 2, STEPS[1]),
        ("succeeded", 2, STEPS[1]),
    ]
    assert all(f.plan_steps == 2 for f in steps[1:]) and steps[-1].commands == r.steps
    # The simulator agrees (judged here only, never by the node), and ROS 2 changed no action.
    plan_steps = tuple(Step.from_json(s) for s in json.loads(r.plan_json))
    assert plan.env.request_fulfilled(plan=plan_steps)
    direct, actions = _in_process(plan.kind, plan.seed)
    assert direct.finished and tuple(direct.plan) == plan_steps
    np.testing.assert_array_equal(out.actions, actions)
    assert plan.robot.bad_commands == 0


def test_a_refused_request_or_scene_is_a_result_with_the_reason(plan) -> None:
    client = plan.other
    gid = client.send_goal("juggle the red block and the blue ball", fields={"scene": plan.scene_json()})
    status, r = client.wait_result(gid, timeout_s=10)
    assert status == STATUS_ABORTED and not r.success
    assert r.reason.startswith("refused:") and "no skill of the policy matches" in r.reason
    assert list(r.plan) == [] and r.steps == 0 and r.steps_completed == 0
    assert [f.status for f in client.feedback[gid] if f.status != "hold"] == ["planning", "failed"]
    bad = client.send_goal(REQUEST, fields={"scene": "{not json"})
    status, r = client.wait_result(bad, timeout_s=10)
    assert status == STATUS_ABORTED and r.reason.startswith("refused: the scene is not JSON")
    assert plan.node.stats.commands == 0 and plan.node.task is None


def test_the_step_budget_ends_the_goal_between_actions(plan) -> None:
    out = plan.robot.run_episode(plan.seed, instruction=REQUEST, max_steps=15)
    assert out.goal_status == STATUS_ABORTED and out.goal_reason == "max_steps" and out.failure == ""
    r = out.result
    assert not r.success and r.steps == out.steps == 15 and r.steps_completed == 0 and list(r.plan) == STEPS


def test_cancel_stops_between_actions_and_the_node_keeps_serving(plan) -> None:
    node, client = plan.node, plan.other
    outcome: list[Any] = []
    episode = threading.Thread(
        target=lambda: outcome.append(plan.robot.run_episode(plan.seed, instruction=REQUEST))
    )
    episode.start()
    try:
        deadline = time.monotonic() + 20
        while node.stats.commands < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.stats.commands >= 20
        # While the goal runs, other clients are answered (an unknown goal's result, on both actions).
        for c in (client, DdsActionClient(plan.robot.transport, node.action_name)):
            assert c.wait_for_server(10.0)
            c.request_result(bytes(16))
            assert c.wait_result(bytes(16), timeout_s=10)[0] == STATUS_UNKNOWN
        code, canceling = client.cancel(None)
        assert code == 0 and len(canceling) == 1
    finally:
        episode.join(30)
    out = outcome[0]
    assert out.goal_status == STATUS_CANCELED and out.goal_reason == "canceled"
    r = out.result
    assert not r.success and list(r.plan) == STEPS and r.steps_completed < 2
    assert r.steps in (out.steps, out.steps + 1)  # the last command may cross the result on the wire
    sent = node.stats.commands
    time.sleep(0.3)
    assert node.stats.commands == sent and node.task is None  # nothing after the cancel: the robot holds
    # The next goal is served as usual.
    gid = client.send_goal("juggle the red block", fields={"scene": plan.scene_json()})
    assert client.wait_result(gid, timeout_s=10)[1].reason.startswith("refused:")
