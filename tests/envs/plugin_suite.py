"""A suite written only in test files: a point robot that reaches a coloured dot.

It exists to prove the plug-in design: registering it and declaring a feature is all it takes for
collection, the dataset, training, checkpoints and evaluation to carry that feature, with no edit to
the core. Pure numpy (no MuJoCo), 16 x 16 images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.features import Feature, FeaturePart
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

NAME = "plugin_reach"
GOAL = Feature(
    name="goal_spot",
    scope="episode",
    parts=(FeaturePart("where", "position", 3, "m"), FeaturePart("radius", "value", 1, "m")),
    meaning="where the dot is and how close counts as reached",
    masked=True,
)


def embodiment(image_size: tuple[int, int] = (16, 16)) -> Embodiment:
    arm = ActionGroup("arm_pos", 3, (-0.05,) * 3, (0.05,) * 3, "m")
    grip = ActionGroup("gripper", 1, (0.0,), (1.0,), "fraction (0 open, 1 closed)")
    return Embodiment(
        name="point_robot",
        action_spaces=(ActionSpace("ee_delta", (arm, grip)),),
        state_fields=(StateField("ee_pos", 3, "m"), StateField("gripper", 1, "fraction")),
        cameras=("scene", "wrist"),
        image_size=(int(image_size[0]), int(image_size[1])),
        control_hz=10.0,
        joint_low=(),
        joint_high=(),
        max_joint_velocity=(),
        workspace_low=(-1.0, -1.0, -1.0),
        workspace_high=(1.0, 1.0, 1.0),
    )


class ReachEnv:
    max_steps = 12

    def __init__(self, image_size: tuple[int, int]) -> None:
        self.embodiment = embodiment(image_size)
        self.size = int(image_size[0])
        self.episode_meta: dict[str, Any] = {}
        self.pos = np.zeros(3)
        self.goal = np.zeros(3)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        rng = np.random.default_rng(seed)
        self.pos = np.zeros(3)
        self.goal = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.0])
        self.episode_meta = {
            "family": "reach",
            "seed": seed,
            GOAL.name: [*self.goal.tolist(), 0.02],
            GOAL.mask_key: [1.0, 1.0, 1.0, 0.0],
        }
        return self._obs(), {"success": False, "family": "reach", **self.episode_meta}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,):
            raise ValueError(f"action must be [4], got {a.shape}")
        self.pos = self.pos + np.clip(a[:3], -0.05, 0.05)
        success = bool(np.linalg.norm(self.pos - self.goal) < 0.02)
        # Leaving the reachable box ends the episode as a failure with a reason (`info["failure"]`).
        lost = bool(np.abs(self.pos).max() > 0.3)
        info = {"success": success, "family": "reach", "failure": "left_box" if lost else ""}
        return self._obs(), float(success), success or lost, False, info

    def close(self) -> None:
        pass

    def _obs(self) -> dict:
        img = np.zeros((self.size, self.size, 3), np.uint8)
        gx, gy = ((self.goal[:2] + 0.25) / 0.5 * (self.size - 1)).astype(int)
        img[gy, gx] = (255, 0, 0)
        state = np.concatenate([self.pos, [0.0]]).astype(np.float32)
        return {
            "images": {"scene": img, "wrist": img.copy()},
            "state": state,
            "instruction": "reach the red dot",
        }


class ReachExpert:
    def __init__(self, env: ReachEnv) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def act(self, obs: dict) -> np.ndarray:
        step = np.clip(self.env.goal - self.env.pos, -0.05, 0.05)
        return np.concatenate([step, [0.0]]).astype(np.float32)


class ReachSuite:
    name = NAME
    families = ("reach",)
    splits = ("train",)
    features = (GOAL,)

    def make(self, family: str, *, split: str = "train", image_size=(16, 16), **_: Any) -> ReachEnv:
        if family not in self.families:
            raise KeyError(f"unknown family '{family}'")
        return ReachEnv(tuple(image_size))

    def expert(self, env: ReachEnv) -> ReachExpert:
        return ReachExpert(env)

    def embodiment(self, image_size: tuple[int, int] = (16, 16)) -> Embodiment:
        return embodiment(image_size)
