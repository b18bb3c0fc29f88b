"""What a `PolicyNode` keeps between ticks: the newest message of each input, the task it runs, and its
counters. Plain state, no transport or controller: the node's loop reads and updates it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from vla.runtime.ros2 import codecs
from vla.runtime.ros2.plan_goal import PlanRun
from vla.runtime.ros2.transport import ActionEndpoint, Received


@dataclass
class InputSlot:
    """The newest message of one input and whether the last action used it."""

    topic: str
    msg: Any = None
    stamp_ns: int = 0
    fresh_ns: int = 0  # when the newest message with a new stamp arrived
    used_stamp: int = -1
    used_ns: int = -1

    def update(self, r: Received) -> None:
        stamp = codecs.stamp_of(r.msg)
        if self.msg is None or stamp == 0 or stamp != self.stamp_ns:
            self.fresh_ns = r.recv_ns  # a re-sent message (same stamp) is not news
        self.msg, self.stamp_ns = r.msg, stamp

    @property
    def fresh(self) -> bool:
        if self.msg is None:
            return False
        return self.stamp_ns != self.used_stamp if self.stamp_ns else self.fresh_ns > self.used_ns

    def mark_used(self) -> None:
        self.used_stamp, self.used_ns = self.stamp_ns, self.fresh_ns


@dataclass
class Task:
    """What the node is doing: an instruction, from a goal (goal_id) or the topic (goal_id None).

    A goal's `endpoint` is the action server it came through; `run` is set for ExecutePlan goals.
    """

    instruction: str
    goal_id: bytes | None
    max_steps: int | None
    started_ns: int
    steps: int = 0
    budget_spent_ns: int = 0
    endpoint: ActionEndpoint | None = None
    run: PlanRun | None = None


@dataclass
class NodeStats:
    """Counts and timings of a node's run (`vla bench ros2` and the status read them)."""

    ticks: int = 0
    commands: int = 0
    overruns: int = 0
    holds: dict[str, int] = field(default_factory=dict)
    tick_ns: deque[int] = field(default_factory=lambda: deque(maxlen=100_000))
    act_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    # per command: newest input stamp and the publish time (ns), for end-to-end latency
    published: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=100_000))
