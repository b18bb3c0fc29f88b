"""The `tabletop` suite object: builds envs by family and split, and their scripted experts."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.envs.tabletop.embodiment import make_embodiment
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.expert import TabletopExpert
from vla.envs.tabletop.humanoid.tasks import SUITE_FAMILIES as HUMANOID_FAMILIES
from vla.envs.tabletop.labels import SCENE
from vla.envs.tabletop.long_step_env import SPLIT as STEP_SPLIT
from vla.envs.tabletop.long_tasks import KINDS as LONG_KINDS
from vla.envs.tabletop.long_tasks import SPLITS as LONG_SPLITS
from vla.envs.tabletop.tasks import FAMILIES, SPLITS
from vla.features import Feature
from vla.registry import lookup
from vla.spaces import Embodiment

# The robot the suite's families, splits and experts were written for; `make(robot=...)` names another.
DEFAULT_ROBOT = "panda"


def _make_humanoid(
    family: str, *, split: str, image_size: tuple[int, int], action_mode: str, randomize: bool
) -> Any:
    """The G1 humanoid's env of `family` (`vla.envs.tabletop.humanoid`)."""
    from vla.envs.tabletop.humanoid.env import HumanoidTabletopEnv
    from vla.robots.g1.embodiment import WHOLE_BODY

    lookup({f: f for f in HUMANOID_FAMILIES}, family, kind="tabletop family for robot 'humanoid'")
    if randomize:
        raise ValueError("the humanoid tabletop env has no domain randomization yet; use randomize=False")
    # The suite's default action mode is the Panda's; for the humanoid it means the G1's only space.
    mode = WHOLE_BODY.name if action_mode == "ee_delta" else action_mode
    return HumanoidTabletopEnv(family, split=split, image_size=image_size, action_mode=mode)


# Robots other than the default: name -> env maker (family, split, image_size, action_mode, randomize).
_OTHER_ROBOTS = {"humanoid": _make_humanoid}
# The embodiment each robot's envs declare (its `name`), so a checkpoint finds its robot's envs.
_ROBOT_OF_EMBODIMENT = {"panda_tabletop": DEFAULT_ROBOT, "unitree_g1_tabletop": "humanoid"}


class TabletopSuite:
    """Six language-conditioned manipulation families on one table, with four evaluation splits.

    Splits: `train` (train colour×shape pairs, train templates), `unseen` (held-out pairs as the
    target), `paraphrase` (held-out instruction templates), `randomized` (domain randomization),
    `long_horizon_steps` (a step of a long-horizon request, after the expert ran the steps before it:
    `long_step_env.py`).
    """

    name = "tabletop"
    families: tuple[str, ...] = FAMILIES
    splits: tuple[str, ...] = (*SPLITS, STEP_SPLIT)
    # Declared extras (vla.features): the scene labels every episode records at its start.
    features: tuple[Feature, ...] = (SCENE,)
    # The feature `grounding_scenes` labels its views with (`vla collect-grounding`).
    grounding_feature: Feature = SCENE
    # Long-horizon requests (`vla.planning`): kinds and splits of `make_long_horizon`.
    long_horizon_kinds: tuple[str, ...] = LONG_KINDS
    long_horizon_splits: tuple[str, ...] = LONG_SPLITS
    # The robots `make` builds envs for, and each one's families (`families` are the Panda's).
    robots: dict[str, tuple[str, ...]] = {DEFAULT_ROBOT: FAMILIES, "humanoid": HUMANOID_FAMILIES}  # noqa: RUF012

    def make(
        self,
        family: str,
        *,
        split: str = "train",
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = "ee_delta",
        randomize: bool = False,
        robot: str = DEFAULT_ROBOT,
        **kwargs: Any,
    ) -> Any:
        """Returns a new env of `family` for `split`.

        Args:
            family: one of the robot's families (`families_for(robot=robot)`; a typo gets a did-you-mean).
            split: one of `splits` (the humanoid has train, unseen and paraphrase).
            image_size: (height, width) of every camera image.
            action_mode: "ee_delta" (default, 7-D) or "joint_pos" (8-D); for the humanoid the default
                means its only space, "whole_body" (A = 22).
            randomize: domain randomization on any split (always on for `randomized`; Panda only).
            robot: "panda" (default) or "humanoid" (the Unitree G1, `vla.envs.tabletop.humanoid`).
        """
        if kwargs:
            raise TypeError(f"tabletop.make got unexpected options {sorted(kwargs)}")
        lookup(self.robots, robot, kind="tabletop robot")
        if robot in _OTHER_ROBOTS:
            return _OTHER_ROBOTS[robot](
                family, split=split, image_size=image_size, action_mode=action_mode, randomize=randomize
            )
        lookup({f: f for f in self.families}, family, kind="tabletop family")
        lookup({s: s for s in self.splits}, split, kind="tabletop split")
        if split == STEP_SPLIT:
            from vla.envs.tabletop.long_step_env import LongHorizonStepEnv

            if randomize:
                raise ValueError(f"split '{STEP_SPLIT}' has no domain randomization; use randomize=False")
            return LongHorizonStepEnv(family, image_size=image_size, action_mode=action_mode)
        return TabletopEnv(
            family, split=split, image_size=image_size, action_mode=action_mode, randomize=randomize
        )

    def families_for(self, *, robot: str = DEFAULT_ROBOT) -> tuple[str, ...]:
        """The families `make(..., robot=robot)` builds."""
        return lookup(self.robots, robot, kind="tabletop robot")

    def env_options_for(self, embodiment_name: str) -> tuple[tuple[str, Any], ...]:
        """The `make` options whose envs the named embodiment drives: () for the Panda's,
        (("robot", "humanoid"),) for the G1's. Another name gets () and the caller's compatibility
        check names the mismatch."""
        robot = _ROBOT_OF_EMBODIMENT.get(embodiment_name, DEFAULT_ROBOT)
        return () if robot == DEFAULT_ROBOT else (("robot", robot),)

    def expert(self, env: Any) -> Any:
        """Returns the scripted expert for `env` (call `expert.reset()` after each `env.reset`)."""
        from vla.envs.tabletop.humanoid.env import HumanoidTabletopEnv
        from vla.envs.tabletop.long_env import LongHorizonEnv, LongHorizonExpert

        if isinstance(env, HumanoidTabletopEnv):
            from vla.envs.tabletop.humanoid.expert import HumanoidExpert

            return HumanoidExpert(env)
        return LongHorizonExpert(env) if isinstance(env, LongHorizonEnv) else TabletopExpert(env)

    def labeller(self, env: Any) -> Any:
        """The expert in relabelling mode (`relabel=True`): it labels any visited state (DAgger)."""
        from vla.envs.tabletop.humanoid.env import HumanoidTabletopEnv
        from vla.envs.tabletop.long_env import LongHorizonEnv, LongHorizonExpert

        if isinstance(env, HumanoidTabletopEnv):
            from vla.envs.tabletop.humanoid.expert import HumanoidExpert

            return HumanoidExpert(env, relabel=True)

        if isinstance(env, LongHorizonEnv):
            return LongHorizonExpert(env, relabel=True)
        return TabletopExpert(env, relabel=True)

    def make_long_horizon(
        self,
        kind: str,
        *,
        split: str = "long_horizon",
        image_size: tuple[int, int] = (96, 96),
        action_mode: str = "ee_delta",
    ) -> Any:
        """A `LongHorizonEnv` of `kind` (one of `long_horizon_kinds`) for `split`."""
        from vla.envs.tabletop.long_env import LongHorizonEnv

        return LongHorizonEnv(kind, split=split, image_size=image_size, action_mode=action_mode)

    def long_horizon_request(self, kind: str, *, split: str, seed: int) -> tuple[str, Any, Any]:
        """(request, initial scene description, reference plan) of the `make_long_horizon(kind)` episode
        `reset(seed=seed)` starts, without building a simulator (planner benchmarks, scene search)."""
        from vla.envs.tabletop.long_tasks import initial_scene, sample_long_episode

        lookup({k: k for k in self.long_horizon_kinds}, kind, kind="long-horizon kind")
        spec = sample_long_episode(kind, split, np.random.default_rng(int(seed)))
        return spec.instruction, initial_scene(spec), spec.plan

    @property
    def skills(self) -> Any:
        """The policy's skill vocabulary, for planners (`vla.envs.tabletop.skills.VOCABULARY`)."""
        from vla.envs.tabletop.skills import VOCABULARY

        return VOCABULARY

    def step_monitor(self) -> Any:
        """A fresh step-success detector that reads the robot state only (`step_monitor.py`)."""
        from vla.envs.tabletop.step_monitor import StateStepMonitor

        return StateStepMonitor()

    def inject_fault(self, actor: Any, *, rate: float, seed: int = 0) -> Any:
        """`actor` with grasps that slip in `rate` of the step attempts (`faults.py`)."""
        from vla.envs.tabletop.faults import DropFault

        return DropFault(actor, rate=rate, seed=seed)

    def embodiment(self, image_size: tuple[int, int] = (96, 96)) -> Embodiment:
        """Returns the robot description shared by every Panda tabletop env."""
        return make_embodiment(image_size)

    def paraphrase(self, instruction: str, rng: np.random.Generator) -> str:
        """A train-template paraphrase of `instruction` (language augmentation in `vla train`), for
        either robot's instructions."""
        from vla.envs.tabletop import language
        from vla.envs.tabletop.humanoid import language as humanoid_language

        try:
            return language.paraphrase(instruction, rng)
        except ValueError as panda_error:
            try:
                return humanoid_language.paraphrase(instruction, rng)
            except ValueError:
                raise panda_error from None

    def grounding_scenes(
        self,
        seeds: list[int],
        *,
        family_of: list[str],
        views: int,
        split: str = "train",
        image_size: tuple[int, int] = (96, 96),
    ) -> dict[str, Any]:
        """Labelled views of episode scenes, for grounding pretraining (`vla collect-grounding`)."""
        from vla.envs.tabletop.grounding import render_scenes

        return render_scenes(seeds, family_of=family_of, views=views, split=split, image_size=image_size)

    def presence_declaration(self) -> dict[str, Any]:
        """What the presence check (`vla models presence`) learns: attribute groups (colour is read per
        pixel), every object name's attributes, and the camera that sees the whole table."""
        from vla.envs.tabletop import objects as obj
        from vla.envs.tabletop.presence_views import CAMERA, GROUPS

        return {
            "groups": GROUPS,
            "local": ("colour",),
            "objects": {obj.describe(c, s): (c, s) for c, s in obj.ALL_PAIRS},
            "camera": CAMERA,
            "absent_candidates": [obj.describe(*p) for p in obj.TRAIN_PAIRS],
        }

    def refine_estimates(
        self, estimates: dict[str, np.ndarray], instruction: str, images: dict[str, np.ndarray], check: Any
    ) -> dict[str, np.ndarray]:
        """A policy's first-frame estimates with the named objects placed by the presence net
        (`vla eval --set detector_grounding=true`; `detector_grounding.py`)."""
        from vla.envs.tabletop.detector_grounding import refine_scene
        from vla.envs.tabletop.labels import SCENE

        if SCENE.name not in estimates:
            return estimates
        image = images[check.spec.camera]
        rows = [refine_scene(row, instruction, image, check) for row in np.atleast_2d(estimates[SCENE.name])]
        return {**estimates, SCENE.name: np.stack(rows).astype(np.float32)}

    def presence_views(
        self,
        seeds: list[int],
        *,
        family_of: list[str],
        split: str = "train",
        image_size: tuple[int, int] = (96, 96),
    ) -> dict[str, Any]:
        """First frames of episode scenes with per-pixel attribute maps (`vla models presence`)."""
        from vla.envs.tabletop.presence_views import render_presence_views

        return render_presence_views(seeds, family_of=family_of, split=split, image_size=image_size)

    def example_instructions(self, family: str) -> list[str]:
        """Returns one train-template instruction per template of `family` (for listings and docs)."""
        from vla.envs.tabletop.language import TRAIN_TEMPLATES, fill

        slots = {
            "obj": "red block",
            "base": "blue block",
            "ref": "green ball",
            "container": "bowl",
            "direction": "left",
        }
        return [fill(t, slots) for t in lookup(TRAIN_TEMPLATES, family, kind="tabletop family")]
