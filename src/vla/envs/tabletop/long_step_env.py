"""`LongHorizonStepEnv`: a single-step episode that starts in the middle of a long-horizon request.

A long-horizon request runs skills one after another, so every skill after the first starts where the
previous ones left the scene: objects already in containers or moved, a stack on the table, the arm
above a container instead of at home, three to five objects and two containers. A policy trained only
on the single-step families' fresh scenes has never seen those states (measured: docs/measured.md,
"Planner", with a learned policy). This env makes them a split of the single-step suite,
`long_horizon_steps`, so the collector, the trainer and `vla eval` use them unchanged:

`reset(seed)` draws a long-horizon request (`long_tasks.sample_long_episode`, train templates) whose
reference plan holds a step of this env's family, picks one such step, and runs the plan's steps before
it with the scripted expert, unrecorded (the prelude). The episode is then that step, in single-step
form: its instruction (a train template of the family), `info["success"]` the step's predicate, the
family's step budget, termination on success, the scene labels of the step's start. `touch`, which no
long-horizon plan uses, touches a random object on the table after a random prefix of a random plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.envs.tabletop import language, tasks
from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.env import TabletopEnv, role_meta
from vla.envs.tabletop.labels import SCENE, scene_labels
from vla.envs.tabletop.long_env import LongHorizonEnv, LongHorizonExpert
from vla.envs.tabletop.long_tasks import KINDS, STEP_SLACK, sample_long_episode
from vla.envs.tabletop.scene import PARK_Z
from vla.planning.plan import Step
from vla.registry import lookup

SPLIT = "long_horizon_steps"
# Stream of the prelude's choices, apart from the request's own draws.
_CHOICE_STREAM = 23
# Draws of a request until one holds a step of the family (every kind but touch's has one in most draws).
_MAX_DRAWS = 200


class LongHorizonStepEnv(LongHorizonEnv):
    """One step of a long-horizon request as a single-step episode (see module doc).

    Attributes:
        family: the single-step family of every episode.
        prelude: the steps run before the episode's step, and whether the expert's step succeeded.
    """

    def __init__(
        self,
        family: str,
        *,
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = "ee_delta",
    ) -> None:
        super().__init__(KINDS[0], split="long_horizon", image_size=image_size, action_mode=action_mode)
        self.family = lookup({f: f for f in tasks.FAMILIES}, family, kind="tabletop family")
        self.max_steps = tasks.MAX_STEPS[self.family]
        self.prelude: list[tuple[dict[str, str], bool]] = []
        self._prelude_expert = LongHorizonExpert(self)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Starts the episode of `seed`: request, prelude, then the step (same seed, same episode)."""
        if options:
            raise ValueError(f"LongHorizonStepEnv.reset takes no options, got {sorted(options)}")
        if seed is None:
            seed = int(np.random.default_rng().integers(2**62))
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
        seed = int(seed)
        family_index = tasks.FAMILIES.index(self.family)
        choose = np.random.default_rng([seed, family_index, _CHOICE_STREAM])
        super().reset(seed=self._request_seed(seed, choose))
        assert self.long is not None
        plan = self.long.plan
        at = [i for i, s in enumerate(plan) if s.skill == self.family]
        index = int(choose.choice(at)) if at else int(choose.integers(len(plan) + 1))
        self.prelude = [(s.to_json(), self._run_prelude_step(s)) for s in plan[:index]]
        step = plan[index] if at else self._touch_step(choose)
        text = self._instruction_text(step, choose)
        obs = self.begin_step(text)
        self._steps = 0
        self.max_steps = tasks.MAX_STEPS[self.family]
        assert self.task is not None
        spec = self.task
        labels, mask = scene_labels(self)
        self.episode_meta = {
            "suite": "tabletop",
            "family": self.family,
            "split": SPLIT,
            "seed": seed,
            "instruction": text,
            "kind": self.long.kind,
            "request": self.long.instruction,
            "prelude": [p for p, _ in self.prelude],
            "prelude_success": [ok for _, ok in self.prelude],
            **role_meta(spec),
            "objects": [obj.object_name(*k) for k in self.long.objects],
            "containers": list(self.long.containers),
            "action_mode": self.action_mode,
            "image_size": list(self.image_size),
            "max_steps": self.max_steps,
            SCENE.name: [round(float(v), 6) for v in labels],
            SCENE.mask_key: [float(v) for v in mask],
        }
        return obs, {"success": False, "family": self.family, **self.episode_meta}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """A single-step env's step: the step's predicate is the success, which ends the episode."""
        return TabletopEnv.step(self, action)

    # ------------------------------------------------------------------ internals
    def _request_seed(self, seed: int, choose: np.random.Generator) -> int:
        """A request seed whose plan has a step of the family (any request for touch)."""
        kinds = [k for k in KINDS if self.family == "touch" or _may_hold(k, self.family)]
        for _ in range(_MAX_DRAWS):
            kind = str(choose.choice(kinds))
            request_seed = int(choose.integers(2**62))
            spec = sample_long_episode(kind, "long_horizon", np.random.default_rng(request_seed))
            if self.family == "touch" or any(s.skill == self.family for s in spec.plan):
                self.kind = kind
                return request_seed
        raise RuntimeError(f"no long-horizon request with a '{self.family}' step in {_MAX_DRAWS} draws")

    def _run_prelude_step(self, step: Step) -> bool:
        """Runs one earlier step of the plan with the expert; returns its predicate at the end."""
        self.begin_step(language.fill(language.TRAIN_TEMPLATES[step.skill][0], step.slots))
        self._prelude_expert.reset()
        obs = self._observation()
        for _ in range(tasks.MAX_STEPS[step.skill] + STEP_SLACK):
            obs, _, done, _, info = TabletopEnv.step(self, self._prelude_expert.act(obs))
            if done:
                return bool(info["success"])
        return False

    def _touch_step(self, choose: np.random.Generator) -> Step:
        assert self.long is not None
        on_table = [k for k in self.long.objects if self.object_position(k)[2] > PARK_Z / 2]
        outside = [k for k in on_table if not self._in_container(k)] or on_table
        key = outside[int(choose.integers(len(outside)))]
        return Step.of("touch", obj=obj.describe(*key))

    def _in_container(self, key: tuple[str, str]) -> bool:
        assert self.long is not None
        p = self.object_position(key)
        for c, (cx, cy) in self.long.containers.items():
            half = obj.CONTAINERS[c].inner_half
            if abs(p[0] - cx) < half[0] + 0.01 and abs(p[1] - cy) < half[1] + 0.01:
                return True
        return False

    def _instruction_text(self, step: Step, choose: np.random.Generator) -> str:
        templates = language.TRAIN_TEMPLATES[step.skill]
        return language.fill(templates[int(choose.integers(len(templates)))], step.slots)


def _may_hold(kind: str, family: str) -> bool:
    """Whether plans of `kind` can hold a step of `family` (from a few draws; cached per process)."""
    key = (kind, family)
    if key not in _MAY_HOLD:
        rng = np.random.default_rng(0)
        _MAY_HOLD[key] = any(
            s.skill == family for _ in range(20) for s in sample_long_episode(kind, "long_horizon", rng).plan
        )
    return _MAY_HOLD[key]


_MAY_HOLD: dict[tuple[str, str], bool] = {}
