"""Imports a rosbag2 (mcap or sqlite3) recording of a robot into a vla dataset, with statistics.

Episodes are split on the instruction topic (a message starts one; an empty one, task_success true or
the next instruction ends it). Inside an episode the steps are aligned to the control rate: grid
point k lies half a period after t0 + k / hz (t0 = the episode's first command); the step's action is
the newest command at or before it, and its observation the newest message of every input at or
before that command (what the robot had seen when it was commanded). A grid point whose newest
command was already used adds no step (the robot was not commanded), and commands faster than the
control rate are thinned to it. Times are the bag's receive times.

Images, state and commands go through the ROS 2 node's own conversions (`vla.runtime.ros2.codecs`),
so malformed messages are rejected with the topic and bag time named.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.episode import Episode
from vla.data.rosbag2_format import (
    CUSTOM_EMBODIMENT,
    CUSTOM_ENV_ARGS,
    CUSTOM_EPISODES,
    CUSTOM_SUITE,
    TopicMap,
    resolve_embodiment,
)
from vla.data.stats import compute_and_store
from vla.data.writer import DatasetWriter
from vla.runtime.ros2 import codecs, messages
from vla.runtime.ros2.codecs import CommandCodec, InputError, StateLayout
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

logger = logging.getLogger(__name__)

_CAMERA = re.compile(r"^/cameras/([A-Za-z0-9_]+)/image_raw$")
_WIDE = 1e6  # limits a bag does not record; the safety filter needs real ones (see docs/ros2.md)
_TYPES = {
    "joint_states": "sensor_msgs/msg/JointState",
    "ee_pose": "geometry_msgs/msg/PoseStamped",
    "state": "std_msgs/msg/Float32MultiArray",
    "instruction": "std_msgs/msg/String",
    "task_success": "std_msgs/msg/Bool",
}
_COMMAND_TYPES = ("std_msgs/msg/Float32MultiArray", "trajectory_msgs/msg/JointTrajectory")


def _bag_topics(reader: Any) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections}


def _complete_map(tm: TopicMap, topics: dict[str, str], bag: Path) -> TopicMap:
    cams = dict(tm.cameras) or {m.group(1): t for t in sorted(topics) if (m := _CAMERA.match(t))}
    if not cams:
        raise ValueError(
            f"{bag}: no camera topics (map 'cameras', or /cameras/<name>/image_raw); topics: {sorted(topics)}"
        )
    command = tm.command
    if not command:
        found = [t for t in sorted(topics) if t.startswith("/command/") and topics[t] in _COMMAND_TYPES]
        if len(found) != 1:
            raise ValueError(f"{bag}: set 'command' in the topic map (found command topics {found})")
        command = found[0]
    out = dataclasses.replace(tm, cameras=cams, command=command)
    wanted = {
        **{f"camera {c}": t for c, t in cams.items()},
        "command": command,
        "instruction": tm.instruction,
    }
    for key, topic in wanted.items():
        if topic not in topics:
            raise ValueError(f"{bag}: {key} topic '{topic}' is not in the bag; topics: {sorted(topics)}")
    for cam, topic in cams.items():
        if topics[topic] != "sensor_msgs/msg/Image":
            raise ValueError(
                f"{bag}: camera {cam} topic {topic} has type {topics[topic]}, expected sensor_msgs/msg/Image"
            )
    if topics[command] not in _COMMAND_TYPES:
        raise ValueError(
            f"{bag}: command topic {command} has type {topics[command]}, expected one of {_COMMAND_TYPES}"
        )
    for key, msgtype in _TYPES.items():
        topic = getattr(out, key)
        if topic and topic in topics and topics[topic] != msgtype:
            raise ValueError(f"{bag}: {key} topic {topic} has type {topics[topic]}, expected {msgtype}")
    return out


def _describe(tm: TopicMap, first: dict[str, Any], hw: tuple[int, int], hz: float) -> Embodiment:
    """An embodiment for a bag without one, from its messages (limits unknown: left wide open)."""
    fields: list[StateField] = []
    n = 0
    if tm.state:
        fields.append(StateField("state", int(np.asarray(first["state"].data).size), "robot units"))
    else:
        if "joint_states" in first:
            names = [str(x) for x in first["joint_states"].name]
            arm = list(tm.joint_names) or [x for x in names if x not in tm.gripper_joints]
            n = len(arm)
            fields += [StateField("joint_pos", n, "rad"), StateField("joint_vel", n, "rad/s")]
            if any(g in names for g in tm.gripper_joints):
                fields.append(StateField("gripper", 1, "m"))
        if "ee_pose" in first:
            fields += [StateField("ee_pos", 3, "m"), StateField("ee_quat", 4, "quaternion (w, x, y, z)")]
    cmd = first["command"]
    if hasattr(cmd, "points"):
        arm = list(tm.joint_names) or [f"joint{i + 1}" for i in range(n)]
        extra = [str(x) for x in cmd.joint_names if str(x) not in arm]
        groups = [ActionGroup("joints", len(arm), (-_WIDE,) * len(arm), (_WIDE,) * len(arm), "rad")]
        groups += [ActionGroup(x, 1, (-_WIDE,), (_WIDE,), "robot units") for x in extra]
        space = ActionSpace("joint_pos", tuple(groups))
    else:
        a = int(np.asarray(cmd.data).size)
        label = str(cmd.layout.dim[0].label) if len(cmd.layout.dim) else ""
        space = ActionSpace(
            label or "action", (ActionGroup("action", a, (-_WIDE,) * a, (_WIDE,) * a, "robot units"),)
        )
    return Embodiment(
        name="rosbag2_import",
        action_spaces=(space,),
        state_fields=tuple(fields),
        cameras=tuple(tm.cameras),
        image_size=hw,
        control_hz=hz,
        joint_low=(-_WIDE,) * n,
        joint_high=(_WIDE,) * n,
        max_joint_velocity=(_WIDE,) * n,
        workspace_low=(-_WIDE, -_WIDE, -_WIDE),
        workspace_high=(_WIDE, _WIDE, _WIDE),
    )


class _Episode:
    """Messages of one episode, per role, in time order."""

    def __init__(self, instruction: str, start_ns: int) -> None:
        self.instruction = instruction
        self.start_ns = start_ns
        self.success = False
        self.msgs: dict[str, list[tuple[int, Any]]] = {}

    def add(self, role: str, t: int, msg: Any) -> None:
        self.msgs.setdefault(role, []).append((t, msg))


def _steps(
    ep: _Episode, inputs: list[str], hz: float
) -> list[tuple[float, dict[str, tuple[int, Any]], tuple[int, Any]]]:
    """(timestamp s, input role -> (t, msg), command (t, msg)) per step on the control-rate grid."""
    commands = ep.msgs.get("command", [])
    if not commands:
        return []
    times = {r: [t for t, _ in ep.msgs.get(r, [])] for r in inputs}
    ctimes = [t for t, _ in commands]
    period = 1e9 / hz
    t0 = ctimes[0]
    out = []
    last = -1
    k = 0
    while t0 + k * period <= ctimes[-1]:
        j = bisect.bisect_right(ctimes, t0 + (k + 0.5) * period) - 1
        if j > last:
            last = j
            tc = ctimes[j]
            obs = {}
            for r in inputs:
                i = bisect.bisect_right(times[r], tc) - 1
                if i < 0:
                    break
                obs[r] = ep.msgs[r][i]
            if len(obs) == len(inputs):
                out.append((k / hz, obs, commands[j]))
        k += 1
    return out


def import_rosbag2(
    bag: str | Path, out_path: str | Path, *, topics: TopicMap | None = None, compression: str = "gzip"
) -> Path:
    """Converts the rosbag2 directory `bag` into the vla dataset `out_path` (which must not exist).

    Args:
        bag: a rosbag2 directory (metadata.yaml + .mcap or .db3 files).
        out_path: the .h5 dataset to create.
        topics: the topic map (default: the node's topics, see `vla.data.rosbag2_format`).
        compression: image compression of the dataset.

    Returns:
        `out_path`.
    """
    from rosbags.rosbag2 import Reader

    bag, out_path = Path(bag), Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path}: already exists; choose another --out or delete it")
    if not (bag / "metadata.yaml").is_file():
        raise FileNotFoundError(f"{bag}: not a rosbag2 directory (no metadata.yaml)")
    tm = topics or TopicMap()
    with Reader(bag) as reader:
        topic_types = _bag_topics(reader)
        tm = _complete_map(tm, topic_types, bag)
        custom = dict(getattr(getattr(reader.storage, "metadata", None), "custom", None) or {})
        roles = {t: f"camera:{c}" for c, t in tm.cameras.items()}
        for key in ("joint_states", "ee_pose", "state"):
            topic = getattr(tm, key)
            if topic and topic in topic_types and not (key != "state" and tm.state):
                roles[topic] = key
        roles[tm.command] = "command"
        roles[tm.instruction] = "instruction"
        if tm.task_success and tm.task_success in topic_types:
            roles[tm.task_success] = "task_success"
        conns = [c for c in reader.connections if c.topic in roles]
        episodes: list[_Episode] = []
        current: _Episode | None = None
        for conn, t, raw in reader.messages(connections=conns):
            role = roles[conn.topic]
            try:
                msg = messages.decode(conn.msgtype, raw)
            except ValueError as e:
                raise ValueError(f"{bag}: {conn.topic} at t={t} ns: {e}") from e
            if role == "instruction":
                text = str(msg.data).strip()
                current = _Episode(text, t) if text else None
                if current is not None:
                    episodes.append(current)
            elif current is not None:
                if role == "task_success":
                    current.success = bool(msg.data)
                    if current.success:
                        current = None
                else:
                    current.add(role, t, msg)
    inputs = [r for r in dict.fromkeys(roles.values()) if r not in ("command", "instruction", "task_success")]
    first_ep = next(
        (e for e in episodes if e.msgs.get("command") and all(e.msgs.get(r) for r in inputs)), None
    )
    if first_ep is None:
        raise ValueError(
            f"{bag}: no episode with commands and every input topic ({inputs}); check the topic map"
        )
    first = {r: first_ep.msgs[r][0][1] for r in [*inputs, "command"]}
    img0 = first[f"camera:{next(iter(tm.cameras))}"]
    hw = (int(img0.height), int(img0.width))
    emb = _embodiment(tm, custom, first, hw)
    hz = float(tm.control_hz or emb.control_hz)
    layout = StateLayout(emb, _arm(emb, tm), tm.gripper_joints, from_state_topic=bool(tm.state))
    needed = {
        "joint_states": layout.needs_joints,
        "ee_pose": layout.needs_pose,
        "state": layout.from_state_topic,
    }
    absent = [f"{k} ({getattr(tm, k) or 'unset'})" for k, need in needed.items() if need and k not in inputs]
    if absent:
        raise ValueError(f"{bag}: embodiment '{emb.name}' needs topics {absent}, which the bag lacks")
    codec = _command_codec(emb, first["command"], layout.joint_names)
    if codec.space is not emb.action_spaces[0]:  # the dataset's actions are its embodiment's default space
        others = tuple(s for s in emb.action_spaces if s is not codec.space)
        emb = dataclasses.replace(emb, action_spaces=(codec.space, *others))
        layout = dataclasses.replace(layout, embodiment=emb)
    metas = json.loads(custom.get(CUSTOM_EPISODES, "[]") or "[]")
    writer = DatasetWriter(
        out_path,
        embodiment=emb,
        suite=str(custom.get(CUSTOM_SUITE, "")),
        env_args=json.loads(custom.get(CUSTOM_ENV_ARGS, "{}") or "{}") or {"rosbag2": str(bag)},
        compression=compression,
    )
    written = 0
    use_meta = len(metas) == len(episodes)
    for i, ep in enumerate(episodes):
        steps = _steps(ep, inputs, hz)
        if not steps:
            logger.warning("%s: episode %d ('%s') has no complete step; skipped", bag, i, ep.instruction)
            continue
        episode = _convert(ep, steps, emb, layout, codec, tm, bag)
        meta = dict(metas[i].get("meta", {})) if use_meta else {"rosbag2": str(bag), "start_ns": ep.start_ns}
        success = bool(metas[i].get("success", ep.success)) if use_meta else ep.success
        writer.append(dataclasses.replace(episode, success=success, meta=meta))
        written += 1
    if written == 0:
        out_path.unlink(missing_ok=True)
        raise ValueError(f"{bag}: no episode had a complete step; nothing imported")
    compute_and_store(out_path)
    return out_path


def _arm(emb: Embodiment, tm: TopicMap) -> tuple[str, ...]:
    n = len(emb.joint_low)
    return tm.joint_names or tuple(f"joint{i + 1}" for i in range(n))


def _embodiment(
    tm: TopicMap, custom: dict[str, Any], first: dict[str, Any], hw: tuple[int, int]
) -> Embodiment:
    if tm.embodiment:
        return resolve_embodiment(tm.embodiment, image_size=hw)
    if custom.get(CUSTOM_EMBODIMENT):
        return Embodiment.from_dict(json.loads(custom[CUSTOM_EMBODIMENT]))
    return _describe(tm, first, hw, float(tm.control_hz or 10.0))


def _command_codec(emb: Embodiment, msg: Any, joints: tuple[str, ...]) -> CommandCodec:
    """The codec of the embodiment's action space the bag's commands are in."""
    trajectory = hasattr(msg, "points")
    label = "" if trajectory or not len(msg.layout.dim) else str(msg.layout.dim[0].label)
    for space in emb.action_spaces:
        codec = CommandCodec(space, joints, emb.control_hz)
        if codec.kind == ("trajectory" if trajectory else "multiarray") and (
            not label or label == space.name
        ):
            return codec
    raise ValueError(
        f"the bag's commands ({'JointTrajectory' if trajectory else f'Float32MultiArray {label!r}'}) match no "
        f"action space of embodiment '{emb.name}' ({[s.name for s in emb.action_spaces]})"
    )


def _convert(
    ep: _Episode,
    steps: list[tuple[float, dict[str, tuple[int, Any]], tuple[int, Any]]],
    emb: Embodiment,
    layout: StateLayout,
    codec: CommandCodec,
    tm: TopicMap,
    bag: Path,
) -> Episode:
    hw = (int(emb.image_size[0]), int(emb.image_size[1]))
    images: dict[str, list[np.ndarray]] = {c: [] for c in tm.cameras}
    states, actions = [], []
    for _, obs, (tc, cmd) in steps:
        try:
            for cam, topic in tm.cameras.items():
                images[cam].append(codecs.image_to_array(obs[f"camera:{cam}"][1], size=hw, topic=topic))
            states.append(
                layout.assemble(
                    joints=obs.get("joint_states", (0, None))[1],
                    pose=obs.get("ee_pose", (0, None))[1],
                    state=obs.get("state", (0, None))[1],
                )
            )
            actions.append(codec.decode(cmd))
        except (InputError, AttributeError) as e:
            raise ValueError(f"{bag}: episode '{ep.instruction}', step at t={tc} ns: {e}") from e
    return Episode(
        images={c: np.stack(v) for c, v in images.items()},
        state=np.stack(states).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        timestamps=np.asarray([s[0] for s in steps], dtype=np.float64),
        instruction=ep.instruction,
        success=ep.success,
    )
