"""ROS 2 names and how they appear on DDS (the mapping every rmw implementation uses).

ROS 2 puts a prefix on every DDS topic and mangles type names:

    topic   /x                         -> DDS topic  rt/x
    type    pkg/msg/T                  -> DDS type   pkg::msg::dds_::T_
    service /s (request, reply)        -> rq/sRequest, rr/sReply
    action  /a                         -> services /a/_action/send_goal, /a/_action/cancel_goal,
                                          /a/_action/get_result; topics /a/_action/feedback,
                                          /a/_action/status

Names given to a node resolve like rclcpp's: "/abs" stays, "rel" goes under the node's namespace and
"~/priv" under the node's own name; remaps ("from:=to") apply to the resolved name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/(msg|srv|action)/([A-Za-z][A-Za-z0-9_]*)$")

ACTION_SERVICES = ("send_goal", "cancel_goal", "get_result")
ACTION_TOPICS = ("feedback", "status")


def _check_absolute(name: str, *, kind: str) -> str:
    if not name.startswith("/"):
        raise ValueError(f"{kind} '{name}' must be absolute (start with '/')")
    tokens = name.strip("/").split("/") if name != "/" else []
    bad = [t for t in tokens if not _TOKEN.match(t)]
    if bad or "//" in name or (name.endswith("/") and name != "/"):
        raise ValueError(
            f"{kind} '{name}' is not a valid ROS 2 name: tokens must be letters, digits and '_', "
            f"not start with a digit, separated by single '/' (bad: {bad or [name]})"
        )
    return name


def resolve(name: str, *, namespace: str = "/", node: str = "vla_policy") -> str:
    """Resolves a topic/service/action name against a node, as rclcpp does.

    Args:
        name: "/abs", "relative" or "~/private".
        namespace: the node's namespace, absolute ("/" for none).
        node: the node's name.

    Returns:
        The absolute name.
    """
    ns = _check_absolute(namespace, kind="namespace")
    if not _TOKEN.match(node):
        raise ValueError(f"node name '{node}' is not a valid ROS 2 name (letters, digits, '_')")
    if not name:
        raise ValueError("empty topic name")
    base = ns.rstrip("/")
    if name.startswith("/"):
        full = name
    elif name == "~":
        full = f"{base}/{node}"
    elif name.startswith("~/"):
        full = f"{base}/{node}/{name[2:]}"
    else:
        full = f"{base}/{name}"
    return _check_absolute(full, kind="name")


def parse_remaps(rules: Iterable[str]) -> dict[str, str]:
    """Parses "from:=to" rules (ROS's --remap syntax) into a dict; the names stay unresolved."""
    out: dict[str, str] = {}
    for rule in rules:
        if ":=" not in rule:
            raise ValueError(
                f"remap '{rule}' must look like 'from:=to' (e.g. image:=/camera/color/image_raw)"
            )
        src, dst = (s.strip() for s in rule.split(":=", 1))
        if not src or not dst:
            raise ValueError(f"remap '{rule}' has an empty side; expected 'from:=to'")
        out[src] = dst
    return out


def apply_remaps(
    name: str, remaps: Mapping[str, str], *, namespace: str = "/", node: str = "vla_policy"
) -> str:
    """The resolved name after remapping (rules match on the resolved name)."""
    full = resolve(name, namespace=namespace, node=node)
    for src, dst in remaps.items():
        if resolve(src, namespace=namespace, node=node) == full:
            return resolve(dst, namespace=namespace, node=node)
    return full


def dds_topic(topic: str) -> str:
    """The DDS topic of an absolute ROS topic: "/x/y" -> "rt/x/y"."""
    return "rt" + _check_absolute(topic, kind="topic")


def dds_service(service: str) -> tuple[str, str]:
    """The (request, reply) DDS topics of an absolute ROS service: "/s" -> ("rq/sRequest", "rr/sReply")."""
    s = _check_absolute(service, kind="service")
    return f"rq{s}Request", f"rr{s}Reply"


def action_service(action: str, which: str) -> str:
    """The ROS service behind an action: ("/a", "send_goal") -> "/a/_action/send_goal"."""
    if which not in ACTION_SERVICES:
        raise ValueError(f"unknown action service '{which}'; expected one of {ACTION_SERVICES}")
    return f"{_check_absolute(action, kind='action')}/_action/{which}"


def action_topic(action: str, which: str) -> str:
    """The ROS topic behind an action: ("/a", "feedback") -> "/a/_action/feedback"."""
    if which not in ACTION_TOPICS:
        raise ValueError(f"unknown action topic '{which}'; expected one of {ACTION_TOPICS}")
    return f"{_check_absolute(action, kind='action')}/_action/{which}"


def dds_type(msgtype: str) -> str:
    """The DDS type name of a ROS interface type: "std_msgs/msg/String" -> "std_msgs::msg::dds_::String_"."""
    m = _TYPE.match(msgtype)
    if m is None:
        raise ValueError(f"type '{msgtype}' must look like 'pkg/msg/Name' (or pkg/srv/..., pkg/action/...)")
    pkg, kind, name = m.groups()
    return f"{pkg}::{kind}::dds_::{name}_"
