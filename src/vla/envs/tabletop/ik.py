"""Damped-least-squares inverse kinematics for the Panda's tool centre point (TCP).

Why not `mink` (the QP-based IK library): its solve alone takes most of a control step's budget here
(docs/measured.md#the-machine-threads-rendering-ik), which would cap the env below the 200 steps/s
target. A few damped-least-squares iterations with `mj_jacSite` cost ~0.1 ms and reach targets to
~1 mm; joint limits are enforced by clipping, and a null-space pull toward the home posture keeps the
redundant 7th degree of freedom from drifting into awkward elbow configurations.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla.envs.tabletop.panda import HOME_QPOS, JOINT_HIGH, JOINT_LOW


@dataclass(frozen=True)
class IKConfig:
    """Settings of the solver.

    Attributes:
        iterations: Gauss-Newton steps per solve.
        damping: Levenberg damping λ (larger = smoother near singularities, slower convergence).
        nullspace_gain: pull of the redundant DoF toward the home posture, per iteration.
        rot_weight: metres of position error one radian of orientation error counts as.
        tol: stop early once the weighted error is below this (m).
    """

    iterations: int = 8
    damping: float = 0.03
    nullspace_gain: float = 0.05
    rot_weight: float = 0.3
    tol: float = 2e-4

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"IKConfig.iterations must be >= 1, got {self.iterations}")
        if self.damping <= 0 or self.rot_weight <= 0 or self.tol <= 0:
            raise ValueError("IKConfig.damping, rot_weight and tol must be positive")


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Returns the 3×3 rotation matrix of a unit quaternion (w, x, y, z)."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """Returns the unit quaternion (w, x, y, z) of a 3×3 rotation matrix, with w >= 0."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.asarray(mat, dtype=np.float64).reshape(9))
    return quat if quat[0] >= 0 else -quat


def rotvec_to_mat(rotvec: np.ndarray) -> np.ndarray:
    """Returns the rotation matrix of a rotation vector (axis × angle, rad)."""
    quat = np.empty(4)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(rotvec, dtype=np.float64) / angle, angle)
    return quat_to_mat(quat)


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Returns the world-frame rotation vector that turns `current` into `target` (both 3×3)."""
    err = np.empty(3)
    q_target, q_current = mat_to_quat(target), mat_to_quat(current)
    q_diff = np.empty(4)
    q_conj = np.empty(4)
    mujoco.mju_negQuat(q_conj, q_current)
    mujoco.mju_mulQuat(q_diff, q_target, q_conj)
    mujoco.mju_quat2Vel(err, q_diff, 1.0)
    return err


class DLSIK:
    """Solves joint positions that put the TCP site at a target pose.

    Uses its own MjData so solving never disturbs the simulation state.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        site: int,
        qpos_adr: np.ndarray,
        dof_adr: np.ndarray,
        config: IKConfig | None = None,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = site
        self.qpos_adr = qpos_adr
        self.dof_adr = dof_adr
        self.config = config or IKConfig()
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._low = np.asarray(JOINT_LOW) + 1e-3
        self._high = np.asarray(JOINT_HIGH) - 1e-3

    def solve(
        self, qpos: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray, arm_q: np.ndarray
    ) -> np.ndarray:
        """Returns arm joint positions (rad, [7]) reaching the target, starting from `arm_q`.

        Args:
            qpos: the full current qpos (for the non-arm joints; only the arm is changed).
            target_pos: TCP position (m, [3], world frame).
            target_mat: TCP orientation (3×3, world frame).
            arm_q: the starting arm configuration (rad, [7]).
        """
        cfg = self.config
        m, d = self.model, self.data
        d.qpos[:] = qpos
        q = np.clip(np.asarray(arm_q, dtype=np.float64).copy(), self._low, self._high)
        lam2 = cfg.damping**2
        for _ in range(cfg.iterations):
            d.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            pos_err = target_pos - d.site_xpos[self.site]
            rot_err = rotation_error(target_mat, d.site_xmat[self.site].reshape(3, 3))
            err = np.concatenate([pos_err, cfg.rot_weight * rot_err])  # (6,)
            if float(np.linalg.norm(err)) < cfg.tol:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
            jac = np.vstack(
                [self._jacp[:, self.dof_adr], cfg.rot_weight * self._jacr[:, self.dof_adr]]
            )  # (6, 7)
            # (J Jᵀ + λ²I) is symmetric positive definite: factor it once with MuJoCo's Cholesky.
            # numpy.linalg.solve on a 6×6 went through multithreaded OpenBLAS and cost ~2 ms per call
            # on a busy 2-core machine, more than the whole physics step.
            jjt = jac @ jac.T + lam2 * np.eye(6)  # (6, 6)
            mujoco.mju_cholFactor(jjt, 0.0)
            dq = jac.T @ self._chol_solve(jjt, err)  # (7,)
            # Null-space posture term (I - J⁺J) v with J⁺ = Jᵀ(J Jᵀ + λ²I)⁻¹: it moves the redundant
            # degree of freedom toward home without moving the TCP.
            v = cfg.nullspace_gain * (HOME_QPOS - q)  # (7,)
            dq += v - jac.T @ self._chol_solve(jjt, jac @ v)
            q = np.clip(q + dq, self._low, self._high)
        return q

    def _chol_solve(self, factor: np.ndarray, vec: np.ndarray) -> np.ndarray:
        out = np.empty(6)
        mujoco.mju_cholSolve(out, factor, np.ascontiguousarray(vec, dtype=np.float64))
        return out

    def tcp_pose(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns the TCP (position [3], rotation 3×3) for a full qpos, by forward kinematics."""
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()
