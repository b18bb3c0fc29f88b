"""The ROS 2 action protocol over DDS (what rcl_action does): server and client of vla's actions
(`messages.ACTIONS`: ExecuteInstruction, ExecutePlan), one action type per server.

An action `/a` is three services and two topics (see `names`): send_goal (goal id + goal -> accepted),
cancel_goal (action_msgs/srv/CancelGoal), get_result (answered when the goal ends), feedback
(goal id + feedback) and status (action_msgs/msg/GoalStatusArray, transient local). The server keeps the
last `KEEP_FINISHED` finished goals so their results can still be fetched. Every vla goal has an
`instruction` (empty: rejected) and a `max_steps`; the node gets the goal's other fields as
`GoalRequest.fields`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.runtime.ros2 import names
from vla.runtime.ros2.dds import DdsServiceClient, DdsTransport, RequestId, wait_until
from vla.runtime.ros2.messages import ACTION_TYPE, build, typestore
from vla.runtime.ros2.qos import ACTION_STATUS, RELIABLE
from vla.runtime.ros2.transport import (
    STATUS_ACCEPTED,
    STATUS_CANCELING,
    STATUS_EXECUTING,
    STATUS_UNKNOWN,
    TERMINAL,
    CancelRequest,
    GoalRequest,
)

logger = logging.getLogger(__name__)

KEEP_FINISHED = 64
CANCEL_NONE, CANCEL_REJECTED, CANCEL_UNKNOWN_GOAL, CANCEL_TERMINATED = 0, 1, 2, 3
_ZERO_ID = bytes(16)
_COMMON_GOAL_FIELDS = ("instruction", "max_steps")


def stamp(ns: int) -> dict[str, int]:
    """builtin_interfaces/Time fields of a time in ns."""
    return {"sec": int(ns // 1_000_000_000), "nanosec": int(ns % 1_000_000_000)}


def stamp_ns(t: Any) -> int:
    """ns of a builtin_interfaces/Time message."""
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def uuid_bytes(msg: Any) -> bytes:
    """The 16 bytes of a unique_identifier_msgs/UUID."""
    return bytes(np.asarray(msg.uuid, dtype=np.uint8).tobytes())


def goal_field_names(action_type: str) -> tuple[str, ...]:
    """The goal fields of `action_type` beyond the common `instruction` and `max_steps`.

    Raises:
        KeyError: the type is unknown. ValueError: its goal lacks `instruction` or `max_steps`.
    """
    goal = f"{action_type}_Goal"
    if goal not in typestore().fielddefs:
        raise KeyError(f"unknown action type '{action_type}' (no {goal})")
    fields = tuple(name for name, _ in typestore().fielddefs[goal][1])
    missing = [f for f in _COMMON_GOAL_FIELDS if f not in fields]
    if missing:
        raise ValueError(f"{goal} lacks {missing}; every vla action's goal has {list(_COMMON_GOAL_FIELDS)}")
    return tuple(f for f in fields if f not in _COMMON_GOAL_FIELDS)


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


@dataclass
class _Goal:
    status: int
    accepted_ns: int
    result: dict[str, Any] | None = None
    waiting: list[RequestId] = field(default_factory=list)


class DdsActionServer:
    """The server side of one action on a DDS transport.

    Args:
        transport: the participant.
        name: the absolute action name, e.g. "/vla_policy/execute_instruction".
        action_type: e.g. "vla_ros2/action/ExecuteInstruction" (`messages.ACTIONS`).
    """

    def __init__(self, transport: DdsTransport, name: str, action_type: str = ACTION_TYPE) -> None:
        self.name = name
        self.action_type = t = action_type
        self._transport = transport
        self._extra = goal_field_names(t)
        self._send = transport.service_server(
            names.action_service(name, "send_goal"), f"{t}_SendGoal_Request", f"{t}_SendGoal_Response"
        )
        self._cancel = transport.service_server(
            names.action_service(name, "cancel_goal"),
            "action_msgs/srv/CancelGoal_Request",
            "action_msgs/srv/CancelGoal_Response",
        )
        self._result = transport.service_server(
            names.action_service(name, "get_result"), f"{t}_GetResult_Request", f"{t}_GetResult_Response"
        )
        self._feedback = transport.advertise(
            names.action_topic(name, "feedback"), f"{t}_FeedbackMessage", RELIABLE
        )
        self._status = transport.advertise(
            names.action_topic(name, "status"), "action_msgs/msg/GoalStatusArray", ACTION_STATUS
        )
        self._goals: OrderedDict[bytes, _Goal] = OrderedDict()

    # ---- requests ---------------------------------------------------------------------------------
    def poll(self) -> list[GoalRequest | CancelRequest]:
        events: list[GoalRequest | CancelRequest] = []
        changed = False
        for rid, req in self._send.take():
            gid = uuid_bytes(req.goal_id)
            instruction = str(req.goal.instruction).strip()
            now = self._transport.now_ns()
            ok = bool(instruction) and gid not in self._goals
            if not ok:
                why = "an empty instruction" if not instruction else "a goal id already in use"
                logger.warning("action %s: rejected a goal with %s", self.name, why)
            self._send.reply(rid, build(self._send.response_type, {"accepted": ok, "stamp": stamp(now)}))
            if ok:
                self._goals[gid] = _Goal(STATUS_ACCEPTED, now)
                extra = {f: _plain(getattr(req.goal, f)) for f in self._extra}
                events.append(GoalRequest(gid, instruction, int(req.goal.max_steps), extra))
                changed = True
        for rid, req in self._cancel.take():
            code, ids = self._match_cancel(uuid_bytes(req.goal_info.goal_id), stamp_ns(req.goal_info.stamp))
            infos = [
                {"goal_id": {"uuid": np.frombuffer(g, np.uint8)}, "stamp": stamp(self._goals[g].accepted_ns)}
                for g in ids
            ]
            self._cancel.reply(
                rid, build(self._cancel.response_type, {"return_code": code, "goals_canceling": infos})
            )
            if ids:
                for g in ids:
                    self._goals[g].status = STATUS_CANCELING
                events.append(CancelRequest(tuple(ids)))
                changed = True
        for rid, req in self._result.take():
            gid = uuid_bytes(req.goal_id)
            goal = self._goals.get(gid)
            if goal is None:
                self._reply_result(rid, STATUS_UNKNOWN, {})
            elif goal.status in TERMINAL:
                self._reply_result(rid, goal.status, goal.result or {})
            else:
                goal.waiting.append(rid)
        if changed:
            self._publish_status()
        return events

    def _match_cancel(self, gid: bytes, before_ns: int) -> tuple[int, list[bytes]]:
        """Goals a CancelGoal request selects (action_msgs/srv/CancelGoal semantics)."""
        active = [g for g, goal in self._goals.items() if goal.status not in TERMINAL]
        if gid == _ZERO_ID and before_ns == 0:
            picked = active
        elif gid == _ZERO_ID:
            picked = [g for g in active if self._goals[g].accepted_ns <= before_ns]
        else:
            if gid not in self._goals:
                return CANCEL_UNKNOWN_GOAL, []
            if self._goals[gid].status in TERMINAL:
                return CANCEL_TERMINATED, []
            picked = [gid]
            if before_ns:
                picked += [g for g in active if g != gid and self._goals[g].accepted_ns <= before_ns]
        return (CANCEL_NONE if picked else CANCEL_REJECTED), picked

    # ---- the node's side --------------------------------------------------------------------------
    def executing(self, goal_id: bytes) -> None:
        goal = self._goals.get(goal_id)
        if goal is not None and goal.status == STATUS_ACCEPTED:
            goal.status = STATUS_EXECUTING
            self._publish_status()

    def feedback(self, goal_id: bytes, fields: dict[str, Any]) -> None:
        self._feedback.publish(
            build(
                self._feedback.msgtype,
                {"goal_id": {"uuid": np.frombuffer(goal_id, np.uint8)}, "feedback": fields},
            )
        )

    def finish(self, goal_id: bytes, status: int, result: dict[str, Any]) -> None:
        if status not in TERMINAL:
            raise ValueError(f"finish needs a terminal goal status {sorted(TERMINAL)}, got {status}")
        goal = self._goals.get(goal_id)
        if goal is None or goal.status in TERMINAL:
            return
        goal.status, goal.result = status, dict(result)
        for rid in goal.waiting:
            self._reply_result(rid, status, goal.result)
        goal.waiting.clear()
        finished = [g for g, x in self._goals.items() if x.status in TERMINAL]
        for g in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._goals[g]
        self._publish_status()

    def _reply_result(self, rid: RequestId, status: int, result: dict[str, Any]) -> None:
        self._result.reply(rid, build(self._result.response_type, {"status": status, "result": result}))

    def _publish_status(self) -> None:
        items = [
            {
                "goal_info": {"goal_id": {"uuid": np.frombuffer(g, np.uint8)}, "stamp": stamp(x.accepted_ns)},
                "status": x.status,
            }
            for g, x in self._goals.items()
        ]
        self._status.publish(build(self._status.msgtype, {"status_list": items}))


class DdsActionClient:
    """A client of one of vla's actions (the sim's episode runner, tests, scripts).

    Args:
        transport: the participant.
        name: the absolute action name.
        action_type: the action's type (default ExecuteInstruction).
    """

    def __init__(self, transport: DdsTransport, name: str, action_type: str = ACTION_TYPE) -> None:
        t = self.action_type = action_type
        self.name = name
        self._send: DdsServiceClient = transport.service_client(
            names.action_service(name, "send_goal"), f"{t}_SendGoal_Request", f"{t}_SendGoal_Response"
        )
        self._cancel = transport.service_client(
            names.action_service(name, "cancel_goal"),
            "action_msgs/srv/CancelGoal_Request",
            "action_msgs/srv/CancelGoal_Response",
        )
        self._get = transport.service_client(
            names.action_service(name, "get_result"), f"{t}_GetResult_Request", f"{t}_GetResult_Response"
        )
        self._feedback_sub = transport.subscribe(
            names.action_topic(name, "feedback"), f"{t}_FeedbackMessage", RELIABLE
        )
        self._status_sub = transport.subscribe(
            names.action_topic(name, "status"), "action_msgs/msg/GoalStatusArray", RELIABLE
        )
        self.feedback: dict[bytes, list[Any]] = {}
        self.results: dict[bytes, tuple[int, Any]] = {}
        self.statuses: dict[bytes, int] = {}
        self._result_seq: dict[int, bytes] = {}

    def wait_for_server(self, timeout_s: float = 5.0) -> bool:
        """True once the three services of the action server are matched."""
        return wait_until(
            lambda: self._send.ready() and self._cancel.ready() and self._get.ready(), timeout_s=timeout_s
        )

    def _await(self, client: DdsServiceClient, seq: int, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for s, msg in client.take():
                if s == seq:
                    return msg
            self.poll()
            time.sleep(0.002)
        raise TimeoutError(f"action {self.name}: no reply to {what} within {timeout_s:.1f} s")

    def send_goal(
        self,
        instruction: str,
        *,
        max_steps: int = 0,
        fields: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> bytes:
        """Sends a goal and asks for its result; returns the goal id.

        Args:
            instruction: the goal's instruction.
            max_steps: its step budget (0: the node's default).
            fields: the action's other goal fields (ExecutePlan: {"scene": json}).
            timeout_s: how long to wait for the server's reply.

        Raises:
            RuntimeError: the server rejected the goal. TimeoutError: no reply in time.
        """
        gid = os.urandom(16)
        goal = {**(fields or {}), "instruction": instruction, "max_steps": max_steps}
        req = build(
            self._send.request_type, {"goal_id": {"uuid": np.frombuffer(gid, np.uint8)}, "goal": goal}
        )
        reply = self._await(self._send, self._send.call(req), timeout_s, "send_goal")
        if not reply.accepted:
            raise RuntimeError(f"action {self.name} rejected the goal '{instruction}'")
        self.feedback.setdefault(gid, [])
        self.request_result(gid)
        return gid

    def request_result(self, goal_id: bytes) -> None:
        """Asks for a goal's result (answered when it ends; `wait_result` collects it)."""
        req = build(self._get.request_type, {"goal_id": {"uuid": np.frombuffer(goal_id, np.uint8)}})
        self._result_seq[self._get.call(req)] = goal_id

    def cancel(self, goal_id: bytes | None = None, *, timeout_s: float = 5.0) -> tuple[int, list[bytes]]:
        """Cancels one goal (or all with None); returns (return_code, ids of the goals now canceling)."""
        req = build(
            self._cancel.request_type,
            {"goal_info": {"goal_id": {"uuid": np.frombuffer(goal_id or _ZERO_ID, np.uint8)}}},
        )
        reply = self._await(self._cancel, self._cancel.call(req), timeout_s, "cancel_goal")
        return int(reply.return_code), [uuid_bytes(g.goal_id) for g in reply.goals_canceling]

    def poll(self) -> None:
        """Collects feedback, status updates and results that arrived."""
        for r in self._feedback_sub.take():
            gid = uuid_bytes(r.msg.goal_id)
            if gid in self.feedback:
                self.feedback[gid].append(r.msg.feedback)
        for r in self._status_sub.take():
            for s in r.msg.status_list:
                self.statuses[uuid_bytes(s.goal_info.goal_id)] = int(s.status)
        for seq, msg in self._get.take():
            if seq in self._result_seq:
                gid = self._result_seq.pop(seq)
                self.results[gid] = (int(msg.status), msg.result)

    def wait_result(self, goal_id: bytes, *, timeout_s: float) -> tuple[int, Any]:
        """Blocks until the goal's result arrives: (terminal status, the action's Result message)."""
        deadline = time.monotonic() + timeout_s
        while goal_id not in self.results:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"action {self.name}: no result within {timeout_s:.1f} s")
            self.poll()
            time.sleep(0.002)
        return self.results[goal_id]
