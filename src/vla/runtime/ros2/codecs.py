"""Between ROS 2 messages and what a vla policy sees and says (images, state vector, action vector).

Inputs are validated, never trusted: a wrong image size or encoding, a short data buffer, joints missing
from a JointState or non-finite numbers raise `InputError` naming the topic and what was expected; the
node then holds and reports instead of acting on it.

State: each field of `Embodiment.state_fields` has a ROS source,

    joint_pos [N]   sensor_msgs/JointState position of `joint_names`
    joint_vel [N]   sensor_msgs/JointState velocity of `joint_names`
    gripper [1]     sum of the JointState positions of `gripper_joints` (the Panda's finger opening)
    ee_pos [3]      geometry_msgs/PoseStamped pose.position
    ee_quat [4]     geometry_msgs/PoseStamped pose.orientation, as (w, x, y, z)

or the whole vector comes from one std_msgs/Float32MultiArray (`state_topic`) for other layouts.

Commands: delta action spaces (e.g. a Panda's `ee_delta`) go out as
std_msgs/Float32MultiArray: `data` is the action vector in the space's group order (for ee_delta:
dx dy dz [m], rx ry rz [rad, rotation vector], gripper [0 open .. 1 closed]) and `layout.dim[0]` is
{label: <space name>, size: A, stride: A}: one message is one control step's displacement, applied
once. Absolute joint spaces (`joint_pos`) go out as trajectory_msgs/JointTrajectory with one point
reached after one control period: the arm joints under `joint_names`, then every other group (the
gripper command) under its group name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla.spaces import ActionSpace, Embodiment

ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
STATE_SOURCES = ("joint_pos", "joint_vel", "gripper", "ee_pos", "ee_quat")
# diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR, STALE = 0, 1, 2, 3


class InputError(ValueError):
    """An input message the node cannot act on (it holds and reports instead)."""


def header(stamp_ns: int, frame_id: str = "") -> dict[str, Any]:
    """std_msgs/Header fields."""
    return {
        "stamp": {"sec": int(stamp_ns // 1_000_000_000), "nanosec": int(stamp_ns % 1_000_000_000)},
        "frame_id": frame_id,
    }


def stamp_of(msg: Any) -> int:
    """The header stamp of a message in ns (0 when it has none)."""
    h = getattr(msg, "header", None)
    if h is None:
        return 0
    return int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec)


# ------------------------------------------------------------------------------------------ images
def image_to_array(msg: Any, *, size: tuple[int, int], topic: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB from a sensor_msgs/Image (rgb8, bgr8, rgba8 or bgra8), checked against `size`.

    Raises:
        InputError: wrong encoding, size, step or data length.
    """
    enc = str(msg.encoding).lower()
    if enc not in ENCODINGS:
        raise InputError(
            f"{topic}: image encoding '{msg.encoding}' is not supported; expected one of {ENCODINGS}"
        )
    h, w = int(msg.height), int(msg.width)
    if (h, w) != tuple(size):
        raise InputError(
            f"{topic}: image is {h}x{w} (height x width), the policy expects {size[0]}x{size[1]}; "
            "resize at the camera driver (e.g. image_proc/resize)"
        )
    channels = 4 if enc.endswith("a8") else 3
    step = int(msg.step)
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if step < w * channels or data.size != step * h:
        raise InputError(
            f"{topic}: image data has {data.size} bytes with step {step}; expected step >= {w * channels} "
            f"and {h} rows of step bytes"
        )
    rows = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    rgb = rows[..., :3] if enc.startswith("rgb") else rows[..., 2::-1]
    return np.ascontiguousarray(rgb)


def array_to_image(image: np.ndarray, *, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """sensor_msgs/Image fields (rgb8) of a uint8 [H, W, 3] image."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
    h, w, _ = img.shape
    return {
        "header": header(stamp_ns, frame_id),
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": img.reshape(-1),
    }


# ------------------------------------------------------------------------------------------- state
@dataclass(frozen=True)
class StateLayout:
    """How the ROS inputs make the embodiment's flat state vector (and back, for the simulator).

    Attributes:
        embodiment: the robot.
        joint_names: the arm joints in the order of the state's joint fields.
        gripper_joints: joints whose positions sum to the "gripper" field.
        from_state_topic: take the whole vector from a Float32MultiArray instead.
    """

    embodiment: Embodiment
    joint_names: tuple[str, ...]
    gripper_joints: tuple[str, ...] = ("finger_joint1", "finger_joint2")
    from_state_topic: bool = False

    def __post_init__(self) -> None:
        if self.from_state_topic:
            return
        n = len(self.embodiment.joint_low)
        for f in self.embodiment.state_fields:
            if f.name not in STATE_SOURCES:
                raise ValueError(
                    f"state field '{f.name}' of embodiment '{self.embodiment.name}' has no ROS source "
                    f"(known: {STATE_SOURCES}); publish the whole state vector as std_msgs/Float32MultiArray "
                    "and pass --state-topic"
                )
            want = {"joint_pos": n, "joint_vel": n, "gripper": 1, "ee_pos": 3, "ee_quat": 4}[f.name]
            if f.size != want:
                raise ValueError(
                    f"state field '{f.name}' has size {f.size}, expected {want} for its ROS source"
                )
        if self.needs_joints and len(self.joint_names) != n:
            raise ValueError(
                f"need {n} joint names for embodiment '{self.embodiment.name}', got {self.joint_names}"
            )
        if self.has("gripper") and not self.gripper_joints:
            raise ValueError(
                "the state has a 'gripper' field: name the joints that make it (--gripper-joints)"
            )

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.embodiment.state_fields)

    @property
    def needs_joints(self) -> bool:
        return not self.from_state_topic and any(self.has(n) for n in ("joint_pos", "joint_vel", "gripper"))

    @property
    def needs_pose(self) -> bool:
        return not self.from_state_topic and (self.has("ee_pos") or self.has("ee_quat"))

    def assemble(self, *, joints: Any = None, pose: Any = None, state: Any = None) -> np.ndarray:
        """float32 [S] from a JointState and a PoseStamped (or a Float32MultiArray with everything).

        Raises:
            InputError: a needed joint is missing, a value is not finite, the vector has the wrong size.
        """
        emb = self.embodiment
        if self.from_state_topic:
            vec = np.asarray(state.data, dtype=np.float64).reshape(-1)
            if vec.shape[0] != emb.state_dim:
                raise InputError(f"state topic: got {vec.shape[0]} values, expected {emb.state_dim}")
            return _finite(vec, "state topic").astype(np.float32)
        out = np.empty(emb.state_dim, dtype=np.float64)
        index: dict[str, int] = {}
        if self.needs_joints:
            index = {str(nm): i for i, nm in enumerate(joints.name)}
        for f in emb.state_fields:
            sl = emb.state_slice(f.name)
            if f.name == "joint_pos":
                out[sl] = _pick(joints.position, index, self.joint_names, "position")
            elif f.name == "joint_vel":
                out[sl] = _pick(joints.velocity, index, self.joint_names, "velocity")
            elif f.name == "gripper":
                out[sl] = _pick(joints.position, index, self.gripper_joints, "position").sum()
            elif f.name == "ee_pos":
                p = pose.pose.position
                out[sl] = (p.x, p.y, p.z)
            elif f.name == "ee_quat":
                q = pose.pose.orientation
                out[sl] = (q.w, q.x, q.y, q.z)
        return _finite(out, "state").astype(np.float32)

    def joint_state_fields(self, state: np.ndarray, *, stamp_ns: int) -> dict[str, Any]:
        """sensor_msgs/JointState fields of a state vector (the simulator's side; gripper split evenly)."""
        emb = self.embodiment
        s = np.asarray(state, dtype=np.float64)
        pos = (
            list(s[emb.state_slice("joint_pos")]) if self.has("joint_pos") else [0.0] * len(self.joint_names)
        )
        vel = (
            list(s[emb.state_slice("joint_vel")]) if self.has("joint_vel") else [0.0] * len(self.joint_names)
        )
        k = len(self.gripper_joints)
        grip = float(s[emb.state_slice("gripper")][0]) / k if self.has("gripper") and k else 0.0
        return {
            "header": header(stamp_ns),
            "name": [*self.joint_names, *self.gripper_joints],
            "position": np.asarray(pos + [grip] * k, dtype=np.float64),
            "velocity": np.asarray(vel + [0.0] * k, dtype=np.float64),
            "effort": np.zeros(0, dtype=np.float64),
        }

    def pose_fields(self, state: np.ndarray, *, stamp_ns: int, frame_id: str) -> dict[str, Any]:
        """geometry_msgs/PoseStamped fields of the state's ee_pos / ee_quat."""
        emb = self.embodiment
        s = np.asarray(state, dtype=np.float64)
        x, y, z = s[emb.state_slice("ee_pos")] if self.has("ee_pos") else (0.0, 0.0, 0.0)
        w, qx, qy, qz = s[emb.state_slice("ee_quat")] if self.has("ee_quat") else (1.0, 0.0, 0.0, 0.0)
        return {
            "header": header(stamp_ns, frame_id),
            "pose": {
                "position": {"x": float(x), "y": float(y), "z": float(z)},
                "orientation": {"x": float(qx), "y": float(qy), "z": float(qz), "w": float(w)},
            },
        }


def _pick(values: Any, index: dict[str, int], wanted: tuple[str, ...], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    missing = [n for n in wanted if n not in index]
    if missing:
        raise InputError(f"joint_states lacks joints {missing} (has {sorted(index)})")
    idx = [index[n] for n in wanted]
    if arr.shape[0] <= max(idx):
        raise InputError(
            f"joint_states has {arr.shape[0]} {what} values for {len(index)} names; need {what} of {list(wanted)}"
        )
    return arr[idx]


def _finite(x: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise InputError(f"{where}: non-finite values at indices {np.flatnonzero(~np.isfinite(x)).tolist()}")
    return x


# ---------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class CommandCodec:
    """How one action space's commands are published (see the module docstring).

    Attributes:
        space: the action space the policy outputs.
        joint_names: names of the arm joints (JointTrajectory commands).
        control_hz: the control rate (a trajectory point is reached after one period).
    """

    space: ActionSpace
    joint_names: tuple[str, ...]
    control_hz: float

    @classmethod
    def for_embodiment(
        cls,
        emb: Embodiment,
        *,
        space: str | None,
        joint_names: tuple[str, ...],
        control_hz: float | None = None,
    ) -> CommandCodec:
        return cls(emb.action_space(space), joint_names, float(control_hz or emb.control_hz))

    @property
    def kind(self) -> str:
        """ "trajectory" for absolute joint targets, "multiarray" for everything else (deltas)."""
        if "delta" in self.space.name.lower():
            return "multiarray"
        n = len(self.joint_names)
        joints = [g for g in self.space.groups if "joint" in g.name.lower()]
        return "trajectory" if len(joints) == 1 and joints[0].size == n else "multiarray"

    @property
    def msgtype(self) -> str:
        return (
            "trajectory_msgs/msg/JointTrajectory"
            if self.kind == "trajectory"
            else "std_msgs/msg/Float32MultiArray"
        )

    @property
    def topic(self) -> str:
        """The default (relative) topic."""
        return "command/joint_trajectory" if self.kind == "trajectory" else f"command/{self.space.name}"

    def names(self) -> list[str]:
        """Names of the action's dimensions, in order (JointTrajectory joint names)."""
        out: list[str] = []
        for g in self.space.groups:
            if "joint" in g.name.lower() and g.size == len(self.joint_names):
                out.extend(self.joint_names)
            else:
                out.extend([g.name] if g.size == 1 else [f"{g.name}_{i}" for i in range(g.size)])
        return out

    def encode(self, action: np.ndarray, *, stamp_ns: int) -> dict[str, Any]:
        """The command message fields for action float [A]."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape[0] != self.space.dim:
            raise ValueError(
                f"action has {a.shape[0]} values, space '{self.space.name}' has {self.space.dim}"
            )
        if self.kind == "multiarray":
            dim = {"label": self.space.name, "size": self.space.dim, "stride": self.space.dim}
            return {"layout": {"dim": [dim], "data_offset": 0}, "data": a}
        period_ns = round(1e9 / self.control_hz)
        return {
            "header": header(stamp_ns),
            "joint_names": self.names(),
            "points": [
                {
                    "positions": a.astype(np.float64),
                    "time_from_start": {
                        "sec": period_ns // 1_000_000_000,
                        "nanosec": period_ns % 1_000_000_000,
                    },
                }
            ],
        }

    def decode(self, msg: Any) -> np.ndarray:
        """The action float32 [A] of a command message (the simulator's side).

        Raises:
            InputError: wrong size or layout label, missing joint names, non-finite values.
        """
        if self.kind == "multiarray":
            dims = list(msg.layout.dim)
            if dims and str(dims[0].label) not in ("", self.space.name):
                raise InputError(f"command layout is '{dims[0].label}', expected '{self.space.name}'")
            a = np.asarray(msg.data, dtype=np.float32).reshape(-1)
            if a.shape[0] != self.space.dim:
                raise InputError(
                    f"command has {a.shape[0]} values, expected {self.space.dim} ({self.space.name})"
                )
        else:
            if not msg.points:
                raise InputError("joint trajectory command has no points")
            got = {str(n): i for i, n in enumerate(msg.joint_names)}
            want = self.names()
            missing = [n for n in want if n not in got]
            pos = np.asarray(msg.points[0].positions, dtype=np.float64)
            if missing or pos.shape[0] != len(got):
                raise InputError(
                    f"joint trajectory command lacks {missing} or has {pos.shape[0]} positions for {len(got)} names"
                )
            a = pos[[got[n] for n in want]].astype(np.float32)
        return _finite(a.astype(np.float64), "command").astype(np.float32)


# ------------------------------------------------------------------------------------------ status
def status_fields(
    *, stamp_ns: int, name: str, hardware_id: str, level: int, message: str, values: dict[str, Any]
) -> dict[str, Any]:
    """diagnostic_msgs/DiagnosticArray fields with one DiagnosticStatus."""
    return {
        "header": header(stamp_ns),
        "status": [
            {
                "level": level,
                "name": name,
                "message": message,
                "hardware_id": hardware_id,
                "values": [{"key": k, "value": str(v)} for k, v in values.items()],
            }
        ],
    }
