"""The `metaworld` suite object: Meta-World's 50 tasks, their benchmarks and difficulty groups."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.envs.metaworld import language
from vla.envs.metaworld.embodiment import make_embodiment
from vla.envs.metaworld.env import MetaWorldEnv
from vla.envs.metaworld.expert import MetaWorldExpert
from vla.envs.metaworld.tasks import BENCHMARKS, GROUP_OF, MT50
from vla.registry import lookup
from vla.spaces import Embodiment


class MetaWorldSuite:
    """Meta-World v3 (MT1 = one family, MT10, MT50) from pixels under the published protocol.

    Splits: `train` (canonical instructions) and `paraphrase` (each task's held-out phrasing). Goals are
    randomized per episode seed, so `vla eval`'s seeds (from 100000) never repeat a collected goal.
    """

    name = "metaworld"
    families: tuple[str, ...] = MT50
    splits: tuple[str, ...] = ("train", "paraphrase")
    # Declared for the generic CLI and evaluator: benchmark name -> families, family -> group.
    benchmarks: dict[str, tuple[str, ...]] = BENCHMARKS
    family_groups: dict[str, str] = GROUP_OF
    # `vla data export --format lerobot` names the camera as LeRobot's Meta-World data does.
    lerobot_camera_keys: dict[str, str] = {"corner2": "observation.image"}  # noqa: RUF012

    def make(
        self,
        family: str,
        *,
        split: str = "train",
        image_size: tuple[int, int] = (64, 64),
        action_mode: str = "ee_delta",
        randomize: bool = False,
        **kwargs: Any,
    ) -> MetaWorldEnv:
        """Returns a new env of task `family` for `split` (a typo gets a did-you-mean)."""
        if kwargs:
            raise TypeError(f"metaworld.make got unexpected options {sorted(kwargs)}")
        lookup({f: f for f in self.families}, family, kind="metaworld task")
        lookup({s: s for s in self.splits}, split, kind="metaworld split")
        if action_mode != "ee_delta":
            raise ValueError(f"metaworld has one action mode, 'ee_delta' (4-D), not '{action_mode}'")
        if randomize:
            raise ValueError("metaworld has no domain randomization; its goals are randomized per seed")
        return MetaWorldEnv(family, split=split, image_size=image_size)

    def expert(self, env: Any) -> MetaWorldExpert:
        """Meta-World's scripted policy for the env's task."""
        return MetaWorldExpert(env)

    def labeller(self, env: Any) -> MetaWorldExpert:
        """The same scripted policy: it keeps no state, so it labels any visited state."""
        return MetaWorldExpert(env)

    def embodiment(self, image_size: tuple[int, int] = (64, 64)) -> Embodiment:
        """The Sawyer every Meta-World task shares."""
        return make_embodiment(image_size)

    def paraphrase(self, instruction: str, rng: np.random.Generator) -> str:
        """A train phrasing of the same task (language augmentation in `vla train`)."""
        return language.paraphrase(instruction, rng)

    def example_instructions(self, family: str) -> list[str]:
        """The task's canonical instruction and its train paraphrases."""
        return list(
            language.PHRASES[lookup({f: f for f in self.families}, family, kind="metaworld task")][:3]
        )

    def comparison_table(self, results: dict[str, Any]) -> str:
        """The published MT50 table with this evaluation's row (`vla eval` prints it)."""
        from vla.envs.metaworld.published import format_table

        return format_table(results)
