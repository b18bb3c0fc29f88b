"""The Franka Emika Panda as an MJCF fragment: real kinematics and limits, primitive geoms.

Kinematic offsets, joint limits, masses and actuator gains follow the Franka/MuJoCo-Menagerie
`panda.xml` (link1 z 0.333, link3 -0.316 along y after the -90° x-rotation, link4/5 ±0.0825, link5
0.384, link7 0.088, flange 0.107, hand rotated -45° about z, fingers 0-0.04 m each). The visual and
collision geoms are capsules and boxes instead of meshes: mesh visuals render much slower on a CPU
(docs/platform.md#rendering), and Menagerie itself downloads at run time and fails offline.

Differences from Menagerie, on purpose:
- Each finger has its own position actuator instead of a tendon plus an equality constraint, so the
  model holds no equality constraints at all (a test checks that grasps are purely contact/friction).
- Arm bodies carry `gravcomp="1"` so the position actuators need no integral term and the arm does not
  sag (by centimetres without it, docs/measured.md#the-machine-threads-rendering-ik).
- Only the hand and fingers collide; the arm links are visual only. Their crude capsules would
  otherwise touch each other at the joints, and the tasks never need arm-object contact.
"""

from __future__ import annotations

import numpy as np

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
JOINT_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
JOINT_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
# Franka's datasheet joint speed limits (rad/s).
MAX_JOINT_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
# Gripper pointing straight down, above the middle of the table.
HOME_QPOS = np.array([0.0, 0.1, 0.0, -2.2, 0.0, 2.3, np.pi / 4])
FINGER_MAX = 0.04  # m, opening of one finger; the gap between the pads is twice this.
TCP_OFFSET = 0.1  # m, from the hand frame along its z axis to the middle of the finger pads.

# Menagerie's stiffness kp per joint and the real robot's torque limits (Nm). Damping differs:
# Menagerie's kv = kp/10 overdamps the joints to a ~0.1 s time constant, so a 10 Hz delta command was
# only 58% executed within its step (measured); kv = kp/30 executes 99% with < 0.2 mm overshoot.
_KP = (4500, 4500, 3500, 3500, 2000, 2000, 2000)
_KV_DIVISOR = 30
_FORCE = (87, 87, 87, 87, 12, 12, 12)

_ARM_BODIES = """
<body name="link0" childclass="panda">
  <inertial pos="-0.041 0 0.05" mass="0.63" diaginertia="0.0032 0.0032 0.0032"/>
  <geom class="visual" type="cylinder" size="0.07 0.07" pos="0 0 0.07" rgba="0.92 0.92 0.92 1"/>
  <body name="link1" pos="0 0 0.333" gravcomp="1">
    <inertial pos="0.0039 0.0021 -0.0476" mass="4.97" diaginertia="0.707 0.703 0.0091"/>
    <joint name="joint1" range="-2.8973 2.8973"/>
    <geom class="visual" type="capsule" fromto="0 0 -0.19 0 0 -0.02" size="0.06"/>
    <body name="link2" quat="1 -1 0 0" gravcomp="1">
      <inertial pos="-0.0031 -0.0287 0.0035" mass="0.647" diaginertia="0.0080 0.0028 0.0080"/>
      <joint name="joint2" range="-1.7628 1.7628"/>
      <geom class="visual" type="capsule" fromto="0 0 -0.06 0 0 0.06" size="0.06"/>
      <geom class="visual" type="capsule" fromto="0 0 0 0 -0.15 0" size="0.06"/>
      <body name="link3" pos="0 -0.316 0" quat="1 1 0 0" gravcomp="1">
        <inertial pos="0.0275 0.0393 -0.0665" mass="3.23" diaginertia="0.037 0.036 0.011"/>
        <joint name="joint3" range="-2.8973 2.8973"/>
        <geom class="visual" type="capsule" fromto="0 0 -0.17 0 0 -0.02" size="0.055"/>
        <geom class="visual" type="capsule" fromto="0 0 0 0.0825 0 0" size="0.055" rgba="0.2 0.2 0.2 1"/>
        <body name="link4" pos="0.0825 0 0" quat="1 1 0 0" gravcomp="1">
          <inertial pos="-0.0532 0.1044 0.0275" mass="3.59" diaginertia="0.026 0.019 0.028"/>
          <joint name="joint4" range="-3.0718 -0.0698"/>
          <geom class="visual" type="capsule" fromto="0 0 -0.05 0 0 0.05" size="0.055"/>
          <geom class="visual" type="capsule" fromto="0 0 0 -0.0825 0.09 0" size="0.055"/>
          <body name="link5" pos="-0.0825 0.384 0" quat="1 -1 0 0" gravcomp="1">
            <inertial pos="-0.012 0.041 -0.038" mass="1.23" diaginertia="0.035 0.029 0.0086"/>
            <joint name="joint5" range="-2.8973 2.8973"/>
            <geom class="visual" type="capsule" fromto="0 0 -0.27 0 0 -0.03" size="0.05"/>
            <body name="link6" quat="1 1 0 0" gravcomp="1">
              <inertial pos="0.060 -0.014 -0.0105" mass="1.67" diaginertia="0.0020 0.0040 0.0055"/>
              <joint name="joint6" range="-0.0175 3.7525"/>
              <geom class="visual" type="capsule" fromto="0 0 -0.04 0 0 0.04" size="0.05" rgba="0.2 0.2 0.2 1"/>
              <geom class="visual" type="capsule" fromto="0 0 0 0.088 0 0" size="0.045"/>
              <body name="link7" pos="0.088 0 0" quat="1 1 0 0" gravcomp="1">
                <inertial pos="0.0105 -0.0043 0.0616" mass="0.735" diaginertia="0.0125 0.0100 0.0048"/>
                <joint name="joint7" range="-2.8973 2.8973"/>
                <geom class="visual" type="cylinder" fromto="0 0 -0.02 0 0 0.09" size="0.045" rgba="0.2 0.2 0.2 1"/>
                <body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834" gravcomp="1">
                  <inertial pos="-0.01 0 0.03" mass="0.73" diaginertia="0.001 0.0025 0.0017"/>
                  <geom class="hand" type="box" size="0.025 0.095 0.025" pos="0 0 0.033"/>
                  <geom class="visual" type="cylinder" size="0.04 0.01" pos="0 0 0.005"/>
                  <site name="tcp" pos="0 0 {tcp}" size="0.005" rgba="1 0 0 0" group="4"/>
                  {wrist_camera}
                  <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
                    <inertial pos="0 0 0.02" mass="0.015" diaginertia="2.4e-6 2.4e-6 7.5e-7"/>
                    <joint name="finger_joint1" class="finger"/>
                    <geom class="pad" name="left_pad" type="box" size="0.011 0.007 0.021" pos="0 0.007 0.033"/>
                    <geom class="hand" type="box" size="0.011 0.01 0.008" pos="0 0.015 0.006"/>
                  </body>
                  <body name="right_finger" pos="0 0 0.0584" quat="0 0 0 1" gravcomp="1">
                    <inertial pos="0 0 0.02" mass="0.015" diaginertia="2.4e-6 2.4e-6 7.5e-7"/>
                    <joint name="finger_joint2" class="finger"/>
                    <geom class="pad" name="right_pad" type="box" size="0.011 0.007 0.021" pos="0 0.007 0.033"/>
                    <geom class="hand" type="box" size="0.011 0.01 0.008" pos="0 0.015 0.006"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>
"""

_DEFAULTS = """
<default class="panda">
  <joint armature="0.1" damping="1" axis="0 0 1"/>
  <geom contype="0" conaffinity="0" rgba="0.92 0.92 0.92 1"/>
  <general dyntype="none" biastype="affine"/>
  <default class="visual"><geom group="1"/></default>
  <default class="hand">
    <geom contype="1" conaffinity="1" group="1" rgba="0.92 0.92 0.92 1" friction="1 0.01 0.001"/>
  </default>
  <default class="pad">
    <!-- Box pads with high friction and torsional friction (condim 4) so a two-point pinch
         resists the object spinning about the closing axis. -->
    <geom contype="1" conaffinity="1" group="1" rgba="0.2 0.2 0.2 1" friction="1.5 0.02 0.0005"
          condim="4" solref="0.01 1" solimp="0.95 0.99 0.001"/>
  </default>
  <default class="finger">
    <joint type="slide" axis="0 1 0" range="0 0.04" armature="0.01" damping="10"/>
  </default>
</default>
"""


def _actuators() -> str:
    lines = []
    for name, kp, force in zip(ARM_JOINTS, _KP, _FORCE, strict=True):
        lo, hi = JOINT_LOW[ARM_JOINTS.index(name)], JOINT_HIGH[ARM_JOINTS.index(name)]
        lines.append(
            f'<general class="panda" name="act_{name}" joint="{name}" gainprm="{kp}" '
            f'biasprm="0 -{kp} -{kp // _KV_DIVISOR}" ctrlrange="{lo} {hi}" forcerange="-{force} {force}"/>'
        )
    # Fingers: stiff enough to close in ~50 ms, force-limited so a pinch squeezes with at most 20 N
    # (an object weighs < 1 N; pad friction 1.5 needs only ~0.3 N to hold it).
    for name in FINGER_JOINTS:
        lines.append(
            f'<general class="panda" name="act_{name}" joint="{name}" gainprm="1000" '
            f'biasprm="0 -1000 -30" ctrlrange="0 {FINGER_MAX}" forcerange="-20 20"/>'
        )
    return "\n".join(lines)


def panda_mjcf(*, wrist_camera: str) -> tuple[str, str, str]:
    """Returns the Panda's MJCF pieces (defaults, worldbody bodies, actuators).

    Args:
        wrist_camera: a `<camera .../>` element placed inside the hand body ("" for none).

    Returns:
        (defaults, bodies, actuators) strings, to be placed inside `<default>`, `<worldbody>` and
        `<actuator>` of the scene.
    """
    bodies = _ARM_BODIES.replace("{tcp}", str(TCP_OFFSET)).replace("{wrist_camera}", wrist_camera)
    return _DEFAULTS, bodies, _actuators()
