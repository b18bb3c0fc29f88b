"""`HumanoidTabletopEnv`: one humanoid task family of the tabletop suite as a gymnasium env.

Observation (single step, no batch axis), the G1's embodiment ("unitree_g1_tabletop"):
    images: {"head", "left_wrist", "right_wrist"}: uint8 [Hi, Wi, 3]
    state: float32 [100], laid out as `embodiment.state_fields` (`vla.robots.g1.embodiment`)
    instruction: str
Actions: the "whole_body" space, float [22] (arm palm deltas, hand closures, waist, base = 0, balance),
one per 0.1 s. A fall ends the episode as a failure: `terminated`, `info["fallen"] = True`,
`info["success"] = False`. Success is judged only while the robot is balanced (not fallen, CoM over
the support polygon: `vla.robots.g1.balance.BalanceState.balanced`); `info["balance_margin"]` is the
margin (m) the judgement read.
"""

from __future__ import annotations

import string
from numbers import Integral
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from vla.envs.tabletop.humanoid import tasks
from vla.envs.tabletop.humanoid.scene import build_scene, key_name
from vla.registry import lookup
from vla.robots.g1.embodiment import WHOLE_BODY
from vla.robots.g1.model import G1SceneConfig
from vla.robots.g1.robot import G1Robot, G1RobotConfig

ACTION_MODES = (WHOLE_BODY.name,)
# Control steps of zero action after placing the objects, before the first observation: they settle
# onto the table (placed 0.5 mm above it) and the reset jitter of the arms is absorbed by the servos.
SETTLE_STEPS = 2
# Before the objects are placed, both palms rise this far (m) over `RAISE_STEPS` steps from the G1's
# working posture. That posture holds the palms ~9 cm above the table top, right over the target
# region: an 8 cm object stood 1 cm under the hand and the reset jitter of the arms shoved it off the
# table before the episode began (1 of 20 unseen pick_up seeds, measured).
RAISE = 0.05
RAISE_STEPS = 2


class HumanoidTabletopEnv(gym.Env):
    """The G1 at its table with coloured objects, commanded in language.

    Attributes:
        family: the task family (`tasks.FAMILIES`).
        split: "train", "unseen" or "paraphrase".
        robot: the simulated G1 (`vla.robots.g1.robot.G1Robot`); its model holds the objects too.
        embodiment: the G1's (action space, state layout, cameras, limits).
        max_steps: control steps before truncation.
        episode_meta: description of the current episode (for recorders and evaluators).
        task: the current `EpisodeSpec` (privileged; experts read it, policies must not).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        family: str,
        *,
        split: str = "train",
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = WHOLE_BODY.name,
    ) -> None:
        self.family = lookup({f: f for f in tasks.FAMILIES}, family, kind="humanoid tabletop family")
        self.split = lookup({s: s for s in tasks.SPLITS}, split, kind="humanoid tabletop split")
        self.action_mode = lookup({a: a for a in ACTION_MODES}, action_mode, kind="humanoid action mode")
        if len(image_size) != 2 or not all(
            isinstance(v, Integral) and 8 <= int(v) <= 1024 for v in image_size
        ):
            raise ValueError(f"image_size must be (height, width) with ints in [8, 1024], got {image_size!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        scene_cfg = G1SceneConfig(image_size=self.image_size)
        self.scene = build_scene(scene_cfg, boxes=self.family == "lift_box")
        self.robot = G1Robot(G1RobotConfig(scene=scene_cfg), model=self.scene.model)
        self.model, self.data = self.robot.model, self.robot.data
        self.embodiment = self.robot.embodiment
        self.max_steps = tasks.MAX_STEPS[self.family]
        self.render_mode = "rgb_array"
        space = self.robot.space
        self.action_space = gym.spaces.Box(low=space.low, high=space.high, dtype=np.float32)
        h, w = self.image_size
        image_box = gym.spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "images": gym.spaces.Dict(dict.fromkeys(self.embodiment.cameras, image_box)),
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
        self._start: dict[tuple[str, str], np.ndarray] = {}
        geom_to_key = {h.geom: k for k, h in self.scene.objects.items()}
        self._geom_key = geom_to_key
        self._hand_of_geom = {int(g): side for side, gs in self.scene.hand_geoms.items() for g in gs}

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
            raise ValueError(f"HumanoidTabletopEnv.reset takes no options, got {sorted(options)}")
        super().reset(seed=None if seed is None else int(seed))
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**62))
        rng = np.random.default_rng(episode_seed)
        spec = tasks.sample_episode(self.family, self.split, rng)
        self.task = spec
        self.robot.reset(int(rng.integers(2**31)))
        for key in self.scene.objects:  # all parked while the palms rise
            self.scene.place(self.data, key, None)
        mujoco.mj_forward(self.model, self.data)
        raise_palms = np.zeros(self.robot.space.dim)
        for hand in ("left_arm", "right_arm"):
            raise_palms[self.robot.space.slice(hand).start + 2] = RAISE / RAISE_STEPS
        for _ in range(RAISE_STEPS):
            self.robot.step(raise_palms)
        for key in self.scene.objects:
            pose = spec.objects.get(key)
            place = None if pose is None else (pose[0], pose[1], tasks.rest_height(key) + 0.0005, pose[2])
            self.scene.place(self.data, key, place)
        mujoco.mj_forward(self.model, self.data)
        self.robot.hold(SETTLE_STEPS)
        self._start = {k: self.data.xpos[self.scene.objects[k].body].copy() for k in spec.objects}
        self._steps = 0
        self.episode_index += 1
        self.episode_meta = {
            "suite": "tabletop",
            "robot": "humanoid",
            "family": spec.family,
            "split": spec.split,
            "seed": episode_seed,
            "instruction": spec.instruction,
            "target": key_name(spec.target),
            "hand": spec.hand,
            "hand_named": spec.hand_named,
            "objects": [key_name(k) for k in spec.objects],
            "action_mode": self.action_mode,
            "image_size": list(self.image_size),
            "max_steps": self.max_steps,
        }
        return self._observation(), {
            "success": False,
            "fallen": False,
            "balance_margin": self.robot.balance_margin,
            "family": self.family,
            **self.episode_meta,
        }

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Applies one action for 0.1 s; returns (obs, reward, terminated, truncated, info).

        Raises:
            RuntimeError: if called before `reset`.
            ValueError: the action is malformed (`G1Robot.validate`); nothing is applied.
        """
        if self.task is None:
            raise RuntimeError("HumanoidTabletopEnv.step called before reset()")
        self.robot.step(np.asarray(action, dtype=np.float64))
        self._steps += 1
        bal = self.robot.balance()
        fallen = bal.fallen
        # Success is judged only while the robot stands balanced (`BalanceState.balanced`: not fallen
        # and the CoM over the feet). Not fallen was not enough: a robot tipping over with the object
        # in hand was scored a success three steps before the fall detector fired (issue 22).
        success = bal.balanced and tasks.is_success(self.task, self.sim_state())
        terminated = success or fallen
        truncated = self._steps >= self.max_steps and not terminated
        info = {
            "success": success,
            "fallen": fallen,
            "failure": "fall" if fallen else "",
            "balance_margin": bal.margin,
            "family": self.family,
            "step": self._steps,
        }
        return self._observation(), float(success), terminated, truncated, info

    def close(self) -> None:
        """Frees the renderer's GL context."""
        self.robot.close()

    def render(self) -> np.ndarray:
        """Returns every camera side by side, uint8 [Hi, 3*Wi, 3] (for videos)."""
        images = self.robot.render()
        return np.concatenate([images[c] for c in self.embodiment.cameras], axis=1)

    # ------------------------------------------------------------------ helpers for experts and tests
    def robot_state(self) -> np.ndarray:
        """The robot state now, float32 [S] (what an observation's "state" holds)."""
        return self.robot.state()

    def camera_images(self) -> dict[str, np.ndarray]:
        """Renders every camera now: camera -> uint8 [Hi, Wi, 3]."""
        return self.robot.render()

    def object_position(self, key: tuple[str, str]) -> np.ndarray:
        """float [3]: centre of pool object `key`, heading frame (world at reset: the G1 does not walk)."""
        origin, rot = self.robot.controller.heading()
        return rot.T @ (self.data.xpos[self.scene.objects[key].body] - origin)

    def palm_position(self, hand: str) -> np.ndarray:
        """float [3]: the `hand` ("left" / "right") palm centre, heading frame (as in the state)."""
        state = self.robot.state()
        return state[self.embodiment.state_slice(f"{hand}_hand_pos")].astype(np.float64)

    def sim_state(self) -> tasks.SimState:
        """Returns the privileged state the success predicates read."""
        assert self.task is not None
        d = self.data
        g1, g2 = d.contact.geom1[: d.ncon], d.contact.geom2[: d.ncon]
        contacts: dict[str, set[tuple[str, str]]] = {"left": set(), "right": set()}
        for a, b in zip(g1.tolist(), g2.tolist(), strict=True):
            for hand_geom, other in ((a, b), (b, a)):
                side = self._hand_of_geom.get(hand_geom)
                key = self._geom_key.get(other)
                if side is not None and key is not None:
                    contacts[side].add(key)
        pos = {k: d.xpos[self.scene.objects[k].body].copy() for k in self.task.objects}
        return tasks.SimState(
            start=self._start, pos=pos, contacts={s: frozenset(v) for s, v in contacts.items()}
        )

    def _observation(self) -> dict[str, Any]:
        assert self.task is not None
        return {
            "images": self.robot.render(),
            "state": self.robot.state(),
            "instruction": self.task.instruction,
        }
