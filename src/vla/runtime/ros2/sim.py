"""A simulated robot on the ROS 2 graph: a suite's env publishes its cameras and joint states and
executes the commands it receives, so the whole loop (`vla ros2 sim` + `vla ros2 node`) runs on one
machine.

The simulator steps in lockstep with the commands: it publishes an observation (every camera, the
joint states and the end-effector pose, all with one stamp), waits for one command, steps, publishes the
next. The node acts once per new observation, so the ROS 2 loop takes the same actions on the same
seeds as `vla eval` does in-process. While it waits, the sim re-sends the current observation (same
stamp) every `resend_s`, which recovers a camera frame lost on a best-effort link without ever making
the node act twice. Episodes are driven through the node's ExecuteInstruction action (or its
instruction topic); success comes from the simulator and is published on task_success. With
`drive="plan"` an episode is one long-horizon request (a suite's `make_long_horizon` env) sent as an
ExecutePlan goal with the env's scene description, which the sim also publishes on the `scene` topic
with every observation (standing in for a perception module); the node's step monitor decides when
the request is done, so nothing goes on task_success.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from vla.runtime.ros2 import codecs
from vla.runtime.ros2.action import DdsActionClient
from vla.runtime.ros2.codecs import CommandCodec, InputError, StateLayout
from vla.runtime.ros2.config import NodeConfig, camera_topic
from vla.runtime.ros2.dds import DdsTransport
from vla.runtime.ros2.messages import ACTION_TYPE, PLAN_ACTION_TYPE
from vla.runtime.ros2.qos import RELIABLE, SENSOR
from vla.types import ActionChunk, Observation

logger = logging.getLogger(__name__)

DRIVES = ("action", "topic", "plan")


@dataclass(frozen=True)
class SimConfig:
    """How the simulated robot runs.

    Attributes:
        drive: "action" (each episode is an ExecuteInstruction goal), "topic" (the instruction topic) or
            "plan" (each episode is an ExecutePlan goal of a long-horizon env).
        node: the topic names of the node it drives (namespace, remaps, joint names); its
            `node_name` locates the actions (~/execute_instruction, ~/execute_plan).
        resend_s: re-send the current observation after this long without a command.
        step_timeout_s: end the episode as failed after this long without a command.
        result_timeout_s: how long to wait for the goal's result after the episode ended.
        frame_id: the frame of the end-effector pose.
    """

    drive: str = "action"
    node: NodeConfig = field(default_factory=NodeConfig)
    resend_s: float = 0.5
    step_timeout_s: float = 30.0
    result_timeout_s: float = 10.0
    frame_id: str = "base"

    def __post_init__(self) -> None:
        if self.drive not in DRIVES:
            raise ValueError(f"drive must be one of {DRIVES}, got '{self.drive}'")
        if not 0 < self.resend_s <= self.step_timeout_s:
            raise ValueError(
                f"need 0 < resend_s <= step_timeout_s, got {self.resend_s}, {self.step_timeout_s}"
            )
        if self.result_timeout_s <= 0:
            raise ValueError(f"result_timeout_s must be positive, got {self.result_timeout_s}")


@dataclass
class EpisodeOutcome:
    """One episode through ROS 2.

    Attributes:
        seed: the episode seed.
        instruction: the task.
        success: the simulator's verdict.
        steps: commands executed.
        goal_status: the goal's terminal action_msgs/GoalStatus value (0 with drive="topic").
        goal_reason: the result's reason ("" with drive="topic").
        failure: why the episode ended early ("" if it ran normally).
        actions: the executed commands, float32 [steps, A].
        result: the goal's result message (None with drive="topic").
        feedback: the goal's feedback messages, in order.
    """

    seed: int
    instruction: str
    success: bool
    steps: int
    goal_status: int = 0
    goal_reason: str = ""
    failure: str = ""
    actions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    result: Any = None
    feedback: list[Any] = field(default_factory=list)


class SimRobot:
    """One env on the ROS 2 graph.

    Args:
        env: a suite env (`reset(seed)`, `step(action)`, `embodiment`, `max_steps`); its action mode
            must be the space the node commands.
        transport: the DDS participant to publish on.
        config: settings.
    """

    def __init__(self, env: Any, transport: DdsTransport, config: SimConfig | None = None) -> None:
        self.config = cfg = config or SimConfig()
        self.env = env
        self.transport = transport
        emb = env.embodiment
        n = cfg.node
        joints = n.joints_for(len(emb.joint_low))
        self.layout = StateLayout(emb, joints, tuple(n.gripper_joints), from_state_topic=bool(n.state_topic))
        space = getattr(env, "action_mode", None)
        self.codec = CommandCodec.for_embodiment(emb, space=space, joint_names=joints)
        self._cams = {
            cam: transport.advertise(n.topic(camera_topic(cam)), "sensor_msgs/msg/Image", SENSOR)
            for cam in emb.cameras
        }
        self._joints = transport.advertise(n.topic("joint_states"), "sensor_msgs/msg/JointState", RELIABLE)
        self._pose = transport.advertise(n.topic("ee_pose"), "geometry_msgs/msg/PoseStamped", RELIABLE)
        self._state = (
            transport.advertise(n.topic(n.state_topic), "std_msgs/msg/Float32MultiArray", RELIABLE)
            if n.state_topic
            else None
        )
        self._success = transport.advertise(n.topic("task_success"), "std_msgs/msg/Bool", RELIABLE)
        self._instruction = transport.advertise(n.topic("instruction"), "std_msgs/msg/String", RELIABLE)
        self._commands = transport.subscribe(n.topic(self.codec.topic), self.codec.msgtype, RELIABLE)
        self._scene = None
        if cfg.drive == "plan":
            if not callable(getattr(env, "describe_scene", None)):
                raise ValueError(
                    f"drive 'plan' needs a long-horizon env with describe_scene() (a suite's "
                    f"make_long_horizon), got {type(env).__name__}"
                )
            self._scene = transport.advertise(n.topic("scene"), "std_msgs/msg/String", RELIABLE)
        action = {
            "action": ("~/execute_instruction", ACTION_TYPE),
            "plan": ("~/execute_plan", PLAN_ACTION_TYPE),
        }
        self.client = (
            DdsActionClient(transport, n.topic(action[cfg.drive][0]), action[cfg.drive][1])
            if cfg.drive in action
            else None
        )
        self.bad_commands = 0

    def use_env(self, env: Any) -> None:
        """Swaps in another env of the same robot (e.g. the next task family)."""
        if (
            env.embodiment.compatible_with(self.env.embodiment)
            or env.embodiment.cameras != self.env.embodiment.cameras
        ):
            raise ValueError(f"env {env!r} has another embodiment than the one this SimRobot publishes")
        if getattr(env, "action_mode", None) != getattr(self.env, "action_mode", None):
            raise ValueError("the new env commands another action space")
        self.env = env

    def wait_for_node(self, timeout_s: float = 10.0) -> bool:
        """True once the node's command publisher (and its action server) are matched."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ok = self._commands.matched() > 0 and all(p.matched() > 0 for p in self._cams.values())
            if ok and (self.client is None or self.client.wait_for_server(timeout_s=0.05)):
                return True
            time.sleep(0.02)
        return False

    def publish(self, obs: dict[str, Any], stamp_ns: int) -> None:
        """Publishes one observation: every camera, then the joint states and the pose (one stamp)."""
        make = self.transport.make
        for cam, pub in self._cams.items():
            pub.publish(
                make(pub.msgtype, codecs.array_to_image(obs["images"][cam], stamp_ns=stamp_ns, frame_id=cam))
            )
        state = obs["state"]
        if self._state is not None:
            fields = {
                "layout": {"dim": [{"label": "state", "size": len(state), "stride": len(state)}]},
                "data": state,
            }
            self._state.publish(make(self._state.msgtype, fields))
        if self.layout.needs_joints:
            self._joints.publish(
                make(self._joints.msgtype, self.layout.joint_state_fields(state, stamp_ns=stamp_ns))
            )
        if self.layout.needs_pose:
            fields = self.layout.pose_fields(state, stamp_ns=stamp_ns, frame_id=self.config.frame_id)
            self._pose.publish(make(self._pose.msgtype, fields))
        if self._scene is not None:
            self._scene.publish(make(self._scene.msgtype, {"data": self._scene_json()}))

    def _scene_json(self) -> str:
        return json.dumps(self.env.describe_scene().to_json())

    def _next_command(
        self, obs: dict[str, Any], stamp_ns: int, goal: bytes | None
    ) -> tuple[np.ndarray | None, str]:
        """Waits for one valid command, re-sending the observation; (action, "") or (None, why not)."""
        cfg = self.config
        start = last_send = time.monotonic()
        while True:
            for r in self._commands.take():
                try:
                    return self.codec.decode(r.msg), ""
                except InputError as e:
                    self.bad_commands += 1
                    logger.warning("sim: ignored a bad command: %s", e)
            if self.client is not None and goal is not None:
                self.client.poll()
                if goal in self.client.results:
                    return None, "goal ended"
            now = time.monotonic()
            if now - start > cfg.step_timeout_s:
                return None, f"no command within {cfg.step_timeout_s:.0f} s"
            if now - last_send > cfg.resend_s:
                self.publish(obs, stamp_ns)
                last_send = now
            self.transport.wait(0.005)

    def run_episode(
        self, seed: int, *, instruction: str | None = None, max_steps: int | None = None
    ) -> EpisodeOutcome:
        """Resets the env with `seed` and runs one episode through the node.

        Args:
            seed: the episode's seed.
            instruction: drive="plan": this request in the seed's scene instead of the episode's own.
            max_steps: the goal's step budget (default: the env's episode length).
        """
        env, cfg = self.env, self.config
        if instruction is not None and cfg.drive != "plan":
            raise ValueError("run_episode(instruction=...) needs drive='plan' (a long-horizon env)")
        options = None if instruction is None else {"instruction": instruction}
        obs, _ = env.reset(seed=seed, options=options) if options else env.reset(seed=seed)
        self._commands.take()  # nothing from before this episode may drive it
        instruction = str(obs["instruction"])
        stamp = self.transport.now_ns()
        self.publish(obs, stamp)
        goal = None
        if self.client is not None:
            extra = {"scene": self._scene_json()} if self._scene is not None else None
            budget = int(env.max_steps if max_steps is None else max_steps)
            goal = self.client.send_goal(instruction, max_steps=budget, fields=extra)
        else:
            self._instruction.publish(self.transport.make("std_msgs/msg/String", {"data": instruction}))
        actions: list[np.ndarray] = []
        success, failure = False, ""
        while len(actions) < env.max_steps:
            action, failure = self._next_command(obs, stamp, goal)
            if action is None:
                break
            obs, _, terminated, truncated, info = env.step(action)
            actions.append(action)
            success = bool(info.get("success", False))
            if success and self._scene is None:  # a plan is judged by the node's step monitor
                self._success.publish(self.transport.make("std_msgs/msg/Bool", {"data": True}))
            if terminated or truncated:
                break
            stamp = max(self.transport.now_ns(), stamp + 1)
            self.publish(obs, stamp)
        out = EpisodeOutcome(
            seed=seed,
            instruction=instruction,
            success=success,
            steps=len(actions),
            failure="" if failure == "goal ended" else failure,
            actions=np.asarray(actions, np.float32).reshape(len(actions), -1),
        )
        if self.client is not None and goal is not None:
            try:
                status, result = self.client.wait_result(goal, timeout_s=cfg.result_timeout_s)
                out.goal_status, out.goal_reason, out.result = status, str(result.reason), result
                self.client.poll()
                out.feedback = list(self.client.feedback.get(goal, []))
            except TimeoutError as e:
                out.failure = out.failure or str(e)
        elif not success:
            self._instruction.publish(self.transport.make("std_msgs/msg/String", {"data": ""}))
        return out


class ExpertPolicy:
    """A suite's scripted expert as a policy (it reads the simulator, so it runs in the sim's process).

    Used to check the ROS 2 loop's mechanics with a controller that succeeds: the expert follows the env
    it was made for, chunks of one action, through the same safety filter as a learned policy. In an
    env that runs one skill at a time (`start_step`, a long-horizon env) it starts the skill the
    observation's instruction names whenever that instruction changes, as `Executor` does in-process:
    the node tells the policy a plan step only through the instruction. (A retry in the same words is
    not seen as a new step; the node's plan route rephrases retries when the suite can.)
    """

    def __init__(self, suite: Any, env: Any) -> None:
        self.env = env
        self.expert = suite.expert(env)
        self.embodiment = env.embodiment
        self.config = SimpleNamespace(obs_horizon=1)
        self._step = ""

    def predict(self, obs: Observation) -> ActionChunk:
        state = np.asarray(obs.state)[0, -1]
        single = {"images": {k: np.asarray(v)[0, -1] for k, v in obs.images.items()}, "state": state}
        single["instruction"] = obs.instruction[0] if isinstance(obs.instruction, list) else obs.instruction
        start = getattr(self.env, "start_step", None)  # begin_step without rendering (not our thread)
        if start is not None and (self.env.step_index == 0 or single["instruction"] != self._step):
            start(single["instruction"])  # step_index 0: the env was reset since
            self._step = single["instruction"]
        action = np.asarray(self.expert.act(single), dtype=np.float32)
        return ActionChunk(actions=action[None, None], confidence=np.ones(1, np.float32))
