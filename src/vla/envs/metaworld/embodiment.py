"""Meta-World's Sawyer as an `Embodiment`: the published protocol's 4-D action and 4-D state.

Actions stay in Meta-World's own normalized units (what its scripted policies, LeRobot's
`metaworld_mt50` dataset and the published VLAs use): a hand displacement in [-1, 1] per axis that
Meta-World scales by 1/100 (1 = 1 cm per control step) and a gripper effort in [-1, 1]. The group is
called `hand`, not `*pos*`, on purpose: vla's safety filter reads a `*pos*` delta group as metres and
would clip it against the workspace box; here the workspace is the mocap box that Meta-World itself
clamps every target to (`workspace_low/high` below are that box, for the record).
"""

from __future__ import annotations

from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

CAMERA = "corner2"
# Meta-World: frame_skip 5 x 2.5 ms per physics step = 12.5 ms per control step (LeRobot's fps 80).
CONTROL_HZ = 80.0
# SawyerXYZEnv's mocap box (m, world frame), to which Meta-World clips every hand target.
WORKSPACE_LOW = (-0.525, 0.348, -0.0525)
WORKSPACE_HIGH = (0.525, 1.025, 0.7)

EE_DELTA = ActionSpace(
    name="ee_delta",
    groups=(
        ActionGroup("hand", 3, (-1.0,) * 3, (1.0,) * 3, "normalized hand displacement (1 = 1 cm per step)"),
        ActionGroup("gripper", 1, (-1.0,), (1.0,), "effort (-1 open, 1 close)"),
    ),
    description="Meta-World's 4-D action: hand displacement (x, y, z; 1 = 1 cm) and gripper effort",
)
STATE_FIELDS = (
    StateField("ee_pos", 3, "m (world frame)"),
    StateField("gripper", 1, "normalized finger opening (0 closed, 1 open)"),
)


def make_embodiment(image_size: tuple[int, int] = (64, 64)) -> Embodiment:
    """Returns the Meta-World Sawyer's embodiment for `corner2` images of `image_size` (height, width)."""
    h, w = image_size
    return Embodiment(
        name="sawyer_metaworld",
        action_spaces=(EE_DELTA,),
        state_fields=STATE_FIELDS,
        cameras=(CAMERA,),
        image_size=(int(h), int(w)),
        control_hz=CONTROL_HZ,
        joint_low=(),
        joint_high=(),
        max_joint_velocity=(),
        workspace_low=WORKSPACE_LOW,
        workspace_high=WORKSPACE_HIGH,
        gripper_range=(-1.0, 1.0),
        # Meta-World clips every action to [-1, 1] itself (SawyerXYZEnv.step), so a bounds clip by the
        # safety filter changes nothing physical.
        driver_clips=("action_bounds",),
    )
