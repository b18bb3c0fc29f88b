"""The G1 at a table as an `Embodiment`: one action group per head (issue 22), state layout, limits.

Action vector (A = 22), in order: left_arm (6), right_arm (6), hands (2), waist (3), base (3),
balance (2). Arm and balance quantities are in the heading frame (`wbc` module doc): x forward
between the feet, y to the robot's left, z up.

The state guards (`STATE_GUARDS`) are the G1's balance and fall checks for the generic safety filter
(`vla.runtime.safety`): it reads them from the state fields below, never from the simulator.
"""

from __future__ import annotations

import math

import mujoco

from vla.robots.g1 import balance, layout
from vla.robots.g1.wbc import WBCConfig
from vla.spaces import ActionGroup, ActionSpace, Effector, Embodiment, StateField, StateGuard

NAME = "unitree_g1_tabletop"
# One action per 0.1 s, like the Panda suite: policies and datasets share one rate, and 10 Hz leaves
# 20 physics steps of 5 ms per action for the servos to follow the plan.
CONTROL_HZ = 10.0
CAMERAS = ("head", "left_wrist", "right_wrist")
# Palm deltas per step: 4 cm and 0.2 rad per 0.1 s (0.4 m/s, 2 rad/s), a little under the Panda's
# (5 cm, 0.25 rad) because the humanoid's arm swings move its own CoM. Uniformly random actions within
# these bounds are not safe: one draw kept it standing (tests/robots/test_robots_g1.py), three others
# tipped it over within 3 s (measured, issue 22 follow-up).
MAX_DPOS = 0.04
MAX_DROT = 0.2
# Waist angle targets, rad: (yaw, roll, pitch). A choice narrower than the joints' ranges (±2.62,
# ±0.52, ±0.52), not a balance limit (at every corner of this box the margin stayed 0.08 m and the
# palms held their targets, measured): yaw ±0.6 keeps the desk in the head camera's view (fovy 75°),
# pitch -0.2..0.4 keeps the chest from leaning over the desk edge, roll ±0.25 the torso upright.
WAIST_LOW = (-0.6, -0.25, -0.2)
WAIST_HIGH = (0.6, 0.25, 0.4)
# Planar base velocity (vx m/s, vy m/s, yaw rate rad/s). Phase 1 does not walk: the robot refuses a
# nonzero base command (docs/robots.md#walking). The group is declared now so datasets keep one
# layout; the bounds are a slow walk's speeds, to be set from measurement once a walking controller exists.
BASE_LOW = (-0.2, -0.1, -0.4)
BASE_HIGH = (0.2, 0.1, 0.4)
# CoM offset from the support centre, m (x, y). The stance is 0.17 m long and 0.30 m wide; the
# controller further clips the target to stay `WBCConfig.com_margin` inside the polygon.
COM_LOW = (-0.05, -0.10)
COM_HIGH = (0.05, 0.10)
# Palm target box, m, heading frame: in front of the body, from a 0.74 m desk's surface to just above
# the shoulders (1.08 m). Its far corners lie beyond the arms' ~0.5 m reach; there the controller's lead limit
# (`WBCConfig.max_hand_lead`) keeps the target from running away from the hand.
WORKSPACE_LOW = (0.10, -0.50, 0.74)
WORKSPACE_HIGH = (0.55, 0.50, 1.15)
CLOSURE_UNITS = "fraction (0 open, 1 closed)"

WHOLE_BODY = ActionSpace(
    name="whole_body",
    groups=(
        # Palm deltas and the base velocity command a change per step: held at zero, not repeated.
        ActionGroup(
            "left_arm",
            6,
            (-MAX_DPOS,) * 3 + (-MAX_DROT,) * 3,
            (MAX_DPOS,) * 3 + (MAX_DROT,) * 3,
            "m, rad",
            delta=True,
        ),
        ActionGroup(
            "right_arm",
            6,
            (-MAX_DPOS,) * 3 + (-MAX_DROT,) * 3,
            (MAX_DPOS,) * 3 + (MAX_DROT,) * 3,
            "m, rad",
            delta=True,
        ),
        ActionGroup("hands", 2, (0.0, 0.0), (1.0, 1.0), CLOSURE_UNITS),
        ActionGroup("waist", 3, WAIST_LOW, WAIST_HIGH, "rad (yaw, roll, pitch targets)"),
        ActionGroup("base", 3, BASE_LOW, BASE_HIGH, "m/s, m/s, rad/s (vx, vy, yaw rate)", delta=True),
        ActionGroup("balance", 2, COM_LOW, COM_HIGH, "m (CoM offset x, y)"),
    ),
    description=(
        "per arm: palm position delta (m) and rotation-vector delta (rad), heading frame; hand closure "
        "per hand; waist joint targets; base velocity; CoM offset from the support centre"
    ),
)

ACTUATED_JOINTS = layout.BODY_JOINTS + layout.HAND_JOINTS
STATE_FIELDS = (
    StateField(
        "joint_pos", len(ACTUATED_JOINTS), "rad (legs, waist, left arm, right arm, left hand, right hand)"
    ),
    StateField("joint_vel", len(ACTUATED_JOINTS), "rad/s (same order)"),
    StateField("pelvis_height", 1, "m above the floor"),
    StateField("pelvis_quat", 4, "unit quaternion (w, x, y, z), w >= 0, world frame"),
    StateField("left_hand_pos", 3, "m (palm, heading frame)"),
    StateField("right_hand_pos", 3, "m (palm, heading frame)"),
    StateField("com_offset", 2, "m (CoM ground point minus support centre, heading frame)"),
    StateField("balance_margin", 1, "m (CoM to support polygon edge, > 0 inside; -1 with no foot down)"),
)

# The two palms and their closures, in the order of the `hands` group (sub-goal targets per hand).
EFFECTORS = (Effector("left_hand_pos", "hands", 0), Effector("right_hand_pos", "hands", 1))

# Balance margin (m, CoM ground point to the support polygon's edge) under which the safety filter
# holds the arms and the base. The controller keeps its CoM target 3 cm inside (`WBCConfig.com_margin`)
# and scripted episodes came down to 2.9 cm, a 20 N push to 6 cm; the 400 N push that tips the robot
# took it from 8 cm to -4 cm in one step, three steps before the fall detector fired (measured,
# tests/robots/test_robots_g1_safety.py). At 2 cm the CoM is past where the controller holds it.
# Hands, waist and the CoM offset stay free: they do not swing the body's mass out, and the balance
# group is how a policy moves the CoM back.
BALANCE_STOP_MARGIN = 0.02
STATE_GUARDS = (
    StateGuard(
        name="balance_margin",
        field="balance_margin",
        low=BALANCE_STOP_MARGIN,
        groups=("left_arm", "right_arm", "base"),
        why="CoM within 2 cm of the support polygon's edge (vla.robots.g1.embodiment)",
    ),
    # The fall detector of `balance.BalanceState.fallen`, read from the state: pelvis too low, or
    # pelvis z axis tilted past FALL_TILT. For a unit quaternion (w, x, y, z) the tilt t of the z axis
    # satisfies x^2 + y^2 = sin^2(t / 2), so the tilt check is a bound on the norm of (x, y).
    StateGuard(
        name="fall_height",
        field="pelvis_height",
        reason="fall",
        low=balance.FALL_PELVIS_HEIGHT,
        latch=True,
        why="pelvis below 0.5 m (vla.robots.g1.balance.FALL_PELVIS_HEIGHT)",
    ),
    StateGuard(
        name="fall_tilt",
        field="pelvis_quat",
        reason="fall",
        indices=(1, 2),
        high=math.sin(balance.FALL_TILT / 2),
        latch=True,
        why="pelvis tilted past 0.6 rad (vla.robots.g1.balance.FALL_TILT)",
    ),
)


def make_embodiment(
    model: mujoco.MjModel, image_size: tuple[int, int] = (96, 96), wbc_cfg: WBCConfig | None = None
) -> Embodiment:
    """Returns the G1's embodiment; joint limits are read from `model` (the compiled G1 scene).

    Args:
        model: from `vla.robots.g1.model.build_model`.
        image_size: (height, width) of the camera images.
        wbc_cfg: the controller settings whose joint speed limits are declared (defaults if None).
    """
    ids = [model.joint(n).id for n in ACTUATED_JOINTS]
    speeds = wbc_cfg or WBCConfig()
    h, w = image_size
    return Embodiment(
        name=NAME,
        action_spaces=(WHOLE_BODY,),
        state_fields=STATE_FIELDS,
        cameras=CAMERAS,
        image_size=(int(h), int(w)),
        control_hz=CONTROL_HZ,
        joint_low=tuple(float(model.jnt_range[j, 0]) for j in ids),
        joint_high=tuple(float(model.jnt_range[j, 1]) for j in ids),
        # The speed limits the controller's plan respects (a controller choice, see WBCConfig).
        max_joint_velocity=tuple(
            speeds.finger_speed if n in layout.HAND_JOINTS else speeds.body_speed for n in ACTUATED_JOINTS
        ),
        workspace_low=WORKSPACE_LOW,
        workspace_high=WORKSPACE_HIGH,
        gripper_range=(0.0, 1.0),
        # `G1Robot.step` clips every action to the bounds and the controller clips palm targets to
        # the workspace box, as a robot driver would.
        driver_clips=("action_bounds", "workspace"),
        state_guards=STATE_GUARDS,
        effectors=EFFECTORS,
    )
