"""The node on a ROS 2 install: the same `PolicyNode`, with rclpy as its transport.

rclpy spins in a background thread (a multi-threaded executor); subscription callbacks queue the
messages the node's loop takes, and the action servers (ExecuteInstruction, ExecutePlan) turn rclpy's
goal handles into the node's goal events. The action types come from the `vla_ros2` package (`ros2/vla_ros2` in
this repository: build it with colcon and source the workspace). Messages are rclpy's own classes,
built from the same field dicts the DDS transport uses. Not exercised by vla's tests (no ROS here);
the logic it runs is the DDS-tested `PolicyNode`.
"""

from __future__ import annotations

import array
import threading
from collections import deque
from typing import Any

import numpy as np

from vla.runtime.ros2.messages import ACTION_TYPE
from vla.runtime.ros2.qos import QosProfile
from vla.runtime.ros2.transport import (
    STATUS_CANCELED,
    STATUS_SUCCEEDED,
    CancelRequest,
    Counters,
    GoalRequest,
    Received,
)

_TYPECODES = {
    "uint8": "B", "octet": "B", "byte": "B", "int8": "b", "uint16": "H", "int16": "h", "uint32": "I",
    "int32": "i", "uint64": "Q", "int64": "q", "float": "f", "float32": "f", "double": "d", "float64": "d",
}  # fmt: skip


def _qos(profile: QosProfile) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=profile.depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if profile.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if profile.transient_local else DurabilityPolicy.VOLATILE,
    )


def message_class(msgtype: str) -> Any:
    """The rclpy class of "pkg/msg/Name" (or "pkg/action/Name")."""
    from rosidl_runtime_py.utilities import get_action, get_message

    return get_action(msgtype) if "/action/" in msgtype else get_message(msgtype)


def fill(msg: Any, fields: dict[str, Any]) -> Any:
    """Sets `fields` (nested dicts, numpy arrays, lists) on an rclpy message; returns it."""
    from rosidl_parser.definition import AbstractNestedType, NamespacedType
    from rosidl_runtime_py.import_message import import_message_from_namespaced_type

    slots = dict(zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES, strict=True))
    for name, value in fields.items():
        slot = slots[name]
        if isinstance(value, dict):
            fill(getattr(msg, name), value)
        elif isinstance(slot, AbstractNestedType) and isinstance(slot.value_type, NamespacedType):
            cls = import_message_from_namespaced_type(slot.value_type)
            setattr(msg, name, [fill(cls(), v) if isinstance(v, dict) else v for v in value])
        elif isinstance(value, np.ndarray) and isinstance(slot, AbstractNestedType):
            kind = getattr(slot.value_type, "typename", "")
            if type(slot).__name__ == "Array":  # fixed-size arrays are numpy arrays in rclpy
                setattr(msg, name, np.asarray(value).astype(getattr(msg, name).dtype))
            elif kind in _TYPECODES:
                code = _TYPECODES[kind]
                setattr(
                    msg, name, array.array(code, np.ascontiguousarray(value).astype(np.dtype(code)).tobytes())
                )
            else:
                setattr(msg, name, value.tolist())
        elif getattr(slot, "typename", "") == "octet" and isinstance(value, int | np.integer):
            setattr(msg, name, bytes([int(value)]))  # rclpy holds a ROS `byte` as bytes of length 1
        elif isinstance(value, np.generic):
            setattr(msg, name, value.item())
        else:
            setattr(msg, name, value)
    return msg


class _Subscription:
    def __init__(
        self, node: Any, topic: str, msgtype: str, qos: QosProfile, wake: threading.Event, now: Any
    ) -> None:
        self.topic = topic
        self._now = now
        self.msgtype = msgtype
        self.counters = Counters()
        self._queue: deque[Received] = deque(maxlen=1000)
        self._wake = wake
        self._sub = node.create_subscription(message_class(msgtype), topic, self._on_msg, _qos(qos))

    def _on_msg(self, msg: Any) -> None:
        self.counters.received += 1
        self._queue.append(Received(msg, self._now()))
        self._wake.set()

    def take(self) -> list[Received]:
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    def matched(self) -> int:
        return int(self._sub.get_publisher_count()) if hasattr(self._sub, "get_publisher_count") else 0


class _Publisher:
    def __init__(self, node: Any, topic: str, msgtype: str, qos: QosProfile) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self._pub = node.create_publisher(message_class(msgtype), topic, _qos(qos))

    def publish(self, msg: Any) -> None:
        self._pub.publish(msg)

    def matched(self) -> int:
        return int(self._pub.get_subscription_count())


class RclpyActionServer:
    """One of vla's actions on rclpy's ActionServer, as goal events for the node's loop."""

    def __init__(self, transport: RclpyTransport, name: str, action_type: str = ACTION_TYPE) -> None:
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup

        self.name = name
        try:
            self._action = message_class(action_type)
        except (ImportError, ValueError, AttributeError, LookupError) as e:
            raise ValueError(
                "the vla_ros2 interfaces are not built or not sourced: cp -r ros2/vla_ros2 <ws>/src && "
                "colcon build --packages-select vla_ros2 && source <ws>/install/setup.bash "
                f"(or run with --transport dds); {type(e).__name__}: {e}"
            ) from e
        self._events: deque[GoalRequest | CancelRequest] = deque()
        self._handles: dict[bytes, Any] = {}
        self._done: dict[bytes, threading.Event] = {}
        self._results: dict[bytes, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._wake = transport._wake

        def on_goal(request: Any) -> Any:
            return GoalResponse.ACCEPT if str(request.instruction).strip() else GoalResponse.REJECT

        def on_accepted(handle: Any) -> None:
            gid = bytes(handle.goal_id.uuid)
            with self._lock:
                self._handles[gid] = handle
                self._done[gid] = threading.Event()
            req = handle.request
            extra = {
                f: getattr(req, f)
                for f in req.get_fields_and_field_types()
                if f not in ("instruction", "max_steps")
            }
            self._events.append(GoalRequest(gid, str(req.instruction).strip(), int(req.max_steps), extra))
            self._wake.set()
            handle.execute()

        def on_cancel(handle: Any) -> Any:
            self._events.append(CancelRequest((bytes(handle.goal_id.uuid),)))
            self._wake.set()
            return CancelResponse.ACCEPT

        self._server = ActionServer(
            transport.node,
            self._action,
            name,
            execute_callback=self._execute,
            goal_callback=on_goal,
            handle_accepted_callback=on_accepted,
            cancel_callback=on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )

    def _execute(self, handle: Any) -> Any:
        gid = bytes(handle.goal_id.uuid)
        self._done[gid].wait()
        status, fields = self._results.pop(gid)
        if status == STATUS_SUCCEEDED:
            handle.succeed()
        elif status == STATUS_CANCELED and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        with self._lock:
            self._handles.pop(gid, None)
            self._done.pop(gid, None)
        return fill(self._action.Result(), fields)

    def poll(self) -> list[GoalRequest | CancelRequest]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def executing(self, goal_id: bytes) -> None:
        return None  # rclpy's execute() already moved the goal to EXECUTING

    def feedback(self, goal_id: bytes, fields: dict[str, Any]) -> None:
        handle = self._handles.get(goal_id)
        if handle is not None:
            handle.publish_feedback(fill(self._action.Feedback(), fields))

    def finish(self, goal_id: bytes, status: int, result: dict[str, Any]) -> None:
        with self._lock:
            done = self._done.get(goal_id)
            if done is None or done.is_set():
                return
            self._results[goal_id] = (status, dict(result))
            done.set()


class RclpyTransport:
    """The node's transport on rclpy (one rclpy node, spun in a background thread).

    Args:
        node_name: the ROS node name.
        namespace: its namespace.
    """

    def __init__(self, node_name: str, namespace: str = "/") -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node

        if not rclpy.ok():
            rclpy.init()
        self.node = Node(node_name, namespace=namespace)
        self._wake = threading.Event()
        self._executor = MultiThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="rclpy-spin", daemon=True)
        self._thread.start()

    def subscribe(self, topic: str, msgtype: str, qos: QosProfile) -> _Subscription:
        return _Subscription(self.node, topic, msgtype, qos, self._wake, self.now_ns)

    def advertise(self, topic: str, msgtype: str, qos: QosProfile) -> _Publisher:
        return _Publisher(self.node, topic, msgtype, qos)

    def action_server(self, name: str, action_type: str = ACTION_TYPE) -> RclpyActionServer:
        return RclpyActionServer(self, name, action_type)

    def make(self, msgtype: str, fields: dict[str, Any]) -> Any:
        return fill(message_class(msgtype)(), fields)

    def wait(self, timeout_s: float) -> None:
        self._wake.wait(max(0.0, timeout_s))
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def close(self) -> None:
        import rclpy

        self._executor.shutdown()
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
