"""Which rosbag2 topics hold a vla dataset's fields: the topic map of `vla data import/export --format rosbag2`.

A map is a YAML file (every key optional; the defaults are the topics of `vla ros2 node`, so a bag
recorded around the node, or exported by vla, imports without one):

    control_hz: 10                 # the grid steps are aligned to (default: the embodiment's, else 10)
    cameras:                       # camera name -> sensor_msgs/Image topic
      scene: /cameras/scene/image_raw
      wrist: /cameras/wrist/image_raw
    joint_states: /joint_states    # sensor_msgs/JointState
    ee_pose: /ee_pose              # geometry_msgs/PoseStamped (for ee_pos / ee_quat state fields)
    state: ""                      # or: the whole state as std_msgs/Float32MultiArray
    command: /command/ee_delta     # std_msgs/Float32MultiArray or trajectory_msgs/JointTrajectory
    instruction: /instruction      # std_msgs/String: each one starts an episode, "" ends it
    task_success: /task_success    # std_msgs/Bool: true marks the episode a success
    embodiment: <suite>            # a suite name, or a JSON file of Embodiment.to_dict()
    joint_names: [joint1, ...]     # arm joints in state order (default joint1..N)
    gripper_joints: [finger_joint1, finger_joint2]

Episode boundaries come from the instruction topic; the state fields from `vla.runtime.ros2.codecs`
(the node's own conversion, so a bag of a deployed node imports into exactly what the node saw).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla.spaces import Embodiment

# Keys of the bag's metadata custom_data that carry what ROS messages cannot (vla exports only).
CUSTOM_EMBODIMENT = "vla.embodiment"
CUSTOM_SUITE = "vla.suite"
CUSTOM_ENV_ARGS = "vla.env_args"
CUSTOM_EPISODES = "vla.episodes"
STORAGES = ("mcap", "sqlite3")


@dataclass(frozen=True)
class TopicMap:
    """Where each dataset field lives in a bag (see the module docstring).

    Attributes:
        cameras: camera name -> Image topic (empty: every /cameras/<name>/image_raw in the bag).
        joint_states, ee_pose, state, command, instruction, task_success: topic names ("" = not used).
        control_hz: the control rate steps are aligned to (None: the embodiment's, else 10).
        embodiment: a suite name or an Embodiment JSON file ("" = from the bag's vla metadata, else
            described from the topics with open limits).
        joint_names: arm joints in state order (empty: joint1..N).
        gripper_joints: joints whose positions sum to the state's gripper field.
    """

    cameras: dict[str, str] = field(default_factory=dict)
    joint_states: str = "/joint_states"
    ee_pose: str = "/ee_pose"
    state: str = ""
    command: str = ""
    instruction: str = "/instruction"
    task_success: str = "/task_success"
    control_hz: float | None = None
    embodiment: str = ""
    joint_names: tuple[str, ...] = ()
    gripper_joints: tuple[str, ...] = ("finger_joint1", "finger_joint2")

    def __post_init__(self) -> None:
        for key in ("joint_states", "ee_pose", "state", "command", "instruction", "task_success"):
            value = getattr(self, key)
            if value and not value.startswith("/"):
                raise ValueError(
                    f"topic map: '{key}' must be an absolute topic (start with '/'), got '{value}'"
                )
        for cam, topic in self.cameras.items():
            if not topic.startswith("/"):
                raise ValueError(f"topic map: camera '{cam}' topic must start with '/', got '{topic}'")
        if not self.instruction:
            raise ValueError("topic map: 'instruction' is required (episodes are split on it)")
        if self.control_hz is not None and not 0.1 <= self.control_hz <= 1000:
            raise ValueError(f"topic map: control_hz must be in [0.1, 1000], got {self.control_hz}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "topic map") -> TopicMap:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        kw: dict[str, Any] = dict(d)
        if "cameras" in kw:
            if not isinstance(kw["cameras"], dict):
                raise ValueError(f"{where}: 'cameras' must map camera names to topics")
            kw["cameras"] = {str(k): str(v) for k, v in kw["cameras"].items()}
        for key in ("joint_names", "gripper_joints"):
            if key in kw:
                kw[key] = tuple(str(x) for x in kw[key])
        if kw.get("control_hz") is not None:
            kw["control_hz"] = float(kw["control_hz"])
        for key in (
            "joint_states",
            "ee_pose",
            "state",
            "command",
            "instruction",
            "task_success",
            "embodiment",
        ):
            if key in kw:
                kw[key] = "" if kw[key] is None else str(kw[key])
        return cls(**kw)

    @classmethod
    def load(cls, path: str | Path) -> TopicMap:
        """Reads a topic map YAML file."""
        from ruamel.yaml import YAML

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such topic map file")
        data = YAML(typ="safe").load(p.read_text())
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: a topic map must be a YAML mapping, got {type(data).__name__}")
        return cls.from_dict(data, where=str(p))

    def to_dict(self) -> dict[str, Any]:
        return {
            "cameras": dict(self.cameras),
            "joint_states": self.joint_states,
            "ee_pose": self.ee_pose,
            "state": self.state,
            "command": self.command,
            "instruction": self.instruction,
            "task_success": self.task_success,
            "control_hz": self.control_hz,
            "embodiment": self.embodiment,
            "joint_names": list(self.joint_names),
            "gripper_joints": list(self.gripper_joints),
        }


def resolve_embodiment(spec: str, *, image_size: tuple[int, int]) -> Embodiment:
    """An embodiment from a suite name (`vla env list`) or a JSON file of `Embodiment.to_dict()`."""
    p = Path(spec)
    if p.suffix == ".json" or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such embodiment file")
        try:
            return Embodiment.from_dict(json.loads(p.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from e
    from vla.envs import get_suite

    suite: Any = get_suite(spec)
    if not hasattr(suite, "embodiment"):
        raise ValueError(f"suite '{spec}' does not describe its embodiment; pass an Embodiment JSON file")
    return suite.embodiment(image_size)
