"""ROS 2 message types without a ROS install: definitions and CDR from `rosbags`, DDS types for cyclonedds.

The message definitions are rosbags' copy of ROS 2 Humble's (std_msgs, sensor_msgs, geometry_msgs,
trajectory_msgs, diagnostic_msgs, action_msgs, ...), plus the actions shipped with vla
(`interfaces/<Name>.action`, also in the ROS package `ros2/vla_ros2`: `ExecuteInstruction`, and
`ExecutePlan` for long-horizon requests) each expanded into the eight types rosidl generates for an
action, and the two `action_msgs/srv/CancelGoal` service types.

Payloads are serialized by rosbags (numpy-backed, ~100x faster than cyclonedds' pure-Python
serializer for an image); cyclonedds only needs the type's structure to register the topic, which
`idl_type` derives from the same definition, so the two can never disagree (the tests check that
both give the same bytes). Service requests and replies carry the 16-byte request header that
rmw_cyclonedds_cpp puts before the message (client guid, sequence number): `frame` / `unframe`.
"""

from __future__ import annotations

import struct
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vla.runtime.ros2.names import dds_type

ACTION_PACKAGE = "vla_ros2"
ACTION_NAME = "ExecuteInstruction"
ACTION_TYPE = f"{ACTION_PACKAGE}/action/{ACTION_NAME}"
ACTION_FILE = "ExecuteInstruction.action"
PLAN_ACTION_NAME = "ExecutePlan"
PLAN_ACTION_TYPE = f"{ACTION_PACKAGE}/action/{PLAN_ACTION_NAME}"
# Every action shipped in `interfaces/` (one `<Name>.action` file each).
ACTIONS = (ACTION_NAME, PLAN_ACTION_NAME)

_NUMPY = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "uint8": np.uint8,
    "int8": np.int8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}
# How rmw_cyclonedds_cpp describes ROS base types to DDS (byte and char become uint8).
_IDL: dict[str, Any] = {
    "bool": bool,
    "byte": idl.uint8,
    "char": idl.uint8,
    "uint8": idl.uint8,
    "int8": idl.int8,
    "int16": idl.int16,
    "uint16": idl.uint16,
    "int32": idl.int32,
    "uint32": idl.uint32,
    "int64": idl.int64,
    "uint64": idl.uint64,
    "float32": idl.float32,
    "float64": idl.float64,
}
_HEADER = struct.Struct("<Qq")
_HEADER_BE = struct.Struct(">Qq")


def action_definition(name: str = ACTION_NAME) -> str:
    """The text of a shipped action, `interfaces/<name>.action` (one of `ACTIONS`)."""
    if name not in ACTIONS:
        raise KeyError(f"vla ships no action '{name}'; actions: {ACTIONS}")
    return resources.files("vla.runtime.ros2.interfaces").joinpath(f"{name}.action").read_text()


def _split_action(text: str) -> tuple[str, str, str]:
    parts: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append([])
        else:
            parts[-1].append(line)
    if len(parts) != 3:
        raise ValueError(
            f"an .action file needs goal, result and feedback separated by '---', got {len(parts)}"
        )
    goal, result, feedback = ("\n".join(p) + "\n" for p in parts)
    return goal, result, feedback


def action_types(text: str, *, package: str = ACTION_PACKAGE, name: str = ACTION_NAME) -> dict[str, Any]:
    """The rosbags definitions of every type rosidl generates for an action.

    Args:
        text: the .action file.
        package: its ROS package.
        name: the action's name.

    Returns:
        type name ("pkg/action/Name_Goal", ...) -> rosbags field definitions.
    """
    goal, result, feedback = _split_action(text)
    base = f"{package}/action/{name}"
    uuid = "unique_identifier_msgs/msg/UUID"
    sources = {
        f"{base}_Goal": goal,
        f"{base}_Result": result,
        f"{base}_Feedback": feedback,
        f"{base}_SendGoal_Request": f"{uuid} goal_id\n{base}_Goal goal\n",
        f"{base}_SendGoal_Response": "bool accepted\nbuiltin_interfaces/msg/Time stamp\n",
        f"{base}_GetResult_Request": f"{uuid} goal_id\n",
        f"{base}_GetResult_Response": f"int8 status\n{base}_Result result\n",
        f"{base}_FeedbackMessage": f"{uuid} goal_id\n{base}_Feedback feedback\n",
    }
    out: dict[str, Any] = {}
    for typename, src in sources.items():
        out.update(get_types_from_msg(src, typename))
    return out


def _cancel_types() -> dict[str, Any]:
    # rosbags ships action_msgs' messages but no services; CancelGoal as in action_msgs/srv/CancelGoal.srv.
    request = get_types_from_msg("action_msgs/msg/GoalInfo goal_info\n", "action_msgs/srv/CancelGoal_Request")
    response = get_types_from_msg(
        "int8 ERROR_NONE=0\nint8 ERROR_REJECTED=1\nint8 ERROR_UNKNOWN_GOAL_ID=2\nint8 ERROR_GOAL_TERMINATED=3\n"
        "int8 return_code\naction_msgs/msg/GoalInfo[] goals_canceling\n",
        "action_msgs/srv/CancelGoal_Response",
    )
    # rosbags files a "pkg/srv/Name" type under "pkg/srv/msg/Name"; keep the ROS name.
    return {
        "action_msgs/srv/CancelGoal_Request": next(iter(request.values())),
        "action_msgs/srv/CancelGoal_Response": next(iter(response.values())),
    }


@cache
def typestore() -> Typestore:
    """rosbags' ROS 2 Humble definitions plus vla's action types (one store per process)."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    defs: dict[str, Any] = dict(_cancel_types())
    for name in ACTIONS:
        defs.update(action_types(action_definition(name), name=name))
    ts.register(defs)
    return ts


def has_type(msgtype: str) -> bool:
    return msgtype in typestore().fielddefs


def _fields(msgtype: str) -> list[tuple[str, tuple[Any, Any]]]:
    ts = typestore()
    if msgtype not in ts.fielddefs:
        raise KeyError(
            f"unknown ROS message type '{msgtype}' (rosbags' ROS 2 Humble set plus the actions {ACTIONS})"
        )
    return list(ts.fielddefs[msgtype][1])


def _default(desc: tuple[Any, Any]) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        base = detail[0]
        return "" if base in ("string", "wstring") else (False if base == "bool" else 0)
    if kind == Nodetype.NAME:
        return build(detail, {})
    sub, size = detail
    if kind == Nodetype.ARRAY:
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
            return np.zeros(size, dtype=_NUMPY[sub[1][0]])
        return [_default(sub) for _ in range(size)]
    if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
        return np.zeros(0, dtype=_NUMPY[sub[1][0]])
    return []


def _convert(desc: tuple[Any, Any], value: Any, where: str) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        return value
    if kind == Nodetype.NAME:
        return build(detail, value) if isinstance(value, dict) else value
    sub, size = detail
    if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
        arr = np.ascontiguousarray(value, dtype=_NUMPY[sub[1][0]]).reshape(-1)
        if kind == Nodetype.ARRAY and arr.shape[0] != size:
            raise ValueError(f"{where}: expected exactly {size} values, got {arr.shape[0]}")
        if kind == Nodetype.SEQUENCE and size and arr.shape[0] > size:
            raise ValueError(f"{where}: at most {size} values, got {arr.shape[0]}")
        return arr
    items = [_convert(sub, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == Nodetype.ARRAY and len(items) != size:
        raise ValueError(f"{where}: expected exactly {size} items, got {len(items)}")
    return items


def build(msgtype: str, fields: dict[str, Any] | None = None) -> Any:
    """A rosbags message of `msgtype` from (nested) dicts; missing fields get ROS defaults (0, "", []).

    Args:
        msgtype: e.g. "sensor_msgs/msg/Image".
        fields: field name -> value; nested messages may be dicts, numeric arrays anything numpy takes.

    Raises:
        KeyError: the type is unknown. ValueError: a field does not exist or an array has the wrong size.
    """
    fields = dict(fields or {})
    defs = _fields(msgtype)
    known = {name for name, _ in defs}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{msgtype} has no fields {unknown}; fields: {sorted(known)}")
    values = {
        name: _convert(desc, fields[name], f"{msgtype}.{name}") if name in fields else _default(desc)
        for name, desc in defs
    }
    return typestore().types[msgtype](**values)


def encode(msgtype: str, msg: Any) -> bytes:
    """CDR (little endian, with the 4-byte encapsulation header), exactly as ROS 2 puts it on the wire."""
    return bytes(typestore().serialize_cdr(msg, msgtype))


def decode(msgtype: str, data: bytes | memoryview) -> Any:
    """Parses CDR bytes into a rosbags message; raises ValueError on malformed data."""
    try:
        return typestore().deserialize_cdr(bytes(data), msgtype)
    except Exception as e:  # rosbags raises struct/index/assertion errors on truncated or garbled bytes
        raise ValueError(f"malformed {msgtype} ({len(data)} bytes): {type(e).__name__}: {e}") from e


def frame(guid: int, seq: int, payload: bytes) -> bytes:
    """A service request/reply as rmw_cyclonedds_cpp sends it: encapsulation, guid, seq, then the message."""
    if len(payload) < 4:
        raise ValueError("payload must start with the 4-byte CDR encapsulation header")
    return payload[:4] + _HEADER.pack(guid & (2**64 - 1), seq) + payload[4:]


def unframe(data: bytes | memoryview) -> tuple[int, int, bytes]:
    """Splits a framed request/reply into (guid, seq, message CDR bytes)."""
    raw = bytes(data)
    if len(raw) < 4 + _HEADER.size:
        raise ValueError(f"service sample of {len(raw)} bytes is shorter than its 20-byte header")
    little = raw[1] & 1
    guid, seq = (_HEADER if little else _HEADER_BE).unpack_from(raw, 4)
    return guid, seq, raw[:4] + raw[4 + _HEADER.size :]


def _idl_field(desc: tuple[Any, Any]) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        base, bound = detail
        if base == "string":
            return idl.bounded_str[bound] if bound else str  # type: ignore[misc]
        if base not in _IDL:
            raise TypeError(f"ROS base type '{base}' has no DDS mapping here")
        return _IDL[base]
    if kind == Nodetype.NAME:
        return idl_type(detail)
    sub, size = detail
    inner = _idl_field(sub)
    if kind == Nodetype.ARRAY:
        return idl.array[inner, size]  # type: ignore[misc]
    return idl.sequence[inner, size] if size else idl.sequence[inner]  # type: ignore[misc]


@cache
def idl_type(msgtype: str, *, request_header: bool = False) -> type[IdlStruct]:
    """The cyclonedds IDL struct of `msgtype`, named as rmw does (e.g. std_msgs::msg::dds_::String_).

    Args:
        msgtype: the ROS type.
        request_header: prepend rmw_cyclonedds_cpp's service header (client guid, sequence number),
            for the request and reply topics of services (cyclonedds checks every sample against it).
    """
    fields: dict[str, Any] = {}
    if request_header:
        fields.update(client_guid=idl.uint64, sequence_number=idl.int64)
    for name, desc in _fields(msgtype):
        fields[name] = _idl_field(desc)
    typename = dds_type(msgtype).replace("::", ".")
    suffix = "_with_request_header" if request_header else ""
    return make_idl_struct(typename.replace(".", "_") + suffix, typename, fields)


def to_idl(msgtype: str, msg: Any, *, request: tuple[int, int] | None = None) -> IdlStruct:
    """Converts a rosbags message into the cyclonedds IDL struct (used by tests to cross-check the bytes).

    Args:
        msgtype: the ROS type.
        msg: a rosbags message of that type.
        request: (client guid, sequence number) for a service request/reply with its header.
    """
    cls = idl_type(msgtype, request_header=request is not None)
    values: dict[str, Any] = {}
    if request is not None:
        values.update(client_guid=request[0], sequence_number=request[1])
    for name, (kind, detail) in _fields(msgtype):
        v = getattr(msg, name)
        values[name] = _to_idl_value((kind, detail), v)
    return cls(**values)


def _to_idl_value(desc: tuple[Any, Any], v: Any) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        return bool(v) if detail[0] == "bool" else v
    if kind == Nodetype.NAME:
        return to_idl(detail, v)
    sub = detail[0]
    if isinstance(v, np.ndarray):
        return v.tolist()
    return [_to_idl_value(sub, x) for x in v]
