"""The G1's table scene: the robot model (`vla.robots.g1.model`) plus a pool of objects, and their placing.

Every object a family can use is compiled into the model once (a model compile takes ~4 s); an episode
moves the ones it uses onto the table and parks the others below the floor, collision off, hidden from
the cameras and held there by gravity compensation (a free body left to fall would fall forever).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla.envs.tabletop.humanoid import objects as obj
from vla.robots.g1 import layout
from vla.robots.g1.model import STAND_KEY, G1SceneConfig, build_spec

PARK_Z = -2.0  # m, under the floor
# Parked geoms go to a geom group the G1's renderer does not draw (its default option shows 0-2).
HIDDEN_GROUP = 5
_HAND_ROOTS = {"left": layout.LEFT_WRIST_BODY, "right": layout.RIGHT_WRIST_BODY}


@dataclass(frozen=True)
class Handle:
    """Where one pool object lives in the compiled model.

    Attributes:
        body: body id.
        geom: geom id.
        qpos: index of its free joint's 7 qpos (x, y, z, qw, qx, qy, qz).
        qvel: index of its free joint's 6 dofs.
    """

    body: int
    geom: int
    qpos: int
    qvel: int


@dataclass(frozen=True)
class Scene:
    """The compiled model and what the env needs to find in it.

    Attributes:
        model: G1 + table + pool objects.
        objects: pool key -> handle; keys are (colour, shape) pairs or ("box", colour).
        hand_geoms: "left" / "right" -> int [G] ids of every geom of that wrist and its fingers.
    """

    model: mujoco.MjModel
    objects: dict[tuple[str, str], Handle]
    hand_geoms: dict[str, np.ndarray]

    def place(
        self, data: mujoco.MjData, key: tuple[str, str], pose: tuple[float, float, float, float] | None
    ) -> None:
        """Puts object `key` at `pose` = (x, y, z, yaw), world frame, or parks it when `pose` is None.

        Writes `data.qpos` and the model's per-object collision, render group and gravity compensation;
        call `mj_forward` afterwards.
        """
        h, m = self.objects[key], self.model
        active = pose is not None
        m.geom_contype[h.geom] = 1 if active else 0
        m.geom_conaffinity[h.geom] = 1 if active else 0
        m.geom_group[h.geom] = 0 if active else HIDDEN_GROUP
        m.body_gravcomp[h.body] = 0.0 if active else 1.0
        if pose is None:
            i = sorted(self.objects).index(key)
            pose = (0.2 * i, 2.0, PARK_Z, 0.0)
        x, y, z, yaw = pose
        data.qpos[h.qpos : h.qpos + 7] = (x, y, z, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        data.qvel[h.qvel : h.qvel + 6] = 0.0


def pool_keys(*, boxes: bool) -> tuple[tuple[str, str], ...]:
    """The pool's object keys: the colour×shape pairs, or the boxes ("box", colour) when `boxes`."""
    return tuple(("box", c) for c in obj.BOX_COLOURS) if boxes else obj.ALL_PAIRS


def key_name(key: tuple[str, str]) -> str:
    """Body name of a pool key."""
    return obj.box_name(key[1]) if key[0] == "box" else obj.object_name(*key)


def build_scene(cfg: G1SceneConfig, *, boxes: bool) -> Scene:
    """Compiles the G1 scene `cfg` with the object pool (`pool_keys(boxes=boxes)`) added.

    Only one pool per model: each free body costs physics and rendering (the controller plans on
    the bare robot, `vla.robots.g1.robot.plan_model`), so a family's model holds only what it can use.
    """
    spec = build_spec(cfg)
    keys = pool_keys(boxes=boxes)
    for k in keys:
        if k[0] == "box":
            obj.add_box(spec, k[1])
        else:
            obj.add_object(spec, *k)
    # The "stand" keyframe must cover every joint; the objects start parked.
    key = next(k for k in spec.keys if k.name == STAND_KEY)
    key.qpos = list(key.qpos) + [
        v for i in range(len(keys)) for v in (0.2 * i, 2.0, PARK_Z, 1.0, 0.0, 0.0, 0.0)
    ]
    model = spec.compile()
    handles = {}
    for k in keys:
        name = key_name(k)
        joint = model.joint(f"{name}_joint").id
        handles[k] = Handle(
            body=model.body(name).id,
            geom=model.geom(f"{name}_geom").id,
            qpos=int(model.jnt_qposadr[joint]),
            qvel=int(model.jnt_dofadr[joint]),
        )
    return Scene(
        model=model, objects=handles, hand_geoms={s: _subtree_geoms(model, b) for s, b in _HAND_ROOTS.items()}
    )


def _subtree_geoms(model: mujoco.MjModel, root: str) -> np.ndarray:
    """int [G]: the geoms of body `root` and every body below it."""
    root_id = model.body(root).id
    bodies = {root_id}
    for b in range(root_id + 1, model.nbody):  # MuJoCo numbers a body after its parent
        if int(model.body_parentid[b]) in bodies:
            bodies.add(b)
    return np.array([g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in bodies], dtype=np.int64)
