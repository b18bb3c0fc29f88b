"""Names and postures of the Unitree G1 with Dex3 hands: joint groups, the working posture, hand closure.

The joint names are Menagerie's (`unitree_g1/g1_with_hands.xml`); every actuator drives the joint of
the same name, so a group of joint names is also a group of actuators. Indices are looked up in the
compiled model (`JointIndex`), never assumed from the order here.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

LEG_JOINTS = tuple(
    f"{side}_{j}_joint"
    for side in ("left", "right")
    for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
)
WAIST_JOINTS = ("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint")
_ARM = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw")
LEFT_ARM_JOINTS = tuple(f"left_{j}_joint" for j in _ARM)
RIGHT_ARM_JOINTS = tuple(f"right_{j}_joint" for j in _ARM)
_HAND = ("thumb_0", "thumb_1", "thumb_2", "middle_0", "middle_1", "index_0", "index_1")
LEFT_HAND_JOINTS = tuple(f"left_hand_{j}_joint" for j in _HAND)
RIGHT_HAND_JOINTS = tuple(f"right_hand_{j}_joint" for j in _HAND)
BODY_JOINTS = LEG_JOINTS + WAIST_JOINTS + LEFT_ARM_JOINTS + RIGHT_ARM_JOINTS
HAND_JOINTS = LEFT_HAND_JOINTS + RIGHT_HAND_JOINTS

PELVIS = "pelvis"
TORSO = "torso_link"
# Frames the controller drives. Sites are Menagerie's (`left_foot` sits at the ankle roll origin);
# the hand sites are added by `model.build_spec` at the palm centre, between thumb and fingers.
LEFT_FOOT_SITE, RIGHT_FOOT_SITE = "left_foot", "right_foot"
LEFT_HAND_SITE, RIGHT_HAND_SITE = "left_palm", "right_palm"
LEFT_WRIST_BODY, RIGHT_WRIST_BODY = "left_wrist_yaw_link", "right_wrist_yaw_link"
LEFT_FOOT_BODY, RIGHT_FOOT_BODY = "left_ankle_roll_link", "right_ankle_roll_link"

# The working posture for a table in front. Legs: Menagerie's "stand" with the knees bent 0.3 rad
# (hip and ankle pitch -0.15 each keep the torso upright and the soles flat). Why bend them: a straight
# knee is a kinematic singularity (no joint moves the pelvis vertically), badly conditioned for
# differential IK, and it leaves no room to lower the body. Not required to stand: straight knees
# also stand and track here (docs/robots.md).
# Arms: forearms raised to point forward and slightly down, palms ~5 cm above a desk-height table.
# Shoulder pitch < 0 swings the upper arm forward; elbow and shoulder pitch act about parallel axes,
# so the forearm sits (pitch + elbow) rad below the horizontal. Hands open: all finger joints 0 (the
# keyframe folds each thumb into its palm, thumb_1 = ±1.05, just outside the joint range). Joints not
# listed keep the keyframe's values (0).
READY_POSTURE: dict[str, float] = {
    **dict.fromkeys(HAND_JOINTS, 0.0),
    **{f"{side}_hip_pitch_joint": -0.15 for side in ("left", "right")},
    **{f"{side}_knee_joint": 0.3 for side in ("left", "right")},
    **{f"{side}_ankle_pitch_joint": -0.15 for side in ("left", "right")},
    "left_shoulder_pitch_joint": -0.35,
    "left_shoulder_roll_joint": 0.25,
    "left_elbow_joint": 0.55,
    "right_shoulder_pitch_joint": -0.35,
    "right_shoulder_roll_joint": -0.25,
    "right_elbow_joint": 0.55,
}

# Finger joint values of a fully closed hand (closure 1); closure 0 is every finger joint at 0 (open,
# fingers straight). Index and middle curl toward the thumb side (-y in the left wrist frame, so
# negative angles on the left hand, mirrored on the right); thumb_1/thumb_2 fold toward the fingers.
# Not the joint range ends: those push the fingers through each other; these values bring the
# thumb's and index's distal links to ~3 cm apart, around the palm site.
LEFT_HAND_CLOSED: dict[str, float] = {
    "left_hand_thumb_0_joint": 0.0,
    "left_hand_thumb_1_joint": 0.6,
    "left_hand_thumb_2_joint": 1.0,
    "left_hand_middle_0_joint": -1.0,
    "left_hand_middle_1_joint": -1.0,
    "left_hand_index_0_joint": -1.0,
    "left_hand_index_1_joint": -1.0,
}
RIGHT_HAND_CLOSED: dict[str, float] = {k.replace("left_", "right_"): -v for k, v in LEFT_HAND_CLOSED.items()}


@dataclass(frozen=True)
class JointIndex:
    """Where a tuple of named hinge joints lives in a compiled model.

    Attributes:
        names: joint names, in order.
        qpos: int [n] indices into `data.qpos`.
        dof: int [n] indices into `data.qvel` / `qfrc_*`.
        actuator: int [n] indices into `data.ctrl` of the actuator that drives each joint.
        low, high: float [n] joint range (rad).
    """

    names: tuple[str, ...]
    qpos: np.ndarray
    dof: np.ndarray
    actuator: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, model: mujoco.MjModel, names: tuple[str, ...]) -> JointIndex:
        """Looks `names` up in `model`; raises ValueError naming a joint without an actuator."""
        act_of_joint = {
            int(model.actuator_trnid[a, 0]): a
            for a in range(model.nu)
            if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
        }
        ids = [model.joint(n).id for n in names]
        missing = [n for n, j in zip(names, ids, strict=True) if j not in act_of_joint]
        if missing:
            raise ValueError(f"G1 joints without an actuator: {missing}")
        return cls(
            names=names,
            qpos=np.array([model.jnt_qposadr[j] for j in ids], dtype=np.int64),
            dof=np.array([model.jnt_dofadr[j] for j in ids], dtype=np.int64),
            actuator=np.array([act_of_joint[j] for j in ids], dtype=np.int64),
            low=np.array([model.jnt_range[j, 0] for j in ids]),
            high=np.array([model.jnt_range[j, 1] for j in ids]),
        )


def posture_qpos(model: mujoco.MjModel, key_qpos: np.ndarray, overrides: dict[str, float]) -> np.ndarray:
    """Returns `key_qpos` (float [nq]) with the named joints set to `overrides` (rad).

    The pelvis height is then adjusted so the feet rest on the floor exactly as in `key_qpos` (bent
    knees lower the pelvis).
    """
    feet = [model.body(LEFT_FOOT_BODY).id, model.body(RIGHT_FOOT_BODY).id]
    data = mujoco.MjData(model)

    def lowest_foot(q: np.ndarray) -> float:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        return float(min(data.xpos[f][2] for f in feet))

    q = np.array(key_qpos, dtype=np.float64)
    before = lowest_foot(q)
    for name, value in overrides.items():
        q[model.jnt_qposadr[model.joint(name).id]] = value
    q[2] += before - lowest_foot(q)
    return q
