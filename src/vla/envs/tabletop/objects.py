"""The things on the table: colours, shapes, containers, and which colour×shape pairs each split uses.

Every colour×shape pair exists once in the scene's object pool, so an instruction naming a colour and a
shape always picks out exactly one object. Four of the fifteen pairs are held out of the `train` split
entirely (never shown, not even as distractors) and are the targets of the `unseen` split; each held-out
colour and each held-out shape still appears in training through its other pairs, so the split tests
composition, not new words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.12, 0.65, 0.18),
    "blue": (0.12, 0.28, 0.90),
    "yellow": (0.95, 0.82, 0.10),
    "purple": (0.55, 0.18, 0.75),
}
SHAPES = ("block", "cylinder", "ball")

# Rest geometry per shape (m): half height above the table, footprint radius used for placement,
# MJCF `size` attribute, and mass (kg). Objects are 4-4.4 cm wide so the 8 cm gripper opening fits
# with margin.
BLOCK_HALF = 0.02
CYLINDER_RADIUS, CYLINDER_HALF = 0.02, 0.025
BALL_RADIUS = 0.022


@dataclass(frozen=True)
class ShapeSpec:
    """Geometry of one shape."""

    geom_type: str
    size: str
    half_height: float
    radius: float
    mass: float


SHAPE_SPECS: dict[str, ShapeSpec] = {
    "block": ShapeSpec("box", f"{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}", BLOCK_HALF, 0.029, 0.06),
    "cylinder": ShapeSpec(
        "cylinder", f"{CYLINDER_RADIUS} {CYLINDER_HALF}", CYLINDER_HALF, CYLINDER_RADIUS, 0.05
    ),
    "ball": ShapeSpec("sphere", f"{BALL_RADIUS}", BALL_RADIUS, BALL_RADIUS, 0.04),
}


@dataclass(frozen=True)
class ContainerSpec:
    """A static receptacle built from primitives.

    Attributes:
        name: "bowl", "plate" or "tray".
        inner_half: half extents (x, y) of the area an object must rest inside (m).
        radius: footprint radius used for placement (m).
        top: height of the floor the object rests on (m).
        rgba: colour, chosen apart from the object colours so containers are never confused with them.
    """

    name: str
    inner_half: tuple[float, float]
    radius: float
    top: float
    rgba: tuple[float, float, float, float]


CONTAINERS: dict[str, ContainerSpec] = {
    "bowl": ContainerSpec("bowl", (0.05, 0.05), 0.085, 0.008, (0.93, 0.93, 0.90, 1.0)),
    "plate": ContainerSpec("plate", (0.055, 0.055), 0.075, 0.008, (0.62, 0.64, 0.70, 1.0)),
    "tray": ContainerSpec("tray", (0.065, 0.05), 0.10, 0.006, (0.40, 0.25, 0.14, 1.0)),
}

# Held-out pairs for the `unseen` split: every colour except one and every shape keeps >= 2 train pairs.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "ball"), ("green", "cylinder"), ("blue", "block"), ("yellow", "ball")}
)
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)
TRAIN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
UNSEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p in HELD_OUT)


def object_name(colour: str, shape: str) -> str:
    """Returns the MJCF body name of a pool object, e.g. "red_block"."""
    return f"{colour}_{shape}"


def describe(colour: str, shape: str) -> str:
    """Returns the words an instruction uses for an object, e.g. "red block"."""
    return f"{colour} {shape}"


def object_mjcf(colour: str, shape: str) -> str:
    """Returns the MJCF body of one pool object (free joint, parked off-table until used)."""
    spec = SHAPE_SPECS[shape]
    r, g, b = COLOURS[colour]
    name = object_name(colour, shape)
    # condim 4 (torsional friction) everywhere; balls add rolling friction (condim 6) so they stop
    # rolling on the table within a second instead of drifting off after a push. Sliding friction
    # 0.5 (MuJoCo takes the larger of two geoms' values, so grasps still get the pads' 1.5): with
    # 1.0, a block pushed low on its face jammed under the fingers instead of sliding.
    condim, friction = ("6", "0.5 0.01 0.0005") if shape == "ball" else ("4", "0.5 0.01 0.0001")
    return (
        f'<body name="{name}" pos="0 0 -1">\n'
        f'  <freejoint name="{name}_joint"/>\n'
        f'  <geom name="{name}_geom" type="{spec.geom_type}" size="{spec.size}" mass="{spec.mass}" '
        f'rgba="{r} {g} {b} 1" friction="{friction}" condim="{condim}" solref="0.01 1" '
        f'solimp="0.95 0.99 0.001"/>\n'
        f"</body>"
    )


def container_mjcf(spec: ContainerSpec) -> str:
    """Returns the MJCF body of a container: a static body moved per episode through `body_pos`."""
    r, g, b, a = spec.rgba
    rgba = f"{r} {g} {b} {a}"
    parts = [f'<body name="{spec.name}" pos="0 0 -1">']
    if spec.name == "plate":
        parts.append(f'  <geom type="cylinder" size="0.07 0.004" pos="0 0 0.004" rgba="{rgba}"/>')
        parts.append(
            f'  <geom type="cylinder" size="0.075 0.002" pos="0 0 0.009" rgba="{rgba}" contype="0" conaffinity="0"/>'
        )
    elif spec.name == "bowl":
        parts.append(f'  <geom type="cylinder" size="0.065 0.004" pos="0 0 0.004" rgba="{rgba}"/>')
        # A ring of 12 thin boxes approximates the bowl's wall (meshes would render slowly).
        for k in range(12):
            ang = 2 * math.pi * k / 12
            x, y = 0.07 * math.cos(ang), 0.07 * math.sin(ang)
            parts.append(
                f'  <geom type="box" size="0.004 0.02 0.02" pos="{x:.4f} {y:.4f} 0.02" '
                f'euler="0 0 {ang:.4f}" rgba="{rgba}"/>'
            )
    else:
        hx, hy = spec.inner_half[0] + 0.012, spec.inner_half[1] + 0.012
        parts.append(f'  <geom type="box" size="{hx} {hy} 0.003" pos="0 0 0.003" rgba="{rgba}"/>')
        for sx, sy, px, py in (
            (0.004, hy, hx, 0.0),
            (0.004, hy, -hx, 0.0),
            (hx, 0.004, 0.0, hy),
            (hx, 0.004, 0.0, -hy),
        ):
            parts.append(f'  <geom type="box" size="{sx} {sy} 0.014" pos="{px} {py} 0.014" rgba="{rgba}"/>')
    parts.append("</body>")
    return "\n".join(parts)
