"""The simulated G1: model, data, whole-body controller and cameras behind reset / step / state / render.

One `step(action)` is one control period (1 / control_hz s): the controller plans once, then the
physics runs `substeps` steps while the servo targets (plan + feed-forward) ramp from the previous
step's to the new ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import mujoco
import numpy as np

from vla.robots.g1 import balance, layout
from vla.robots.g1 import embodiment as emb
from vla.robots.g1.model import CAMERAS, STAND_KEY, G1SceneConfig, build_model
from vla.robots.g1.wbc import WBCCommand, WBCConfig, WholeBodyController
from vla.spaces import Embodiment

# Seeded reset noise on the arm joints, rad (std): enough to vary episodes, small enough that the
# palms start near the working posture's (offset median 1.1 cm, max 2.9 cm over 50 seeds, measured).
ARM_RESET_NOISE = 0.02


@functools.lru_cache(maxsize=4)
def plan_model(scene: G1SceneConfig) -> mujoco.MjModel:
    """The bare G1 the whole-body controller plans on when a suite adds bodies to the scene.

    The plan is kinematic and needs the robot only. Planning on the scene model put every free
    object's 6 dofs into each IK solve (the tabletop pick_up pool: nv 139 instead of 49), and the
    QP objective of mink's posture task costs nv^3; the robot's part of the problem does not
    depend on them (objects enter no robot task and only the posture task holds them still).
    Cached per process: one compile for every env of a worker.
    """
    return build_model(replace(scene, table=False))


@dataclass(frozen=True)
class G1RobotConfig:
    """How `G1Robot` is built.

    Attributes:
        scene: model options (image size, table, timestep).
        wbc: controller weights and limits.
    """

    scene: G1SceneConfig = field(default_factory=G1SceneConfig)
    wbc: WBCConfig = field(default_factory=WBCConfig)

    def build(self) -> G1Robot:
        """Compiles the model and builds the robot (~4 s)."""
        return G1Robot(self)


class G1Robot:
    """The G1 standing at a table, driven by `Embodiment` actions (A = 22, see `embodiment`)."""

    def __init__(self, cfg: G1RobotConfig | None = None, *, model: mujoco.MjModel | None = None) -> None:
        """Builds the robot.

        Args:
            cfg: how it is built (defaults if None).
            model: the compiled scene to use instead of `build_model(cfg.scene)`: a suite that puts
                its own bodies (objects on the table) around the robot compiles `model.build_spec`
                with them added. Its "stand" keyframe must cover the added joints.
        """
        self.cfg = cfg or G1RobotConfig()
        self.model = model if model is not None else build_model(self.cfg.scene)
        self.data = mujoco.MjData(self.model)
        self.embodiment: Embodiment = emb.make_embodiment(self.model, self.cfg.scene.image_size, self.cfg.wbc)
        self.space = self.embodiment.action_space()
        self._low, self._high = self.space.low.astype(np.float64), self.space.high.astype(np.float64)
        key = self.model.key(STAND_KEY).id
        self.posture = layout.posture_qpos(self.model, self.model.key_qpos[key], layout.READY_POSTURE)
        plan = self.model if model is None else plan_model(self.cfg.scene)
        _check_robot_prefix(plan, self.model)
        # The robot's joints come first in a suite's scene: the plan's qpos is the scene's prefix.
        self._plan_nq = plan.nq
        self.controller = WholeBodyController(
            plan,
            self.posture[: plan.nq],
            workspace_low=emb.WORKSPACE_LOW,
            workspace_high=emb.WORKSPACE_HIGH,
            cfg=self.cfg.wbc,
        )
        self.control_dt = 1.0 / self.embodiment.control_hz
        self.substeps = max(1, round(self.control_dt / self.model.opt.timestep))
        self.joints = layout.JointIndex.of(self.model, emb.ACTUATED_JOINTS)
        self.balance_ids = balance.BalanceIds.of(self.model)
        self._site_ids = [self.model.site(s).id for s in (layout.LEFT_HAND_SITE, layout.RIGHT_HAND_SITE)]
        self._joint_targets = self.posture[self.controller.actuated_qpos].copy()
        self._renderer: mujoco.Renderer | None = None
        self._cam_ids = [self.model.camera(c).id for c in CAMERAS]
        self.reset(0)

    # -- episode -----------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Puts the robot in the working posture (arm joints jittered by `seed`); returns `state()`."""
        rng = np.random.default_rng(seed)
        qpos = self.posture.copy()
        arms = layout.JointIndex.of(self.model, layout.LEFT_ARM_JOINTS + layout.RIGHT_ARM_JOINTS)
        qpos[arms.qpos] = np.clip(
            qpos[arms.qpos] + rng.normal(0.0, ARM_RESET_NOISE, len(arms.qpos)), arms.low, arms.high
        )
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        mujoco.mj_forward(self.model, self.data)
        self.controller.reset(qpos[: self._plan_nq])
        self._joint_targets = qpos[self.controller.actuated_qpos].copy()
        self.data.ctrl[:] = self.controller.actuator_targets(self._joint_targets)
        return self.state()

    def validate(self, action: np.ndarray) -> np.ndarray:
        """Returns `action` as float64 [A] clipped to the bounds; raises ValueError if it is malformed.

        Malformed: not a float array of shape [A], any NaN/inf, or a nonzero base command (phase 1
        does not walk). Such an action is refused whole (the robot keeps its last targets) rather
        than partly applied.
        """
        a = np.asarray(action)
        if a.shape != (self.space.dim,):
            raise ValueError(f"G1 action must have shape ({self.space.dim},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"G1 action must be a float array, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            bad = [g.name for g in self.space.groups if not np.all(np.isfinite(a[self.space.slice(g.name)]))]
            raise ValueError(f"G1 action has NaN/inf in groups {bad}; refused, targets held")
        a = np.clip(a.astype(np.float64), self._low, self._high)
        if np.any(a[self.space.slice("base")] != 0.0):
            raise ValueError(
                "G1 phase 1 does not walk: the base command must be 0 (docs/robots.md#walking), "
                f"got {a[self.space.slice('base')].tolist()}"
            )
        return a

    def command(self, action: np.ndarray) -> WBCCommand:
        """Splits a validated action (float [A]) into the controller's command."""
        s = self.space.slice
        left, right = action[s("left_arm")], action[s("right_arm")]
        return WBCCommand(
            left_dpos=left[:3],
            left_drot=left[3:],
            right_dpos=right[:3],
            right_drot=right[3:],
            closure=action[s("hands")],
            waist=action[s("waist")],
            com_offset=action[s("balance")],
        )

    def step(self, action: np.ndarray) -> np.ndarray:
        """Applies one action for one control period; returns `state()`.

        Raises:
            ValueError: the action is malformed (see `validate`); nothing is applied.
        """
        cmd = self.command(self.validate(action))
        start = self.data.ctrl.copy()
        self._joint_targets = self.controller.plan(cmd, self.control_dt)
        end = self.controller.actuator_targets(self._joint_targets)
        # Ramp the servo targets over the control period instead of jumping at 10 Hz: the jumps
        # jerked the whole body and the feet slid ~2 cm over a 5 cm reach.
        for k in range(1, self.substeps + 1):
            self.data.ctrl[:] = start + (end - start) * (k / self.substeps)
            mujoco.mj_step(self.model, self.data)
        return self.state()

    def hold(self, steps: int = 1) -> None:
        """Runs `steps` control periods with the zero (hold) action."""
        zero = np.zeros(self.space.dim)
        for _ in range(steps):
            self.step(zero)

    # -- observation -------------------------------------------------------------------------------

    def balance(self) -> balance.BalanceState:
        """The measured balance (CoM, support polygon, margin, pelvis height, tilt)."""
        return balance.measure(self.data, self.balance_ids)

    @property
    def fallen(self) -> bool:
        return self.balance().fallen

    @property
    def balance_margin(self) -> float:
        """Signed CoM-to-support-polygon-edge distance, m (> 0 inside)."""
        return self.balance().margin

    def palm_positions(self) -> np.ndarray:
        """float [2, 3]: (left, right) palm positions, world frame, m."""
        return self.data.site_xpos[self._site_ids].copy()

    def state(self) -> np.ndarray:
        """Returns the float32 state vector laid out as `embodiment.state_fields`."""
        origin, rot = self.controller.heading()
        bal = self.balance()
        palms = (self.palm_positions() - origin) @ rot  # rows: rot.T @ (p - origin)
        quat = self.data.qpos[3:7].copy()
        quat = quat if quat[0] >= 0 else -quat
        polygon = bal.polygon if len(bal.polygon) else self.controller.support_polygon()
        com_offset = (rot.T @ np.append(bal.com[:2] - balance.polygon_centroid(polygon), 0.0))[:2]
        return np.concatenate(
            [
                self.data.qpos[self.joints.qpos],
                self.data.qvel[self.joints.dof],
                [bal.pelvis_height],
                quat,
                palms[0],
                palms[1],
                com_offset,
                [bal.margin if np.isfinite(bal.margin) else -1.0],
            ]
        ).astype(np.float32)

    def render(self) -> dict[str, np.ndarray]:
        """Returns {camera: uint8 [H, W, 3]} for `CAMERAS`."""
        if self._renderer is None:
            h, w = self.cfg.scene.image_size
            self._renderer = mujoco.Renderer(self.model, h, w)
        images = {}
        for name, cam in zip(CAMERAS, self._cam_ids, strict=True):
            self._renderer.update_scene(self.data, cam)
            images[name] = self._renderer.render().copy()
        return images

    def close(self) -> None:
        """Frees the GL context (EGL otherwise complains at exit)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _check_robot_prefix(plan: mujoco.MjModel, scene: mujoco.MjModel) -> None:
    """Refuses a scene whose first joints are not the plan model's (its qpos must be a prefix)."""
    names = [plan.joint(j).name for j in range(plan.njnt)]
    first = [scene.joint(j).name for j in range(min(plan.njnt, scene.njnt))]
    if names != first or plan.nu != scene.nu:
        raise ValueError(
            "the scene must start with the G1's joints and add no actuators (suite bodies come after "
            f"the robot); its first joints are {first[:3]}..., actuators {scene.nu} (robot: {plan.nu})"
        )
