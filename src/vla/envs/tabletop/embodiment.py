"""The tabletop Panda as an `Embodiment`: action modes, state layout, cameras and limits."""

from __future__ import annotations

from vla.envs.tabletop.panda import JOINT_HIGH, JOINT_LOW, MAX_JOINT_VELOCITY
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

CONTROL_HZ = 10.0
CAMERAS = ("scene", "wrist")
# Per-step limits of the ee_delta mode: 5 cm and 0.25 rad per 0.1 s step (0.5 m/s, 2.5 rad/s) stay
# inside the Panda's joint speed limits everywhere in the workspace.
MAX_DPOS = 0.05
MAX_DROT = 0.25
# TCP box (m, robot base frame): the table region plus approach height; targets are clipped to it.
WORKSPACE_LOW = (0.25, -0.42, 0.008)
WORKSPACE_HIGH = (0.80, 0.42, 0.55)
GRIPPER_UNITS = "fraction (0 open, 1 closed)"

EE_DELTA = ActionSpace(
    name="ee_delta",
    groups=(
        ActionGroup("arm_pos", 3, (-MAX_DPOS,) * 3, (MAX_DPOS,) * 3, "m"),
        ActionGroup("arm_rot", 3, (-MAX_DROT,) * 3, (MAX_DROT,) * 3, "rad"),
        ActionGroup("gripper", 1, (0.0,), (1.0,), GRIPPER_UNITS),
    ),
    description=(
        "TCP position delta (m, world frame), rotation vector delta (rad, world frame, applied to the "
        "current TCP orientation), gripper command"
    ),
)
JOINT_POS = ActionSpace(
    name="joint_pos",
    groups=(
        ActionGroup("joints", 7, JOINT_LOW, JOINT_HIGH, "rad"),
        ActionGroup("gripper", 1, (0.0,), (1.0,), GRIPPER_UNITS),
    ),
    description="absolute arm joint position targets (rad) and gripper command",
)
STATE_FIELDS = (
    StateField("joint_pos", 7, "rad"),
    StateField("joint_vel", 7, "rad/s"),
    StateField("gripper", 1, "m (finger opening, 0 closed to 0.08 open)"),
    StateField("ee_pos", 3, "m (robot base frame)"),
    StateField("ee_quat", 4, "unit quaternion (w, x, y, z), w >= 0"),
)


def make_embodiment(image_size: tuple[int, int] = (96, 96)) -> Embodiment:
    """Returns the tabletop Panda's embodiment for camera images of `image_size` (height, width)."""
    h, w = image_size
    return Embodiment(
        name="panda_tabletop",
        action_spaces=(EE_DELTA, JOINT_POS),
        state_fields=STATE_FIELDS,
        cameras=CAMERAS,
        image_size=(int(h), int(w)),
        control_hz=CONTROL_HZ,
        joint_low=JOINT_LOW,
        joint_high=JOINT_HIGH,
        max_joint_velocity=MAX_JOINT_VELOCITY,
        workspace_low=WORKSPACE_LOW,
        workspace_high=WORKSPACE_HIGH,
        gripper_range=(0.0, 1.0),
        # The env clips every action to its space's bounds and an ee_delta target to the workspace box
        # (`TabletopEnv._validate_action`, `_ik_targets`), as a robot driver would.
        driver_clips=("action_bounds", "workspace"),
    )
