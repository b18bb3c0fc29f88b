"""ROS 2 on the wire: names, and the CDR bytes of every message type vla sends equal rosbags' serialization
(cyclonedds' own serializer of the same IDL type gives identical bytes, and a typed cyclonedds reader
decodes what the node publishes)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from vla.envs.tabletop.embodiment import make_embodiment
from vla.runtime.ros2 import codecs, messages, names
from vla.runtime.ros2.codecs import CommandCodec, StateLayout
from vla.runtime.ros2.messages import ACTION_TYPE, PLAN_ACTION_TYPE
from vla.runtime.ros2.qos import RELIABLE

REPO = Path(__file__).resolve().parents[3]
JOINTS = tuple(f"joint{i}" for i in range(1, 8))


def _sent_messages() -> dict[str, dict]:
    """One realistic instance of every topic message type the node, the sim and the action server send."""
    rng = np.random.default_rng(0)
    emb = make_embodiment((16, 16))
    state = rng.normal(size=22).astype(np.float32)
    layout = StateLayout(emb, JOINTS)
    ee = CommandCodec.for_embodiment(emb, space="ee_delta", joint_names=JOINTS)
    jp = CommandCodec.for_embodiment(emb, space="joint_pos", joint_names=JOINTS)
    t = 1_712_345_678_123_456_789
    gid = {"uuid": rng.integers(0, 256, 16).astype(np.uint8)}
    return {
        "sensor_msgs/msg/Image": codecs.array_to_image(
            rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), stamp_ns=t, frame_id="scene"
        ),
        "sensor_msgs/msg/JointState": layout.joint_state_fields(state, stamp_ns=t),
        "geometry_msgs/msg/PoseStamped": layout.pose_fields(state, stamp_ns=t, frame_id="base"),
        "std_msgs/msg/Float32MultiArray": ee.encode(rng.normal(size=7), stamp_ns=t),
        "trajectory_msgs/msg/JointTrajectory": jp.encode(rng.normal(size=8), stamp_ns=t),
        "diagnostic_msgs/msg/DiagnosticArray": codecs.status_fields(
            stamp_ns=t,
            name="vla_policy: demo",
            hardware_id="panda",
            level=codecs.STALE,
            message="stale: camera:wrist 612 ms",
            values={"state": "stale", "step": 3},
        ),
        "std_msgs/msg/String": {"data": "pick up the red block"},
        "std_msgs/msg/Bool": {"data": True},
        "action_msgs/msg/GoalStatusArray": {
            "status_list": [{"goal_info": {"goal_id": gid, "stamp": {"sec": 5, "nanosec": 7}}, "status": 2}]
        },
        f"{ACTION_TYPE}_FeedbackMessage": {
            "goal_id": gid,
            "feedback": {"step": 4, "confidence": 0.25, "safety": "clipped: workspace", "state": "acting"},
        },
        f"{PLAN_ACTION_TYPE}_FeedbackMessage": {
            "goal_id": gid,
            "feedback": {
                "step": 2,
                "plan_steps": 3,
                "skill": "push the blue ball to the left",
                "attempt": 1,
                "status": "failed",
                "detail": "failed: timeout after 120 control steps",
                "replans": 1,
                "commands": 211,
            },
        },
    }


def _service_messages() -> dict[str, dict]:
    gid = {"uuid": np.arange(16, dtype=np.uint8)}
    info = {"goal_id": gid, "stamp": {"sec": 9, "nanosec": 11}}
    return {
        f"{ACTION_TYPE}_SendGoal_Request": {
            "goal_id": gid,
            "goal": {"instruction": "touch it", "max_steps": 60},
        },
        f"{ACTION_TYPE}_SendGoal_Response": {"accepted": True, "stamp": {"sec": 3, "nanosec": 4}},
        f"{ACTION_TYPE}_GetResult_Request": {"goal_id": gid},
        f"{ACTION_TYPE}_GetResult_Response": {
            "status": 4,
            "result": {"success": True, "reason": "succeeded", "steps": 17, "duration_s": 1.5},
        },
        f"{PLAN_ACTION_TYPE}_SendGoal_Request": {
            "goal_id": gid,
            "goal": {
                "instruction": "put the red block in the bowl",
                "scene": '{"objects": []}',
                "max_steps": 0,
            },
        },
        f"{PLAN_ACTION_TYPE}_GetResult_Response": {
            "status": 6,
            "result": {
                "success": False,
                "reason": "canceled",
                "plan": ["put the red block in the bowl", "push the blue ball to the left"],
                "plan_json": "[]",
                "steps_completed": 1,
                "replans": 0,
                "steps": 140,
                "duration_s": 2.5,
            },
        },
        "action_msgs/srv/CancelGoal_Request": {"goal_info": info},
        "action_msgs/srv/CancelGoal_Response": {"return_code": 0, "goals_canceling": [info, info]},
    }


@pytest.mark.parametrize("msgtype", sorted(_sent_messages()))
def test_cdr_of_every_sent_type_equals_rosbags(msgtype: str) -> None:
    msg = messages.build(msgtype, _sent_messages()[msgtype])
    ours = messages.encode(msgtype, msg)
    assert ours[:4] == b"\x00\x01\x00\x00"  # CDR little endian, as ROS 2 sends it
    assert messages.to_idl(msgtype, msg).serialize() == ours
    back = messages.decode(msgtype, ours)
    assert messages.encode(msgtype, back) == ours


@pytest.mark.parametrize("msgtype", sorted(_service_messages()))
def test_service_samples_carry_the_rmw_cyclonedds_header(msgtype: str) -> None:
    msg = messages.build(msgtype, _service_messages()[msgtype])
    guid, seq = 0x0123456789ABCDEF, 42
    framed = messages.frame(guid, seq, messages.encode(msgtype, msg))
    assert messages.to_idl(msgtype, msg, request=(guid, seq)).serialize() == framed
    g, s, body = messages.unframe(framed)
    assert (g, s) == (guid, seq) and body == messages.encode(msgtype, msg)


def test_typed_cyclonedds_reader_decodes_what_we_publish(dds, ids) -> None:
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from vla.runtime.ros2.qos import to_cyclonedds

    a, b = dds(), dds()
    msgtype = "sensor_msgs/msg/JointState"
    pub = a.advertise(f"{ids.namespace}/joint_states", msgtype, RELIABLE)
    raw = b.subscribe(f"{ids.namespace}/joint_states", msgtype, RELIABLE)
    topic = Topic(b.participant, f"rt{ids.namespace}/joint_states", messages.idl_type(msgtype))
    typed = DataReader(b.participant, topic, qos=to_cyclonedds(RELIABLE))
    deadline = time.monotonic() + 10
    while pub.matched() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    msg = messages.build(msgtype, _sent_messages()[msgtype])
    pub.publish(msg)
    got_raw, got_typed = [], []
    while (not got_raw or not got_typed) and time.monotonic() < deadline:
        got_raw += raw.take_raw()
        got_typed += typed.take(10)
        time.sleep(0.005)
    wire = got_raw[0][0]
    ours = messages.encode(msgtype, msg)
    assert wire[: len(ours)] == ours and set(wire[len(ours) :]) <= {0}  # padded to 4 bytes like cyclonedds
    t = got_typed[0]
    assert list(t.name) == list(msg.name) and np.allclose(t.position, msg.position)
    assert (t.header.stamp.sec, t.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)


def test_ros_names_on_dds() -> None:
    assert names.dds_topic("/vla/status") == "rt/vla/status"
    assert names.dds_type("std_msgs/msg/String") == "std_msgs::msg::dds_::String_"
    assert (
        names.dds_type(f"{ACTION_TYPE}_SendGoal_Request")
        == "vla_ros2::action::dds_::ExecuteInstruction_SendGoal_Request_"
    )
    assert names.dds_service("/s") == ("rq/sRequest", "rr/sReply")
    assert names.dds_service(names.action_service("/a", "send_goal")) == (
        "rq/a/_action/send_goalRequest",
        "rr/a/_action/send_goalReply",
    )
    assert names.dds_topic(names.action_topic("/a", "status")) == "rt/a/_action/status"
    assert names.resolve("image", namespace="/robot", node="vla") == "/robot/image"
    assert names.resolve("~/status", namespace="/robot", node="vla") == "/robot/vla/status"
    assert names.resolve("/abs", namespace="/robot") == "/abs"
    remaps = names.parse_remaps(["cameras/scene/image_raw:=/camera/color/image_raw"])
    assert names.apply_remaps("cameras/scene/image_raw", remaps, namespace="/") == "/camera/color/image_raw"
    for bad in ("/a//b", "/1abc", "/a b"):
        with pytest.raises(ValueError, match="not a valid ROS 2 name"):
            names.dds_topic(bad)
    with pytest.raises(ValueError, match="from:=to"):
        names.parse_remaps(["nope"])


def test_malformed_bytes_and_fields_are_errors_not_crashes() -> None:
    with pytest.raises(ValueError, match="malformed sensor_msgs/msg/Image"):
        messages.decode("sensor_msgs/msg/Image", b"\x00\x01\x00\x00\xff\xff\xff\x7f")
    with pytest.raises(ValueError, match="has no fields"):
        messages.build("std_msgs/msg/String", {"text": "x"})
    with pytest.raises(KeyError, match="unknown ROS message type"):
        messages.build("foo_msgs/msg/Bar", {})
    with pytest.raises(ValueError, match="shorter than its 20-byte header"):
        messages.unframe(b"\x00\x01\x00\x00\x01")


def test_shipped_plan_action_matches_the_ros_package() -> None:
    shipped = (REPO / "ros2" / "vla_ros2" / "action" / "ExecutePlan.action").read_text()
    assert shipped == messages.action_definition("ExecutePlan")
    assert '"action/ExecutePlan.action"' in (REPO / "ros2" / "vla_ros2" / "CMakeLists.txt").read_text()
    goal = messages.typestore().fielddefs[f"{PLAN_ACTION_TYPE}_Goal"][1]
    assert [name for name, _ in goal] == ["instruction", "scene", "max_steps"]
    with pytest.raises(KeyError, match="vla ships no action 'ExecutePlans'"):
        messages.action_definition("ExecutePlans")


def test_shipped_action_definition_matches_the_ros_package() -> None:
    shipped = (REPO / "ros2" / "vla_ros2" / "action" / "ExecuteInstruction.action").read_text()
    assert shipped == messages.action_definition()
    goal = messages.typestore().fielddefs[f"{ACTION_TYPE}_Goal"][1]
    assert [name for name, _ in goal] == ["instruction", "max_steps"]
