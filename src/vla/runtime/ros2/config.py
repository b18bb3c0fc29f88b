"""Settings of the vla ROS 2 node and the names of its topics.

Default topics, relative to the node's namespace (remap any with "from:=to"):

    in   cameras/<camera>/image_raw  sensor_msgs/Image        one per camera of the checkpoint's embodiment
    in   joint_states                sensor_msgs/JointState
    in   ee_pose                     geometry_msgs/PoseStamped (when the state has ee_pos / ee_quat)
    in   instruction                 std_msgs/String           a new task; "" stops
    in   estop                       std_msgs/Bool             true latches the e-stop, false releases it
    in   task_success                std_msgs/Bool             true ends the running task as succeeded
    out  command/<space>             std_msgs/Float32MultiArray (delta spaces, e.g. command/ee_delta)
    out  command/joint_trajectory    trajectory_msgs/JointTrajectory (absolute joint spaces)
    out  ~/status                    diagnostic_msgs/DiagnosticArray
    act  ~/execute_instruction       vla_ros2/action/ExecuteInstruction
    in   scene                       std_msgs/String           with a planner: a JSON scene description
    act  ~/execute_plan              vla_ros2/action/ExecutePlan (with a planner: long-horizon requests)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vla.runtime.ros2 import names

TRIGGERS = ("timer", "frames")


@dataclass(frozen=True)
class NodeConfig:
    """How the node runs.

    Attributes:
        node_name: the ROS node name.
        namespace: the ROS namespace ("/" for none).
        remaps: "from:=to" topic remaps.
        rate_hz: control rate; None: the embodiment's control_hz.
        trigger: "timer" (act on the control-rate tick, with the newest inputs) or "frames" (act as soon as
            every input has a new message, at most once per message; the rate is then the sensors').
        stale_ms: an input without a new message for this long makes the node hold and report "stale".
        max_steps: step budget of a goal that asks for 0 (instructions from the topic run unbounded).
        joint_names: arm joint names in the state's order (empty: joint1..jointN).
        gripper_joints: joints whose positions sum to the state's "gripper" field.
        state_topic: non-empty: read the whole state vector from this std_msgs/Float32MultiArray topic.
        action_space: the embodiment's action space the policy outputs (None: its default).
        hold_command: while holding, keep publishing the hold command (zero deltas / last joint targets)
            instead of publishing nothing (for robots that need a command stream).
        controller: "chunk" or "ensemble" (`vla.runtime.make_safe_controller`).
        execute_steps: actions run per chunk (0: the policy's own `steps_per_chunk`).
    """

    node_name: str = "vla_policy"
    namespace: str = "/"
    remaps: tuple[str, ...] = ()
    rate_hz: float | None = None
    trigger: str = "timer"
    stale_ms: float = 500.0
    max_steps: int = 1000
    joint_names: tuple[str, ...] = ()
    gripper_joints: tuple[str, ...] = ("finger_joint1", "finger_joint2")
    state_topic: str = ""
    action_space: str | None = None
    hold_command: bool = False
    controller: str = "chunk"
    execute_steps: int = 0
    _remap_table: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names.resolve("x", namespace=self.namespace, node=self.node_name)  # validates both
        object.__setattr__(self, "_remap_table", names.parse_remaps(self.remaps))
        if self.rate_hz is not None and not 0.1 <= self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in [0.1, 1000], got {self.rate_hz}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}, got '{self.trigger}'")
        if not 1 <= self.stale_ms <= 600_000:
            raise ValueError(f"stale_ms must be in [1, 600000], got {self.stale_ms}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.execute_steps < 0:
            raise ValueError(f"execute_steps must be >= 0, got {self.execute_steps}")
        if self.controller not in ("chunk", "ensemble"):
            raise ValueError(f"controller must be 'chunk' or 'ensemble', got '{self.controller}'")

    def topic(self, name: str) -> str:
        """The absolute, remapped name of one of the node's topics (or its action)."""
        return names.apply_remaps(name, self._remap_table, namespace=self.namespace, node=self.node_name)

    def joints_for(self, n: int) -> tuple[str, ...]:
        """The arm joint names for an embodiment with `n` joints."""
        if self.joint_names:
            if len(self.joint_names) != n:
                raise ValueError(
                    f"--joint-names lists {len(self.joint_names)} joints, the embodiment has {n}"
                )
            return self.joint_names
        return tuple(f"joint{i + 1}" for i in range(n))


def camera_topic(camera: str) -> str:
    return f"cameras/{camera}/image_raw"
