"""Whole-body controller of the standing G1: a per-step command in, 43 actuator position targets out.

A kinematic plan (a `mink.Configuration` with its own floating base) is moved by differential IK
toward, in order of weight: both feet pinned where they stand, the CoM over the support polygon's
centre plus a commanded offset, the pelvis upright at its standing height, the waist at its commanded
angles, both palms at their targets (previous target + commanded delta), and the working posture for
everything else. The simulated robot tracks the plan's joint angles with its position actuators,
plus a feed-forward of the static torque it needs (`actuator_targets`), without which the legs and
arms sag (docs/robots.md).

Frames: hand deltas, CoM offsets and the hand workspace are in the *heading frame*: origin at the
ground point between the feet, x along the feet's mean heading, z up (world frame at reset).
"""

from __future__ import annotations

from dataclasses import dataclass

import mink
import mujoco
import numpy as np
import qpsolvers

from vla.robots.g1 import balance, layout

_SOLVER = "daqp"  # the fastest QP backend mink supports here, dense and active-set


@dataclass(frozen=True)
class WBCConfig:
    """Weights and limits of the controller.

    Attributes:
        ik_iterations: differential-IK steps per control step (each re-linearises the tasks). One
            suffices: the plan converges over successive control steps, and a second one measured no
            better palm tracking for ~3 ms more per step.
        foot_cost: weight of the two foot pose tasks (highest: a sliding foot is a fall).
        com_cost: weight of the CoM task (x, y only; the height follows the posture).
        pelvis_cost: weight keeping the pelvis upright and facing the feet's heading.
        pelvis_height_cost: weight holding the pelvis at its standing height (z only; x, y follow the
            CoM task). Without it the IK bent the knees to bring a low palm further down or in (the
            posture task, at 0.1, barely resists): the pelvis sank 11 cm in one pick_up reach until
            a knee struck the table's edge and kicked the robot over backward (issue 22, seed 1);
            in other episodes it sank 2-3 cm and the balance margin fell to 2 cm.
        waist_cost: weight of the waist joints' commanded angles.
        hand_position_cost, hand_orientation_cost: weights of the palm tasks (per m, per rad).
        posture_cost: weight pulling every joint toward the working posture (resolves redundancy).
        damping: Levenberg-Marquardt damping of the IK (on all dofs).
        com_margin: the CoM target is kept at least this far inside the support polygon, m. 3 cm is
            ~1/3 of the half foot length, room for the tracking error of the real CoM.
        max_hand_lead: a palm target is kept within this distance of the planned palm, m, so an
            unreachable target cannot wind up and then jerk the arm when it becomes reachable.
        body_speed, finger_speed: joint speed limits the plan respects, rad/s (a controller choice;
            Menagerie declares none). The finger servos saturate at 1.4 N·m, which brakes a finger
            from 2 rad/s within ~0.02 rad; at 6 rad/s they overshot closed targets by 0.4 rad.
        gravity_compensation: feed the static torque forward through the position targets.
    """

    ik_iterations: int = 1
    foot_cost: float = 50.0
    com_cost: float = 20.0
    pelvis_cost: float = 10.0
    pelvis_height_cost: float = 10.0
    waist_cost: float = 5.0
    hand_position_cost: float = 10.0
    hand_orientation_cost: float = 1.0
    posture_cost: float = 0.1
    damping: float = 1e-3
    com_margin: float = 0.03
    max_hand_lead: float = 0.10
    body_speed: float = 3.0
    finger_speed: float = 2.0
    gravity_compensation: bool = True

    def __post_init__(self) -> None:
        if self.ik_iterations < 1:
            raise ValueError(f"WBCConfig.ik_iterations must be >= 1, got {self.ik_iterations}")
        weights = (
            self.foot_cost,
            self.com_cost,
            self.pelvis_cost,
            self.pelvis_height_cost,
            self.waist_cost,
            self.hand_position_cost,
        )
        if min(*weights, self.hand_orientation_cost, self.posture_cost, self.damping) < 0:
            raise ValueError("WBCConfig costs and damping must be >= 0")
        if min(self.com_margin, self.max_hand_lead, self.body_speed, self.finger_speed) <= 0:
            raise ValueError("WBCConfig com_margin, max_hand_lead and speeds must be positive")


@dataclass(frozen=True)
class WBCCommand:
    """One control step's command (all in the heading frame).

    Attributes:
        left_dpos, right_dpos: float [3] palm target position deltas, m.
        left_drot, right_drot: float [3] palm target rotation deltas (rotation vectors), rad, applied
            on the left of the current target orientation.
        closure: float [2] (left, right) hand closure, 0 open .. 1 closed.
        waist: float [3] waist (yaw, roll, pitch) joint targets, rad.
        com_offset: float [2] CoM target offset from the support polygon's centre, m.
    """

    left_dpos: np.ndarray
    left_drot: np.ndarray
    right_dpos: np.ndarray
    right_drot: np.ndarray
    closure: np.ndarray
    waist: np.ndarray
    com_offset: np.ndarray

    @classmethod
    def zero(cls) -> WBCCommand:
        """Hold: no hand motion, open hands, upright waist, CoM over the support centre."""
        z3 = np.zeros(3)
        return cls(z3, z3, z3, z3, np.zeros(2), z3, np.zeros(2))


def rotvec_to_mat(rotvec: np.ndarray) -> np.ndarray:
    """Returns the 3×3 rotation matrix of a rotation vector (axis × angle, rad)."""
    return mink.SO3.exp(np.asarray(rotvec, dtype=np.float64)).as_matrix()


def yaw_of(mat: np.ndarray) -> float:
    """Returns the heading (rad about world z) of a rotation matrix's x axis."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def yaw_matrix(yaw: float) -> np.ndarray:
    """Returns the 3×3 rotation about world z by `yaw` rad."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class WholeBodyController:
    """Turns `WBCCommand`s into actuator position targets for the G1 model it was built for.

    Args:
        model: the compiled G1 scene (`model.build_model`).
        posture: float [nq] working posture the posture task pulls toward (also the reset plan).
        workspace_low, workspace_high: palm target box, m, heading frame.
        cfg: weights and limits.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        posture: np.ndarray,
        *,
        workspace_low: tuple[float, float, float],
        workspace_high: tuple[float, float, float],
        cfg: WBCConfig | None = None,
    ) -> None:
        self.cfg = cfg or WBCConfig()
        self.model = model
        self.posture = np.array(posture, dtype=np.float64)
        self.workspace_low = np.asarray(workspace_low, dtype=np.float64)
        self.workspace_high = np.asarray(workspace_high, dtype=np.float64)
        self.waist = layout.JointIndex.of(model, layout.WAIST_JOINTS)
        self.left_hand = layout.JointIndex.of(model, layout.LEFT_HAND_JOINTS)
        self.right_hand = layout.JointIndex.of(model, layout.RIGHT_HAND_JOINTS)
        self.left_closed = np.array([layout.LEFT_HAND_CLOSED[n] for n in layout.LEFT_HAND_JOINTS])
        self.right_closed = np.array([layout.RIGHT_HAND_CLOSED[n] for n in layout.RIGHT_HAND_JOINTS])
        # Every actuator is a position servo: force = kp * (ctrl - q) - kv * qdot.
        self.kp = model.actuator_gainprm[:, 0].copy()
        self.actuated_qpos = np.array(
            [model.jnt_qposadr[model.actuator_trnid[a, 0]] for a in range(model.nu)]
        )
        self.actuated_dof = np.array([model.jnt_dofadr[model.actuator_trnid[a, 0]] for a in range(model.nu)])
        self.foot_geoms = np.array(sorted(balance.BalanceIds.of(model).feet), dtype=np.int64)
        self._pelvis = model.body(layout.PELVIS).id
        self._foot_sites = [model.site(n).id for n in (layout.LEFT_FOOT_SITE, layout.RIGHT_FOOT_SITE)]
        self._foot_bodies = [model.body(n).id for n in (layout.LEFT_FOOT_BODY, layout.RIGHT_FOOT_BODY)]

        c = self.cfg
        self.config = mink.Configuration(model, self.posture)
        self.feet = [
            mink.FrameTask(site, "site", position_cost=c.foot_cost, orientation_cost=c.foot_cost)
            for site in (layout.LEFT_FOOT_SITE, layout.RIGHT_FOOT_SITE)
        ]
        self.hands = [
            mink.FrameTask(
                site, "site", position_cost=c.hand_position_cost, orientation_cost=c.hand_orientation_cost
            )
            for site in (layout.LEFT_HAND_SITE, layout.RIGHT_HAND_SITE)
        ]
        self.com_task = mink.ComTask(cost=np.array([c.com_cost, c.com_cost, 0.0]))
        # Without it the cheapest way to reach forward is to pitch the whole pelvis (the posture task
        # cannot see the floating base): the torso tilted 0.4 rad for a 10 cm reach. Its position
        # error is in the pelvis frame, whose z is the world's while the pelvis is upright: the
        # height cost holds the standing height (`WBCConfig.pelvis_height_cost`).
        self.pelvis_task = mink.FrameTask(
            layout.PELVIS,
            "body",
            position_cost=np.array([0.0, 0.0, c.pelvis_height_cost]),
            orientation_cost=c.pelvis_cost,
        )
        posture_cost = np.full(model.nv, c.posture_cost)
        self._finger_qpos = np.concatenate([self.left_hand.qpos, self.right_hand.qpos])
        posture_cost[np.concatenate([self.left_hand.dof, self.right_hand.dof])] = 0.0
        self.posture_task = mink.PostureTask(model, cost=posture_cost)
        waist_cost = np.zeros(model.nv)
        waist_cost[self.waist.dof] = c.waist_cost
        self.waist_task = mink.PostureTask(model, cost=waist_cost)
        speeds = dict.fromkeys(layout.BODY_JOINTS, c.body_speed)
        self.limits = [mink.ConfigurationLimit(model), mink.VelocityLimit(model, speeds)]
        self.tasks = [
            *self.feet,
            self.com_task,
            self.pelvis_task,
            self.waist_task,
            *self.hands,
            self.posture_task,
        ]
        self.hand_targets: list[mink.SE3] = []
        self.closure = np.zeros(2)
        self._fingers = np.zeros(len(self._finger_qpos))
        self.reset(self.posture)

    # -- state of the plan -------------------------------------------------------------------------

    def reset(self, qpos: np.ndarray) -> None:
        """Restarts the plan at `qpos` (float [nq]): feet pinned and palm targets where they are now."""
        self.config.update(np.array(qpos, dtype=np.float64))
        for task in self.feet:
            task.set_target_from_configuration(self.config)
        _, heading = self.heading()
        self.pelvis_task.set_target(
            mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(heading), self.config.q[:3])
        )
        self.hand_targets = [
            self.config.get_transform_frame_to_world(site, "site")
            for site in (layout.LEFT_HAND_SITE, layout.RIGHT_HAND_SITE)
        ]
        self.posture_task.set_target(self.posture)
        self.waist_task.set_target(self.config.q)
        self.closure = np.zeros(2)
        self._fingers = self.config.q[self._finger_qpos].copy()

    @property
    def plan_qpos(self) -> np.ndarray:
        """float [nq]: the planned configuration (floating base included)."""
        return self.config.q.copy()

    def heading(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (origin float [3], rotation float [3, 3]) of the heading frame, from the planned feet."""
        left, right = (task.transform_target_to_world for task in self.feet)
        assert left is not None and right is not None  # set in reset()
        origin = 0.5 * (left.translation() + right.translation())
        origin[2] = 0.0
        yaw_l, yaw_r = yaw_of(left.rotation().as_matrix()), yaw_of(right.rotation().as_matrix())
        mean = float(np.arctan2(np.sin(yaw_l) + np.sin(yaw_r), np.cos(yaw_l) + np.cos(yaw_r)))
        return origin, yaw_matrix(mean)

    def support_polygon(self) -> np.ndarray:
        """float [K, 2]: the planned support polygon, world.

        The ground projection of the 8 foot contact spheres in the plan: both feet stay down in
        phase 1, so this is the measured polygon whenever the robot tracks its plan.
        """
        return balance.convex_hull_2d(self.config.data.geom_xpos[self.foot_geoms][:, :2])

    # -- one control step --------------------------------------------------------------------------

    def _update_hand_targets(self, cmd: WBCCommand, origin: np.ndarray, rot: np.ndarray) -> None:
        deltas = ((cmd.left_dpos, cmd.left_drot), (cmd.right_dpos, cmd.right_drot))
        sites = (layout.LEFT_HAND_SITE, layout.RIGHT_HAND_SITE)
        for i, ((dpos, drot), site) in enumerate(zip(deltas, sites, strict=True)):
            target = self.hand_targets[i]
            pos = target.translation() + rot @ np.asarray(dpos, dtype=np.float64)
            # The workspace box lives in the heading frame; clip there.
            local = np.clip(rot.T @ (pos - origin), self.workspace_low, self.workspace_high)
            pos = origin + rot @ local
            planned = self.config.get_transform_frame_to_world(site, "site").translation()
            lead = pos - planned
            dist = float(np.linalg.norm(lead))
            if dist > self.cfg.max_hand_lead:
                pos = planned + lead * (self.cfg.max_hand_lead / dist)
            world_drot = rot @ np.asarray(drot, dtype=np.float64)
            mat = rotvec_to_mat(world_drot) @ target.rotation().as_matrix()
            self.hand_targets[i] = mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(mat), pos)
            self.hands[i].set_target(self.hand_targets[i])

    def com_target(self, offset: np.ndarray) -> np.ndarray:
        """Returns the CoM target (float [2], world) for a heading-frame `offset` (float [2], m)."""
        _, rot = self.heading()
        polygon = self.support_polygon()
        centre = balance.polygon_centroid(polygon)
        wanted = centre + (rot @ np.array([offset[0], offset[1], 0.0]))[:2]
        return balance.clip_into_polygon(wanted, polygon, centre, self.cfg.com_margin)

    def plan(self, cmd: WBCCommand, dt: float) -> np.ndarray:
        """Advances the plan by one control step of `dt` s; returns the joint targets (float [nu], rad).

        Raises:
            mink.NoSolutionFound: the QP failed (never seen in the tests or benchmark).
        """
        origin, rot = self.heading()
        self._update_hand_targets(cmd, origin, rot)
        com_xy = self.com_target(np.asarray(cmd.com_offset, dtype=np.float64))
        self.com_task.set_target(np.array([com_xy[0], com_xy[1], 0.0]))
        waist_q = self.config.q.copy()
        waist_q[self.waist.qpos] = np.clip(cmd.waist, self.waist.low, self.waist.high)
        self.waist_task.set_target(waist_q)
        step = dt / self.cfg.ik_iterations
        for _ in range(self.cfg.ik_iterations):
            # mink.solve_ik minus its check_limits(), which costs ~1 ms of Python per call here and
            # only warns; the ConfigurationLimit in the QP keeps the plan inside the joint ranges.
            problem = mink.build_ik(self.config, self.tasks, step, self.cfg.damping, self.limits)
            result = qpsolvers.solve_problem(problem, solver=_SOLVER)
            if not result.found or result.x is None:
                raise mink.NoSolutionFound(_SOLVER)
            self.config.integrate_inplace(result.x / step, step)
        self._plan_fingers(np.asarray(cmd.closure, dtype=np.float64), dt)
        return self.config.q[self.actuated_qpos].copy()

    def _plan_fingers(self, closure: np.ndarray, dt: float) -> None:
        # Fingers take no part in the IK (no task depends on them, the posture task ignores them):
        # they move straight toward the commanded closure, rate-limited, and are written into the plan.
        self.closure = np.clip(closure, 0.0, 1.0)
        want = np.concatenate([self.closure[0] * self.left_closed, self.closure[1] * self.right_closed])
        max_step = self.cfg.finger_speed * dt
        self._fingers = self._fingers + np.clip(want - self._fingers, -max_step, max_step)
        q = self.config.q.copy()
        q[self._finger_qpos] = self._fingers
        self.config.update(q)

    # -- to the actuators --------------------------------------------------------------------------

    def static_torque(self) -> np.ndarray:
        """Returns the joint torques (float [nu], N·m) that hold the plan still on both feet.

        Gravity on the planned configuration (`mj_rne` at zero velocity) minus what the floor carries:
        the weight split between the feet by the lever rule along the line joining them, each foot's
        centre of pressure shifted by the CoM's offset from that line, so the two forces sum to the
        weight acting straight under the CoM (a statically consistent wrench).

        Why the plan and not the measured contacts: feeding measured contact forces forward closes a
        positive loop (a foot that unloads loses its support torque, unloading it further); it rocked
        the standing robot until a foot lifted (docs/robots.md, "Whole-body controller").
        """
        m, d = self.model, self.config.data
        mujoco.mj_comVel(m, d)  # zero: the plan's data never has a velocity
        bias = np.zeros(m.nv)
        mujoco.mj_rne(m, d, 0, bias)
        com = d.subtree_com[self._pelvis]
        weight = -float(m.opt.gravity[2]) * float(m.body_subtreemass[self._pelvis])
        feet = [d.site_xpos[s].copy() for s in self._foot_sites]
        axis = feet[1][:2] - feet[0][:2]
        t = float(np.clip(np.dot(com[:2] - feet[0][:2], axis) / max(float(axis @ axis), 1e-9), 0.0, 1.0))
        off = com[:2] - (feet[0][:2] + t * axis)
        carried = np.zeros(m.nv)
        jacp = np.zeros((3, m.nv))
        for foot, body, share in zip(feet, self._foot_bodies, (1.0 - t, t), strict=True):
            point = np.array([foot[0] + off[0], foot[1] + off[1], foot[2]])
            mujoco.mj_jac(m, d, jacp, None, point, body)
            carried += jacp[2] * (share * weight)
        return (bias - carried)[self.actuated_dof]

    def actuator_targets(self, joint_targets: np.ndarray) -> np.ndarray:
        """Returns `data.ctrl` values (float [nu]) that make the servos hold `joint_targets` (float [nu]).

        A position servo holds a joint only with an error of tau/kp, tau being the torque the joint
        must carry. Feeding tau forward (ctrl = target + tau/kp, tau from `static_torque`) removes
        that sag.
        """
        if not self.cfg.gravity_compensation:
            return joint_targets
        return joint_targets + self.static_torque() / self.kp
