"""The things on the G1's table: the tabletop suite's colours and shapes, sized for the Dex3 hands.

Colours, shapes, the colour×shape pairs of each split and the words an instruction uses come from the
Panda suite (`vla.envs.tabletop.objects`), so both robots share one vocabulary. What differs is size:
the Dex3 hand closes around a ~5 cm object and its palm cannot go below ~3 cm above the table top
(the table is the workspace floor), so objects stand 7-8 cm tall; the wide box of `lift_box` is held
between both palms.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco

from vla.envs.tabletop.objects import (
    ALL_PAIRS,
    COLOURS,
    SHAPES,
    TRAIN_PAIRS,
    UNSEEN_PAIRS,
    describe,
    object_name,
)

__all__ = [
    "ALL_PAIRS",
    "BOX",
    "BOX_COLOURS",
    "COLOURS",
    "SHAPES",
    "SHAPE_SPECS",
    "TRAIN_PAIRS",
    "UNSEEN_PAIRS",
    "BoxSpec",
    "ShapeSpec",
    "add_box",
    "add_object",
    "box_name",
    "describe",
    "object_name",
]


@dataclass(frozen=True)
class ShapeSpec:
    """Geometry of one shape.

    Attributes:
        geom_type: the MuJoCo geom type.
        size: the geom's `size` (m; MuJoCo's meaning per type).
        half_height: centre height above the table top at rest, m.
        radius: footprint radius used for placement, m.
        mass: kg.
    """

    geom_type: mujoco.mjtGeom
    size: tuple[float, float, float]
    half_height: float
    radius: float
    mass: float


# 5 cm wide (the closed Dex3 thumb and index meet ~3 cm apart around the palm site, so a 5 cm object
# is held with the fingers wrapped round it), 8 cm tall: the grasp centre at the object's centre is
# 4 cm above the table top, clear of it for the knuckles. The ball is 7 cm: a 6 cm one had its centre
# below the lowest palm height (`expert.MIN_PALM_Z`), and the closing fingers squeezed it out of the
# hand and off the table in 3 of 20 unseen-split pick_up episodes (measured).
SHAPE_SPECS: dict[str, ShapeSpec] = {
    "block": ShapeSpec(mujoco.mjtGeom.mjGEOM_BOX, (0.025, 0.025, 0.04), 0.04, 0.036, 0.1),
    "cylinder": ShapeSpec(mujoco.mjtGeom.mjGEOM_CYLINDER, (0.025, 0.04, 0.0), 0.04, 0.025, 0.1),
    "ball": ShapeSpec(mujoco.mjtGeom.mjGEOM_SPHERE, (0.035, 0.0, 0.0), 0.035, 0.035, 0.08),
}


@dataclass(frozen=True)
class BoxSpec:
    """The wide box of `lift_box`: too wide for one hand, lifted by squeezing it between both palms.

    Attributes:
        half: half extents (x depth, y width, z height), m.
        mass: kg.
    """

    half: tuple[float, float, float]
    mass: float


# 18 cm wide, between the hands of the working posture (palm centres 0.33 m apart, fingers ~4 cm in
# from them): a 30 cm box stood in the hands' way at reset and was shoved before the script began.
BOX = BoxSpec(half=(0.07, 0.09, 0.04), mass=0.3)
# One box per colour: the instruction names it by colour ("the red box").
BOX_COLOURS = tuple(COLOURS)


def box_name(colour: str) -> str:
    """Returns the MJCF body name of a box, e.g. "red_box"."""
    return f"{colour}_box"


def _friction(shape: str) -> tuple[int, list[float]]:
    # Sliding friction 1.0 for the hand's grip (MuJoCo takes the larger of two geoms' values; the G1's
    # hand geoms declare none, so the default 1.0). Balls add rolling friction (condim 6) so a nudged
    # ball stops within a second, as in the Panda suite.
    return (6, [1.0, 0.01, 0.0005]) if shape == "ball" else (4, [1.0, 0.01, 0.0001])


def add_object(spec: mujoco.MjSpec, colour: str, shape: str) -> None:
    """Adds pool object (colour, shape) to `spec`: a free body named `object_name`, its geom `<name>_geom`."""
    s = SHAPE_SPECS[shape]
    name = object_name(colour, shape)
    body = spec.worldbody.add_body(name=name)
    body.add_freejoint(name=f"{name}_joint")
    condim, friction = _friction(shape)
    body.add_geom(
        name=f"{name}_geom",
        type=s.geom_type,
        size=list(s.size),
        mass=s.mass,
        rgba=[*COLOURS[colour], 1.0],
        friction=friction,
        condim=condim,
        group=0,
    )


def add_box(spec: mujoco.MjSpec, colour: str) -> None:
    """Adds the wide box of `colour` to `spec`: a free body named `box_name(colour)`."""
    name = box_name(colour)
    body = spec.worldbody.add_body(name=name)
    body.add_freejoint(name=f"{name}_joint")
    condim, friction = _friction("block")
    body.add_geom(
        name=f"{name}_geom",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(BOX.half),
        mass=BOX.mass,
        rgba=[*COLOURS[colour], 1.0],
        friction=friction,
        condim=condim,
        group=0,
    )
