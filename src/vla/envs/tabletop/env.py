"""`TabletopEnv`: one task family of the tabletop suite as a gymnasium env.

Observation (single step, no batch axis):
    images: {"scene": uint8 [Hi, Wi, 3], "wrist": uint8 [Hi, Wi, 3]}
    state: float32 [22] = joint_pos 7 (rad), joint_vel 7 (rad/s), gripper 1 (finger opening, m),
        ee_pos 3 (m, robot base frame), ee_quat 4 (w, x, y, z)
    instruction: str
Actions: `ee_delta` float [7] or `joint_pos` float [8] (see `embodiment.py`), clipped to their bounds.
Each step holds the action for 0.1 s (10 Hz control, 50 physics steps of 2 ms).
"""

from __future__ import annotations

import os
import string
from numbers import Integral
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks, ungroundable
from vla.envs.tabletop.embodiment import CAMERAS, CONTROL_HZ, WORKSPACE_HIGH, WORKSPACE_LOW, make_embodiment
from vla.envs.tabletop.ik import DLSIK, mat_to_quat, rotvec_to_mat
from vla.envs.tabletop.labels import SCENE, scene_labels
from vla.envs.tabletop.panda import FINGER_MAX, HOME_QPOS
from vla.envs.tabletop.randomize import add_noise, apply_randomization, restore_nominal
from vla.envs.tabletop.scene import HIDDEN_GROUP, PARK_Z, PHYSICS_DT, SceneModel
from vla.registry import lookup

ACTION_MODES = ("ee_delta", "joint_pos")
N_SUBSTEPS = round(1.0 / (CONTROL_HZ * PHYSICS_DT))
# Joint targets move linearly to the new command over the first part of the step instead of
# jumping, which keeps the position actuators from slamming (smoother video, gentler grasps).
RAMP_SUBSTEPS = 20
SETTLE_SUBSTEPS = 50  # objects settle onto the table before the first observation
HOME_NOISE = 0.03  # rad, per-episode perturbation of the start posture for diversity


# The TCP's usual orientation (gripper pointing down). Its quaternion has w = 0, so the "w >= 0" sign
# rule flips the state's quaternion between q and -q from one step to the next; a policy sees that as a
# jump of 2 in the input. Choosing the sign closest to this reference keeps it continuous for every pose
# the tasks use (they stay within 90° of it).
_DOWN_REF = np.array([0.0, 0.9238795, -0.3826834, 0.0])


def _continuous_quat(mat: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of `mat`, signed to lie in the hemisphere of `_DOWN_REF`."""
    q = mat_to_quat(mat)
    return q if float(q @ _DOWN_REF) >= 0 else -q


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def role_meta(spec: tasks.EpisodeSpec) -> dict[str, Any]:
    """The episode metadata naming what the instruction acts on (target, other object, container, ...)."""
    return {
        "target": obj.object_name(*spec.target),
        "target_colour": spec.target[0],
        "target_shape": spec.target[1],
        "other": obj.object_name(*spec.other) if spec.other else None,
        "container": spec.container,
        "direction": spec.direction,
    }


class TabletopEnv(gym.Env):
    """A Panda on a table with coloured objects and containers, commanded in language.

    Attributes:
        family: the task family.
        split: "train", "unseen", "paraphrase" or "randomized".
        embodiment: robot description (action modes, state layout, cameras, limits).
        max_steps: control steps before truncation.
        episode_meta: description of the current episode (for recorders and evaluators).
        task: the current `EpisodeSpec` (privileged; experts read it, policies must not).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}  # noqa: RUF012

    def __init__(
        self,
        family: str,
        *,
        split: str = "train",
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = "ee_delta",
        randomize: bool = False,
    ) -> None:
        self.family = lookup({f: f for f in tasks.FAMILIES}, family, kind="tabletop family")
        self.split = lookup({s: s for s in tasks.SPLITS}, split, kind="tabletop split")
        self.action_mode = lookup({a: a for a in ACTION_MODES}, action_mode, kind="action mode")
        if (
            not isinstance(image_size, tuple | list)
            or len(image_size) != 2
            or not all(isinstance(v, Integral) and 8 <= int(v) <= 1024 for v in image_size)
        ):
            raise ValueError(f"image_size must be (height, width) with ints in [8, 1024], got {image_size!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.render_mode = "rgb_array"
        self.randomize = bool(randomize) or self.split == "randomized"
        self.embodiment = make_embodiment(self.image_size)
        held_split = self.split == tasks.UNGROUNDABLE
        self.max_steps = ungroundable.HOLD_STEPS if held_split else tasks.MAX_STEPS[self.family]
        self._hold: ungroundable.HoldJudge | None = None
        self.scene = SceneModel(max_image_size=max(self.image_size))
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self.ik = DLSIK(
            self.model, site=self.scene.tcp_site, qpos_adr=self.scene.arm_qpos, dof_adr=self.scene.arm_dof
        )
        self._renderer: mujoco.Renderer | None = None
        self._vis_option = mujoco.MjvOption()
        self._vis_option.geomgroup[HIDDEN_GROUP] = 0
        space = self.embodiment.action_space(self.action_mode)
        self.action_space = gym.spaces.Box(low=space.low, high=space.high, dtype=np.float32)
        h, w = self.image_size
        image_box = gym.spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "images": gym.spaces.Dict(dict.fromkeys(CAMERAS, image_box)),
                "state": gym.spaces.Box(
                    -np.inf, np.inf, shape=(self.embodiment.state_dim,), dtype=np.float32
                ),
                "instruction": gym.spaces.Text(
                    min_length=1, max_length=256, charset=string.ascii_letters + string.digits + " ,.'-"
                ),
            }
        )
        self.task: tasks.EpisodeSpec | None = None
        self.episode_meta: dict[str, Any] = {}
        self.episode_index = 0
        self._steps = 0
        self._noise_std = 0.0
        self._noise_rng = np.random.default_rng(0)
        self._start: dict[tuple[str, str], np.ndarray] = {}

    # ------------------------------------------------------------------ episode control
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Starts a new episode; the same `seed` gives the same scene, instruction and images."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
        if seed is not None and not 0 <= int(seed) < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        if options:
            raise ValueError(f"TabletopEnv.reset takes no options, got {sorted(options)}")
        super().reset(seed=None if seed is None else int(seed))
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**62))
        rng = np.random.default_rng(episode_seed)
        spec = tasks.sample_episode(self.family, self.split, rng)
        self.task = spec
        params = self._set_up_scene(spec, rng)
        self._steps = 0
        self.episode_index += 1
        self._hold = ungroundable.HoldJudge(self.tcp_pose()[0]) if spec.ungroundable else None
        self.episode_meta = {
            "suite": "tabletop",
            "family": spec.family,
            "split": spec.split,
            "ungroundable": spec.ungroundable,
            "seed": episode_seed,
            "instruction": spec.instruction,
            **role_meta(spec),
            "objects": [obj.object_name(*k) for k in spec.objects],
            "containers": list(spec.containers),
            "randomized": self.randomize,
            "randomization": params,
            "action_mode": self.action_mode,
            "image_size": list(self.image_size),
            "max_steps": self.max_steps,
        }
        # Where the instructed objects start, the suite's declared episode feature `SCENE`
        # (vla.envs.tabletop.labels): recorded demonstrations carry it, so a policy can learn to act on
        # a scene estimate (vla.models.grounding).
        labels, mask = scene_labels(self)
        self.episode_meta[SCENE.name] = [round(float(v), 6) for v in labels]
        self.episode_meta[SCENE.mask_key] = [float(v) for v in mask]
        return self._observation(), {"success": False, "family": self.family, **self.episode_meta}

    def _set_up_scene(self, spec: tasks.EpisodeSpec, rng: np.random.Generator) -> dict[str, float]:
        """Puts the episode's objects, containers and robot in place; returns randomization parameters."""
        m, d, sc = self.model, self.data, self.scene
        mujoco.mj_resetData(m, d)
        for key, handle in sc.objects.items():
            pose = spec.objects.get(key)
            sc.set_object_active(key, active=pose is not None)
            if pose is None:
                i = obj.ALL_PAIRS.index(key)
                d.qpos[handle.qpos : handle.qpos + 7] = (0.1 * i, 0.0, PARK_Z, 1.0, 0.0, 0.0, 0.0)
            else:
                x, y, yaw = pose
                z = obj.SHAPE_SPECS[key[1]].half_height + 0.0005
                d.qpos[handle.qpos : handle.qpos + 3] = (x, y, z)
                d.qpos[handle.qpos + 3 : handle.qpos + 7] = _yaw_quat(yaw)
        for name in obj.CONTAINERS:
            sc.place_container(name, spec.containers.get(name))
        q0 = HOME_QPOS + rng.uniform(-HOME_NOISE, HOME_NOISE, size=7)
        d.qpos[sc.arm_qpos] = q0
        d.qpos[sc.finger_qpos] = FINGER_MAX
        d.ctrl[:7] = q0
        d.ctrl[7:9] = FINGER_MAX
        if self.randomize:
            params = apply_randomization(sc, rng)
        else:
            restore_nominal(sc)
            params = {"noise_std": 0.0}
        self._noise_std = params["noise_std"]
        self._noise_rng = np.random.default_rng(rng.integers(2**62))
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=SETTLE_SUBSTEPS)
        self._start = {k: d.xpos[sc.objects[k].body].copy() for k in spec.objects}
        return params

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Applies one action for 0.1 s; returns (obs, reward, terminated, truncated, info).

        Raises:
            RuntimeError: if called before `reset`.
            ValueError: if the action has the wrong shape or holds NaN/inf.
        """
        if self.task is None:
            raise RuntimeError("TabletopEnv.step called before reset()")
        a = self._validate_action(action)
        arm_target, gripper = self._joint_targets(a)
        m, d = self.model, self.data
        start_ctrl = d.ctrl[:7].copy()
        finger = FINGER_MAX * (1.0 - gripper)
        d.ctrl[7:9] = finger
        for i in range(RAMP_SUBSTEPS):
            d.ctrl[:7] = start_ctrl + (i + 1) / RAMP_SUBSTEPS * (arm_target - start_ctrl)
            mujoco.mj_step(m, d)
        mujoco.mj_step(m, d, nstep=N_SUBSTEPS - RAMP_SUBSTEPS)
        self._steps += 1
        if self._hold is not None:  # ungroundable: held for the whole window, judged at its end
            self._hold.update(self.sim_state(), self.tcp_pose()[0])
            success = self._hold.success(self._steps)
        else:
            success = tasks.is_success(self.task, self.sim_state())
        truncated = self._steps >= self.max_steps and not success
        info = {"success": success, "family": self.family, "step": self._steps}
        return self._observation(), float(success), success, truncated, info

    def close(self) -> None:
        """Frees the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def robot_state(self) -> np.ndarray:
        """The robot state now, float32 [22] (what an observation's "state" holds)."""
        return self._state()

    def camera_images(self) -> dict[str, np.ndarray]:
        """Renders every camera now: camera -> uint8 [Hi, Wi, 3] (what an observation holds)."""
        return self._render_images()

    def render(self) -> np.ndarray:
        """Returns both cameras side by side, uint8 [Hi, 2*Wi, 3] (for videos)."""
        images = self._render_images()
        return np.concatenate([images[c] for c in CAMERAS], axis=1)

    # ------------------------------------------------------------------ helpers for experts and tests
    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns the TCP position (m, [3]) and rotation (3×3), world frame."""
        d, site = self.data, self.scene.tcp_site
        return d.site_xpos[site].copy(), d.site_xmat[site].reshape(3, 3).copy()

    def object_position(self, key: tuple[str, str]) -> np.ndarray:
        """Returns the (x, y, z) centre of object (colour, shape), m."""
        return self.data.xpos[self.scene.objects[key].body].copy()

    def object_yaw(self, key: tuple[str, str]) -> float:
        """Returns the yaw (rad) of object (colour, shape) about the world z axis."""
        mat = self.data.xmat[self.scene.objects[key].body].reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def sim_state(self) -> tasks.SimState:
        """Returns the privileged state the success predicates read."""
        assert self.task is not None
        d, sc = self.data, self.scene
        geom_to_key = {sc.objects[k].geom: k for k in self.task.objects}
        # Vectorized over the contact list: iterating MjContact structs in Python cost ~0.4 ms a step.
        g1, g2 = d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]
        grip1, grip2 = np.isin(g1, sc.gripper_geom_array), np.isin(g2, sc.gripper_geom_array)
        other = np.concatenate([g2[grip1], g1[grip2]])
        touching = frozenset(geom_to_key[int(g)] for g in other if int(g) in geom_to_key)
        pos = {k: d.xpos[sc.objects[k].body].copy() for k in self.task.objects}
        speed = {
            k: float(np.linalg.norm(d.qvel[sc.objects[k].qvel : sc.objects[k].qvel + 3]))
            for k in self.task.objects
        }
        return tasks.SimState(start=self._start, pos=pos, speed=speed, gripper_contacts=touching)

    def ee_delta_to_joint_pos(self, action: np.ndarray) -> np.ndarray:
        """Converts an `ee_delta` action (float [7]) to the `joint_pos` action (float32 [8]) it implies now."""
        a = np.clip(
            np.asarray(action, dtype=np.float64),
            self.embodiment.action_space("ee_delta").low,
            self.embodiment.action_space("ee_delta").high,
        )
        return np.concatenate([self._ik_targets(a), a[6:7]]).astype(np.float32)

    # ------------------------------------------------------------------ internals
    def _validate_action(self, action: np.ndarray) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"action must be a numeric array, got {type(action).__name__}") from e
        expected = self.action_space.shape
        if a.shape != expected:
            raise ValueError(
                f"action for mode '{self.action_mode}' must have shape {expected}, got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            bad = np.flatnonzero(~np.isfinite(a)).tolist()
            raise ValueError(
                f"action holds NaN/inf at indices {bad}; expected finite values, got {a.tolist()}"
            )
        space = self.embodiment.action_space(self.action_mode)
        return np.clip(a, space.low, space.high)

    def _ik_targets(self, a: np.ndarray) -> np.ndarray:
        pos, mat = self.tcp_pose()
        target_pos = np.clip(pos + a[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        target_mat = rotvec_to_mat(a[3:6]) @ mat
        arm_q = self.data.qpos[self.scene.arm_qpos]
        return self.ik.solve(self.data.qpos, target_pos, target_mat, arm_q)

    def _joint_targets(self, a: np.ndarray) -> tuple[np.ndarray, float]:
        if self.action_mode == "ee_delta":
            return self._ik_targets(a), float(a[6])
        return a[:7].copy(), float(a[7])

    def _state(self) -> np.ndarray:
        d, sc = self.data, self.scene
        pos, mat = self.tcp_pose()
        state = np.concatenate(
            [
                d.qpos[sc.arm_qpos],
                d.qvel[sc.arm_dof],
                [d.qpos[sc.finger_qpos].sum()],
                pos,
                _continuous_quat(mat),
            ]
        )
        return state.astype(np.float32)  # (22,)

    def _render_images(self) -> dict[str, np.ndarray]:
        if self._renderer is None:
            h, w = self.image_size
            try:
                self._renderer = mujoco.Renderer(self.model, height=h, width=w)
            except Exception as e:  # mujoco raises FatalError or a GL error without a usable context
                raise RuntimeError(
                    f"could not create a MuJoCo renderer ({e}); headless rendering needs MUJOCO_GL=egl "
                    f"(Mesa EGL libraries) or MUJOCO_GL=osmesa, set before mujoco is imported; "
                    f"MUJOCO_GL is {os.environ.get('MUJOCO_GL')!r}"
                ) from e
        r = self._renderer
        images = {}
        for cam in CAMERAS:
            r.update_scene(self.data, camera=cam, scene_option=self._vis_option)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            img = r.render()  # (Hi, Wi, 3) uint8, a fresh array each call
            images[cam] = add_noise(img, self._noise_std, self._noise_rng)
        return images

    def _observation(self) -> dict[str, Any]:
        assert self.task is not None
        return {"images": self._render_images(), "state": self._state(), "instruction": self.task.instruction}
