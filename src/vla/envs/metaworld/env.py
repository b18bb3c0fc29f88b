"""One Meta-World task as a vla env, under the published evaluation protocol.

What the policy sees (the protocol of LeRobot's Meta-World env, which SmolVLA's and Evo-1's MT50 figures
use): the `corner2` camera moved to (0.75, 0.075, 0.7), flipped on both axes (MuJoCo's corner cameras
render upside down), a 4-D state (hand position + finger opening, the first four entries of Meta-World's
observation) and the task's instruction; never the object or goal positions (the other 35 entries), which
only the scripted expert reads (`raw_obs`). Goals are randomized per episode from the episode seed
(Meta-World's `seeded_rand_vec`), so demonstration seeds and evaluation seeds draw disjoint goals. An
episode ends at the first step with `info["success"]` or after 500 steps.
Rendering is tuned for the CPU (no shadows, no MSAA: the picture is the same scene, ~15x faster).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from vla.envs.metaworld import language
from vla.envs.metaworld.embodiment import CAMERA, make_embodiment
from vla.envs.metaworld.tasks import GROUP_OF, MAX_STEPS

CAMERA_POS = (0.75, 0.075, 0.7)  # LeRobot's corner2 placement (closer to the table than the XML's)


class MetaWorldEnv:
    """A Meta-World v3 task with vla's observation dict, seeded goals and a 500-step limit.

    Args:
        task: a Meta-World v3 environment name, e.g. "drawer-open-v3".
        split: "train" (canonical instruction) or "paraphrase" (the task's held-out phrasing).
        image_size: (height, width) of the camera image.
    """

    def __init__(self, task: str, *, split: str = "train", image_size: tuple[int, int] = (64, 64)) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3_ARGS_KWARGS

        self.task = task
        self.family = task
        self.split = split
        self.embodiment = make_embodiment(image_size)
        self.max_steps = MAX_STEPS
        self.instruction = language.instruction(task, held_out=split == "paraphrase")
        env = ALL_V3_ENVIRONMENTS[task]()
        # What `metaworld.MT1/MT50` do when they build a task, without drawing its 50 fixed goals: goals
        # come from the seeded generator instead (`reset(seed=)`), and the goal stays in the expert's
        # observation (`partially_observable=False`, the MT benchmarks' setting).
        kwargs = dict(MT50_V3_ARGS_KWARGS[task]["kwargs"])
        kwargs.pop("task_id", None)
        env._set_task_called = True
        env._set_task_inner(**kwargs)
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)  # recomputed for the new observability
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        self._env = env
        model = env.model
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0
        cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        model.cam_pos[cam] = CAMERA_POS
        self._renderer = mujoco.Renderer(model, int(image_size[0]), int(image_size[1]))
        self.raw_obs = np.zeros(39)
        self.episode_meta: dict[str, Any] = {}
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Starts an episode whose goal and object positions are drawn from `seed`."""
        del options
        if seed is not None:
            self._env.seed(int(seed))
        raw, _ = self._env.reset()
        self.raw_obs = np.asarray(raw, dtype=np.float64)
        self._steps = 0
        self.episode_meta = {"task": self.task, "group": GROUP_OF[self.task]}
        return self._observation(), {"success": False, "family": self.task}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Applies a 4-D action (clipped to [-1, 1]); ends on the first success or at 500 steps."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,):
            raise ValueError(
                f"metaworld action must have shape (4,) (hand x, y, z displacement + gripper effort), "
                f"got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"metaworld action must be finite, got {a.tolist()}")
        raw, reward, _, _, info = self._env.step(np.clip(a, -1.0, 1.0).astype(np.float32))
        self.raw_obs = np.asarray(raw, dtype=np.float64)
        self._steps += 1
        success = bool(info.get("success", 0.0))
        truncated = self._steps >= self.max_steps
        out = {"success": success, "family": self.task}
        return self._observation(), float(reward), success, truncated and not success, out

    def render(self) -> np.ndarray:
        """The camera image, uint8 [H, W, 3], the right way up."""
        r = self._renderer
        r.update_scene(self._env.data, camera=CAMERA)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return np.ascontiguousarray(r.render()[::-1, ::-1])

    def _observation(self) -> dict[str, Any]:
        return {
            "images": {CAMERA: self.render()},
            "state": self.raw_obs[:4].astype(np.float32),
            "instruction": self.instruction,
        }

    def close(self) -> None:
        self._renderer.close()
        self._env.close()
