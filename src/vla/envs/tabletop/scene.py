"""The tabletop MuJoCo model: Panda + table + a pool of objects and containers + two cameras.

The model is compiled once per env. Each episode moves the objects it needs onto the table and parks the
rest under the floor, collision-free, weightless (gravcomp) and unrendered. Compiling is cheap (~6 ms
measured), but a new model would also need a new MjData and a new GL context for the renderer
(~0.1-0.4 s), so per-episode recompiles would dominate short episodes. World frame = robot base frame: x away from the robot, y to its left, z up, table top
at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.panda import ARM_JOINTS, FINGER_JOINTS, panda_mjcf

PHYSICS_DT = 0.002  # s; stable for the stiff finger contacts with the implicitfast integrator.
TABLE_CENTER = (0.45, 0.0)
TABLE_HALF = (0.55, 0.6)
SCENE_CAMERA_POS = np.array([0.98, 0.0, 0.52])
SCENE_CAMERA_TARGET = np.array([0.5, 0.0, 0.0])
PARK_Z = -2.0  # m; under the opaque floor
# Parked geoms also move to a geom group the renderer skips: submitting them anyway doubled render time.
HIDDEN_GROUP = 5


def look_at_xyaxes(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Returns MJCF camera `xyaxes` (6 floats) for a camera at `pos` looking at `target`.

    MuJoCo cameras look along their -z axis with +y up in the image.
    """
    forward = target - pos
    forward = forward / np.linalg.norm(forward)
    x = np.cross(forward, up)
    x = x / np.linalg.norm(x)
    y = np.cross(x, forward)
    return np.concatenate([x, y])


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{float(a):.5f}" for a in v)


def build_xml(*, max_image_size: int = 640) -> str:
    """Returns the scene's MJCF text.

    Args:
        max_image_size: largest rendered image side (sets the offscreen buffer).
    """
    # Wrist camera inside the hand frame (z points from the hand to the finger tips), mounted behind
    # the fingers and looking at a point between and below the finger tips.
    wrist_pos = np.array([0.07, 0.0, 0.035])
    wrist_xy = look_at_xyaxes(wrist_pos, np.array([0.0, 0.0, 0.22]), up=np.array([1.0, 0.0, 0.0]))
    wrist = f'<camera name="wrist" pos="{_fmt(wrist_pos)}" xyaxes="{_fmt(wrist_xy)}" fovy="75"/>'
    defaults, robot, actuators = panda_mjcf(wrist_camera=wrist)
    scene_xy = look_at_xyaxes(SCENE_CAMERA_POS, SCENE_CAMERA_TARGET, up=np.array([0.0, 0.0, 1.0]))
    pool = "\n".join(obj.object_mjcf(c, s) for c, s in obj.ALL_PAIRS)
    containers = "\n".join(obj.container_mjcf(spec) for spec in obj.CONTAINERS.values())
    size = max(640, int(max_image_size))
    tx, ty = TABLE_CENTER
    hx, hy = TABLE_HALF
    return f"""
<mujoco model="tabletop_panda">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_DT}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{size}" offheight="{size}"/>
    <!-- No MSAA, no shadow map, coarse tessellation: on llvmpipe the cost is per sample and per
         triangle (docs/platform.md#rendering); 10x4 slices still look round at 96 px. -->
    <quality offsamples="0" shadowsize="0" numslices="10" numstacks="4"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
  </visual>
  <default>
    {defaults}
  </default>
  <worldbody>
    <light name="top" pos="0.4 0 1.6" dir="0 0 -1" diffuse="0.55 0.55 0.55" castshadow="false"/>
    <!-- A plane's third size is its rendering grid spacing: 0.1 m meant 3600 quads per frame and
         cost 28% of the render time on llvmpipe; the floor is plain anyway. -->
    <geom name="floor" type="plane" size="3 3 3" pos="0 0 -0.75" rgba="0.32 0.33 0.36 1"/>
    <geom name="table" type="box" size="{hx} {hy} 0.025" pos="{tx} {ty} -0.025"
          rgba="0.62 0.58 0.52 1" friction="0.5 0.01 0.0001"/>
    <camera name="scene" pos="{_fmt(SCENE_CAMERA_POS)}" xyaxes="{_fmt(scene_xy)}" fovy="48"/>
    {robot}
    {pool}
    {containers}
  </worldbody>
  <actuator>
    {actuators}
  </actuator>
</mujoco>
"""


@dataclass(frozen=True)
class ObjectHandle:
    """Indices of one pool object inside the compiled model."""

    colour: str
    shape: str
    body: int
    geom: int
    qpos: int  # address of the free joint's 7 qpos values (x y z qw qx qy qz)
    qvel: int  # address of its 6 qvel values


class SceneModel:
    """The compiled model plus name -> index handles the env, tasks and experts use."""

    def __init__(self, *, max_image_size: int = 640) -> None:
        self.model = mujoco.MjModel.from_xml_string(build_xml(max_image_size=max_image_size))
        m = self.model
        self.arm_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.arm_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self.finger_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in FINGER_JOINTS])
        self.finger_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in FINGER_JOINTS])
        self.tcp_site = m.site("tcp").id
        self.hand_body = m.body("hand").id
        self.table_geom = m.geom("table").id
        self.pad_geoms = (m.geom("left_pad").id, m.geom("right_pad").id)
        robot_bodies = {m.body(n).id for n in ("hand", "left_finger", "right_finger")}
        self.gripper_geoms = frozenset(g for g in range(m.ngeom) if int(m.geom_bodyid[g]) in robot_bodies)
        self.gripper_geom_array = np.array(sorted(self.gripper_geoms))
        self.objects: dict[tuple[str, str], ObjectHandle] = {}
        for colour, shape in obj.ALL_PAIRS:
            name = obj.object_name(colour, shape)
            jid = m.joint(f"{name}_joint").id
            self.objects[(colour, shape)] = ObjectHandle(
                colour=colour,
                shape=shape,
                body=m.body(name).id,
                geom=m.geom(f"{name}_geom").id,
                qpos=int(m.jnt_qposadr[jid]),
                qvel=int(m.jnt_dofadr[jid]),
            )
        self.containers = {name: m.body(name).id for name in obj.CONTAINERS}
        self.container_geoms = {
            name: [g for g in range(m.ngeom) if int(m.geom_bodyid[g]) == bid]
            for name, bid in self.containers.items()
        }
        # Which container geoms collide (the plate's rim is visual only), restored when unparked.
        self.container_contype = {
            g: int(m.geom_contype[g]) for geoms in self.container_geoms.values() for g in geoms
        }
        # Nominal appearance, restored after domain randomization.
        self.nominal_geom_rgba = m.geom_rgba.copy()
        self.nominal_light_diffuse = m.light_diffuse.copy()
        self.nominal_light_pos = m.light_pos.copy()
        self.nominal_headlight_ambient = m.vis.headlight.ambient.copy()
        self.scene_cam = m.camera("scene").id
        self.nominal_cam_pos = m.cam_pos.copy()
        self.nominal_cam_quat = m.cam_quat.copy()
        self.object_contype = int(m.geom_contype[self.objects[obj.ALL_PAIRS[0]].geom])

    def set_object_active(self, key: tuple[str, str], *, active: bool) -> None:
        """Makes a pool object take part in the episode, or parks it (no contacts, no gravity)."""
        h = self.objects[key]
        flag = self.object_contype if active else 0
        self.model.geom_contype[h.geom] = flag
        self.model.geom_conaffinity[h.geom] = flag
        self.model.body_gravcomp[h.body] = 0.0 if active else 1.0
        self.model.geom_group[h.geom] = 0 if active else HIDDEN_GROUP

    def place_container(self, name: str, xy: tuple[float, float] | None) -> None:
        """Moves a container onto the table at `xy`, or parks it when `xy` is None."""
        bid = self.containers[name]
        if xy is None:
            self.model.body_pos[bid] = (0.0, 0.0, PARK_Z)
            for g in self.container_geoms[name]:
                self.model.geom_contype[g] = 0
                self.model.geom_conaffinity[g] = 0
                self.model.geom_group[g] = HIDDEN_GROUP
            return
        self.model.body_pos[bid] = (xy[0], xy[1], 0.0)
        for g in self.container_geoms[name]:
            self.model.geom_contype[g] = self.container_contype[g]
            self.model.geom_conaffinity[g] = self.container_contype[g]
            self.model.geom_group[g] = 0
