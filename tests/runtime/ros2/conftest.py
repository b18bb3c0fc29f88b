"""Fixtures of the ROS 2 tests: DDS participants on a domain of their own, a node running in a thread,
and a test-side robot that publishes frames and reads what the node sends.

Every test gets its own DDS domain id and namespace, so parallel test runs never see each other.
The policy double stands in for a model where the model is beside the point (input handling, e-stop,
the action server); the loop test drives the real simulator with the scripted expert.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from vla.envs.tabletop.embodiment import make_embodiment
from vla.runtime import make_safe_controller
from vla.runtime.ros2 import codecs
from vla.runtime.ros2.codecs import CommandCodec, StateLayout
from vla.runtime.ros2.config import NodeConfig, camera_topic
from vla.runtime.ros2.dds import DdsTransport
from vla.runtime.ros2.node import PolicyNode
from vla.runtime.ros2.qos import RELIABLE, SENSOR
from vla.types import ActionChunk, Observation

IMAGE = (16, 16)
_ids = itertools.count()


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, step: float = 0.005) -> Any:
    """Polls `pred` until it returns something truthy (returned) or fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


class StepPolicy:
    """Deterministic policy double: a chunk of 4 small +x moves, gripper 0.5, confidence 0.8."""

    def __init__(self, embodiment: Any) -> None:
        self.embodiment = embodiment
        self.config = SimpleNamespace(obs_horizon=1)
        self.calls = 0

    def predict(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        a = np.zeros((1, 4, 7), np.float32)
        a[..., 0] = 0.001 * np.arange(1, 5)
        a[..., 6] = 0.5
        return ActionChunk(actions=a, confidence=np.full(1, 0.8, np.float32))


@dataclass
class Ids:
    domain: int
    namespace: str


@pytest.fixture
def ids() -> Ids:
    n = next(_ids)
    # Domain ids 1..101 only: their discovery ports (7400 + 250 * id + ...) lie below Linux's ephemeral
    # range (32768+), so an unrelated socket can never hold them. Ids 102..232 failed on CI with
    # "failed to bind ... address in use" when an ephemeral port landed on the discovery port.
    return Ids(domain=1 + (os.getpid() * 13 + n * 7) % 101, namespace=f"/t{os.getpid()}_{n}")


@pytest.fixture
def dds(ids: Ids) -> Iterator[Callable[[], DdsTransport]]:
    made: list[DdsTransport] = []

    def make() -> DdsTransport:
        t = DdsTransport(ids.domain)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


class Robot:
    """The test's side of the graph: publishes the node's inputs, collects commands and status."""

    def __init__(self, transport: DdsTransport, emb: Any, cfg: NodeConfig) -> None:
        self.t, self.emb, self.cfg = transport, emb, cfg
        self.layout = StateLayout(emb, cfg.joints_for(7), cfg.gripper_joints)
        self.codec = CommandCodec.for_embodiment(
            emb, space=cfg.action_space, joint_names=self.layout.joint_names
        )
        self.cams = {
            c: transport.advertise(cfg.topic(camera_topic(c)), "sensor_msgs/msg/Image", SENSOR)
            for c in emb.cameras
        }
        self.joints = transport.advertise(cfg.topic("joint_states"), "sensor_msgs/msg/JointState", RELIABLE)
        self.pose = transport.advertise(cfg.topic("ee_pose"), "geometry_msgs/msg/PoseStamped", RELIABLE)
        self.estop = transport.advertise(cfg.topic("estop"), "std_msgs/msg/Bool", RELIABLE)
        self.success = transport.advertise(cfg.topic("task_success"), "std_msgs/msg/Bool", RELIABLE)
        self.instruction = transport.advertise(cfg.topic("instruction"), "std_msgs/msg/String", RELIABLE)
        self._cmd = transport.subscribe(cfg.topic(self.codec.topic), self.codec.msgtype, RELIABLE)
        self._status = transport.subscribe(
            cfg.topic("~/status"), "diagnostic_msgs/msg/DiagnosticArray", RELIABLE
        )
        self.commands: list[np.ndarray] = []
        self.statuses: list[tuple[int, str, dict[str, str]]] = []
        self.state = np.zeros(emb.state_dim, np.float32)
        self.state[emb.state_slice("joint_pos")] = (np.asarray(emb.joint_low) + emb.joint_high) / 2
        self.state[emb.state_slice("gripper")] = 0.08
        self.state[emb.state_slice("ee_pos")] = (0.5, 0.0, 0.3)
        self.state[emb.state_slice("ee_quat")] = (0.0, 1.0, 0.0, 0.0)
        self.stamp = 1_000_000_000

    def connected(self) -> bool:
        return self._cmd.matched() > 0 and all(p.matched() > 0 for p in self.cams.values())

    def image_msg(
        self, cam: str, stamp: int, *, size: tuple[int, int] = IMAGE, encoding: str = "rgb8"
    ) -> Any:
        img = np.full((*size, 3), 100 + len(cam), np.uint8)
        fields = codecs.array_to_image(img, stamp_ns=stamp, frame_id=cam)
        if encoding != "rgb8":
            fields["encoding"] = encoding
        return self.t.make("sensor_msgs/msg/Image", fields)

    def frame(
        self,
        *,
        skip: tuple[str, ...] = (),
        images: dict[str, Any] | None = None,
        joints: Any = None,
        same_stamp: bool = False,
    ) -> int:
        """Publishes one set of inputs with a new stamp (or the last one); returns the stamp."""
        if not same_stamp:
            self.stamp += 10_000_000
        for cam, pub in self.cams.items():
            if cam not in skip:
                pub.publish((images or {}).get(cam) or self.image_msg(cam, self.stamp))
        if "joint_states" not in skip:
            self.joints.publish(
                joints
                or self.t.make(
                    self.joints.msgtype, self.layout.joint_state_fields(self.state, stamp_ns=self.stamp)
                )
            )
        if "ee_pose" not in skip:
            self.pose.publish(
                self.t.make(
                    self.pose.msgtype,
                    self.layout.pose_fields(self.state, stamp_ns=self.stamp, frame_id="base"),
                )
            )
        return self.stamp

    def poll(self) -> None:
        for r in self._cmd.take():
            self.commands.append(self.codec.decode(r.msg))
        for r in self._status.take():
            st = r.msg.status[0]
            self.statuses.append((int(st.level), str(st.message), {kv.key: kv.value for kv in st.values}))

    def wait_commands(self, n: int, timeout: float = 10.0) -> list[np.ndarray]:
        def enough() -> bool:
            self.poll()
            return len(self.commands) >= n

        wait_for(enough, timeout)
        return self.commands

    def wait_status(
        self, pred: Callable[[int, str, dict[str, str]], bool], timeout: float = 10.0, *, old: bool = False
    ) -> tuple[int, str, dict[str, str]]:
        """The newest status matching `pred` that arrives from now on (`old`: or that already arrived)."""
        start = 0 if old else len(self.statuses)

        def found() -> Any:
            self.poll()
            return next((s for s in reversed(self.statuses[start:]) if pred(*s)), None)

        return wait_for(found, timeout)

    def publish_bool(self, pub: Any, value: bool) -> None:
        pub.publish(self.t.make("std_msgs/msg/Bool", {"data": value}))


@dataclass
class Harness:
    node: PolicyNode
    robot: Robot
    policy: StepPolicy
    cfg: NodeConfig


@pytest.fixture
def harness(request: pytest.FixtureRequest, dds: Callable[[], DdsTransport], ids: Ids) -> Iterator[Harness]:
    """A node on a policy double at 100 Hz (stale after 300 ms) and a connected test robot.

    Parametrize indirectly with a dict of NodeConfig overrides (e.g. {"hold_command": True}).
    """
    overrides = getattr(request, "param", {}) or {}
    emb = make_embodiment(IMAGE)
    cfg = NodeConfig(namespace=ids.namespace, rate_hz=100.0, stale_ms=300.0, **overrides)
    policy = StepPolicy(emb)
    node = PolicyNode(make_safe_controller(policy, embodiment=emb), emb, dds(), cfg, name="double")
    robot = Robot(dds(), emb, cfg)
    stop = threading.Event()
    thread = threading.Thread(target=node.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(robot.connected)
        yield Harness(node, robot, policy, cfg)
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the node's loop did not stop"


@pytest.fixture(scope="session")
def ros() -> SimpleNamespace:
    """The helpers above for test modules (they cannot import conftest under importlib mode)."""
    return SimpleNamespace(wait_for=wait_for, Robot=Robot, StepPolicy=StepPolicy, IMAGE=IMAGE)
