"""Writes a vla dataset as a rosbag2 (mcap or sqlite3) with the topics `vla ros2 node` uses.

Each episode becomes: the instruction (std_msgs/String), then per step every camera image, the joint
states and end-effector pose (or the whole state vector) stamped at the step's time, and the command
1 ms later; after the last step task_success (std_msgs/Bool) and an empty instruction. Episodes are
`gap_s` apart. What ROS messages cannot hold (embodiment, suite, per-episode success and meta) goes
into the bag's metadata custom_data, so `vla data import --format rosbag2` restores the dataset exactly.
A bag exported this way can also be played back to a running node (`ros2 bag play`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vla.data.reader import EpisodeDataset
from vla.data.rosbag2_format import (
    CUSTOM_EMBODIMENT,
    CUSTOM_ENV_ARGS,
    CUSTOM_EPISODES,
    CUSTOM_SUITE,
    STORAGES,
    TopicMap,
)
from vla.data.writer import to_json
from vla.runtime.ros2 import codecs, messages
from vla.runtime.ros2.codecs import CommandCodec, StateLayout
from vla.runtime.ros2.config import camera_topic

START_NS = 1_700_000_000 * 10**9  # an arbitrary epoch: bag times only order the messages
COMMAND_DELAY_NS = 1_000_000


def default_map(embodiment: Any, cameras: tuple[str, ...] | list[str]) -> TopicMap:
    """The node's default topics for a dataset's embodiment (the map export writes, import reads)."""
    codec = CommandCodec.for_embodiment(embodiment, space=None, joint_names=_joints(embodiment, ()))
    layout_ok = _layout(embodiment, TopicMap()) is not None
    return TopicMap(
        cameras={c: "/" + camera_topic(c) for c in cameras},
        command="/" + codec.topic,
        state="" if layout_ok else "/state",
        control_hz=float(embodiment.control_hz),
    )


def _joints(embodiment: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    n = len(embodiment.joint_low)
    return names or tuple(f"joint{i + 1}" for i in range(n))


def _layout(embodiment: Any, tm: TopicMap) -> StateLayout | None:
    try:
        return StateLayout(
            embodiment,
            _joints(embodiment, tm.joint_names),
            tm.gripper_joints,
            from_state_topic=bool(tm.state),
        )
    except ValueError:
        return None


def export_rosbag2(
    source: str | Path,
    out_dir: str | Path,
    *,
    storage: str = "mcap",
    topics: TopicMap | None = None,
    overwrite: bool = False,
    gap_s: float = 1.0,
) -> Path:
    """Writes the dataset at `source` as a rosbag2 directory.

    Args:
        source: a vla .h5 dataset (with its embodiment).
        out_dir: the bag directory to create.
        storage: "mcap" or "sqlite3".
        topics: where each field goes (default: the node's topics, `default_map`).
        overwrite: replace `out_dir` if it exists.
        gap_s: seconds between episodes.

    Returns:
        The bag directory.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got '{storage}'")
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(out)
    with EpisodeDataset(source) as ds:
        if len(ds) == 0:
            raise ValueError(f"{ds.path}: has no episodes to export")
        emb = ds.embodiment
        if emb is None:
            raise ValueError(f"{ds.path}: has no embodiment, so its state and actions have no ROS meaning")
        tm = topics or default_map(emb, ds.cameras)
        missing = [c for c in ds.cameras if c not in tm.cameras]
        if missing:
            raise ValueError(f"topic map has no topic for cameras {missing} (has {sorted(tm.cameras)})")
        layout = _layout(emb, tm)
        if layout is None:
            raise ValueError(
                f"embodiment '{emb.name}' state fields {[f.name for f in emb.state_fields]} have no ROS source; "
                "set 'state' in the topic map to export the whole vector as Float32MultiArray"
            )
        joints = _joints(emb, tm.joint_names)
        codec = CommandCodec.for_embodiment(emb, space=None, joint_names=joints)
        command_topic = tm.command or "/" + codec.topic
        writer = Writer(
            out, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        )
        writer.set_custom_data(CUSTOM_EMBODIMENT, to_json(emb.to_dict()))
        writer.set_custom_data(CUSTOM_SUITE, ds.suite)
        writer.set_custom_data(CUSTOM_ENV_ARGS, to_json(ds.env_args))
        writer.set_custom_data(
            CUSTOM_EPISODES,
            json.dumps([{"success": i.success, "meta": i.meta} for i in ds.infos], default=str),
        )
        ts = messages.typestore()
        writer.open()
        try:
            conns: dict[str, Any] = {}

            def put(topic: str, msgtype: str, fields: dict[str, Any], t_ns: int) -> None:
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
                writer.write(conns[topic], t_ns, messages.encode(msgtype, messages.build(msgtype, fields)))

            t = START_NS
            period_ns = round(1e9 / float(tm.control_hz or emb.control_hz))
            for i in range(len(ds)):
                ep = ds.episode(i)
                put(tm.instruction, "std_msgs/msg/String", {"data": ep.instruction}, t)
                base = t + period_ns
                tk = base
                for k in range(len(ep)):
                    tk = base + round(float(ep.timestamps[k]) * 1e9)
                    for cam in ds.cameras:
                        img = codecs.array_to_image(ep.images[cam][k], stamp_ns=tk, frame_id=cam)
                        put(tm.cameras[cam], "sensor_msgs/msg/Image", img, tk)
                    s = ep.state[k]
                    if tm.state:
                        dim = {"label": "state", "size": len(s), "stride": len(s)}
                        put(
                            tm.state,
                            "std_msgs/msg/Float32MultiArray",
                            {"layout": {"dim": [dim]}, "data": s},
                            tk,
                        )
                    if layout.needs_joints:
                        put(
                            tm.joint_states,
                            "sensor_msgs/msg/JointState",
                            layout.joint_state_fields(s, stamp_ns=tk),
                            tk,
                        )
                    if layout.needs_pose:
                        pose = layout.pose_fields(s, stamp_ns=tk, frame_id="base")
                        put(tm.ee_pose, "geometry_msgs/msg/PoseStamped", pose, tk)
                    put(
                        command_topic,
                        codec.msgtype,
                        codec.encode(ep.actions[k], stamp_ns=tk),
                        tk + COMMAND_DELAY_NS,
                    )
                end = tk + period_ns
                if tm.task_success:
                    put(tm.task_success, "std_msgs/msg/Bool", {"data": bool(ep.success)}, end)
                put(tm.instruction, "std_msgs/msg/String", {"data": ""}, end + 1)
                t = end + round(gap_s * 1e9)
        except BaseException:
            writer.close()
            shutil.rmtree(out, ignore_errors=True)
            raise
        writer.close()
    return out
