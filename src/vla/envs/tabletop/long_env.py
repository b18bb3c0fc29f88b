"""`LongHorizonEnv`: one long-horizon request in a tabletop scene, executed one skill at a time.

The env starts each episode with the request as its instruction. An executor (`vla.planning.executor`)
calls `begin_step(text)` before each skill: the observation's instruction becomes that step's
single-skill instruction (what the low-level policy was trained on), and the scripted expert, which
plans from the current simulator state, starts the step from wherever the scene is now.

`info["success"]` is whether the request is fulfilled in the scene now (every reference step's
predicate, `long_tasks.is_long_success`), `info["step_success"]` whether the current step's skill
succeeded; both are for evaluation only. The env never terminates on success (an executor must decide
by itself when it is done); it truncates after the plan's step budget.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from vla.envs.tabletop import language, tasks
from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.expert import TabletopExpert
from vla.envs.tabletop.long_tasks import (
    KINDS,
    SPLITS,
    STEP_SLACK,
    LongHorizonSpec,
    is_long_success,
    sample_long_episode,
)
from vla.envs.tabletop.long_tasks import step_spec as make_step_spec
from vla.envs.tabletop.scene import PARK_Z
from vla.planning.plan import MAX_PLAN_STEPS, Plan, SceneDescription, Step
from vla.registry import lookup

# Where a put_in step drops: the first of these offsets (m, from the container's centre) farthest from
# what is inside already, so two 4 cm objects fit side by side in every container's inner area
# (objects.CONTAINERS; the tray is longest along x). A single-step expert drops at the centre instead.
SLOT_OFFSETS = ((-0.027, 0.0), (0.027, 0.0), (0.0, 0.027), (0.0, -0.027))
# The time of a request given to `reset` (no reference plan to size it): the longest accepted plan of
# the slowest skill, twice over (room for one retry per step), as `LongHorizonSpec.max_steps` sizes it.
CUSTOM_REQUEST_STEPS = 2 * MAX_PLAN_STEPS * (max(tasks.MAX_STEPS.values()) + STEP_SLACK)


def parse_step(instruction: str) -> Step:
    """The plan step a single-skill tabletop instruction means (raises ValueError if none)."""
    family, slots = language.parse(instruction)
    return Step.of(family, **slots)


class LongHorizonEnv(TabletopEnv):
    """A tabletop scene with a long-horizon request (see module doc).

    Attributes:
        kind: the long-horizon kind `reset` draws requests of.
        long: the episode's `LongHorizonSpec` (privileged: the reference plan; evaluation only).
        step_index: how many `begin_step` calls this episode has had.
    """

    def __init__(
        self,
        kind: str,
        *,
        split: str = "long_horizon",
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = "ee_delta",
    ) -> None:
        super().__init__("put_in", split="train", image_size=image_size, action_mode=action_mode)
        self.family = lookup({k: k for k in KINDS}, kind, kind="long-horizon kind")
        self.kind = self.family  # what `reset` samples (a step env samples other kinds per episode)
        self.split = lookup({s: s for s in SPLITS}, split, kind="long-horizon split")
        self.long: LongHorizonSpec | None = None
        self.step_index = 0
        self._instruction = ""
        self._episode_start: dict[tuple[str, str], np.ndarray] = {}
        self.max_steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Starts a new request; the same `seed` gives the same scene and request.

        Args:
            seed: the episode's seed.
            options: {"instruction": text} makes `text` the request in the seed's scene (`vla run`);
                the episode's time is then that of the longest plan the vocabulary accepts.
        """
        options = dict(options or {})
        custom = options.pop("instruction", None)
        if options:
            raise ValueError(
                f"LongHorizonEnv.reset takes only the option 'instruction', got {sorted(options)}"
            )
        if custom is not None and (not isinstance(custom, str) or not custom.strip()):
            raise ValueError(f"option 'instruction' must be a non-empty string, got {custom!r}")
        if seed is None:
            seed = int(np.random.default_rng().integers(2**62))
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
        rng = np.random.default_rng(int(seed))
        spec = sample_long_episode(self.kind, self.split, rng)
        self.long = spec
        self.task = make_step_spec(spec.plan[0], spec, self.split)
        self._set_up_scene(self.task, rng)
        self._episode_start = dict(self._start)
        self._steps = 0
        self.step_index = 0
        self.max_steps = spec.max_steps if custom is None else CUSTOM_REQUEST_STEPS
        self.episode_index += 1
        self._instruction = spec.instruction if custom is None else custom
        self.episode_meta = {
            "suite": "tabletop",
            "family": spec.kind,
            "split": spec.split,
            "seed": int(seed),
            "instruction": self._instruction,
            "reference_plan": [s.to_json() for s in spec.plan],
            "objects": [obj.object_name(*k) for k in spec.objects],
            "containers": list(spec.containers),
            "action_mode": self.action_mode,
            "image_size": list(self.image_size),
            "max_steps": self.max_steps,
        }
        return self._observation(), {"success": False, "family": self.family, **self.episode_meta}

    def begin_step(self, instruction: str) -> dict[str, Any]:
        """Makes `instruction` (one skill, e.g. "push the red block to the left") the current step.

        Returns:
            The observation, now carrying `instruction`.

        Raises:
            ValueError: if the instruction is not a single-skill tabletop instruction, or names an
                object or container that is not in the scene.
        """
        self.start_step(instruction)
        return self._observation()

    def start_step(self, instruction: str) -> None:
        """`begin_step` without rendering the observation: for a caller outside the thread that owns
        the renderer (the ROS 2 sim's expert, which runs in the node's plan worker)."""
        if self.long is None:
            raise RuntimeError("LongHorizonEnv.begin_step called before reset()")
        step = parse_step(instruction)
        s = step.slots
        for key in (s["obj"], s.get("base"), s.get("ref")):
            if key is not None and tuple(key.split()) not in self.long.objects:
                raise ValueError(f"there is no {key} in this scene")
        if s.get("container") and s["container"] not in self.long.containers:
            raise ValueError(f"there is no {s['container']} in this scene")
        self.task = make_step_spec(step, self.long, self.split)
        self._start = {k: self.object_position(k) for k in self.long.objects}
        self._instruction = instruction
        self.step_index += 1
        self.episode_index += 1  # the expert re-plans from the current state

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, _, _, _, info = super().step(action)
        assert self.long is not None
        success = self.request_fulfilled()
        truncated = self._steps >= self.max_steps
        info = {**info, "step_success": bool(info["success"]), "success": success, "family": self.family}
        return obs, float(success), False, truncated, info

    def request_fulfilled(self, *, plan: Plan | None = None) -> bool:
        """Whether the request is fulfilled now (the simulator's judgement; for evaluation only).

        Args:
            plan: judge these steps' goals instead of the reference plan's (a request given to `reset`
                has no reference plan).
        """
        assert self.long is not None
        s = self.sim_state()
        spec = self.long if plan is None else replace(self.long, plan=tuple(plan))
        return is_long_success(spec, tasks.SimState(self._episode_start, s.pos, s.speed, s.gripper_contacts))

    def describe_scene(self) -> SceneDescription:
        """The scene as a planner sees it: objects on the table, containers, positions, contents.

        Read from simulator state, it stands in for a perception module (an object detector).
        """
        assert self.long is not None
        names, positions = [], {}
        for key in self.long.objects:
            p = self.object_position(key)
            if p[2] > PARK_Z / 2:
                names.append(obj.describe(*key))
                positions[obj.describe(*key)] = (float(p[0]), float(p[1]))
        contents: dict[str, tuple[str, ...]] = {}
        for c, (cx, cy) in self.long.containers.items():
            half = obj.CONTAINERS[c].inner_half
            positions[c] = (float(cx), float(cy))
            contents[c] = tuple(
                n
                for n in names
                if abs(positions[n][0] - cx) < half[0] and abs(positions[n][1] - cy) < half[1]
            )
        return SceneDescription(tuple(names), tuple(self.long.containers), positions, contents)

    def _observation(self) -> dict[str, Any]:
        return {"images": self._render_images(), "state": self._state(), "instruction": self._instruction}


class LongHorizonExpert(TabletopExpert):
    """The tabletop expert for `LongHorizonEnv` steps: drops into a free spot of a container.

    Everything else is the single-step expert, which starts a step from the scene as it is.
    """

    def _destination(self, spec: tasks.EpisodeSpec) -> tuple[Any, float]:
        if spec.family != "put_in":
            return super()._destination(spec)
        assert spec.container is not None
        c = obj.CONTAINERS[spec.container]
        centre = np.asarray(spec.containers[spec.container])
        inside = [
            self.env.object_position(k)[:2]
            for k in spec.objects
            if k != spec.target
            and np.all(np.abs(self.env.object_position(k)[:2] - centre) < np.asarray(c.inner_half) + 0.02)
        ]
        best = max(
            SLOT_OFFSETS,
            key=lambda o: min([float(np.linalg.norm(centre + o - p)) for p in inside] + [1.0]),
        )
        xy = centre + np.asarray(best) + self._rng.normal(0.0, 0.003, 2)
        half = obj.SHAPE_SPECS[spec.target[1]].half_height
        return (lambda: xy), c.top + half + 0.02
