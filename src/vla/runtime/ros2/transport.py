"""What the ROS 2 node needs from a middleware: topics, and an action server's goal events.

Two implementations: `vla.runtime.ros2.dds` (cyclonedds, no ROS install, what the tests use) and
`vla.runtime.ros2.rclpy_adapter` (a ROS 2 install). Messages are passed as objects with the ROS field
names (rosbags dataclasses on DDS, rclpy classes on rclpy); `make` builds one from nested dicts, so the
node's logic never depends on which one runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vla.runtime.ros2.qos import QosProfile

# action_msgs/msg/GoalStatus values.
STATUS_UNKNOWN = 0
STATUS_ACCEPTED = 1
STATUS_EXECUTING = 2
STATUS_CANCELING = 3
STATUS_SUCCEEDED = 4
STATUS_CANCELED = 5
STATUS_ABORTED = 6
TERMINAL = frozenset({STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED})


@dataclass(frozen=True)
class Received:
    """One message taken from a subscription, with its arrival time (transport clock, ns)."""

    msg: Any
    recv_ns: int


@dataclass(frozen=True)
class GoalRequest:
    """A new goal of one of vla's actions, already accepted by the transport.

    Every vla action's goal has an `instruction` and a `max_steps`; an action's other goal fields
    (ExecutePlan's `scene`) come in `fields`, as plain Python values.

    Attributes:
        goal_id: the 16-byte goal UUID.
        instruction: the goal's instruction.
        max_steps: the goal's step budget (0: the node's default).
        fields: the goal's other fields, name -> value.
    """

    goal_id: bytes
    instruction: str
    max_steps: int
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelRequest:
    """A client asked to cancel these goals (already matched against the known goals)."""

    goal_ids: tuple[bytes, ...]


@dataclass
class Counters:
    """Per-endpoint counts the node reports in its status."""

    received: int = 0
    malformed: int = 0
    last_error: str = ""
    extra: dict[str, int] = field(default_factory=dict)


class Subscription(Protocol):
    topic: str
    counters: Counters

    def take(self) -> list[Received]:
        """Every message that arrived since the last call, oldest first (malformed ones are counted)."""
        ...


class Publisher(Protocol):
    topic: str

    def publish(self, msg: Any) -> None: ...

    def matched(self) -> int:
        """How many readers are matched now."""
        ...


class ActionEndpoint(Protocol):
    """The server side of one action (ExecuteInstruction, ExecutePlan), as events for the node's loop."""

    name: str

    def poll(self) -> list[GoalRequest | CancelRequest]:
        """New goals and cancel requests since the last call."""
        ...

    def executing(self, goal_id: bytes) -> None: ...

    def feedback(self, goal_id: bytes, fields: dict[str, Any]) -> None: ...

    def finish(self, goal_id: bytes, status: int, result: dict[str, Any]) -> None:
        """Ends a goal with a terminal status and its result fields."""
        ...


class Transport(Protocol):
    """A middleware connection (one DDS participant or one rclpy node)."""

    def subscribe(self, topic: str, msgtype: str, qos: QosProfile) -> Subscription: ...

    def advertise(self, topic: str, msgtype: str, qos: QosProfile) -> Publisher: ...

    def action_server(self, name: str, action_type: str = ...) -> ActionEndpoint:
        """The server of the action `name` of `action_type` (default: ExecuteInstruction)."""
        ...

    def make(self, msgtype: str, fields: dict[str, Any]) -> Any: ...

    def wait(self, timeout_s: float) -> None:
        """Blocks until data may have arrived, `wake()` was called, or `timeout_s` passed."""
        ...

    def wake(self) -> None: ...

    def now_ns(self) -> int:
        """The clock stamps are taken from (ns since the Unix epoch)."""
        ...

    def close(self) -> None: ...
