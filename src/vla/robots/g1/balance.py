"""Balance of the standing G1: centre of mass, support polygon, stability margin and fall detection.

Quasi-static criterion: a robot moving slowly stays up while the ground projection of its centre of
mass (CoM) lies inside the support polygon, the convex hull of its foot contacts. The signed distance
from the CoM to the polygon's nearest edge (positive inside) is the balance margin. At the speeds of
table-top work (hands < 0.5 m/s) the dynamic terms a ZMP criterion adds are small.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla.robots.g1 import layout

# Standing pelvis height is 0.78 m in the working posture; after a fall it lies near 0.07 m (measured
# after pushes). 0.5 m sits between: well below any standing or crouching posture, passed early in a
# fall. Below it the robot is down.
FALL_PELVIS_HEIGHT = 0.5  # m
# Pelvis tilt from vertical. At 0.6 rad (34°) the CoM (0.7 m up) sits ~0.4 m off its standing ground
# point, far outside the feet (0.17 m long, 0.30 m wide stance), so no ankle torque can recover it.
# The pelvis, not the torso: the waist alone tilts the torso by 0.72 rad (roll and pitch at their
# 0.52 rad limits) while the robot stands safely (margin 0.08 m measured).
FALL_TILT = 0.6  # rad


@dataclass(frozen=True)
class BalanceState:
    """One measurement of the robot's balance (world frame).

    Attributes:
        com: float [3] centre of mass of the whole robot (m).
        polygon: float [K, 2] support polygon vertices, counter-clockwise (K = 0 when airborne).
        margin: signed distance from the CoM's ground point to the polygon edge (m), > 0 inside.
        pelvis_height: pelvis origin height above the floor (m).
        tilt: angle between the pelvis's z axis and the vertical (rad).
    """

    com: np.ndarray
    polygon: np.ndarray
    margin: float
    pelvis_height: float
    tilt: float

    @property
    def fallen(self) -> bool:
        """Whether the robot is down (pelvis too low) or tipping past recovery (pelvis too tilted)."""
        return self.pelvis_height < FALL_PELVIS_HEIGHT or self.tilt > FALL_TILT

    @property
    def balanced(self) -> bool:
        """Whether the robot stands balanced now: not fallen and the CoM's ground point over its feet.

        `fallen` alone is a late signal: a robot tipping backward kept its pelvis above 0.5 m and its
        tilt under 0.6 rad for three control steps after its CoM had left the support polygon (margin
        -8 cm, tilt 0.27 rad at the step a task reported success; issue 22, pick_up seed 1). By the
        quasi-static criterion of this module the robot is already falling once the margin is
        negative, so a margin >= 0 is required too. No extra safety distance: the safety filter's
        2 cm (`embodiment.BALANCE_STOP_MARGIN`) is where to stop moving, not where a robot is down,
        and a foot that lifts for a moment (margin < 0 for one step) only defers the judgement.
        """
        return not self.fallen and self.margin >= 0.0


def convex_hull_2d(points: np.ndarray) -> np.ndarray:
    """Returns the convex hull (float [K, 2], counter-clockwise) of float [N, 2] points.

    Andrew's monotone chain. Collinear and duplicate points are dropped, so two feet touching only
    along a line give K = 2 (a segment) and one point K = 1; scipy's qhull raises on those.
    """
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)
    if len(pts) <= 2:
        return pts

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    def chain(seq: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2 and cross(out[-2], out[-1], p) <= 1e-12:
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(pts), chain(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def polygon_centroid(polygon: np.ndarray) -> np.ndarray:
    """Returns the area centroid (float [2]) of a convex polygon (float [K, 2]); the mean for K < 3.

    Not the vertex mean: a near-collinear point that flickers in and out of the hull (two feet side
    by side) moves the vertex mean by centimetres; it jumped the CoM target 3 cm in one step.
    """
    if len(polygon) < 3:
        return np.asarray(polygon, dtype=np.float64).mean(axis=0)
    x, y = polygon[:, 0], polygon[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = 0.5 * float(cross.sum())
    if abs(area) < 1e-12:
        return polygon.mean(axis=0)
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * area)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-18), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def signed_margin(point: np.ndarray, polygon: np.ndarray) -> float:
    """Returns the signed distance (m) from a 2-D point to a convex polygon's boundary, > 0 inside.

    Args:
        point: float [2].
        polygon: float [K, 2] counter-clockwise (from `convex_hull_2d`). K < 3 has no inside: the
            result is minus the distance to the point or segment; K = 0 gives -inf (no support).
    """
    p = np.asarray(point, dtype=np.float64)[:2]
    k = len(polygon)
    if k == 0:
        return float("-inf")
    if k == 1:
        return -float(np.linalg.norm(p - polygon[0]))
    edges = [(polygon[i], polygon[(i + 1) % k]) for i in range(k if k > 2 else 1)]
    dist = min(_segment_distance(p, a, b) for a, b in edges)
    if k == 2:
        return -dist
    # Inside a counter-clockwise convex polygon every edge has the point on its left.
    inside = all((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0 for a, b in edges)
    return dist if inside else -dist


def clip_into_polygon(
    point: np.ndarray, polygon: np.ndarray, centre: np.ndarray, margin: float
) -> np.ndarray:
    """Returns `point` (float [2]) moved toward `centre` until it is at least `margin` inside `polygon`.

    Bisection along the segment to `centre` (which must itself satisfy the margin; it is returned when
    even it does not). Used to keep a commanded CoM target away from the support polygon's edges.
    """
    p, c = np.asarray(point, dtype=np.float64)[:2], np.asarray(centre, dtype=np.float64)[:2]
    if signed_margin(p, polygon) >= margin:
        return p
    if signed_margin(c, polygon) < margin:
        return c
    lo, hi = 0.0, 1.0  # fraction of the way from centre to point; lo satisfies the margin
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if signed_margin(c + mid * (p - c), polygon) >= margin:
            lo = mid
        else:
            hi = mid
    return c + lo * (p - c)


@dataclass(frozen=True)
class BalanceIds:
    """Model ids `measure` needs, looked up once.

    Attributes:
        pelvis: body id of the pelvis (its subtree is the whole robot).
        feet: geom ids of the foot contact spheres.
        floor: geom id of the floor.
    """

    pelvis: int
    feet: frozenset[int]
    floor: int

    @classmethod
    def of(cls, model: mujoco.MjModel) -> BalanceIds:
        foot_bodies = {model.body(layout.LEFT_FOOT_BODY).id, model.body(layout.RIGHT_FOOT_BODY).id}
        feet = frozenset(
            g
            for g in range(model.ngeom)
            if model.geom_bodyid[g] in foot_bodies and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE
        )
        if not feet:
            raise ValueError("the G1 model has no foot contact spheres")
        return cls(
            pelvis=model.body(layout.PELVIS).id,
            feet=feet,
            floor=model.geom("floor").id,
        )


def contact_points(data: mujoco.MjData, ids: BalanceIds) -> np.ndarray:
    """Returns float [N, 2] ground points of the current foot-floor contacts (N = 0 when airborne)."""
    pts = []
    for i in range(data.ncon):
        c = data.contact[i]
        pair = {int(c.geom1), int(c.geom2)}
        if ids.floor in pair and pair & ids.feet:
            pts.append(c.pos[:2].copy())
    return np.array(pts).reshape(-1, 2)


def measure(data: mujoco.MjData, ids: BalanceIds) -> BalanceState:
    """Returns the balance of the simulated robot in `data` (after mj_step / mj_forward)."""
    com = data.subtree_com[ids.pelvis].copy()
    polygon = convex_hull_2d(contact_points(data, ids))
    pelvis_z = data.xmat[ids.pelvis].reshape(3, 3)[:, 2]
    return BalanceState(
        com=com,
        polygon=polygon,
        margin=signed_margin(com[:2], polygon),
        pelvis_height=float(data.xpos[ids.pelvis][2]),
        tilt=float(np.arccos(np.clip(pelvis_z[2], -1.0, 1.0))),
    )
